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

from engine.config.formats import FORMATS, format_words, shown
from engine.config.loader import LoadedYaml, YamlPath
from engine.config.schemas import IDENT, schema_for
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
        return Text(f"the text '{shown(value)}'", f"文本 '{shown(value)}'")
    if isinstance(value, list):
        return Text("a list", "列表")
    return Text("a mapping", "映射")


def check_schema(kind: str, doc: LoadedYaml, diags: Diagnostics) -> bool:
    """Validate ``doc`` against the schema of ``kind``; True when it is clean."""
    before = len(diags.items)
    errors = list(_validator(kind).iter_errors(doc.data))
    misplaced = _misplaced(kind, doc, errors)
    for (parent, key), sibling in misplaced.items():
        _report_misplaced(doc, diags, parent, key, sibling)
    for error in errors:
        for leaf in _leaves(error):
            if not _explained(leaf, misplaced):
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


_SAME_PLACE = ("type", "enum", "const")


def _fitting_branches(error: ValidationError) -> list[list[ValidationError]]:
    """The errors of each branch of an anyOf/oneOf whose shape the value has. A branch the
    value does not even have the shape of (a mapping given where the branch wants one of a few
    words) says nothing useful: "valid values: cn, weekends"."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    return [
        errs
        for errs in branches.values()
        if not any(e.validator in _SAME_PLACE and not e.relative_path for e in errs)
    ]


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """Pick the errors worth showing out of anyOf/oneOf trees."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        options = _given(error)
        if all(set(o) == {"required"} for o in options):
            yield error  # "needs one of …" – reported as such
            return
        fitting = _fitting_branches(error)
        if len(fitting) == 1:
            for sub in fitting[0]:
                yield from _leaves(sub)
            return
        same_type = [e for errs in fitting for e in errs] or [
            e for e in error.context if _fits_type(e)
        ]
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
        choices = [shown(c) for c in _given(error)]
        if isinstance(value, dict | list):
            add(
                vp,
                "bad-value",
                Text("expected one of: ", "应为以下之一：")
                + Text(", ".join(choices), "、".join(choices))
                + Text(", got ", "，实际是")
                + _type_name(value),
            )
        else:
            text = shown(value)
            add(
                vp,
                "bad-value",
                Text(f"'{text}' is not allowed here", f"此处不允许 '{text}'"),
                suggestion_hint(text, choices, Text("values", "取值")),
                width=len(text),
            )
    elif validator == "pattern" and "propertyNames" in error.schema_path:
        key = str(value)
        message, hint = format_words(IDENT, key)
        add(doc.key_mark((*path, key)), "bad-name", message, hint, width=len(key))
    elif validator == "pattern":
        message, hint = format_words(_given(error), value)
        add(
            vp,
            "bad-name" if _given(error) == IDENT else "bad-format",
            message,
            hint,
            width=len(shown(value)),
        )
    elif validator == "propertyNames":
        key = str(value)
        message, hint = format_words(IDENT, key)
        add(doc.key_mark((*path, key)), "bad-name", message, hint, width=len(key))
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
            Text(f"{shown(value)} is out of range: it must be ", f"{shown(value)} 超出范围：必须")
            + words,
        )
    elif validator == "uniqueItems":
        add(
            vp,
            "duplicate-item",
            Text("the list repeats an item", "列表中有重复项"),
            Text("remove the repeated item", "请删除重复项"),
        )
    elif validator in ("maxItems", "maxLength", "maxProperties"):
        limit = error.validator_value
        add(vp, "too-many", Text(f"too long: at most {limit}", f"太长：最多 {limit}"))
    else:  # a keyword the schemas do not use today: plain words all the same, never jsonschema's
        what = schema.get("description")
        add(
            vp,
            "schema",
            Text("this value does not fit here", "此处的值不符合要求"),
            Text(f"expected: {what}", f"应为：{what}") if what else None,
        )


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
    elif "string" in expected_list and _schema(error).get("pattern") in FORMATS:
        _, hint = format_words(_schema(error)["pattern"], error.instance)
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


# ---------------------------------------------------------------------------- mis-indented keys
# A key indented less than the keys of the entry above it ("max" under "fields" instead of
# under "quantity") reads as a new entry of the outer mapping: jsonschema then says "expected
# a mapping, got the number 2000" or "missing 'title'" about the wrong thing. When moving the
# key into the entry above makes both clean, that is what the person meant: one error, saying so.

Misplaced = dict[tuple[YamlPath, str], str]  # (parent, key) -> the entry above it


def _misplaced(kind: str, doc: LoadedYaml, errors: list[ValidationError]) -> Misplaced:
    found: Misplaced = {}
    tried: set[tuple[YamlPath, str]] = set()
    for error in errors:
        path = tuple(error.absolute_path)
        for i, key in enumerate(path):
            if not isinstance(key, str) or (path[:i], key) in tried:
                continue
            spot = (path[:i], key)
            tried.add(spot)
            sibling = _entry_above(doc, path[:i], key)
            if sibling is None:
                continue
            moved = _moved(doc.data, path[:i], key, sibling)
            cut = len(path[:i]) + 1
            heads = {(*path[:i], key), (*path[:i], sibling)}
            if not any(
                tuple(e.absolute_path)[:cut] in heads or tuple(e.absolute_path) == path[:i]
                for e in _validator(kind).iter_errors(moved)
            ):
                found[spot] = sibling
    return found


