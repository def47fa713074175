"""Bilingual wording shared by the checker, the compiler and the functions."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from engine.model.i18n import Text, counted

__all__ = [
    "closest",
    "describe",
    "did_you_mean",
    "explain_type_error",
    "plural_args",
    "quoted_list",
]


def describe(value: object) -> Text:
    """A short bilingual description of a run-time value, e.g. ``'abc' (text)``."""
    if value is None:
        return Text("nothing (blank)", "空值")
    try:
        shown = repr(value)
    except ValueError:  # an integer with more digits than Python will print
        shown = "…"
    if len(shown) > 40:
        shown = shown[:37] + "…"
    kind = _kind(value)
    return Text(f"{shown} ({kind.en})", f"{shown}（{kind.zh}）")


def _kind(value: object) -> Text:
    if isinstance(value, bool):
        return Text("yes/no", "布尔值")
    if isinstance(value, int):
        return Text("integer", "整数")
    if isinstance(value, float | Decimal):
        return Text("number", "数字")
    if isinstance(value, str):
        return Text("text", "文本")
    if isinstance(value, dt.datetime):
        return Text("date and time", "日期时间")
    if isinstance(value, dt.date):
        return Text("date", "日期")
    if isinstance(value, list | tuple):
        return Text("list", "列表")
    if isinstance(value, Mapping):
        return Text("record", "记录")
    name = type(value).__name__
    return Text(name, name)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` was most likely meant to be (case-insensitive first)."""
    pool = sorted({c for c in candidates if c})
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(candidate: str) -> Text:
    return Text(f"did you mean '{candidate}'?", f"您是不是想写 '{candidate}'？")


def quoted_list(items: Iterable[str], limit: int = 12) -> Text:
    pool = list(items)
    shown = pool[:limit]
    more = len(pool) > limit
    en = ", ".join(shown) + (", …" if more else "")
    zh = "、".join(shown) + ("……" if more else "")
    return Text(en, zh)


def plural_args(n: int) -> Text:
    return counted(n, "argument", "个参数")


# ---- run-time errors from Python operators ----------------------------------------------

_TYPE_NAMES: dict[str, Text] = {
    "NoneType": Text("a blank value", "空值"),
    "int": Text("an integer", "整数"),
    "bool": Text("yes/no", "布尔值"),
    "float": Text("a number", "数字"),
    "Decimal": Text("a number", "数字"),
    "decimal.Decimal": Text("a number", "数字"),
    "str": Text("text", "文本"),
    "list": Text("a list", "列表"),
    "tuple": Text("a list", "列表"),
    "dict": Text("a record", "记录"),
    "date": Text("a date", "日期"),
    "datetime.date": Text("a date", "日期"),
    "datetime": Text("a date-time", "日期时间"),
    "datetime.datetime": Text("a date-time", "日期时间"),
    "timedelta": Text("a duration", "时长"),
    "datetime.timedelta": Text("a duration", "时长"),
    "complex": Text("a complex number", "复数"),
}

_BLANK_HINT = Text(
    "a value used here is blank; guard it, e.g. x is not None and …, or coalesce(x, 0)",
    "这里用到的某个值为空；可以先判断，例如 x is not None and …，或使用 coalesce(x, 0)",
)


def _type_name(name: str) -> Text:
    return _TYPE_NAMES.get(name, Text(name, name))


_TYPE_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Text]], ...] = (
    (
        re.compile(r"'(.+)' not supported between instances of '([\w.]+)' and '([\w.]+)'"),
        lambda m: Text(
            f"cannot compare {_type_name(m[2]).en} with {_type_name(m[3]).en} using {m[1]}",
            f"无法用 {m[1]} 比较{_type_name(m[2]).zh}和{_type_name(m[3]).zh}",
        ),
    ),
    (
        re.compile(r"unsupported operand type\(s\) for (.+): '([\w.]+)' and '([\w.]+)'"),
        lambda m: Text(
            f"cannot use {m[1]} with {_type_name(m[2]).en} and {_type_name(m[3]).en}",
            f"无法对{_type_name(m[2]).zh}和{_type_name(m[3]).zh}使用 {m[1]} 运算",
        ),
    ),
    (
        re.compile(r"bad operand type for unary (.): '([\w.]+)'"),
        lambda m: Text(
            f"cannot use {m[1]} on {_type_name(m[2]).en}",
            f"无法对{_type_name(m[2]).zh}使用 {m[1]}",
        ),
    ),
    (
        re.compile(r'can only concatenate (\w+) \(not "([\w.]+)"\) to \w+'),
        lambda m: Text(
            f"cannot add {_type_name(m[2]).en} to {_type_name(m[1]).en}"
            + (" — convert it with str(x)" if m[1] == "str" else ""),
            f"无法把{_type_name(m[2]).zh}加到{_type_name(m[1]).zh}上"
            + ("，可以先用 str(x) 转换" if m[1] == "str" else ""),
        ),
    ),
    (
        re.compile(r"can't compare offset-naive and offset-aware datetimes"),
        lambda m: Text(
            "cannot compare date-times with and without a time zone",
            "无法比较带时区和不带时区的日期时间",
        ),
    ),
    (
        re.compile(r"can't compare (datetime\.\w+) to (datetime\.\w+)"),
        lambda m: Text(
            f"cannot compare {_type_name(m[1]).en} with {_type_name(m[2]).en}",
            f"无法比较{_type_name(m[1]).zh}和{_type_name(m[2]).zh}",
        ),
    ),
    (
        re.compile(r"'in <string>' requires string as left operand, not (\w+)"),
        lambda m: Text(
            f"'in' on text needs text on the left, not {_type_name(m[1]).en}",
            f"对文本使用 in 时，左边也必须是文本，而不是{_type_name(m[1]).zh}",
        ),
    ),
    (
        re.compile(r"argument of type '(\w+)' is not iterable"),
        lambda m: Text(
            f"'in' needs text or a list on the right, not {_type_name(m[1]).en}",
            f"in 的右边必须是文本或列表，而不是{_type_name(m[1]).zh}",
        ),
    ),
    (
        re.compile(r"can't multiply sequence by non-int of type '(\w+)'"),
        lambda m: Text(
            "text or a list can only be repeated a whole number of times, "
            f"not {_type_name(m[1]).en}",
            f"文本或列表只能重复整数次，不能乘以{_type_name(m[1]).zh}",
        ),
    ),
)


def explain_type_error(exc: TypeError) -> tuple[Text, Text | None]:
    """A bilingual message (and hint) for a ``TypeError`` raised by an operator."""
    detail = str(exc)
    hint = _BLANK_HINT if "NoneType" in detail else None
    for pattern, build in _TYPE_PATTERNS:
        match = pattern.search(detail)
        if match is not None:
            return build(match), hint
    return Text(
        "values of the wrong type cannot be used together here", "值的类型不匹配，无法计算"
    ), hint
