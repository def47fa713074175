"""A dashboard's values now: one aggregate query per KPI (plus one grouped query per trend).

``dashboard_values`` returns the shape of ``GET /api/dashboards/{name}`` (README, "HTTP");
``drill_down`` lists the records behind one KPI; ``visible`` filters by the viewer's roles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.dashboards.compile_kpi import KpiQuery, compile_kpi
from engine.dashboards.drill_columns import drill_headers, drill_values
from engine.dashboards.groups import additive, group_label, group_select
from engine.dashboards.reading import reading
from engine.dashboards.snapshots import trend_points
from engine.expressions import EvalEnv
from engine.expressions.evaluate import AppRuntime
from engine.model.periods import bucket_unfinished, window
from engine.model.permissions import Resource, allowed
from engine.model.spec import App, DashboardSpec, KpiSpec, ThresholdSpec
from engine.store.tables import build_metadata

__all__ = [
    "UnknownDashboard",
    "dashboard_values",
    "drill_down",
    "kpi_queries",
    "status_of",
    "visible",
]

DRILL_LIMIT = 200
PARALLEL = 4  # KPI queries of one dashboard running at once (connections)


class UnknownDashboard(LookupError):
    """No such dashboard (or KPI on it)."""


def visible(app: App, actor: Any) -> list[DashboardSpec]:
    """The dashboards ``actor`` may see, by name (the permission model decides)."""
    return [
        d
        for _, d in sorted(app.dashboards.items())
        if allowed(app, actor, "dashboard", Resource(dashboard=d))
    ]


def _meets(value: float, rule: ThresholdSpec) -> bool:
    return {
        "<": value < rule.value,
        "<=": value <= rule.value,
        ">": value > rule.value,
        ">=": value >= rule.value,
    }[rule.op]


def kpi_decimals(kpi: KpiSpec) -> int:
    """The places a KPI is shown with: one, or as many as its thresholds and target write
    (``green: <= 0.25`` → two), at most four."""
    places = [1]
    for number in (
        kpi.green.value if kpi.green else None,
        kpi.amber.value if kpi.amber else None,
        kpi.target,
    ):
        if isinstance(number, float) and not number.is_integer():
            exponent = Decimal(repr(number)).normalize().as_tuple().exponent
            places.append(-exponent if isinstance(exponent, int) else 0)
    return min(4, max(places))


def kpi_round(value: float | int, decimals: int) -> float | int:
    """``value`` rounded half-up to ``decimals`` places: what the page shows and what the
    traffic light is decided on (``0.204`` shows ``0.2`` and is green where green is ≤ 0.2)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    step = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))


def status_of(kpi: KpiSpec, value: float | None) -> str:
    """green when the value meets ``green``, amber when it meets ``amber``, else red; none
    without a value or without thresholds. The value is compared as shown
    (:func:`kpi_round` to :func:`kpi_decimals` places)."""
    if value is None or (kpi.green is None and kpi.amber is None):
        return "none"
    value = kpi_round(value, kpi_decimals(kpi))
    if kpi.green is not None and _meets(value, kpi.green):
        return "green"
    if kpi.amber is not None and _meets(value, kpi.amber):
        return "amber"
    return "red"


def _thresholds(kpi: KpiSpec) -> dict[str, Any]:
    return {
        name: None if rule is None else {"op": rule.op, "value": rule.value}
        for name, rule in (("green", kpi.green), ("amber", kpi.amber))
    }


def _rounded(value: float | int | None) -> float | int | None:
    return round(value, 4) if isinstance(value, float) else value


class _Context:
    """What every KPI query of one call shares: the app, tables, clock and dialect."""

    def __init__(
        self,
        engine: Engine,
        app: App,
        now: datetime | None,
        metadata: sa.MetaData | None,
        dashboard: str = "",
        cached: bool = False,
    ) -> None:
        self.engine = engine
        self.app = app
        self.dashboard = dashboard
        self.cached = cached  # closed trend buckets from the worker's snapshots
        self.later: list[Callable[[], None]] = []  # writes once the read connection closed
        self.now = (now or datetime.now(UTC)).astimezone(UTC)
        self.metadata = metadata if metadata is not None else build_metadata(app)
        calendar = AppRuntime.of(app).calendar
        self.env = EvalEnv(calendar=calendar, now=lambda: self.now, timezone=app.timezone)

    def query(self, kpi: KpiSpec) -> KpiQuery:
        return compile_kpi(
            self.app, self.metadata, kpi, self.engine.dialect.name, self.env, self.now
        )


def _dashboard(app: App, name: str) -> DashboardSpec:
    dashboard = app.dashboards.get(name)
    if dashboard is None:
        raise UnknownDashboard(name)
    return dashboard


def _kpi(dashboard: DashboardSpec, name: str) -> KpiSpec:
    for kpi in dashboard.kpis:
        if kpi.name == name:
            return kpi
    raise UnknownDashboard(name)


def _trend(conn: sa.Connection, query: KpiQuery, ctx: _Context) -> list[dict[str, Any]]:
    """``[{"start", "value", "partial"}]``: ``partial`` on the last bucket while it is still
    running (this week so far), so a chart draws it apart instead of as a drop."""
    points = trend_points(conn, query, ctx.dashboard, ctx.cached, ctx.later)
    kpi = query.kpi
    assert kpi.trend is not None
    last = len(points) - 1
    return [
        {
            "start": day.isoformat(),
            "value": _rounded(value),
            "partial": i == last and bucket_unfinished(day, kpi.trend, query.now, query.timezone),
        }
        for i, (day, value) in enumerate(points)
    ]


