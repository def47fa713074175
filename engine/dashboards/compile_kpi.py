"""One KPI → SQLAlchemy selects that aggregate in the database.

Record measures (count, sum, avg, rate) select from the form's table (LEFT JOINed to the ref
tables its conditions use), windowed on ``created_at``. Duration measures (median_hours,
percentile_hours) first build a ``durations`` subquery — one row per record: the first
``from`` event, the first ``to`` event not before it, the hours between — windowed on the
``from`` time; percentiles are ``percentile_cont`` on PostgreSQL and the same linear
interpolation with window functions on SQLite. A trend is the same aggregate GROUPed BY a
bucket index (one query); a drill-down lists the records behind the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.dashboards.columns import TableColumns
from engine.dashboards.event_times import first_end, first_start, payload_key
from engine.dashboards.periods import Period, bucket_index, trend_period, trend_starts, window
from engine.dashboards.sql_expr import condition
from engine.expressions import EvalEnv
from engine.spec import App, KpiSpec

__all__ = ["DURATIONS", "KpiQuery", "compile_kpi"]

DURATIONS = ("median_hours", "percentile_hours")


@dataclass
class KpiQuery:
    """The compiled selects of one KPI for one moment ``now``."""

    kpi: KpiSpec
    dialect: str
    table: sa.Table
    source: sa.FromClause  # the form's table with its ref joins
    where: list[ColumnElement[bool]]
    numerator: ColumnElement[bool] | None
    events: sa.Table
    title_column: ColumnElement[Any]
    now: datetime
    timezone: str

    @property
    def is_duration(self) -> bool:
        return self.kpi.measure in DURATIONS

    # ---------------------------------------------------------------- value
    def value_select(self) -> sa.Select[Any]:
        period = window(self.kpi.window, self.now, self.timezone)
        if self.is_duration:
            return self._percentile(self.durations(period), None)
        rows = self.records(period)
        return rows.with_only_columns(*self._aggregates())

    def trend_select(self, starts: list[date] | None = None) -> tuple[list[date], sa.Select[Any]]:
        """Bucket starts and ``SELECT bucket, <aggregates> … GROUP BY bucket`` (``starts``:
        only these buckets, the last one running to now; default: the whole trend)."""
        assert self.kpi.trend is not None
        if starts is None:
            starts = trend_starts(self.kpi.trend, self.now, self.timezone)
        period = trend_period(starts, self.now, self.timezone)
        if self.is_duration:
            return starts, self._percentile(self.durations(period, starts), "bucket")
        bucket = bucket_index(self.table.c.created_at, starts, self.timezone).label("bucket")
        query = self.records(period).with_only_columns(bucket, *self._aggregates())
        return starts, query.group_by(bucket)

    def finish(self, row: Any) -> float | int | None:
        """The KPI value from a row of aggregates (rate: numerator / population)."""
        measure = self.kpi.measure
        if measure == "count":
            return int(row[0] or 0)
        if measure == "rate":
            population, hits = int(row[0] or 0), int(row[1] or 0)
            if population == 0:
                return None
            return hits / population * (100 if self.kpi.unit == "%" else 1)
        if measure == "sum":
            return float(row[0] or 0)
        return None if row[0] is None else float(row[0])

    # ---------------------------------------------------------------- drill-down
    def drill_select(self, limit: int) -> sa.Select[Any]:
        """The records behind the value: the population outside the numerator (rate), the
        longest durations, or the records counted (largest ``field`` first for sum/avg)."""
        period = window(self.kpi.window, self.now, self.timezone)
        t = self.table
        if self.is_duration:
            d = self.durations(period).subquery("d")
            return (
                sa.select(d.c.id, d.c.label, d.c.state, d.c.hours.label("value"))
                .order_by(d.c.hours.desc(), d.c.id)
                .limit(limit)
            )
        value: ColumnElement[Any] = t.c[self.kpi.field] if self.kpi.field else sa.null()
        query = self.records(period).with_only_columns(
            t.c.id, self.title_column.label("label"), t.c.state, value.label("value")
        )
        if self.kpi.measure == "rate" and self.numerator is not None:
            query = query.where(sa.not_(self.numerator))
        if self.kpi.field:
            return query.order_by(value.desc().nulls_last(), t.c.id.desc()).limit(limit)
        return query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)

    # ---------------------------------------------------------------- building blocks
    def records(self, period: Period) -> sa.Select[Any]:
        """``SELECT … FROM <form> [JOIN refs] WHERE <where> AND created_at in the period``."""
        return (
            sa.select(self.table.c.id)
            .select_from(self.source)
            .where(*self.where, *period.clauses(self.table.c.created_at))
        )

    def _aggregates(self) -> list[ColumnElement[Any]]:
        measure, t = self.kpi.measure, self.table
        if measure == "count":
            return [sa.func.count()]
        if measure == "rate":
            assert self.numerator is not None
            hit = sa.case((self.numerator, 1), else_=0)
            return [sa.func.count(), sa.func.sum(hit)]
        assert self.kpi.field is not None
        column = t.c[self.kpi.field]
        return [sa.func.sum(column) if measure == "sum" else sa.func.avg(column)]

    def durations(self, period: Period, starts: list[date] | None = None) -> sa.Select[Any]:
        """One row per record: id, label, state, hours, start_at (and bucket with ``starts``);
        records whose ``to`` has not happened yet have no row."""
        spans = self._spans(period)
        t = self.table
        columns: list[ColumnElement[Any]] = [
            t.c.id,
            self.title_column.label("label"),
            t.c.state,
            _hours(spans.c.start_at, spans.c.end_at, self.dialect).label("hours"),
            spans.c.start_at.label("start_at"),
        ]
        if starts is not None:
            columns.append(bucket_index(spans.c.start_at, starts, self.timezone).label("bucket"))
        return (
            sa.select(*columns)
            .select_from(self.source.join(spans, spans.c.record_id == t.c.id))
            .where(*self.where, spans.c.end_at.is_not(None))
        )

    def _spans(self, period: Period) -> Any:
        """(record_id, start_at, end_at): the first ``from`` in the period, the first ``to``
        not before it (NULL when none yet) — computed once (a materialized CTE)."""
        start, end = self.kpi.start, self.kpi.end
        assert start is not None and end is not None
        form = self.kpi.form
        if payload_key(start) is None:  # from creation: the record's own created_at
            t = self.table
            begin = (
                sa.select(t.c.id.label("record_id"), t.c.created_at.label("at"))
                .where(*period.clauses(t.c.created_at))
                .subquery("first_from")
            )
        else:
            begin = first_start(self.events, form, start, period).subquery("first_from")
        end_at = first_end(self.events, form, end, begin.c.record_id, begin.c.at)
        query = sa.select(begin.c.record_id, begin.c.at.label("start_at"), end_at.label("end_at"))
        return query.cte("spans").prefix_with("MATERIALIZED")

    def _percentile(self, durations: sa.Select[Any], group: str | None) -> sa.Select[Any]:
        p = (self.kpi.percentile or 50) / 100 if self.kpi.measure == "percentile_hours" else 0.5
        d = durations.subquery("durations")
        keys = [d.c[group]] if group else []
        if self.dialect == "postgresql":
            value = sa.func.percentile_cont(p).within_group(d.c.hours)
            return sa.select(*keys, value).group_by(*keys)
        return _interpolated(d, keys, p)


def _interpolated(d: sa.Subquery, keys: list[Any], p: float) -> sa.Select[Any]:
    """percentile_cont with window functions: position p·(n−1) between the sorted values."""
    ranked = sa.select(
        *keys,
        d.c.hours,
        sa.func.row_number().over(partition_by=keys or None, order_by=d.c.hours).label("rn"),
        sa.func.count().over(partition_by=keys or None).label("n"),
    ).subquery("ranked")
    outer_keys = [ranked.c[k.name] for k in keys]
    position = (ranked.c.n - 1) * sa.literal(p, sa.Float)
    below = sa.cast(position, sa.Integer)  # floor: the position is never negative
    weight = sa.case(
        (ranked.c.rn - 1 == below, 1 - (position - below)),
        (ranked.c.rn - 2 == below, position - below),
        else_=0,
    )
    return (
        sa.select(*outer_keys, sa.func.sum(ranked.c.hours * weight))
        .where(ranked.c.rn.between(below + 1, below + 2))
        .group_by(*outer_keys)
    )


def _hours(start: Any, end: Any, dialect: str) -> ColumnElement[float]:
    if dialect == "postgresql":
        return sa.extract("epoch", end - start) / 3600.0
    # julianday is a float of days: round to whole milliseconds so equal spans compare equal
    millis = sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86_400_000.0)
    return millis / 3_600_000.0


def compile_kpi(
    app: App, metadata: sa.MetaData, kpi: KpiSpec, dialect: str, env: EvalEnv, now: datetime
) -> KpiQuery:
    """Translate ``kpi``'s conditions (``today()`` from ``env``) and bind it to ``now``."""
    columns = TableColumns(app, metadata, kpi.form)
    where = [condition(kpi.where.tree, columns, env)] if kpi.where else []
    numerator = condition(kpi.numerator.tree, columns, env) if kpi.numerator else None
    form = app.forms[kpi.form]
    t = columns.table
    title = t.c[form.title_field] if form.title_field else t.c.id
    return KpiQuery(
        kpi=kpi,
        dialect=dialect,
        table=t,
        source=columns.from_clause(),
        where=where,
        numerator=numerator,
        events=metadata.tables["sl_events"],
        title_column=title,
        now=now,
        timezone=app.timezone,
    )
