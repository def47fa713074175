"""The dashboard API (values computed in the database on every request).

- ``GET /api/dashboards`` — the dashboards my roles may see
- ``GET /api/dashboards/{name}`` — ``{"name", "title", "kpis": [{"id", "title", "value",
  "unit", "status", "thresholds", "trend", …}]}``; 403 when my roles may not see it
- ``GET /api/dashboards/{name}/kpis/{kpi}/records`` — the records behind a KPI (``limit``)
- ``GET /api/dashboards/{name}/kpis/{kpi}/records.csv`` — the same as CSV
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.dashboards.compute import (
    DRILL_LIMIT,
    UnknownDashboard,
    dashboard_values,
    drill_down,
    visible,
)
from engine.model import clock
from engine.model.errors import FieldError, Invalid, NotFound
from engine.model.i18n import Text
from engine.model.permissions import Resource
from engine.model.sheets import csv_text
from engine.model.spec import DashboardSpec
from engine.web.api import guarded, require
from engine.web.current import live
from engine.web.files import content_disposition
from engine.web.jsonio import json_response

MAX_LIMIT = 5000


def _allowed(request: Request, user: Any) -> DashboardSpec:
    """The dashboard named in the path: 404 unknown, 403 not for my roles."""
    name = request.path_params["name"]
    dashboard = live(request).app.dashboards.get(name)
    if dashboard is None:
        raise NotFound("dashboard", None)
    require(request, user, "dashboard", Resource(dashboard=dashboard))
    return dashboard


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DRILL_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Invalid(
            [
                FieldError(
                    "limit",
                    "bad_limit",
                    Text(f"limit: 1 to {MAX_LIMIT}", f"limit：须为 1 到 {MAX_LIMIT}"),
                )
            ],
        )
    return int(raw)


@guarded
def list_dashboards(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "use")
    mine = visible(live(request).app, user)
    return json_response(
        {
            "dashboards": [
                {
                    "name": d.name,
                    "title": d.title,
                    "description": d.description,
                    "kpis": [k.name for k in d.kpis],
                }
                for d in mine
            ]
        }
    )


@guarded
def show_dashboard(request: Request, user: Any, data: Any) -> Response:
    dashboard = _allowed(request, user)
    current = live(request)
    values = dashboard_values(
        current.records.engine,
        current.app,
        dashboard.name,
        clock.now(),
        current.metadata,
        cached=True,
    )
    return json_response(values)


def _drill(request: Request, user: Any) -> dict[str, Any]:
    dashboard = _allowed(request, user)
    current = live(request)
    kpi = next((k for k in dashboard.kpis if k.name == request.path_params["kpi"]), None)
    if kpi is not None and kpi.form in current.app.forms:  # the records behind it: read them
        require(request, user, "read", Resource(current.app.forms[kpi.form]))
    try:
        return drill_down(
            current.records.engine,
            current.app,
            dashboard.name,
            request.path_params["kpi"],
            clock.now(),
            _limit(request),
            current.metadata,
        )
    except UnknownDashboard:
        raise NotFound("kpi", None) from None


@guarded
def kpi_records(request: Request, user: Any, data: Any) -> Response:
    return json_response(_drill(request, user))


@guarded
def kpi_records_csv(request: Request, user: Any, data: Any) -> Response:
    found = _drill(request, user)
    columns = found.get("columns") or []
    rows: list[list[Any]] = [["id", "label", "state", "value", *(c["label"] for c in columns)]]
    for row in found["records"]:
        extra = [row["fields"].get(c["name"]) for c in columns]
        rows.append([row["id"], row["label"], row["state"], row["value"], *extra])
    name = f"{request.path_params['name']}-{found['kpi']}.csv"
    return Response(
        csv_text(rows),  # the shared writer: a BOM (Excel reads Chinese right), neutralised cells
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": content_disposition(name)},
    )


def dashboard_routes() -> list[Route]:
    return [
        Route("/api/dashboards", list_dashboards, methods=["GET"]),
        Route("/api/dashboards/{name}", show_dashboard, methods=["GET"]),
        Route("/api/dashboards/{name}/kpis/{kpi}/records", kpi_records, methods=["GET"]),
        Route("/api/dashboards/{name}/kpis/{kpi}/records.csv", kpi_records_csv, methods=["GET"]),
    ]
