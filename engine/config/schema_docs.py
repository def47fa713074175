"""The YAML reference (docs/yaml-reference.md), generated from the schemas so it cannot drift.

Keys that depend on a kind (a field's ``type``, a step's action, an approval step's
``approver``/``any_of``/…) are written once: a key every kind shares gets one row, a key of
some kinds says which, and a definition with kinds (``field``, ``steps``) gets one section per
kind with an example (engine/config/reference_text.py) instead of repeating every key.
"""

from __future__ import annotations

from typing import Any

from engine.config.reference_text import (
    FIELD_EXAMPLES,
    KEY_NOTES,
    SECTIONS,
    STEP_EXAMPLES,
    STEP_KEY_NOTES,
)
from engine.config.schemas import KINDS, schema_for

_FILES = {
    "app": "app.yaml",
    "form": "forms/NAME.yaml",
    "flow": "flows/NAME.yaml",
    "approval": "approvals/NAME.yaml",
    "dashboard": "dashboards/NAME.yaml",
    "test": "tests/NAME.yaml",
}
_EXAMPLES = {"field": FIELD_EXAMPLES, "child_field": FIELD_EXAMPLES, "steps": STEP_EXAMPLES}
_HEAD = ["| key | type | required | meaning |", "|---|---|---|---|"]

Row = tuple[str, str, str, bool]


