"""Check a loaded file against its kind's JSON Schema and report in people's words.

jsonschema's own messages ("Additional properties are not allowed ('lable' was
unexpected)") are turned into diagnostics at the exact key or value, in English and
Chinese, with "did you mean …?" where a name is close to a valid one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

from engine.config.loader import LoadedYaml, YamlPath
from engine.config.schemas import DATE_PATTERN, HOURS_PATTERN, IDENT, schema_for
from engine.model.diagnostics import Diagnostics, suggestion_hint
from engine.model.i18n import Text

_TYPE_WORDS = {
    "string": Text("text", "文本"),
    "integer": Text("a whole number", "整数"),
    "number": Text("a number", "数字"),
    "boolean": Text("true or false", "true 或 false"),
    "object": Text("a mapping (key: value lines)", "映射（键: 值）"),
    "array": Text("a list", "列表"),
    "null": Text("nothing", "空值"),
}

_PATTERN_HINTS = {
    IDENT: Text(
        "use lowercase letters, digits and _, starting with a letter (e.g. unit_price)",
        "请使用小写字母、数字和下划线，并以字母开头（例如 unit_price）",
    ),
    DATE_PATTERN: Text("write dates as YYYY-MM-DD", "日期请写成 YYYY-MM-DD"),
    HOURS_PATTERN: Text(
        "write hours as HH:MM-HH:MM, e.g. 08:30-12:00", "时间段请写成 HH:MM-HH:MM，例如 08:30-12:00"
    ),
    r"^[A-Z][A-Z0-9_]*$": Text(
        "give the NAME of an environment variable in capitals (e.g. WMS_TOKEN); secrets "
        "never go in YAML",
        "请填写环境变量的名称（大写，例如 WMS_TOKEN）；密钥绝不写在 YAML 里",
    ),
}


@cache
def _validator(kind: str) -> Draft7Validator:
    return Draft7Validator(schema_for(kind))


def _type_name(value: Any) -> Text:
    if value is None:
        return Text("nothing", "空值")
    if isinstance(value, bool):
        return Text(f"{str(value).lower()}", f"{str(value).lower()}")
    if isinstance(value, int | float):
        return Text(f"the number {value}", f"数字 {value}")
    if isinstance(value, str):
        return Text(f"the text '{value}'", f"文本 '{value}'")
    if isinstance(value, list):
        return Text("a list", "列表")
    return Text("a mapping", "映射")


def check_schema(kind: str, doc: LoadedYaml, diags: Diagnostics) -> bool:
    """Validate ``doc`` against the schema of ``kind``; True when it is clean."""
    before = len(diags.items)
    for error in _validator(kind).iter_errors(doc.data):
        for leaf in _leaves(error):
            _report(leaf, doc, diags)
    clean = len(diags.items) == before
    flagged = {d.yaml_path for d in diags.items[before:]}
    for path in sorted(doc.yaml11_bools, key=lambda p: doc.mark(p).line):
        if path in flagged:
            continue
        word = doc.get(path)
        diags.warning(
            doc.path,
            doc.mark(path),
            "yaml11-boolean",
            Text(
                f"'{word}' is read as the text '{word}', not as a boolean",
                f"'{word}' 按文本 '{word}' 读取，而不是布尔值",
            ),
            Text(
                f"quote it ('{word}') so every YAML tool reads it the same way; for a "
                "boolean write true or false",
                f"请加引号（'{word}'），让所有 YAML 工具读法一致；布尔值请写 true 或 false",
            ),
            yaml_path=path,
            width=len(str(word)),
        )
    return clean


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Pick the errors worth showing out of anyOf/oneOf trees."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        options = _given(error)
        if all(set(o) == {"required"} for o in options):
            yield error  # "needs one of …" – reported as such
            return
        same_type = [e for e in error.context if _fits_type(e)]
        pick = best_match(same_type or error.context)
        yield from _leaves(pick)
        return
    yield error


def _given(error: ValidationError) -> Any:
    """The schema keyword's value that the instance failed (``required``'s list, ``enum``'s...)."""
    # Typed ``Any | Unset``: Unset is only the constructor's default, and iter_errors sets
    # validator_value on every error it yields.
    return error.validator_value


def _schema(error: ValidationError) -> Mapping[str, Any]:
    """The (sub)schema that holds the failed keyword: always a mapping when a keyword failed."""
    return error.schema if isinstance(error.schema, Mapping) else {}


def _fits_type(error: ValidationError) -> bool:
    return error.validator != "type"


