"""Compile app.yaml's ``insights:`` section: each report names a form and a multiselect field
that exist, and roles that exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.compile.context import CompileContext
from engine.config.loader import LoadedYaml
from engine.model.i18n import Text
from engine.model.spec import InsightSpec

__all__ = ["compile_insights"]

_FIELD = Text("field", "字段")
_FORM = Text("form", "表单")


def compile_insights(
    ctx: CompileContext, doc: LoadedYaml, raw_fields: Mapping[str, Mapping[str, Any]]
) -> dict[str, InsightSpec]:
    insights: dict[str, InsightSpec] = {}
    for name, raw in (doc.data.get("insights") or {}).items():
        path = ("insights", name)
        form = raw["form"]
        if form not in raw_fields:
            ctx.unknown(doc, (*path, "form"), form, raw_fields, _FORM, "unknown-form")
            continue
        fields = raw_fields[form]
        field = raw["field"]
        if field not in fields:
            ctx.unknown(doc, (*path, "field"), field, fields, _FIELD, "unknown-field")
            continue
        if fields[field].get("type") != "multiselect":
            kind = fields[field].get("type")
            ctx.error(
                doc,
                (*path, "field"),
                "wrong-type",
                Text(
                    f"field '{field}' is of type {kind}; it must be multiselect",
                    f"字段 '{field}' 的类型是 {kind}，必须是多选（multiselect）",
                ),
            )
            continue
        if "roles" in raw:
            ctx.check_roles(doc, (*path, "roles"))
        insights[name] = InsightSpec(
            name=name,
            title=str(raw["title"]),
            form=form,
            field=field,
            min_support=int(raw.get("min_support", 2)),
            top=int(raw.get("top", 7)),
            roles=tuple(raw.get("roles", ())),
        )
    return insights
