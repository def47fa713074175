"""A KPI per group (``group_by: customer``): the same aggregate GROUPed BY a field of the form,
the worst ``top`` groups first, in one query.

"Worst" follows the thresholds: when green means low (``<= 2``) the highest values come
first, when green means high (``>= 90``) the lowest; without thresholds the highest. A ref
field groups by the referenced record and is labelled by its title field (a LEFT JOIN); a
select field by its option labels.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.dashboards.compile_kpi import KpiQuery
from engine.model.spec import App, KpiSpec
from engine.store.tables import table_name

__all__ = ["additive", "group_label", "group_select", "worst_is_high"]


def worst_is_high(kpi: KpiSpec) -> bool:
    rule = kpi.green or kpi.amber
    return rule is None or rule.op in ("<", "<=")


def group_select(app: App, metadata: sa.MetaData, query: KpiQuery) -> sa.Select[Any]:
    """``(grp, label, <aggregates>)`` of the worst ``top`` groups, worst first."""
    kpi = query.kpi
    assert kpi.group_by is not None
    inner = query.grouped_select(query.table.c[kpi.group_by]).subquery("g")
    grp, *values = list(inner.c)
    if kpi.measure in ("rate", "on_time_rate"):
        order = sa.cast(values[1], sa.Float) / sa.func.nullif(values[0], 0)
    else:
        order = values[0]
    field = app.forms[kpi.form].by_name.get(kpi.group_by)
    source: sa.FromClause = inner
    label: Any = sa.null()
    if field is not None and field.type == "ref" and field.ref_form is not None:
        target = metadata.tables[table_name(field.ref_form)].alias("g_ref")
        title = app.forms[field.ref_form].title_field
        source = inner.outerjoin(target, target.c.id == grp)
        label = target.c[title] if title else target.c.id
    direction = order.desc() if worst_is_high(kpi) else order.asc()
    # the KPI's own aggregates over every group (window sums, before the LIMIT): an additive
    # measure's value then needs no second pass over the same records
    totals = [sa.func.sum(v).over() for v in values] if additive(kpi) else []
    return (
        sa.select(grp, label.label("label"), *values, *totals)
        .select_from(source)
        .order_by(direction.nulls_last(), grp)
        .limit(kpi.top)
    )


def additive(kpi: KpiSpec) -> bool:
    """The KPI's aggregates add up over its groups (its value follows from theirs)."""
    return kpi.measure in ("count", "sum", "rate", "on_time_rate")


def group_label(app: App, kpi: KpiSpec, key: Any, label: Any) -> str:
    """What a group is called: the referenced record's title, the option's label, the value."""
    if key is None:
        return "—"
    field = app.forms[kpi.form].by_name.get(kpi.group_by or "")
    if label is not None:
        return str(label)
    if field is not None and field.options:
        return next((o.label for o in field.options if o.value == str(key)), str(key))
    if hasattr(key, "isoformat"):
        return str(key.isoformat())
    return str(key)
