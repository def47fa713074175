"""Insight report pages (the record page's hints from history are
:func:`engine.web.panels.hint_panel`).

Report pages (app.yaml ``insights:``), computed on each request in the database.

- ``GET /insights/{name}`` — the candidate templates with their coverage, as a table
- ``GET /insights/{name}/templates.csv`` — the same rows as CSV

A hyphen in the name stands for an underscore. Unknown reports give the 404 page, a report
outside the user's roles (``roles:``; none means everyone signed in) the 403 page.
"""

from __future__ import annotations

from dataclasses import asdict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.insights.clusters import ClusterReport, cluster_report, csv_text
from engine.model.errors import NotFound
from engine.model.permissions import Resource
from engine.model.spec import InsightSpec
from engine.web.api import require
from engine.web.current import live
from engine.web.page_kit import page
from engine.web.templating import render

__all__ = ["insight_page_routes"]


def _insight(request: Request, user: User) -> InsightSpec:
    name = request.path_params["name"].replace("-", "_")
    spec = live(request).app.insights.get(name)
    if spec is None:
        raise NotFound("insight", None)
    require(request, user, "insight", Resource(insight=spec))
    return spec


async def _report(request: Request, user: User) -> tuple[InsightSpec, ClusterReport]:
    spec = _insight(request, user)
    current = live(request)
    report = await run_in_threadpool(
        cluster_report,
        current.records.engine,
        current.app,
        spec.form,
        spec.field,
        min_support=spec.min_support,
        top=spec.top,
    )
    return spec, report


async def insight_page(request: Request, user: User) -> Response:
    spec, report = await _report(request, user)
    form = live(request).app.forms[spec.form]
    rows = [{**asdict(t), "share": f"{report.share(t.cumulative):.0%}"} for t in report.templates]
    context = {
        "insight": spec,
        "report": report,
        "rows": rows,
        "field_label": form.field(spec.field).label,
        "form_title": form.title,
        "coverage": f"{report.share(report.covered):.0%}",
    }
    return render(request, "insight.html", context)


async def insight_csv(request: Request, user: User) -> Response:
    spec, report = await _report(request, user)
    return Response(
        csv_text(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{spec.name}.csv"'},
    )


def insight_page_routes() -> list[BaseRoute]:
    return [
        Route("/insights/{name}", page(insight_page)),
        Route("/insights/{name}/templates.csv", page(insight_csv)),
    ]
