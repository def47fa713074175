"""One KPI → SQLAlchemy selects that aggregate in the database.

Record measures (count, sum, avg, rate, distinct_count, per_record) select from the form's
table (LEFT JOINed to the ref tables its conditions use), windowed on ``created_at``;
per_record averages a correlated count of each record's events or child rows
(engine/dashboards/counts.py). Duration measures (median_hours, percentile_hours,
on_time_rate) first build a ``durations`` subquery — one row per record: its span's start, end
and the hours between (engine/dashboards/spans.py) — windowed on the start; percentiles are
``percentile_cont`` on PostgreSQL and the same linear interpolation with window functions on
SQLite; on_time_rate counts the spans within ``within_hours`` among those ended or already
late. A trend is the same aggregate GROUPed BY a bucket index (one query); a drill-down lists
the records behind the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.dashboards.columns import TableColumns
from engine.dashboards.counts import per_record_count
from engine.dashboards.spans import hours_between, is_dates, overdue_before, spans
from engine.expressions import EvalEnv
from engine.expressions.sql import condition
from engine.model.periods import Period, bucket_index, trend_period, trend_starts, window
from engine.model.spec import App, KpiSpec

__all__ = ["DURATIONS", "KpiQuery", "compile_kpi"]

DURATIONS = ("median_hours", "percentile_hours", "on_time_rate")


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
    counted: ColumnElement[int] | None = None  # per_record: the record's count

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

    def grouped_select(self, key: ColumnElement[Any]) -> sa.Select[Any]:
        """``SELECT grp, <aggregates> … GROUP BY grp`` over the KPI's window."""
        period = window(self.kpi.window, self.now, self.timezone)
        if self.is_duration:
            return self._percentile(self.durations(period, group=key), "grp")
        rows = self.records(period).with_only_columns(key.label("grp"), *self._aggregates())
        return rows.group_by(key)

    def finish(self, row: Any) -> float | int | None:
        """The KPI value from a row of aggregates (rate: numerator / population)."""
        measure = self.kpi.measure
        if measure in ("count", "distinct_count"):
            return int(row[0] or 0)
        if measure in ("rate", "on_time_rate"):
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
        longest durations (on_time_rate: the late ones, still open first), the records with
        the most (per_record), or the records counted (largest ``field`` first for sum/avg)."""
        period = window(self.kpi.window, self.now, self.timezone)
        t, measure = self.table, self.kpi.measure
        if self.is_duration:
            d = self.durations(period, listing=True).subquery("d")
            query = sa.select(d.c.id, d.c.label, d.c.state, d.c.hours.label("value"))
            if measure == "on_time_rate":
                late = sa.or_(d.c.hours.is_(None), d.c.hours > self._within())
                query = query.where(late).order_by(d.c.hours.desc().nulls_first(), d.c.id)
            else:
                query = query.order_by(d.c.hours.desc(), d.c.id)
            return query.limit(limit)
        value: ColumnElement[Any] = sa.null()
        if measure in ("sum", "avg"):
            value = t.c[self.kpi.field or "id"]
        elif measure == "per_record":
            assert self.counted is not None
            value = self.counted
        query = self.records(period).with_only_columns(
            t.c.id, self.title_column.label("label"), t.c.state, value.label("value")
        )
        if measure == "rate" and self.numerator is not None:
            query = query.where(sa.not_(self.numerator))
        if measure in ("sum", "avg", "per_record"):
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
        if measure == "distinct_count":
            assert self.kpi.field is not None
            return [sa.func.count(sa.distinct(t.c[self.kpi.field]))]
        if measure == "per_record":
            assert self.counted is not None
            return [sa.func.avg(self.counted)]
        assert self.kpi.field is not None
        column = t.c[self.kpi.field]
        return [sa.func.sum(column) if measure == "sum" else sa.func.avg(column)]

    def durations(
        self,
        period: Period,
        starts: list[date] | None = None,
        group: ColumnElement[Any] | None = None,
        listing: bool = False,
    ) -> sa.Select[Any]:
        """One row per record: hours, start_at (and bucket with ``starts``, grp with
        ``group``, id/label/state with ``listing``); records whose end has not come have no
        row — for on_time_rate they have one (hours NULL) once they are late."""
        t = self.table
        span = spans(
            self.kpi,
            self.source,
            t,
            self.where,
            self.events,
            period,
            self.timezone,
            self.dialect,
        )
        dates = is_dates(self.kpi, t)
        columns: list[ColumnElement[Any]] = [
            hours_between(span.c.start_at, span.c.end_at, self.dialect, dates).label("hours"),
            span.c.start_at.label("start_at"),
        ]
        if listing:
            columns += [t.c.id, self.title_column.label("label"), t.c.state]
        if starts is not None:
            columns.append(bucket_index(span.c.start_at, starts, self.timezone).label("bucket"))
        if group is not None:
            columns.append(group.label("grp"))
        counted: ColumnElement[bool] = span.c.end_at.is_not(None)
        if self.kpi.measure == "on_time_rate":
            late = span.c.start_at <= overdue_before(self.now, self._within())
            counted = sa.or_(counted, late)
        query = sa.select(*columns).where(counted)
        if listing or group is not None:  # the spans hold only records meeting ``where``
            return query.select_from(self.source.join(span, span.c.record_id == t.c.id))
        return query.select_from(span)

    def _within(self) -> float:
        assert self.kpi.within_hours is not None
        return float(self.kpi.within_hours)

    def _percentile(self, durations: sa.Select[Any], group: str | None) -> sa.Select[Any]:
        """The duration aggregate (per ``group``): the percentile of the hours, or for
        on_time_rate (population, on time)."""
        p = (self.kpi.percentile or 50) / 100 if self.kpi.measure == "percentile_hours" else 0.5
        d = durations.subquery("durations")
        keys = [d.c[group]] if group else []
        if self.kpi.measure == "on_time_rate":
            on_time = sa.case((d.c.hours <= self._within(), 1), else_=0)
            return sa.select(*keys, sa.func.count(), sa.func.sum(on_time)).group_by(*keys)
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


def compile_kpi(
    app: App, metadata: sa.MetaData, kpi: KpiSpec, dialect: str, env: EvalEnv, now: datetime
) -> KpiQuery:
    """Translate ``kpi``'s conditions (``today()`` from ``env``) and bind it to ``now``."""
    columns = TableColumns(app, metadata, kpi.form, dialect)
    where = [condition(kpi.where.tree, columns, env)] if kpi.where else []
    numerator = condition(kpi.numerator.tree, columns, env) if kpi.numerator else None
    form = app.forms[kpi.form]
    t = columns.table
    title = t.c[form.title_field] if form.title_field else t.c.id
    counted = None
    if kpi.count is not None:
        counted = per_record_count(app, metadata, kpi.form, kpi.count, t.c.id, env, now)
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
        counted=counted,
    )
