"""Cached trend points: the closed buckets of every KPI trend, refreshed by the worker.

A trend has 8 buckets; all but the newest are closed periods whose values change only
through late edits. The worker (:func:`refresh_if_due`, run with the schedules every few
seconds, claimed so one worker does it) recomputes every dashboard's trends each
``REFRESH_EVERY`` with one grouped query per KPI and stores the closed buckets in
``sl_kpi_snapshots``, keyed by a hash of the KPI's definition. Opening a dashboard then
reads them and computes only the current bucket (:func:`trend_points`). A missing, stale
(older than ``MAX_AGE``) or redefined snapshot falls back to the whole trend computed live,
which is stored for the next viewer. Dashboards "as of" a past day never use snapshots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.dashboards.compile_kpi import KpiQuery
from engine.expressions.compile import CompiledExpr
from engine.model.logs import logger
from engine.model.periods import trend_starts
from engine.model.spec import KpiSpec

__all__ = [
    "MAX_AGE",
    "REFRESH_EVERY",
    "definition_hash",
    "live_values",
    "store_values",
    "trend_points",
]

log = logger(__name__)
REFRESH_EVERY = timedelta(minutes=10)
MAX_AGE = timedelta(hours=1)


def _plain(value: Any) -> Any:
    if isinstance(value, CompiledExpr):
        return value.source
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def definition_hash(kpi: KpiSpec, timezone: str) -> str:
    """What a stored value depends on: the KPI's whole definition and the app's time zone."""
    body = json.dumps([_plain(kpi), timezone], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _table(query: KpiQuery) -> sa.Table:
    return query.events.metadata.tables["sl_kpi_snapshots"]


def _stored(
    conn: sa.Connection, query: KpiQuery, dashboard: str, closed: list[date]
) -> dict[date, float | None] | None:
    """The stored values of the ``closed`` buckets, or None unless every one is there,
    fresh and of this definition."""
    t, kpi = _table(query), query.kpi
    assert kpi.trend is not None
    rows = conn.execute(
        sa.select(t.c.start, t.c.value).where(
            t.c.dashboard == dashboard,
            t.c.kpi == kpi.name,
            t.c.bucket == kpi.trend,
            t.c.start.in_(closed),
            t.c.definition == definition_hash(kpi, query.timezone),
            t.c.computed_at >= query.now - MAX_AGE,
        )
    ).all()
    found = {row.start: row.value for row in rows}
    return found if len(found) == len(closed) else None


def store_values(
    engine: Engine, query: KpiQuery, dashboard: str, values: dict[date, float | None]
) -> None:
    """Replace the stored closed buckets of this KPI (its own short transaction)."""
    t, kpi = _table(query), query.kpi
    definition = definition_hash(kpi, query.timezone)
    rows = [
        {
            "dashboard": dashboard,
            "kpi": kpi.name,
            "bucket": kpi.trend,
            "start": start,
            "value": value,
            "definition": definition,
            "computed_at": query.now,
        }
        for start, value in values.items()
    ]
    with engine.begin() as conn:
        conn.execute(
            t.delete().where(
                t.c.dashboard == dashboard, t.c.kpi == kpi.name, t.c.bucket == kpi.trend
            )
        )
        if rows:
            conn.execute(t.insert(), rows)


def live_values(conn: sa.Connection, query: KpiQuery, starts: list[date]) -> list[float | None]:
    """The trend of ``starts`` computed now: one grouped query."""
    _, select = query.trend_select(starts)
    by_bucket = {int(row[0]): row[1:] for row in conn.execute(select)}
    empty = query.finish([None, None])
    return [query.finish(by_bucket[i]) if i in by_bucket else empty for i in range(len(starts))]


def trend_points(
    conn: sa.Connection,
    query: KpiQuery,
    dashboard: str,
    cached: bool,
    later: list[Callable[[], None]] | None = None,
) -> list[tuple[date, float | int | None]]:
    """(bucket start, value) oldest first. ``cached``: closed buckets from the snapshots when
    they are all there; else computed live, and storing them is appended to ``later`` (run it
    once ``conn`` is closed: on SQLite every transaction holds the write lock)."""
    kpi = query.kpi
    assert kpi.trend is not None
    starts = trend_starts(kpi.trend, query.now, query.timezone)
    if not cached:
        return list(zip(starts, live_values(conn, query, starts), strict=True))
    closed = starts[:-1]
    stored = _stored(conn, query, dashboard, closed)
    if stored is not None:
        current = live_values(conn, query, starts[-1:])
        return [*((s, stored[s]) for s in closed), (starts[-1], current[0])]
    values = live_values(conn, query, starts)
    if later is not None:
        engine, closed_values = conn.engine, dict(zip(closed, values[:-1], strict=True))
        later.append(lambda: store_quietly(engine, query, dashboard, closed_values))
    return list(zip(starts, values, strict=True))


def store_quietly(
    engine: Engine, query: KpiQuery, dashboard: str, values: dict[date, float | None]
) -> None:
    """Store for the next viewer; a busy or read-only database only costs them the time."""
    try:
        store_values(engine, query, dashboard, values)
    except sa.exc.DBAPIError:
        log.warning("trend snapshot of %s.%s not stored", dashboard, query.kpi.name, exc_info=True)