def _report(error: ValidationError, doc: LoadedYaml, diags: Diagnostics) -> None:
    path: YamlPath = tuple(error.absolute_path)
    value = error.instance
    validator = error.validator if isinstance(error.validator, str) else None
    schema = _schema(error)
    kp = doc.key_mark(path)
    vp = doc.mark(path)

    def add(mark: Any, code: str, message: Text, hint: Text | None = None, width: int = 1) -> None:
        diags.error(doc.path, mark, code, message, hint, yaml_path=path, width=width)

    if validator == "additionalProperties" and isinstance(value, dict):
        allowed = list(schema.get("properties", {}))
        for key in value:
            if key in allowed:
                continue
            add(
                doc.key_mark((*path, key)),
                "unknown-key",
                Text(f"unknown key '{key}'", f"未知的键 '{key}'"),
                suggestion_hint(key, allowed, Text("keys here", "键")),
                width=len(key),
            )
    elif validator == "required" and isinstance(value, dict):
        for key in _given(error):
            if key not in value:
                add(
                    kp,
                    "missing-key",
                    Text(f"missing '{key}'", f"缺少 '{key}'"),
                    Text(f"add '{key}: …' here", f"请在此处添加 '{key}: …'"),
                )
    elif validator == "type":
        _report_type(error, doc, diags, path)
    elif validator == "enum":
        choices = [str(c) for c in _given(error)]
        shown = str(value)
        add(
            vp,
            "bad-value",
            Text(f"'{shown}' is not allowed here", f"此处不允许 '{shown}'"),
            suggestion_hint(shown, choices, Text("values", "取值")),
            width=len(shown),
        )
    elif validator == "pattern" and "propertyNames" in error.schema_path:
        key = str(value)
        add(
            doc.key_mark((*path, key)),
            "bad-name",
            Text(f"'{key}' is not a valid name", f"'{key}' 不是合法的名称"),
            _PATTERN_HINTS[IDENT],
            width=len(key),
        )
    elif validator == "pattern":
        hint: Text | None = _PATTERN_HINTS.get(
            _given(error),
            Text(f"it must match {error.validator_value}", f"必须符合格式 {error.validator_value}"),
        )
        add(
            vp,
            "bad-format",
            Text(f"'{value}' is not in the right form", f"'{value}' 的格式不对"),
            hint,
            width=len(str(value)),
        )
    elif validator == "propertyNames":
        key = str(value)
        hint = _PATTERN_HINTS.get(IDENT)
        add(
            doc.key_mark((*path, key)),
            "bad-name",
            Text(f"'{key}' is not a valid name", f"'{key}' 不是合法的名称"),
            hint,
            width=len(key),
        )
    elif validator in ("anyOf", "oneOf"):
        keys = [o["required"][0] for o in _given(error)]
        add(
            vp,
            "missing-key",
            Text("needs one of: " + ", ".join(keys), "需要以下之一：" + "、".join(keys)),
        )
    elif (
        validator in ("minProperties", "maxProperties")
        and "maxProperties" in schema
        and schema.get("maxProperties") == 1
    ):
        keys = list(schema.get("properties", {}))
        add(
            kp,
            "one-key",
            Text(
                "give exactly one of: " + ", ".join(keys), "只能写以下其中一项：" + "、".join(keys)
            ),
        )
    elif validator in ("minItems", "minProperties", "minLength"):
        add(kp, "empty", Text("must not be empty", "不能为空"))
    elif validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        words = {
            "minimum": Text(f"at least {error.validator_value}", f"至少为 {error.validator_value}"),
            "exclusiveMinimum": Text(
                f"greater than {error.validator_value}", f"大于 {error.validator_value}"
            ),
            "maximum": Text(f"at most {error.validator_value}", f"至多为 {error.validator_value}"),
            "exclusiveMaximum": Text(
                f"less than {error.validator_value}", f"小于 {error.validator_value}"
            ),
        }[validator]
        add(
            vp,
            "out-of-range",
            Text(f"{value} is out of range: it must be ", f"{value} 超出范围：必须") + words,
        )
    elif validator == "uniqueItems":
        add(
            vp,
            "duplicate-item",
            Text("the list repeats an item", "列表中有重复项"),
            Text("remove the repeated item", "请删除重复项"),
        )
    else:
        add(vp, "schema", Text(error.message, error.message))


def _report_type(
    error: ValidationError, doc: LoadedYaml, diags: Diagnostics, path: YamlPath
) -> None:
    expected = _given(error)
    expected_list = expected if isinstance(expected, list) else [expected]
    want_en = " or ".join(_TYPE_WORDS[t].en for t in expected_list)
    want_zh = " 或 ".join(_TYPE_WORDS[t].zh for t in expected_list)
    got = _type_name(error.instance)
    mark = doc.mark(path)
    hint: Text | None = None
    code = "wrong-type"
    if path in doc.yaml11_bools and "boolean" in expected_list:
        code = "yaml11-boolean"
        hint = Text(
            f"YAML 1.1 would read '{error.instance}' as a boolean; write true or false",
            f"'{error.instance}' 在 YAML 1.1 中被当作布尔值；请写 true 或 false",
        )
    elif "string" in expected_list and isinstance(error.instance, int | float | bool):
        line = doc.source.text.splitlines()[mark.line - 1][mark.col - 1 :]
        found = re.match(r"[^\s,}\]#]+", line)
        raw = found.group(0) if found else str(error.instance)
        hint = Text(f"put it in quotes: '{raw}'", f"请加上引号：'{raw}'")
    elif error.instance is None:
        hint = Text("the value is empty; write one after the colon", "值为空；请在冒号后填写")
    diags.error(
        doc.path,
        mark,
        code,
        Text(f"expected {want_en}, got ", f"应为{want_zh}，实际是") + got,
        hint,
        yaml_path=path,
    )
