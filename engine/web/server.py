"""The Starlette application: JSON API, pages, sessions — on the newest deployment."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from engine.runtime import Deployments
from engine.store.system_tables import system_metadata
from engine.web.current import request_lang
from engine.web.jsonio import error
from engine.web.ops import MetricsMiddleware
from engine.web.page_kit import not_found_page
from engine.web.routes import api_routes
from engine.web.security import EXCEPTION_HANDLERS, session_middleware


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api"):
        lang = request_lang(request, accept_language=True)
        return error(404, "not_found", "no such address", "没有这个地址", lang)
    return not_found_page(request)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    lang = request_lang(request, accept_language=True)
    return error(405, "method", "method not allowed here", "此地址不支持该请求方法", lang)


# Routes that answer without asking ``engine.model.permissions.allowed``: signing in and out, the
# health and readiness checks and API description, the vendored assets, the customers' tracking
# page (its own verified-visit cookie, rate limits and whitelisted fields; no staff roles), and
# /metrics (its own rule: a bearer token, or private addresses only — engine.web.ops).
# tests/test_route_permissions.py proves every other route asks before it answers.
PUBLIC_ROUTES = frozenset(
    {
        "/login",
        "/logout",
        "/api/health",
        "/api/ready",
        "/metrics",
        "/api/openapi.json",
        "/static",
        "/track",
        "/track/code",
        "/track/verify",
        "/track/orders",
        "/track/logout",
        "/track/qr.svg",
    }
)


def create_web_app(
    db: Engine, deployments: Deployments, extra_routes: list[BaseRoute] | None = None
) -> Starlette:
    """The app on ``deployments``: the JSON API of :func:`engine.web.routes.api_routes`, then
    ``extra_routes`` — :func:`engine.web.routes.page_routes` for the pages (left out, the app
    serves the API alone)."""
    handlers = dict(EXCEPTION_HANDLERS)
    handlers.update({404: _not_found, 405: _method_not_allowed})
    web = Starlette(
        routes=[*api_routes(), *(extra_routes or [])],
        middleware=[Middleware(MetricsMiddleware), session_middleware()],
        exception_handlers=handlers,
    )
    web.state.db = db
    web.state.metadata = system_metadata()
    web.state.deployments = deployments
    return web
