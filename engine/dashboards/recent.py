"""A dashboard's live values, computed once for everyone who opens it in the same minute.

The live dashboard page (and its drill-downs, which show the same cards) asked
:func:`engine.dashboards.compute.dashboard_values` for every request: every KPI's queries over
its window, 0.3–0.5 s at 42,000 orders on a 2-core machine, for values that the page itself
only refreshes every 60 s. :func:`recent_values` keeps the last result per (database,
deployment, dashboard) and serves it again while

- nothing was written since: the event log's chain head (``sl_chain_head.last_id``, which every
  record change, transition and decision moves, one primary-key read) is where it was, and
- it is younger than :data:`MAX_AGE` by the clock the values are computed at (a ``now`` that
  went back, as a test's clock may, computes again).

The records behind a KPI (:func:`recent_drill`, the drill-down list) are kept the same way.
The values keep their ``computed_at``, which the page shows. A dashboard as of a past day is
never served from here (its pages call ``dashboard_values`` and ``drill_down`` directly).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.dashboards.compute import dashboard_values, drill_down
from engine.model.spec import App

__all__ = ["MAX_AGE", "forget", "recent_drill", "recent_values"]

MAX_AGE = timedelta(seconds=60)  # the dashboard page's own refresh interval
_KEEP = 64  # entries at most (a few dashboards per deployment)


@dataclass(frozen=True, slots=True)
class _Entry:
    mark: int | None  # the chain head's last event id when computed
    now: datetime
    values: dict[str, Any]


_lock = threading.Lock()
_entries: dict[tuple[str, ...], _Entry] = {}


def _mark(engine: Engine, metadata: sa.MetaData) -> int | None:
    head = metadata.tables["sl_chain_head"]
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(head.c.last_id))).scalar()


def _kept(
    engine: Engine,
    metadata: sa.MetaData,
    key: tuple[str, ...],
    now: datetime,
    compute: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """``compute()``, or a copy of its result kept for ``key`` when that is still good."""
    key = (engine.url.render_as_string(hide_password=True), *key)
    mark = _mark(engine, metadata)
    with _lock:
        entry = _entries.get(key)
    if entry is not None and entry.mark == mark and timedelta(0) <= now - entry.now < MAX_AGE:
        return copy.deepcopy(entry.values)
    values = compute()
    with _lock:
        if len(_entries) >= _KEEP:
            _entries.clear()
        _entries[key] = _Entry(mark, now, copy.deepcopy(values))
    return values


def recent_values(
    engine: Engine, app: App, name: str, now: datetime, metadata: sa.MetaData
) -> dict[str, Any]:
    """``dashboard_values(..., cached=True)`` at ``now``, or the same computed less than
    :data:`MAX_AGE` before with no write since (a copy: callers may change it)."""
    return _kept(
        engine,
        metadata,
        ("values", app.content_hash, name),
        now,
        lambda: dashboard_values(engine, app, name, now, metadata, cached=True),
    )


def recent_drill(
    engine: Engine,
    app: App,
    name: str,
    kpi: str,
    now: datetime,
    limit: int,
    metadata: sa.MetaData,
) -> dict[str, Any]:
    """``drill_down`` of the live dashboard, kept as :func:`recent_values` is."""
    return _kept(
        engine,
        metadata,
        ("drill", app.content_hash, name, kpi, str(limit)),
        now,
        lambda: drill_down(engine, app, name, kpi, now, limit, metadata),
    )


def forget() -> None:
    """Drop every kept result (tests; a process that changed data behind the event log)."""
    with _lock:
        _entries.clear()
