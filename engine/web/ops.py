"""What operators and their tools ask a running server: readiness and Prometheus metrics.

``GET /api/health`` (engine.web.api) is liveness: the process answers, on which deployment.
``GET /api/ready`` is readiness: the database answers a ``SELECT 1`` and the job queue is not
behind — the oldest job that is due and not done is at most ``SEAMLINE_READY_MAX_LAG`` seconds
(default 300) past its due time. 200 ``{"status": "ready", "checks": {...}}``, else 503 with
the failing check and a plain reason; never a 500 (a database that is down is a 503).

``GET /metrics`` is the Prometheus text exposition:

* per process, counted by :class:`MetricsMiddleware`: ``seamline_http_requests_total``
  (method, route, status) and ``seamline_http_request_duration_seconds`` (method, route) —
  ``route`` is the route's template (``/api/forms/{form}/records/{record_id}``, ``unmatched``
  for no route), never the raw path, so the number of series stays bounded. With
  ``PROMETHEUS_MULTIPROC_DIR`` set (``seamline serve --workers N`` sets it), prometheus_client's
  multiprocess mode adds up every worker process.
* read from the database at scrape time (:class:`QueueCollector`), so right whichever web
  process is asked: ``seamline_jobs_due``, ``seamline_jobs_lag_seconds``,
  ``seamline_jobs_dead``, ``seamline_deliveries_sent_total``, ``seamline_deliveries_failed``
  and ``seamline_database_up`` (0 when the figures could not be read).

Who may read /metrics: when ``SEAMLINE_METRICS_TOKEN`` is set, a request with
``Authorization: Bearer <that token>`` from anywhere, nobody else. When it is not set, only
direct requests from a loopback or private address (``127.0.0.1``, ``10.…``, ``192.168.…``,
``::1`` …) — and none that carries ``X-Forwarded-For``/``Forwarded``, so a reverse proxy
on the same host does not open it to the internet. Everyone else gets a 403.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.model.i18n import Lang, Text
from engine.model.logs import logger
from engine.outbox.monitor import queue_figures, queue_lag
from engine.store.storage import reader
from engine.web.current import request_lang
from engine.web.jsonio import error, json_response

__all__ = ["MetricsMiddleware", "QueueCollector", "ops_routes", "ready_max_lag"]

log = logger(__name__)

DEFAULT_MAX_LAG = 300.0
CHECK_TIMEOUT = 5.0  # seconds a readiness check may take before it counts as failed
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "seamline_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
LATENCY = Histogram(
    "seamline_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ("method", "route"),
)


def ready_max_lag() -> float:
    """``SEAMLINE_READY_MAX_LAG`` in seconds (300 when unset or not a positive number)."""
    try:
        value = float(os.environ.get("SEAMLINE_READY_MAX_LAG", DEFAULT_MAX_LAG))
    except ValueError:
        return DEFAULT_MAX_LAG
    return value if value > 0 else DEFAULT_MAX_LAG


# ---------------------------------------------------------------------------- requests


class MetricsMiddleware:
    """Counts every HTTP request by method, route template and status, and times it. Pure ASGI
    and cheap: the route is the one Starlette's router put in the scope; each label set's
    children are looked up once and kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            key = (method, template, status)
            children = self._children.get(key)
            if children is None:
                children = (
                    REQUESTS.labels(method, template, str(status)),
                    LATENCY.labels(method, template),
                )
                if len(self._children) < 5_000:  # bounded whatever arrives
                    self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


# ---------------------------------------------------------------------------- the job queue


