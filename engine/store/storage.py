"""Database connections: SQLite (embedded default) and PostgreSQL.

``database_url`` picks the URL (``--db``, then ``SEAMLINE_DB``, then app.yaml's ``database``,
then ``seamline.db`` in the workspace). SQLite connections run with foreign keys on, WAL, a
busy timeout, and ``BEGIN IMMEDIATE`` so that two writers queue instead of failing halfway.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["create_db_engine", "database_url", "is_postgres", "is_sqlite", "reader"]


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


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine set up for Seamline's transactions on either database."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
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
        if conn.get_execution_options().get("seamline_read"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: Engine) -> Engine:
    """The same engine (same pool) for read-only work: no write lock on SQLite."""
    return engine.execution_options(seamline_read=True)