def _entry_above(doc: LoadedYaml, parent: YamlPath, key: str) -> str | None:
    """The key just above ``key`` in its mapping, when ``key`` sits left of that one's keys."""
    container = doc.get(parent)
    if not isinstance(container, dict) or key not in container:
        return None
    keys = list(container)
    index = keys.index(key)
    if index == 0:
        return None
    sibling = keys[index - 1]
    block = container[sibling]
    if not isinstance(block, dict) or not block or key in block:
        return None
    inner = doc.key_mark((*parent, sibling, next(iter(block))))
    mine = doc.key_mark((*parent, key))
    outer = doc.key_mark((*parent, sibling))
    return (
        sibling if outer.col < mine.col < inner.col or mine.col == outer.col < inner.col else None
    )


def _moved(data: Any, parent: YamlPath, key: str, sibling: str) -> Any:
    if parent:
        head, *rest = parent
        copy = list(data) if isinstance(data, list) else dict(data)
        copy[head] = _moved(data[head], tuple(rest), key, sibling)  # type: ignore[index]
        return copy
    out = {k: v for k, v in data.items() if k != key}
    out[sibling] = {**data[sibling], key: data[key]}
    return out


def _explained(error: ValidationError, misplaced: Misplaced) -> bool:
    """True when ``error`` only stems from a key reported as mis-indented."""
    path = tuple(error.absolute_path)
    for (parent, key), sibling in misplaced.items():
        cut = len(parent) + 1
        if path[:cut] in ((*parent, key), (*parent, sibling)) or path == parent:
            return True
    return False


def _report_misplaced(
    doc: LoadedYaml, diags: Diagnostics, parent: YamlPath, key: str, sibling: str
) -> None:
    mark = doc.key_mark((*parent, key))
    block = doc.get((*parent, sibling))
    last = list(block)[-1]
    like = doc.key_mark((*parent, sibling, last))
    outer = (
        Text(f"a new entry of '{parent[-1]}'", f"'{parent[-1]}' 的新一项")
        if parent and isinstance(parent[-1], str)
        else Text("a top-level key", "文件最外层的键")
    )
    diags.error(
        doc.path,
        mark,
        "misindented-key",
        Text(
            f"'{key}' at column {mark.col} looks mis-indented: it is read as ",
            f"第 {mark.col} 列的 '{key}' 缩进似乎不对：它被当成了 ",
        )
        + outer
        + Text(f", not as a key of '{sibling}'", f"，而不是 '{sibling}' 的键"),
        Text(
            f"indent it like '{last}' (column {like.col}, line {like.line})",
            f"请与 '{last}'（第 {like.line} 行第 {like.col} 列）对齐",
        ),
        yaml_path=(*parent, key),
        width=len(key),
    )


# ---------------------------------------------------------------------------- recovery
# Where a file breaks its schema, as places to cut or fill, so the compile can go on with the
# parts that are good (engine/compile/recover.py). No messages here: check_schema reports.

# A fault: (what, path, key, schema).
#   ("bad", path, None, None): the value at path is bad and may be cut out;
#   ("unknown", path, None, props): path ends in a key its mapping does not allow (props: the
#       keys it does allow, each with its schema);
#   ("missing", path, key, schema): the mapping at path lacks the required key (schema: what
#       that key's value must be, when known);
#   ("empty", path, None, schema): the list or mapping at path must not be empty.
Fault = tuple[str, YamlPath, str | None, Mapping[str, Any] | None]


def schema_faults(kind: str, data: Any) -> list[Fault]:
    """Every place where ``data`` breaks the schema of ``kind`` (empty when it is clean)."""
    out: list[Fault] = []
    for error in _validator(kind).iter_errors(data):
        out.extend(_faults(error))
    return out


def _faults(error: ValidationError) -> Iterator[Fault]:
    path: YamlPath = tuple(error.absolute_path)
    validator = error.validator
    value = error.instance
    schema = _schema(error)
    if validator in ("anyOf", "oneOf") and error.context:
        fitting = [
            errs
            for errs in _fitting_branches(error)
            if not all(e.validator == "required" and not e.relative_path for e in errs)
        ]
        if len(fitting) == 1:
            for sub in fitting[0]:
                yield from _faults(sub)
            return
        yield ("bad", path, None, None)
    elif "propertyNames" in error.schema_path:
        yield ("bad", (*path, str(value)), None, None)
    elif validator == "additionalProperties" and isinstance(value, dict):
        allowed = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key in value:
            if key not in allowed and not any(re.search(p, key) for p in patterns):
                yield ("unknown", (*path, key), None, allowed)
    elif validator == "required" and isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in _given(error):
            if key not in value:
                yield ("missing", path, key, properties.get(key))
    elif validator in ("minItems", "minProperties") and not value:
        yield ("empty", path, None, schema)
    else:
        yield ("bad", path, None, None)
