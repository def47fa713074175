"""The span of a duration KPI for each record: where it starts and where it ends.

An end point is the record's creation (``created_at``), its first event of a kind
(``state_entered``, ``transition``, ``notified`` — looked up through
:mod:`engine.store.event_sql` and its indexes) or the value of one of its date or
datetime fields (``field``). The start is windowed on its own time; an event end is the first
such event at or after the start, a field end is the field's value (it may lie before the
start: a negative duration says "early"). Two date fields (no time of day) are measured in
whole days × 24.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.model.periods import Period
from engine.model.spec import EventSpec, KpiSpec
from engine.store.event_sql import first_end, first_ends, first_start

__all__ = ["hours_between", "spans"]


def _column(table: sa.Table, spec: EventSpec) -> ColumnElement[Any]:
    return table.c["created_at" if spec.kind == "created" else spec.names[0]]


def _date_clauses(column: Any, period: Period, timezone: str) -> list[ColumnElement[bool]]:
    """A date field within the period's local days."""
    tz = ZoneInfo(timezone)
    out = [column <= period.end.astimezone(tz).date()]
    if period.start is not None:
        out.append(column >= period.start.astimezone(tz).date())
    return out


def is_dates(kpi: KpiSpec, table: sa.Table) -> bool:
    """Both ends are date fields (the compile stage allows a date only against a date)."""
    start = kpi.start
    return (
        start is not None
        and start.kind == "field"
        and isinstance(table.c[start.names[0]].type, sa.Date)
        and not isinstance(table.c[start.names[0]].type, sa.DateTime)
    )


def spans(
    kpi: KpiSpec,
    source: sa.FromClause,
    table: sa.Table,
    where: list[ColumnElement[bool]],
    events: sa.Table,
    period: Period,
    timezone: str,
    dialect: str,
) -> sa.CTE:
    """(record_id, start_at, end_at) of each record meeting ``where`` (over ``source``: the
    form's table with its ref joins) whose start lies in ``period``; end_at is NULL while
    the end has not happened — computed once (a materialized CTE)."""
    start, end = kpi.start, kpi.end
    assert start is not None and end is not None
    if start.kind in ("created", "field"):
        column = _column(table, start)
        clauses = (
            _date_clauses(column, period, timezone)
            if is_dates(kpi, table)
            else period.clauses(column)
        )
        first = (
            sa.select(table.c.id.label("record_id"), column.label("at"))
            .select_from(source)
            .where(*clauses, *where)
        )
    else:
        found = first_start(events, kpi.form, start, period).subquery("first_event")
        first = sa.select(found.c.record_id, found.c.at)
        if where:  # only the records the KPI counts look for an end
            first = first.select_from(found.join(source, table.c.id == found.c.record_id))
            first = first.where(*where)
    if end.kind not in ("created", "field") and dialect == "postgresql":
        begin: Any = first.cte("first_from").prefix_with("MATERIALIZED")
        ends = first_ends(events, kpi.form, end, begin, period.start)
        query = sa.select(
            begin.c.record_id, begin.c.at.label("start_at"), ends.c.at.label("end_at")
        ).select_from(begin.outerjoin(ends, ends.c.record_id == begin.c.record_id))
        return query.cte("spans").prefix_with("MATERIALIZED")
    begin = first.subquery("first_from")
    end_at: ColumnElement[Any]
    if end.kind in ("created", "field"):
        end_at = (
            sa.select(_column(table, end)).where(table.c.id == begin.c.record_id).scalar_subquery()
        )
    else:  # SQLite: one seek per start in the record-ordered index (no heap to visit)
        end_at = first_end(events, kpi.form, end, begin.c.record_id, begin.c.at)
    query = sa.select(begin.c.record_id, begin.c.at.label("start_at"), end_at.label("end_at"))
    return query.cte("spans").prefix_with("MATERIALIZED")


def hours_between(start: Any, end: Any, dialect: str, dates: bool) -> ColumnElement[Any]:
    """``end − start`` in hours (``dates``: two date columns, whole days × 24)."""
    if dialect == "postgresql":
        if dates:
            return (end - start) * 24.0
        return sa.extract("epoch", end - start) / 3600.0
    # julianday is a float of days: round to whole milliseconds so equal spans compare equal
    millis = sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86_400_000.0)
    return millis / 3_600_000.0


def overdue_before(now: Any, within_hours: float) -> Any:
    """Starts before this instant whose end has not come are late already."""
    return now - timedelta(hours=within_hours)
