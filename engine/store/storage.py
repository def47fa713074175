"""Database connections: SQLite (embedded default) and PostgreSQL.

``database_url`` picks the URL (``--db``, then ``SEAMLINE_DB``, then app.yaml's ``database``,
then ``seamline.db`` in the workspace). SQLite connections run with foreign keys on, WAL, a
busy timeout, and ``BEGIN IMMEDIATE`` so that two writers queue instead of failing halfway —
within one process on a lock, in arrival order; readers take turns on a lock of their own, for
a short while at most (:mod:`engine.store.sqlite_gate`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from engine.model.extras import SetupError, require
from engine.model.i18n import Text
from engine.store.sqlite_gate import GatedConnection

__all__ = [
    "check_database_url",
    "create_db_engine",
    "database_url",
    "is_postgres",
    "is_sqlite",
    "reader",
]

SUPPORTED = ("sqlite", "postgresql", "postgresql+psycopg")
"""The database URL schemes Seamline runs on (``postgresql://`` means psycopg 3)."""


def database_url(
    app_root: str | Path, explicit: str | None = None, configured: str | None = None
) -> str:
    if explicit:
        return explicit
    env = os.environ.get("SEAMLINE_DB")
    if env:
        return env
    if configured:
        return configured
    return f"sqlite:///{Path(app_root).resolve() / 'seamline.db'}"


def is_sqlite(engine: Engine | sa.Connection) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine | sa.Connection) -> bool:
    return engine.dialect.name == "postgresql"


def check_database_url(url: str) -> sa.URL:
    """The parsed ``url``, or a :class:`SetupError` saying what to write instead (and which
    extra to install for PostgreSQL). The password never appears in the message."""
    sqlite, pg = "sqlite:///path/to/seamline.db", "postgresql://user:password@host:5432/dbname"
    example, example_zh = f"{sqlite} or {pg}", f"{sqlite} 或 {pg}"
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise SetupError(
            Text(
                f"the database URL is not a URL; write e.g. {example}",
                f"数据库地址格式不对；请写成例如 {example_zh}",
            )
        ) from None
    if parsed.drivername not in SUPPORTED:
        shown = parsed.render_as_string(hide_password=True)
        raise SetupError(
            Text(
                f"unsupported database URL '{shown}': Seamline runs on SQLite or PostgreSQL; "
                f"write e.g. {example}",
                f"不支持的数据库地址 '{shown}'：Seamline 支持 SQLite 和 PostgreSQL；"
                f"请写成例如 {example_zh}",
            )
        )
    if parsed.drivername.startswith("postgresql"):
        require("postgres", "psycopg", purpose=Text("PostgreSQL", "使用 PostgreSQL "))
    return parsed


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine set up for Seamline's transactions on either database (a
    :class:`SetupError` for a URL it cannot run on, see :func:`check_database_url`)."""
    check_database_url(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        connect_args = {"timeout": 30, "factory": GatedConnection}
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        _tune_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # Writers take the write lock up front (no deadlock upgrading a read lock); readers,
        # marked by reader(), start a plain deferred transaction and run beside writers (WAL).
        # The driver's connection runs the BEGIN: it is not a statement of the app's, and every
        # request pays it (a token lookup is a read transaction of its own).
        dbapi: Any = conn.connection.dbapi_connection  # sqlite3's, which has execute()
        reading = conn.get_execution_options().get("seamline_read")
        if isinstance(dbapi, GatedConnection) and reading:
            dbapi.begin_read()
        elif isinstance(dbapi, GatedConnection):
            dbapi.begin_write()
        else:
            dbapi.execute("BEGIN" if reading else "BEGIN IMMEDIATE")


_READER = "_seamline_reader"  # the engine's attribute holding its reader


def reader(engine: Engine) -> Engine:
    """The same engine (same pool) for read-only work: no write lock on SQLite. One per
    engine, kept on it (every request asks for it; the pair goes when the engine goes)."""
    found: Engine | None = engine.__dict__.get(_READER)
    if found is None:
        found = engine.execution_options(seamline_read=True)
        engine.__dict__[_READER] = found
    return found
