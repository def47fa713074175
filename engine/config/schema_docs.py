"""The YAML reference (docs/yaml-reference.md), generated from the schemas so it cannot drift."""

from __future__ import annotations

from typing import Any

from engine.config.schemas import KINDS, schema_for

_FILES = {
    "app": "app.yaml",
    "form": "forms/NAME.yaml",
    "flow": "flows/NAME.yaml",
    "approval": "approvals/NAME.yaml",
    "dashboard": "dashboards/NAME.yaml",
    "test": "tests/NAME.yaml",
}


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
    return {
        "string": "text",
        "integer": "whole number",
        "number": "number",
        "boolean": "true/false",
        "object": "mapping",
    }.get(kind, kind or "any")


def walk(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, str, str, bool]]:
    """(dotted key, type, description, required) for every documented key."""
    rows: list[tuple[str, str, str, bool]] = []
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        rows.append((key, _type_of(prop), prop.get("description", ""), name in required))
        rows.extend(_children(prop, key + "."))
    for branch in schema.get("allOf", ()):
        then = branch.get("then")
        if then:
            cond = branch["if"].get("properties", {}).get("type", {}).get("const") or next(
                iter(branch["if"].get("required", [""]))
            )
            for row in walk(then, prefix):
                if row[0] != f"{prefix}type":
                    rows.append((row[0], row[1], f"({cond}) {row[2]}", row[3]))
    return _dedupe(rows)


def _children(prop: dict[str, Any], prefix: str) -> list[tuple[str, str, str, bool]]:
    rows: list[tuple[str, str, str, bool]] = []
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


def _dedupe(rows: list[tuple[str, str, str, bool]]) -> list[tuple[str, str, str, bool]]:
    seen: dict[str, tuple[str, str, str, bool]] = {}
    for row in rows:
        if row[0] not in seen:
            seen[row[0]] = row
        elif row[2] not in seen[row[0]][2]:
            old = seen[row[0]]
            seen[row[0]] = (old[0], old[1], old[2] + "; " + row[2], old[3])
    return list(seen.values())


def render_reference() -> str:
    out = [
        "# Seamline YAML reference",
        "",
        "Generated from the JSON Schemas by `seamline schema --docs docs/yaml-reference.md`;",
        "a test fails when this file and the schemas disagree. `NAME` stands for a name you",
        "choose, `[]` for an item of a list, `(x)` marks keys that apply only to kind `x`.",
        "",
    ]
    for kind in KINDS:
        schema = schema_for(kind)
        out += [f"## {_FILES[kind]} — {schema['title']}", "", schema.get("description", ""), ""]
        defs = schema.get("definitions", {})
        out += ["| key | type | required | meaning |", "|---|---|---|---|"]
        for key, typ, desc, req in walk(schema):
            out.append(f"| `{key}` | {typ} | {'yes' if req else ''} | {desc} |")
        for name, definition in defs.items():
            out += [
                "",
                f"### {name}",
                "",
                definition.get("description", ""),
                "",
                "| key | type | required | meaning |",
                "|---|---|---|---|",
            ]
            for key, typ, desc, req in walk(definition):
                out.append(f"| `{key}` | {typ} | {'yes' if req else ''} | {desc} |")
        out.append("")
    return "\n".join(out)
