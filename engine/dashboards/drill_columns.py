"""The extra columns of a KPI's drill-down list (``drill: {columns: [customer, promised_date]}``):
their labels, and their values for the records listed, in one query (a ref shows the
referenced record's title, a select its option label)."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.dashboards.columns import TableColumns
from engine.model.spec import App, KpiSpec

__all__ = ["drill_headers", "drill_values"]

_SYSTEM = {"id": "ID", "state": "state", "created_at": "created", "updated_at": "updated"}


def drill_headers(app: App, kpi: KpiSpec) -> list[dict[str, str]]:
    """``[{"name", "label"}]`` of the KPI's drill columns."""
    form = app.forms[kpi.form]
    out = []
    for name in kpi.drill:
        field = form.by_name.get(name)
        out.append({"name": name, "label": field.label if field else _SYSTEM.get(name, name)})
    return out


def _shown(value: Any, options: dict[str, str]) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if options and isinstance(value, str):
        return options.get(value, value)
    return value


def drill_values(
    conn: sa.Connection, app: App, metadata: sa.MetaData, kpi: KpiSpec, ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Record id → {column: value shown} for ``ids``."""
    if not kpi.drill or not ids:
        return {}
    columns = TableColumns(app, metadata, kpi.form, conn.dialect.name)
    form = app.forms[kpi.form]
    selected = []
    for name in kpi.drill:
        field = form.by_name.get(name)
        path: tuple[str, ...] = (name,)
        if field is not None and field.type == "ref" and field.ref_form is not None:
            title = app.forms[field.ref_form].title_field
            path = (name, title or "id")
        selected.append(columns.column(path, ast.Name(name)).expr.label(name))
    t = columns.table
    query = sa.select(t.c.id, *selected).select_from(columns.from_clause()).where(t.c.id.in_(ids))
    options = {
        name: {o.value: o.label for o in form.by_name[name].options}
        for name in kpi.drill
        if name in form.by_name
    }
    return {
        row.id: {name: _shown(row._mapping[name], options.get(name, {})) for name in kpi.drill}
        for row in conn.execute(query)
    }
