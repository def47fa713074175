"""The ASGI factory: a web process on the newest deployment of one database, for any ASGI server.

    SEAMLINE_DB=postgresql://… uvicorn --factory engine.web.asgi:create_app --workers 4
    SEAMLINE_DB=… gunicorn -k uvicorn.workers.UvicornWorker "engine.web.asgi:create_app()"

Settings come from the environment, so every worker process builds its own app the same way:

* ``SEAMLINE_DB`` (required): the database ``seamline deploy`` wrote to; the app served is the
  newest deployment stored there (no app folder is needed), switched without a restart.
* ``SEAMLINE_WORKER=1``: also run the outbox worker in this process (default: not — run
  ``seamline worker`` beside the web processes).
* ``SEAMLINE_POLL``: seconds between looks for a newer deployment (default 2).
* ``SEAMLINE_LOG_LEVEL``, ``SEAMLINE_LOG_FORMAT``: as ``seamline --log-level/--log-format``.

``seamline serve --workers N`` starts uvicorn on this factory and passes its options as these
variables; ``seamline serve`` with one process builds the same app through :func:`serving_app`.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from starlette.applications import Starlette

from engine.accounts.auth import sync_org_chart
from engine.accounts.sessions import ensure_session_tables
from engine.model.i18n import Text
from engine.model.logs import configure_logging, env_log_level, logger, uvicorn_log_config
from engine.outbox.worker import start_worker
from engine.runtime import Deployments, LiveApp, NotServable, newest_live
from engine.store.storage import create_db_engine
from engine.web.routes import page_routes
from engine.web.server import create_web_app

__all__ = [
    "create_app",
    "prepare_database",
    "server_options",
    "serving_app",
]

log = logger(__name__)

NO_DB = Text(
    "SEAMLINE_DB is not set: engine.web.asgi:create_app needs the URL of the database the app "
    "was deployed to, e.g. SEAMLINE_DB=postgresql://user@host/db",
    "未设置 SEAMLINE_DB：engine.web.asgi:create_app 需要应用部署所在数据库的地址，"
    "例如 SEAMLINE_DB=postgresql://user@host/db",
)


def prepare_database(engine: sa.Engine, current: LiveApp) -> None:
    """Session tables (a database deployed before server-side sessions) and the org chart's
    users, before serving (idempotent; processes starting together queue up)."""
    ensure_session_tables(engine)
    with engine.begin() as conn:
        sync_org_chart(conn, current.app)


def serving_app(
    engine: sa.Engine, current: LiveApp, *, poll: float = 2.0, worker: bool = True
) -> Starlette:
    """What one web process serves: the pages and API on ``current``, kept on the newest
    deployment, with the in-process outbox worker when ``worker``."""
    prepare_database(engine, current)
    deployments = Deployments(engine, current, poll_seconds=poll)
    deployments.start()
    if worker:
        start_worker(engine, lambda: deployments.current.flows)  # more run as `seamline worker`
    web = create_web_app(engine, deployments, extra_routes=page_routes())
    app = current.app
    log.info(
        "serving %s %s (%s)%s",
        app.name,
        app.version,
        app.content_hash[:12],
        " with the outbox worker" if worker else "",
        extra={
            "app": app.name,
            "version": app.version,
            "hash": app.content_hash,
            "database": engine.dialect.name,
            "pid": os.getpid(),
            "worker": worker,
        },
    )
    return web


def _poll() -> float:
    try:
        value = float(os.environ.get("SEAMLINE_POLL", "2"))
    except ValueError:
        return 2.0
    return value if value > 0 else 2.0


def create_app() -> Starlette:
    """The factory (``uvicorn --factory engine.web.asgi:create_app``): reads the environment
    variables of the module docstring; raises :class:`NotServable` naming what is missing."""
    configure_logging()
    url = os.environ.get("SEAMLINE_DB", "").strip()
    if not url:
        raise NotServable(NO_DB)
    engine = create_db_engine(url)
    current = newest_live(engine)
    return serving_app(
        engine, current, poll=_poll(), worker=os.environ.get("SEAMLINE_WORKER") == "1"
    )


def server_options(
    forwarded_allow_ips: str | None = None, level: str | None = None
) -> dict[str, Any]:
    """The options of every ``uvicorn.run`` of a Seamline server (``seamline serve``): the
    client address from ``X-Forwarded-For`` only when the connection comes from a trusted proxy
    (``forwarded_allow_ips``, else FORWARDED_ALLOW_IPS, else 127.0.0.1; ``*`` trusts any), and
    uvicorn's loggers through Seamline's handler and format."""
    trusted = forwarded_allow_ips or os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
    return {
        "proxy_headers": True,
        "forwarded_allow_ips": trusted,
        "log_config": uvicorn_log_config(),
        "log_level": (level or env_log_level()).lower(),
    }
