"""Expression scopes: which names an expression on a form may use.

One builder serves the compile stage (from raw, schema-checked YAML) and run time (from the
compiled :class:`~engine.model.spec.FormSpec`): both are first reduced to :class:`FieldShape`.
Names are fields, paths through refs (``customer.tier``), child tables (``lines.qty``) and
the system fields every record has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.expressions import NameInfo, Scope
from engine.model.spec import FieldSpec, FormSpec

SYSTEM_FIELDS = ("id", "state", "created_at", "updated_at", "created_by")
REF_DEPTH = 3


@dataclass(frozen=True)
class FieldShape:
    """What an expression needs to know about a field."""

    type: str
    options: tuple[str, ...] = ()
    ref_form: str | None = None
    children: Mapping[str, FieldShape] = field(default_factory=dict)


def shape_from_raw(raw: Any) -> FieldShape:
    if not isinstance(raw, dict):
        return FieldShape("any")
    given = raw.get("type")
    kind = given if isinstance(given, str) else "any"
    if kind == "computed":
        return FieldShape(raw.get("result") or "any")
    options = tuple(
        str(o["value"]) if isinstance(o, dict) else str(o) for o in raw.get("options") or []
    )
    children = {n: shape_from_raw(c) for n, c in (raw.get("fields") or {}).items()}
    return FieldShape(kind, options, raw.get("form"), children)


def shape_from_spec(spec: FieldSpec) -> FieldShape:
    children = {c.name: shape_from_spec(c) for c in spec.children}
    return FieldShape(spec.value_type, spec.option_values, spec.ref_form, children)


def shapes_from_raw(forms: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, FieldShape]]:
    return {f: {n: shape_from_raw(r) for n, r in fields.items()} for f, fields in forms.items()}


def shapes_from_specs(forms: Mapping[str, FormSpec]) -> dict[str, dict[str, FieldShape]]:
    return {f: {x.name: shape_from_spec(x) for x in s.fields} for f, s in forms.items()}


class ScopeBuilder:
    """Makes :class:`Scope` objects for forms from their field shapes and states."""

    def __init__(
        self, forms: Mapping[str, Mapping[str, FieldShape]], states: Mapping[str, tuple[str, ...]]
    ) -> None:
        self.forms = forms
        self.states = states
        self._cache: dict[tuple[str, int], dict[str, NameInfo]] = {}

    def record_fields(self, form: str, depth: int = REF_DEPTH) -> dict[str, NameInfo]:
        key = (form, depth)
        if key in self._cache:
            return self._cache[key]
        out = {
            name: self.field_info(shape, depth)
            for name, shape in (self.forms.get(form) or {}).items()
        }
        out["id"] = NameInfo("value", "integer")
        out["state"] = NameInfo("value", "select", options=self.states.get(form) or None)
        out["created_at"] = NameInfo("value", "datetime")
        out["updated_at"] = NameInfo("value", "datetime")
        out["created_by"] = NameInfo("value", "text")
        self._cache[key] = out
        return out

    def field_info(self, shape: FieldShape, depth: int) -> NameInfo:
        if shape.type == "ref":
            if depth <= 0 or shape.ref_form is None or shape.ref_form not in self.forms:
                return NameInfo("record", "ref", open=True)
            return NameInfo("record", "ref", fields=self.record_fields(shape.ref_form, depth - 1))
        if shape.type == "table":
            children = {n: self.field_info(c, depth) for n, c in shape.children.items()}
            return NameInfo("rows", "table", fields=children)
        if shape.type in ("select", "multiselect"):
            return NameInfo("value", shape.type, options=shape.options or None)
        return NameInfo("value", shape.type)

    def form_scope(self, form: str, extra: Mapping[str, NameInfo] | None = None) -> Scope:
        names = dict(self.record_fields(form))
        if extra:
            names.update(extra)
        return Scope(names=names)

    def row_scope(self, shapes: Mapping[str, FieldShape]) -> Scope:
        """Scope of a child-table row: its own columns."""
        return Scope(names={n: self.field_info(s, REF_DEPTH) for n, s in shapes.items()})


EMPTY_SCOPE = Scope(names={})