class QueueCollector(Collector):
    """The job queue's figures from the database, read when Prometheus scrapes."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "seamline_database_up", "1 when the queue figures could be read from the database."
        )
        try:
            figures = queue_figures(self.engine)
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: queue figures not read: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily(
            "seamline_jobs_due", "Jobs due and not done (waiting or running).", value=figures.due
        )
        yield GaugeMetricFamily(
            "seamline_jobs_lag_seconds",
            "Seconds the oldest due, unfinished job is past its due time.",
            value=figures.lag_seconds,
        )
        yield GaugeMetricFamily(
            "seamline_jobs_dead", "Dead letters: jobs given up on (every kind).", value=figures.dead
        )
        yield CounterMetricFamily(
            "seamline_deliveries_sent",
            "Outbox messages delivered (chat robots, mail, webhooks).",
            value=figures.sent,
        )
        yield GaugeMetricFamily(
            "seamline_deliveries_failed",
            "Outbox messages given up on (dead, until retried).",
            value=figures.failed,
        )


def _request_metrics() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _exposition(engine: sa.Engine) -> bytes:
    return _request_metrics() + generate_latest(QueueCollector(engine))


def _private(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def metrics_allowed(request: Request) -> bool:
    """The rule of the module docstring: the token when one is set, else a direct request from
    a loopback or private address."""
    token = os.environ.get("SEAMLINE_METRICS_TOKEN", "")
    if token:
        sent = request.headers.get("authorization", "")
        scheme, _, value = sent.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        )
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    return request.client is not None and _private(request.client.host)


async def metrics(request: Request) -> Response:
    if not metrics_allowed(request):
        lang = request_lang(request, accept_language=True)
        return error(
            403,
            "forbidden",
            "metrics are served with SEAMLINE_METRICS_TOKEN or to private addresses only",
            "监控指标仅凭 SEAMLINE_METRICS_TOKEN 或向内网地址提供",
            lang,
        )
    body = await run_in_threadpool(_exposition, request.app.state.db)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------- readiness

_DB_DOWN = Text("the database does not answer", "数据库无响应")
_DB_SLOW = Text("the database did not answer within {s} s", "数据库 {s} 秒内未响应")
_NOT_CHECKED = Text("not checked: the database is unavailable", "未检查：数据库不可用")
_LAGGING = Text(
    "jobs are behind: the oldest due job waits {lag} s (limit {limit} s)",
    "任务积压：最早到期的任务已等待 {lag} 秒（上限 {limit} 秒）",
)


def _select_one(engine: sa.Engine) -> None:
    with reader(engine).connect() as conn:
        conn.execute(sa.text("SELECT 1")).scalar()


async def _timed(func: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = await asyncio.wait_for(run_in_threadpool(func, *args), CHECK_TIMEOUT)
    return result, round((time.perf_counter() - start) * 1000, 2)


async def _checks(engine: sa.Engine, lang: Lang) -> tuple[bool, dict[str, Any], str | None]:
    checks: dict[str, Any] = {}
    try:
        _, ms = await _timed(_select_one, engine)
        checks["database"] = {"ok": True, "ms": ms}
    except TimeoutError:
        reason = _DB_SLOW.format(s=f"{CHECK_TIMEOUT:g}")(lang)
        checks["database"] = {"ok": False, "reason": reason}
        checks["jobs"] = {"ok": False, "reason": _NOT_CHECKED(lang)}
        return False, checks, reason
    except Exception as exc:  # whatever the driver raises: not ready, never a 500
        log.warning("ready: the database check failed: %s", type(exc).__name__)
        reason = _DB_DOWN(lang)
        checks["database"] = {"ok": False, "reason": reason, "error": type(exc).__name__}
        checks["jobs"] = {"ok": False, "reason": _NOT_CHECKED(lang)}
        return False, checks, reason
    limit = ready_max_lag()
    try:
        (due, lag_seconds), _ = await _timed(queue_lag, engine)
    except Exception as exc:
        log.warning("ready: the job check failed: %s", type(exc).__name__)
        reason = _DB_DOWN(lang)
        checks["jobs"] = {"ok": False, "reason": reason, "error": type(exc).__name__}
        return False, checks, reason
    lag = round(lag_seconds, 3)
    ok = lag <= limit
    checks["jobs"] = {"ok": ok, "lag_seconds": lag, "due": due, "max_lag_seconds": limit}
    if ok:
        return True, checks, None
    reason = _LAGGING.format(lag=f"{lag:.0f}", limit=f"{limit:g}")(lang)
    checks["jobs"]["reason"] = reason
    return False, checks, reason


async def ready(request: Request) -> Response:
    lang = request_lang(request, accept_language=True)
    ok, checks, reason = await _checks(request.app.state.db, lang)
    if ok:
        return json_response({"status": "ready", "checks": checks})
    return json_response({"status": "not_ready", "reason": reason, "checks": checks}, 503)


def ops_routes() -> list[Route]:
    return [
        Route("/api/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
