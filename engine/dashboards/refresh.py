"""The worker's periodic refresh of the dashboards' trend snapshots (closed buckets of every
trend, stored by :mod:`engine.dashboards.snapshots` so a dashboard reads them instead of
recomputing a year of weeks)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.dashboards.compute import kpi_queries
from engine.dashboards.reading import reading
from engine.dashboards.snapshots import REFRESH_EVERY, live_values, store_values
from engine.model.periods import trend_starts
from engine.model.spec import App

__all__ = ["refresh", "refresh_if_due"]


def refresh(engine: Engine, app: App, metadata: sa.MetaData, now: datetime | None = None) -> int:
    """Recompute and store the closed buckets of every trend of every dashboard; returns
    how many trends were stored."""
    done = 0
    for name, dashboard in sorted(app.dashboards.items()):
        for query in kpi_queries(engine, app, dashboard, now, metadata):
            if query.kpi.trend is None:
                continue
            starts = trend_starts(query.kpi.trend, query.now, query.timezone)
            with reading(engine) as conn:
                values = live_values(conn, query, starts)
            store_values(engine, query, name, dict(zip(starts[:-1], values[:-1], strict=True)))
            done += 1
    return done


def refresh_if_due(
    engine: Engine, app: App, metadata: sa.MetaData, now: datetime | None = None
) -> bool:
    """Refresh when the last refresh is ``REFRESH_EVERY`` old; one worker wins the claim (a
    conditional UPDATE of the ``snapshots:<app>`` counter), the others skip."""
    if not any(k.trend for d in app.dashboards.values() for k in d.kpis):
        return False
    table = metadata.tables["sl_counters"]
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = int(moment.timestamp())
    series = f"snapshots:{app.name}"
    try:
        with engine.begin() as conn:
            last = conn.execute(sa.select(table.c.value).where(table.c.series == series)).scalar()
            if last is None:
                conn.execute(table.insert().values(series=series, value=stamp))
            elif stamp - int(last) < REFRESH_EVERY.total_seconds():
                return False
            else:
                claimed = conn.execute(
                    table.update()
                    .where(table.c.series == series, table.c.value == last)
                    .values(value=stamp)
                ).rowcount
                if not claimed:
                    return False
    except sa.exc.IntegrityError:  # another worker inserted the counter first
        return False
    refresh(engine, app, metadata, moment)
    return True
