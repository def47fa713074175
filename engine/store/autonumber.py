"""Autonumbers such as ``SO-{yyyy}{mm}-{seq:5}``: never the same number twice.

Each prefix (the format with the date filled in) is its own series in ``sl_counters``; the next
value comes from one atomic upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``), which
PostgreSQL serialises per row and SQLite per database, so parallel inserts cannot collide.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.model.spec import FieldSpec
from engine.store.events import hold_chain_head

_SEQ = re.compile(r"\{seq(?::(\d+))?\}")


def render_prefix(fmt: str, moment: datetime) -> str:
    return (
        fmt.replace("{yyyy}", f"{moment.year:04d}")
        .replace("{yy}", f"{moment.year % 100:02d}")
        .replace("{mm}", f"{moment.month:02d}")
        .replace("{dd}", f"{moment.day:02d}")
    )


@functools.lru_cache(maxsize=32)
def _bump(table: sa.Table, dialect: str) -> sa.Insert:
    """The counter's upsert (1, or one more), returning the value: built once per table."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(series=sa.bindparam("series"), value=1)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.series], set_={"value": table.c.value + 1}
    ).returning(table.c.value)


def next_number(
    conn: sa.Connection,
    metadata: sa.MetaData,
    form: str,
    field: FieldSpec,
    now: datetime,
    timezone: str,
) -> str:
    assert field.format is not None
    local = now.astimezone(ZoneInfo(timezone))
    text = render_prefix(field.format, local)
    series = f"{form}.{field.name}:{_SEQ.sub('#', text)}"
    # the chain head first (the record's events follow), then the counter: one lock order
    # for every writer, and writers queue on the head (see hold_chain_head)
    hold_chain_head(conn, metadata)
    upsert = _bump(metadata.tables["sl_counters"], conn.dialect.name)
    value = int(conn.execute(upsert, {"series": series}).scalar_one())

    def fill(match: re.Match[str]) -> str:
        width = int(match.group(1) or 1)
        return f"{value:0{width}d}"

    return _SEQ.sub(fill, text)
