"""The connection dashboards read through: a reader (SQLite: a deferred transaction, so a
long dashboard never holds up order entry).

On PostgreSQL, JIT compilation is turned off for it: KPI queries are estimated expensive
(millions of events) but run in tens of milliseconds from the KPI indexes, and compiling
them cost more than it saved (≈13 ms per query at 100,000 orders).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from engine.store.storage import reader

__all__ = ["reading"]


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read-only connection: no write lock on SQLite (WAL readers run beside writers)."""
    with reader(engine).connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")  # this transaction only
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        yield conn
