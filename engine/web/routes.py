"""The route table of the web app: every address, in the order Starlette tries them.

:func:`api_routes` is the JSON API every app serves; :func:`page_routes` adds the
server-rendered pages (with the public /track page), the file upload and download routes
under /api/files and the vendored assets under /static. :func:`engine.web.server.create_web_app`
builds the app from them; which of them answer without asking the permission model is
:data:`engine.web.server.PUBLIC_ROUTES`.

The pages are server-rendered (Jinja2 + htmx, no build step): :mod:`engine.web.page_kit` (what
they share), :mod:`engine.web.pages_home` (sign-in, home, runs), :mod:`engine.web.pages_records`
(record lists, record pages, create/edit forms), :mod:`engine.web.exports` (a list as CSV or
Excel), :mod:`engine.web.pages_tasks`,
:mod:`engine.web.pages_confirm`, :mod:`engine.web.pages_dashboards`,
:mod:`engine.web.pages_insights`, :mod:`engine.web.track`. Every page needs a signed-in user
(else a redirect to /login), except sign-in and the public /track page; every POST carries the
session's CSRF token. Blocking work runs in Starlette's thread pool.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from engine.web import (
    api,
    api_dashboards,
    api_tasks,
    exports,
    files,
    ops,
    pages_confirm,
    pages_dashboards,
    pages_home,
    pages_insights,
    pages_records,
    pages_tasks,
    track,
)

__all__ = ["STATIC_DIR", "api_routes", "page_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


def api_routes() -> list[BaseRoute]:
    """The JSON API: forms and records, runs and the outbox, approvals, dashboards; readiness
    (/api/ready) and the Prometheus metrics (/metrics) of :mod:`engine.web.ops`."""
    return [
        *api.api_routes(),
        *ops.ops_routes(),
        *api_tasks.task_routes(),
        *api_dashboards.dashboard_routes(),
    ]


def page_routes() -> list[BaseRoute]:
    """Pages, the /api/files routes and the vendored assets under /static."""
    return [
        *pages_tasks.task_page_routes(),
        *pages_confirm.confirm_page_routes(),
        *pages_dashboards.dashboard_page_routes(),
        *pages_insights.insight_page_routes(),
        *files.file_routes(),
        *track.track_routes(),
        *pages_home.home_page_routes(),
        *exports.export_routes(),
        *pages_records.record_page_routes(),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
