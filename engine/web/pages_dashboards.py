"""Dashboard pages: the list of dashboards, one dashboard as KPI cards (value, light in words,
thresholds, trend sparkline drawn by the vendored Chart.js) and the records behind a KPI.

- ``GET /dashboards`` — the dashboards the signed-in user's roles may see
- ``GET /dashboards/{name}[?at=YYYY-MM-DD]`` — the cards, as of now or as of the end of a
  past day in the app's time zone (the period selector); refreshed every 60 s through htmx
- ``GET /dashboards/{name}/cards[?at=…]`` — the cards alone (the htmx fragment)
- ``GET /dashboards/{name}/kpis/{kpi}[?at=…]`` — the drill-down list, with links to the record
  pages and to the CSV export of ``/api/dashboards/{name}/kpis/{kpi}/records.csv``

Unknown dashboards and KPIs give the 404 page, a dashboard outside the user's roles the 403
page. The values come from :mod:`engine.dashboards.compute` (computed in the database).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.dashboards.compute import (
    UnknownDashboard,
    dashboard_values,
    drill_down,
    kpi_round,
    visible,
)
from engine.dashboards.recent import recent_drill, recent_values
from engine.model import clock
from engine.model.errors import NotFound
from engine.model.permissions import Resource
from engine.model.spec import DashboardSpec
from engine.runtime import LiveApp
from engine.web.api import require
from engine.web.current import live
from engine.web.page_kit import page
from engine.web.templating import render

__all__ = ["dashboard_page_routes"]

REFRESH_SECONDS = 60
DRILL_ROWS = 200
_OPS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


# ---------------------------------------------------------------------------- helpers


def _dashboard(request: Request, user: User) -> DashboardSpec:
    """The dashboard named in the path: NotFound (404) or a 403 refusal for other roles."""
    dashboard = live(request).app.dashboards.get(request.path_params["name"])
    if dashboard is None:
        raise NotFound("dashboard", None)
    require(request, user, "dashboard", Resource(dashboard=dashboard))
    return dashboard


def _as_of(request: Request, timezone: str) -> tuple[datetime, str]:
    """The moment the values are computed at and the ``at`` date shown in the selector: the
    end of a past local day from ``?at=YYYY-MM-DD``, else now (blank)."""
    now = clock.now()
    try:
        day = date.fromisoformat(request.query_params.get("at", ""))
    except ValueError:
        return now, ""
    tz = ZoneInfo(timezone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz) - timedelta(seconds=1)
    if end >= now:
        return now, ""
    return end.astimezone(UTC), day.isoformat()


def shown(value: Any, decimals: int = 1) -> str:
    """A KPI value for people: thousands separated, ``decimals`` places unless it is whole —
    rounded by :func:`kpi_round`, the rounding its traffic light is decided on."""
    if value is None:
        return "—"
    rounded = kpi_round(value, decimals)
    if isinstance(rounded, float) and not rounded.is_integer():
        return f"{rounded:,.{decimals}f}"
    return f"{int(rounded):,}"


def _rule(rule: dict[str, Any] | None, decimals: int) -> str | None:
    if rule is None:
        return None
    return f"{_OPS.get(rule['op'], rule['op'])} {shown(rule['value'], decimals)}"


def _card(kpi: dict[str, Any], group_label: str = "") -> dict[str, Any]:
    """The API's KPI dict plus what the card shows: value text, rules, sparkline data, target
    and the worst groups (``group_label``: what they are groups of)."""
    trend = kpi.get("trend") or {}
    points = trend.get("points") or []
    d = kpi.get("decimals", 1)
    return {
        **kpi,
        "shown": shown(kpi["value"], d),
        "green_rule": _rule(kpi["thresholds"].get("green"), d),
        "amber_rule": _rule(kpi["thresholds"].get("amber"), d),
        "spark": {
            "labels": [p["start"] for p in points],
            "values": [p["value"] for p in points],
            "partial": bool(points) and bool(points[-1].get("partial")),
        },
        "trend_text": ", ".join(f"{p['start']}: {shown(p['value'], d)}" for p in points),
        "target_shown": shown(kpi.get("target"), d),
        "groups": [{**g, "shown": shown(g["value"], d)} for g in kpi.get("groups") or []],
        "group_label": group_label,
    }


def _group_labels(current: LiveApp, name: str) -> dict[str, str]:
    """KPI id → the label of the field it is grouped by."""
    dashboard = current.app.dashboards[name]
    out = {}
    for kpi in dashboard.kpis:
        field = current.app.forms[kpi.form].by_name.get(kpi.group_by or "")
        out[kpi.name] = field.label if field else (kpi.group_by or "")
    return out


def _values(current: LiveApp, name: str, now: datetime, cached: bool) -> dict[str, Any]:
    db = current.records.engine
    values = (  # live: computed once a minute while nothing is written (dashboards.recent)
        recent_values(db, current.app, name, now, current.metadata)
        if cached
        else dashboard_values(db, current.app, name, now, current.metadata)
    )
    labels = _group_labels(current, name)
    return {**values, "kpis": [_card(k, labels.get(k["id"], "")) for k in values["kpis"]]}


async def _cards_context(request: Request, user: User) -> dict[str, Any]:
    dashboard = _dashboard(request, user)
    current = live(request)
    now, at = _as_of(request, current.app.timezone)
    values = await run_in_threadpool(_values, current, dashboard.name, now, not at)
    today = clock.now().astimezone(ZoneInfo(current.app.timezone)).date()
    return {
        "dashboard": dashboard,
        "values": values,
        "at": at,
        "today": today.isoformat(),
        "query": f"?at={at}" if at else "",
        "refresh": REFRESH_SECONDS,
    }


# ---------------------------------------------------------------------------- pages


async def dashboards_page(request: Request, user: User) -> Response:
    require(request, user, "use")
    mine = visible(live(request).app, user)
    return render(request, "dashboards.html", {"dashboards": mine})


async def dashboard_page(request: Request, user: User) -> Response:
    return render(request, "dashboard.html", await _cards_context(request, user))


async def cards_fragment(request: Request, user: User) -> Response:
    return render(request, "_kpi_cards.html", await _cards_context(request, user))


def _drill(current: LiveApp, name: str, kpi: str, now: datetime, live: bool) -> dict[str, Any]:
    db, app = current.records.engine, current.app
    try:
        found = (  # live: kept a minute while nothing is written (dashboards.recent)
            recent_drill(db, app, name, kpi, now, DRILL_ROWS, current.metadata)
            if live
            else drill_down(db, app, name, kpi, now, DRILL_ROWS, current.metadata)
        )
    except UnknownDashboard:
        raise NotFound("kpi", None) from None
    for row in found["records"]:
        row["shown"] = shown(row["value"], 1)
    return found


async def kpi_records_page(request: Request, user: User) -> Response:
    context = await _cards_context(request, user)
    kpi_name = request.path_params["kpi"]
    card = next((k for k in context["values"]["kpis"] if k["id"] == kpi_name), None)
    if card is None:
        raise NotFound("kpi", None)
    current = live(request)
    spec = next(k for k in context["dashboard"].kpis if k.name == kpi_name)
    if spec.form in current.app.forms:  # the records behind the light: reading them
        require(request, user, "read", Resource(current.app.forms[spec.form]))
    now, at = _as_of(request, current.app.timezone)
    found = await run_in_threadpool(
        _drill, current, context["dashboard"].name, kpi_name, now, not at
    )
    form = current.app.forms.get(found["form"])
    context.update({"kpi": card, "found": found, "form": form})
    return render(request, "kpi_records.html", context)


def dashboard_page_routes() -> list[BaseRoute]:
    base = "/dashboards/{name}"
    return [
        Route("/dashboards", page(dashboards_page)),
        Route(base, page(dashboard_page)),
        Route(base + "/cards", page(cards_fragment)),
        Route(base + "/kpis/{kpi}", page(kpi_records_page)),
    ]