def _type_of(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema and all("required" in o and len(o) == 1 for o in schema["anyOf"]):
        return "one of the forms below"
    if "anyOf" in schema:
        return " or ".join(_type_of(o) for o in schema["anyOf"])
    if "$ref" in schema:
        ref: str = schema["$ref"]
        return ref.rsplit("/", 1)[-1]
    kind = schema.get("type", "")
    if isinstance(kind, list):
        return " or ".join(_type_of({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "mapping of name → " + _type_of(schema["additionalProperties"])
    if kind == "string" and schema.get("pattern") == r"^\d{4}-\d{2}-\d{2}$":
        return "date (YYYY-MM-DD)"
    return {
        "string": "text",
        "integer": "whole number",
        "number": "number",
        "boolean": "true/false",
        "object": "mapping",
    }.get(kind, kind or "any")


def branches(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The kinds of a schema with kinds: (kind, the schema of that kind) for every
    ``allOf: [{if: …, then: …}]`` branch (a field's ``type``, a step's action)."""
    out = []
    for branch in schema.get("allOf", ()):
        then = branch.get("then")
        if then:
            cond = branch["if"].get("properties", {}).get("type", {}).get("const") or next(
                iter(branch["if"].get("required", [""]))
            )
            out.append((str(cond), then))
    return out


def walk(schema: dict[str, Any], prefix: str = "") -> list[Row]:
    """(dotted key, type, description, required) for every documented key."""
    rows: list[Row] = []
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        rows.append((key, _type_of(prop), prop.get("description", ""), name in required))
        rows.extend(_children(prop, key + "."))
    kinds = branches(schema)
    if kinds:
        shared = {row[0] for row in rows}
        per_kind = [(k, [r for r in walk(then, prefix) if r[0] not in shared]) for k, then in kinds]
        rows.extend(_merge(per_kind))
    return _dedupe(rows)


def _children(prop: dict[str, Any], prefix: str) -> list[Row]:
    rows: list[Row] = []
    if prop.get("type") == "object" and "properties" in prop:
        rows.extend(walk(prop, prefix))
    if isinstance(prop.get("additionalProperties"), dict):
        rows.extend(walk(prop["additionalProperties"], prefix + "NAME."))
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        rows.extend(walk(prop["items"], prefix + "[]."))
    for option in prop.get("anyOf", ()):
        if isinstance(option, dict) and "properties" in option:
            rows.extend(walk(option, prefix))
    return rows


def _grouped(pairs: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(value, kinds having it) in first-seen order."""
    groups: dict[str, list[str]] = {}
    for kind, value in pairs:
        groups.setdefault(value, []).append(kind)
    return list(groups.items())


def _merge(per_kind: list[tuple[str, list[Row]]]) -> list[Row]:
    """One row per key across kinds: a key every kind has alike is written plainly; otherwise
    its type and meaning say which kinds (``(integer, decimal) …``)."""
    every = [k for k, _ in per_kind]
    by_key: dict[str, list[tuple[str, Row]]] = {}
    for kind, rows in per_kind:
        for row in rows:
            by_key.setdefault(row[0], []).append((kind, row))
    merged: list[Row] = []
    for key, entries in by_key.items():
        kinds = [k for k, _ in entries]
        types = _grouped([(k, r[1]) for k, r in entries])
        descs = _grouped([(k, r[2]) for k, r in entries])
        alike = kinds == every
        if len(types) == 1:
            typ = types[0][0]
        else:
            typ = " or ".join(f"{t} ({', '.join(ks)})" for t, ks in types)
        if alike and len(descs) == 1:
            desc = descs[0][0]
        else:
            desc = "; ".join(f"({', '.join(ks)}) {d}" for d, ks in descs)
        required = alike and all(r[3] for _, r in entries)
        merged.append((key, typ, desc, required))
    return merged


def _dedupe(rows: list[Row]) -> list[Row]:
    seen: dict[str, Row] = {}
    for row in rows:
        if row[0] not in seen:
            seen[row[0]] = row
        elif row[2] not in seen[row[0]][2]:
            old = seen[row[0]]
            seen[row[0]] = (old[0], old[1], old[2] + "; " + row[2], old[3])
    return list(seen.values())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[Row], notes: dict[str, str] | None = None) -> list[str]:
    out = list(_HEAD)
    for key, typ, desc, req in rows:
        note = (notes or {}).get(key)
        if note:
            note = note[0].upper() + note[1:]
        meaning = f"{desc.rstrip('.')}. {note}" if note and desc else (note or desc)
        out.append(f"| `{key}` | {typ} | {'yes' if req else ''} | {_cell(meaning)} |")
    return out


def kind_rows(schema: dict[str, Any]) -> tuple[list[Row], dict[str, list[Row]]]:
    """A schema with kinds split into the keys every kind takes alike and each kind's own."""
    per_kind = {k: walk(then) for k, then in branches(schema)}
    top = walk({k: v for k, v in schema.items() if k != "allOf"})
    topkeys = {r[0] for r in top}
    union: list[Row] = []
    for rows in per_kind.values():
        union += [r for r in rows if r not in union and r[0] not in topkeys]
    common: list[Row] = []
    shared: set[Row] = set()
    for row in union:
        having = [k for k, rows in per_kind.items() if row in rows]
        if len(having) * 2 <= len(per_kind):
            continue  # a key of a few kinds: in their own sections
        shared.add(row)
        if len(having) == len(per_kind):
            common.append(row)
        else:
            but = ", ".join(k for k in per_kind if k not in having)
            common.append((row[0], row[1], f"(all but {but}) {row[2]}", row[3]))
    own = {
        k: [r for r in rows if r not in shared and r[0] not in topkeys]
        for k, rows in per_kind.items()
    }
    return top + common, own


def _definition(
    name: str, definition: dict[str, Any], done: dict[str, dict[str, list[Row]]]
) -> list[str]:
    out = ["", f"### {name}", "", definition.get("description", ""), ""]
    item = definition
    if definition.get("type") == "array" and isinstance(definition.get("items"), dict):
        item = definition["items"]
        out += [f"A list; each item: {item.get('description', '')}", ""]
    if not branches(item):
        return out + _table(walk(definition))
    common, own = kind_rows(item)
    like = next(
        (
            other
            for other, known in done.items()
            if set(own) <= set(known) and all(set(own[k]) <= set(known[k]) for k in own)
        ),
        None,
    )
    done[name] = own
    if like is not None:
        missing_kinds = [k for k in done[like] if k not in own]
        missing_keys = sorted(
            {r[0] for k in own for r in done[like][k]}
            - {r[0] for k in own for r in own[k]}
            - {r[0] for r in common}
        )
        out.append(f"The same keys as [{like}](#{like}) for each type, except:")
        out.append("")
        if missing_kinds:
            out.append("- types not allowed here: " + ", ".join(f"`{k}`" for k in missing_kinds))
        if missing_keys:
            out.append("- keys not available: " + ", ".join(f"`{k}`" for k in missing_keys))
        return out
    examples = _EXAMPLES.get(name, {})
    what = "type" if "type" in {r[0] for r in common} else "step"
    out += [f"Keys every {what} takes:", "", *_table(common)]
    for kind, rows in own.items():
        title = f"`type: {kind}`" if what == "type" else f"`{kind}`"
        out += ["", f"#### {title}", ""]
        notes = {key: note for (k, key), note in STEP_KEY_NOTES.items() if k == kind}
        if rows:
            out += _table(rows, notes)
        else:
            out.append("No keys of its own.")
        if kind in examples:
            out += ["", "```yaml", examples[kind], "```"]
    return out


def render_reference() -> str:
    out = [
        "# Seamline YAML reference",
        "",
        "Generated from the JSON Schemas by `seamline schema --docs docs/yaml-reference.md`;",
        "a test fails when this file and the schemas disagree. `NAME` stands for a name you",
        "choose, `[]` for an item of a list, `(x)` marks keys or meanings that apply only to",
        "kind `x`. The expression functions are in [functions.md](functions.md), the codes of",
        "`seamline validate` in [diagnostics.md](diagnostics.md).",
        "",
    ]
    done: dict[str, dict[str, list[Row]]] = {}
    for kind in KINDS:
        schema = schema_for(kind)
        out += [f"## {_FILES[kind]} — {schema['title']}", "", schema.get("description", ""), ""]
        notes = {key: note for (k, key), note in KEY_NOTES.items() if k == kind}
        out += _table(walk(schema), notes)
        for name, definition in schema.get("definitions", {}).items():
            out += _definition(name, definition, done)
        if kind in SECTIONS:
            out += ["", SECTIONS[kind].rstrip("\n")]
        out.append("")
    return "\n".join(out)
