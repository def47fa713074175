"""Field values from the outside (JSON, form posts) → typed Python values, with field errors.

One function per concern: ``coerce_field`` turns raw input into the field's type and checks
its own limits (required, ranges, lengths, patterns, options). Cross-field rules, refs and
permissions are checked by the records service, which owns the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from engine.model.errors import FieldError
from engine.model.i18n import Text
from engine.model.spec import FieldSpec

__all__ = ["coerce_field", "is_blank"]

_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{4,19}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
MAX_TEXT = 1_000_000


def is_blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


@cache
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def _err(field: FieldSpec, code: str, en: str, zh: str) -> FieldError:
    return FieldError(field.name, code, Text(f"{field.label}: {en}", f"{field.label}：{zh}"))


def coerce_field(field: FieldSpec, raw: Any, tz: str) -> tuple[Any, FieldError | None]:
    """(typed value, None) or (None, error). Blank input gives (None, None): the caller checks
    ``required`` because a blank may be filled by a default."""
    if is_blank(raw):
        return None, None
    try:
        value = _convert(field, raw, tz)
    except _Bad as bad:
        return None, _err(field, bad.code, bad.en, bad.zh)
    error = _check_limits(field, value)
    return (None, error) if error else (value, None)


class _Bad(Exception):
    def __init__(self, code: str, en: str, zh: str) -> None:
        super().__init__(en)
        self.code, self.en, self.zh = code, en, zh


def _convert(field: FieldSpec, raw: Any, tz: str) -> Any:
    kind = field.value_type
    if kind in ("text", "long_text", "phone", "email", "select"):
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise _Bad("type", "must be text", "必须是文本")
        text = str(raw).strip() if kind != "long_text" else str(raw)
        if len(text) > MAX_TEXT:
            raise _Bad("max_length", "is far too long", "内容过长")
        if "\x00" in text:
            raise _Bad("type", "contains a NUL character", "包含非法字符")
        return text
    if kind == "integer":
        if isinstance(raw, bool):
            raise _Bad("type", "must be a whole number", "必须是整数")
        if isinstance(raw, int):
            value = raw
        elif (isinstance(raw, float) and raw.is_integer()) or (
            isinstance(raw, str) and re.fullmatch(r"\s*[-+]?\d{1,18}\s*", raw)
        ):
            value = int(raw)
        else:
            raise _Bad("type", "must be a whole number", "必须是整数")
        if abs(value) > 9_000_000_000_000_000_000:
            raise _Bad("max", "is too large", "数值过大")
        return value
    if kind in ("decimal", "money"):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise _Bad("type", "must be a number", "必须是数字")
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            raise _Bad("type", "must be a number", "必须是数字") from None
        if not number.is_finite() or abs(number) >= Decimal(10) ** 15:
            raise _Bad("max", "is too large", "数值过大")
        scale = field.scale if field.scale is not None else (2 if kind == "money" else 4)
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > scale:
            raise _Bad(
                "scale", f"allows at most {scale} decimal places", f"最多允许 {scale} 位小数"
            )
        return number.quantize(Decimal(1).scaleb(-scale))  # as the column stores it
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "on", "1", "false", "off", "0"):
            return raw.lower() in ("true", "on", "1")
        raise _Bad("type", "must be true or false", "必须是“是”或“否”")
    if kind == "date":
        if isinstance(raw, date):  # from an expression (flows' set:, defaults)
            return raw.date() if isinstance(raw, datetime) else raw
        if isinstance(raw, str):
            try:
                return (
                    date.fromisoformat(raw.strip()[:10])
                    if len(raw.strip()) == 10
                    else date.fromisoformat(raw.strip())
                )
            except ValueError:
                pass
        raise _Bad("type", "must be a date (YYYY-MM-DD)", "必须是日期（YYYY-MM-DD）")
    if kind == "datetime":
        if isinstance(raw, datetime):
            return raw if raw.tzinfo else raw.replace(tzinfo=ZoneInfo(tz))
        if isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw.strip())
            except ValueError:
                moment = None
            if moment is not None:
                return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))
        raise _Bad(
            "type",
            "must be a date and time (YYYY-MM-DDTHH:MM)",
            "必须是日期时间（YYYY-MM-DDTHH:MM）",
        )
    if kind == "multiselect":
        items = raw if isinstance(raw, list) else [raw]
        if not all(isinstance(i, str) for i in items):
            raise _Bad("type", "must be a list of choices", "必须是选项列表")
        return list(dict.fromkeys(items))
    if kind == "ref":
        if isinstance(raw, Mapping) and "id" in raw:
            raw = raw["id"]
        if isinstance(raw, bool):
            raise _Bad("type", "must be the id of a record", "必须是记录编号")
        if isinstance(raw, str) and raw.strip().isdecimal():
            raw = int(raw)
        if not isinstance(raw, int) or raw <= 0 or raw > 2**62:
            raise _Bad("type", "must be the id of a record", "必须是记录编号")
        return raw
    if kind == "files":
        items = raw if isinstance(raw, list) else [raw]
        ids = [i.get("id") if isinstance(i, Mapping) else i for i in items]
        if not all(isinstance(i, str) and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids):
            raise _Bad("type", "must be a list of uploaded file ids", "必须是已上传文件的编号列表")
        return list(dict.fromkeys(ids))
    raise _Bad("readonly", "is filled in by the system", "由系统自动填写")


def _check_limits(field: FieldSpec, value: Any) -> FieldError | None:
    kind = field.value_type
    if kind in ("text", "long_text", "phone", "email", "select") and isinstance(value, str):
        limit = field.max_length or (255 if kind == "text" else None)
        if limit is not None and len(value) > limit:
            return _err(field, "max_length", f"at most {limit} characters", f"最多 {limit} 个字符")
        if field.min_length is not None and len(value) < field.min_length:
            return _err(
                field,
                "min_length",
                f"at least {field.min_length} characters",
                f"至少 {field.min_length} 个字符",
            )
        if field.pattern and not _pattern(field.pattern).search(value):
            message = field.pattern_message
            if message:
                return FieldError(field.name, "pattern", Text(message, message))
            return _err(field, "pattern", "is not in the expected format", "格式不正确")
        if kind == "phone" and not _PHONE.match(value):
            return _err(field, "pattern", "is not a phone number", "不是有效的电话号码")
        if kind == "email" and not _EMAIL.match(value):
            return _err(field, "pattern", "is not an email address", "不是有效的邮箱地址")
        if kind == "select" and value not in field.option_values:
            shown = "、".join(o.label for o in field.options)
            return _err(
                field,
                "option",
                f"'{value}' is not one of the choices ({shown})",
                f"'{value}' 不是可选项（{shown}）",
            )
    if kind == "multiselect":
        bad = [v for v in value if v not in field.option_values]
        if bad:
            return _err(
                field, "option", f"'{bad[0]}' is not one of the choices", f"'{bad[0]}' 不是可选项"
            )
        if field.min_items is not None and len(value) < field.min_items:
            return _err(
                field,
                "min_items",
                f"choose at least {field.min_items}",
                f"至少选择 {field.min_items} 项",
            )
        if field.max_items is not None and len(value) > field.max_items:
            return _err(
                field,
                "max_items",
                f"choose at most {field.max_items}",
                f"最多选择 {field.max_items} 项",
            )
    if kind == "files" and field.max_files is not None and len(value) > field.max_files:
        return _err(
            field, "max_files", f"at most {field.max_files} files", f"最多 {field.max_files} 个文件"
        )
    return _check_range(field, value)


def _check_range(field: FieldSpec, value: Any) -> FieldError | None:
    low, high = field.min, field.max
    if field.value_type == "date":
        low = date.fromisoformat(low) if isinstance(low, str) else None
        high = date.fromisoformat(high) if isinstance(high, str) else None
    elif field.value_type not in ("integer", "decimal", "money"):
        return None
    if low is not None and value < low:
        return _err(field, "min", f"must be at least {low}", f"不能小于 {low}")
    if high is not None and value > high:
        return _err(field, "max", f"must be at most {high}", f"不能大于 {high}")
    return None