def _groups(
    conn: sa.Connection, query: KpiQuery, ctx: _Context
) -> tuple[list[dict[str, Any]], Sequence[Any] | None]:
    """``[{"key", "label", "value", "status"}]`` of the worst groups, worst first, and for an
    additive measure the KPI's own aggregates over all groups (else None)."""
    kpi = query.kpi
    rows = conn.execute(group_select(ctx.app, ctx.metadata, query)).all()
    width = (len(rows[0]) - 2) // 2 if rows and additive(kpi) else None
    totals = list(rows[0][2 + width :]) if width is not None else None
    if additive(kpi) and not rows:
        totals = [None, None]
    out = []
    for row in rows:
        value = _rounded(query.finish(row[2 : 2 + width] if width is not None else row[2:]))
        out.append(
            {
                "key": _plain_key(row[0]),
                "label": group_label(ctx.app, kpi, row[0], row[1]),
                "value": value,
                "status": status_of(kpi, value),
            }
        )
    return out, totals


def _plain_key(key: Any) -> Any:
    return key.isoformat() if hasattr(key, "isoformat") else key


def _kpi_json(conn: sa.Connection, query: KpiQuery, ctx: _Context) -> dict[str, Any]:
    kpi = query.kpi
    groups, row = _groups(conn, query, ctx) if kpi.group_by else (None, None)
    if row is None:  # not grouped, or not additive: the value's own query
        row = conn.execute(query.value_select()).first()
    value = _rounded(query.finish(row if row is not None else [None, None]))
    period = window(kpi.window, query.now, query.timezone)
    return {
        "id": kpi.name,
        "title": kpi.title,
        "measure": kpi.measure,
        "value": value,
        "unit": kpi.unit,
        "decimals": kpi_decimals(kpi),
        "status": status_of(kpi, value),
        "thresholds": _thresholds(kpi),
        "target": kpi.target,
        "groups": groups,
        "window": {
            "name": kpi.window,
            "start": period.start.isoformat() if period.start else None,
            "end": period.end.isoformat(),
        },
        "trend": {"bucket": kpi.trend, "points": _trend(conn, query, ctx)} if kpi.trend else None,
    }


def dashboard_values(
    engine: Engine,
    app: App,
    name: str,
    now: datetime | None = None,
    metadata: sa.MetaData | None = None,
    cached: bool = False,
) -> dict[str, Any]:
    """``{"name", "title", "kpis": [{"id", "title", "value", "unit", "status",
    "thresholds", "trend", …}]}`` computed in the database at ``now`` (default: the clock).
    ``cached``: closed trend buckets from the snapshots (engine/dashboards/snapshots.py) —
    for the live view only, never for a dashboard as of a past day."""
    dashboard = _dashboard(app, name)
    ctx = _Context(engine, app, now, metadata, dashboard.name, cached)

    def one(kpi: KpiSpec) -> dict[str, Any]:
        with reading(engine) as conn:
            return _kpi_json(conn, ctx.query(kpi), ctx)

    # each KPI on its own connection, PARALLEL at a time: the databases run them side by
    # side (SQLite readers in WAL mode too); the results keep the dashboard's order
    workers = max(1, min(PARALLEL, len(dashboard.kpis)))
    with ThreadPoolExecutor(workers, thread_name_prefix="seamline-kpi") as pool:
        kpis = list(pool.map(one, dashboard.kpis))
    for write in ctx.later:
        write()
    return {
        "name": dashboard.name,
        "title": dashboard.title,
        "description": dashboard.description,
        "computed_at": ctx.now.isoformat(),
        "kpis": kpis,
    }


def kpi_queries(
    engine: Engine,
    app: App,
    dashboard: DashboardSpec,
    now: datetime | None = None,
    metadata: sa.MetaData | None = None,
) -> list[KpiQuery]:
    """Every KPI of ``dashboard`` compiled for ``now``."""
    ctx = _Context(engine, app, now, metadata, dashboard.name)
    return [ctx.query(kpi) for kpi in dashboard.kpis]


def drill_down(
    engine: Engine,
    app: App,
    name: str,
    kpi_name: str,
    now: datetime | None = None,
    limit: int = DRILL_LIMIT,
    metadata: sa.MetaData | None = None,
) -> dict[str, Any]:
    """The records behind one KPI (at most ``limit``): ``{"kpi", "title", "form", "unit",
    "columns": [{"name", "label"}], "records": [{"id", "label", "state", "value", "fields"}],
    "limit"}`` — ``columns`` and each record's ``fields`` are the KPI's ``drill.columns``."""
    kpi = _kpi(_dashboard(app, name), kpi_name)
    ctx = _Context(engine, app, now, metadata)
    query = ctx.query(kpi)
    with reading(engine) as conn:
        rows = conn.execute(query.drill_select(limit)).all()
        extra = drill_values(conn, app, ctx.metadata, kpi, [row.id for row in rows])
    return {
        "kpi": kpi.name,
        "title": kpi.title,
        "form": kpi.form,
        "unit": kpi.unit,
        "value_unit": "hours" if query.is_duration else kpi.unit,
        "limit": limit,
        "columns": drill_headers(app, kpi),
        "records": [
            {
                "id": row.id,
                "label": str(row.label) if row.label is not None else f"#{row.id}",
                "state": row.state,
                "value": _rounded(float(row.value)) if row.value is not None else None,
                "fields": extra.get(row.id, {}),
            }
            for row in rows
        ],
    }
