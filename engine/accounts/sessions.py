"""Server-side sessions of signed-in people (``sl_sessions``).

A session id is random (``secrets``, 256 bits); the browser's signed cookie holds only that
id and the database only its SHA-256, with the user, when it started, when it was last seen,
its absolute expiry and — once ended — ``revoked_at`` and why. A request is let in when its
session exists, is not revoked, is younger than the absolute limit, was seen within the idle
limit, and its user is still active: one lookup by primary key joined to ``sl_users``.
``last_seen_at`` is written at most every :data:`TOUCH_SECONDS`, so the idle limit is kept to
within that margin while most requests only read.

Signing out revokes the session; a new password or a deactivated user revokes all of that
user's sessions. Times come from :mod:`engine.model.clock`. Like :mod:`engine.accounts.auth`,
these functions take a connection and leave the transaction to the caller.

Limits (environment, read on every use): ``SEAMLINE_SESSION_IDLE_MINUTES`` (default 120) and
``SEAMLINE_SESSION_HOURS`` (default 12, a working day).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from engine.model import clock
from engine.model.logs import logger
from engine.store.system_tables import add_system_tables

__all__ = [
    "SESSIONS",
    "TOUCH_SECONDS",
    "absolute_limit",
    "end_session",
    "ensure_session_tables",
    "find_session",
    "idle_limit",
    "revoke_user_sessions",
    "session_hash",
    "start_session",
    "touch_session",
]

log = logger(__name__)

DEFAULT_IDLE_MINUTES = 120
DEFAULT_HOURS = 12
TOUCH_SECONDS = 300  # last_seen_at is written at most this often per session
KEEP_AFTER_EXPIRY = timedelta(days=1)  # ended rows are deleted a day after their expiry
MAX_ID_LENGTH = 100

_SYSTEM = sa.MetaData()
add_system_tables(_SYSTEM)
SESSIONS = _SYSTEM.tables["sl_sessions"]
_USERS = _SYSTEM.tables["sl_users"]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %g", name, raw, default)
        return default
    if value <= 0:
        log.warning("%s must be positive; using %g", name, default)
        return default
    return value


def idle_limit() -> timedelta:
    """How long a session may go unused (``SEAMLINE_SESSION_IDLE_MINUTES``, default 120)."""
    return timedelta(minutes=_env_number("SEAMLINE_SESSION_IDLE_MINUTES", DEFAULT_IDLE_MINUTES))


def absolute_limit() -> timedelta:
    """How long a session lives however busy it is (``SEAMLINE_SESSION_HOURS``, default 12)."""
    return timedelta(hours=_env_number("SEAMLINE_SESSION_HOURS", DEFAULT_HOURS))


def session_hash(session_id: str) -> str:
    return hashlib.sha256(b"session:" + session_id.encode("utf-8")).hexdigest()


def _usable(session_id: object) -> bool:
    return isinstance(session_id, str) and 0 < len(session_id) <= MAX_ID_LENGTH


def start_session(
    conn: sa.Connection,
    username: str,
    *,
    user_agent: str | None = None,
    address: str | None = None,
) -> str:
    """A new session for ``username``; returns its id (for the cookie — never stored)."""
    now = clock.now()
    session_id = secrets.token_urlsafe(32)
    conn.execute(SESSIONS.delete().where(SESSIONS.c.expires_at < now - KEEP_AFTER_EXPIRY))
    conn.execute(
        SESSIONS.insert().values(
            id_hash=session_hash(session_id),
            username=username,
            created_at=now,
            last_seen_at=now,
            expires_at=now + absolute_limit(),
            revoked_at=None,
            revoked_reason=None,
            user_agent=(user_agent or "")[:200] or None,
            address=(address or "")[:64] or None,
        )
    )
    return session_id


def find_session(conn: sa.Connection, session_id: object) -> tuple[Any, bool] | None:
    """The ``sl_users`` row of a live session and whether its ``last_seen_at`` is due for
    :func:`touch_session`; None when the session is unknown, revoked, expired (idle or
    absolute) or its user is inactive."""
    if not _usable(session_id):
        return None
    assert isinstance(session_id, str)
    now = clock.now()
    row = conn.execute(
        sa.select(_USERS, SESSIONS.c.last_seen_at.label("_last_seen"))
        .join(_USERS, _USERS.c.username == SESSIONS.c.username)
        .where(
            SESSIONS.c.id_hash == session_hash(session_id),
            SESSIONS.c.revoked_at.is_(None),
            SESSIONS.c.expires_at > now,
            SESSIONS.c.last_seen_at > now - idle_limit(),
        )
    ).first()
    if row is None or not row.active:
        return None
    last_seen = _aware(row._last_seen, now)
    return row, last_seen <= now - timedelta(seconds=TOUCH_SECONDS)


def _aware(value: datetime, like: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored in UTC)."""
    if value.tzinfo is None and like.tzinfo is not None:
        return value.replace(tzinfo=like.tzinfo)
    return value


def touch_session(conn: sa.Connection, session_id: str) -> None:
    """Note that the session was used now (only if it was not noted in the last minutes)."""
    now = clock.now()
    conn.execute(
        SESSIONS.update()
        .where(
            SESSIONS.c.id_hash == session_hash(session_id),
            SESSIONS.c.revoked_at.is_(None),
            SESSIONS.c.last_seen_at <= now - timedelta(seconds=TOUCH_SECONDS),
        )
        .values(last_seen_at=now)
    )


def end_session(conn: sa.Connection, session_id: object, reason: str = "logout") -> bool:
    """Revoke one session; False when there was no live one."""
    if not _usable(session_id):
        return False
    assert isinstance(session_id, str)
    done = conn.execute(
        SESSIONS.update()
        .where(SESSIONS.c.id_hash == session_hash(session_id), SESSIONS.c.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason[:32])
    )
    return bool(done.rowcount)


def revoke_user_sessions(conn: sa.Connection, usernames: str | list[str], reason: str) -> int:
    """Revoke every session of these users (a new password, a deactivated account)."""
    names = [usernames] if isinstance(usernames, str) else list(usernames)
    if not names or not sa.inspect(conn).has_table("sl_sessions"):
        return 0  # a database from before server-side sessions has none to revoke
    done = conn.execute(
        SESSIONS.update()
        .where(SESSIONS.c.username.in_(names), SESSIONS.c.revoked_at.is_(None))
        .values(revoked_at=clock.now(), revoked_reason=reason[:32])
    )
    return int(done.rowcount or 0)


def ensure_session_tables(engine: sa.Engine) -> list[str]:
    """Create the session tables a database deployed by an older Seamline lacks (``serve``
    calls this at start; ``seamline deploy`` creates them as part of its plan too)."""
    wanted = [_SYSTEM.tables[name] for name in ("sl_sessions", "sl_track_visits")]
    missing = [t for t in wanted if not sa.inspect(engine).has_table(t.name)]
    if not missing or not sa.inspect(engine).has_table("sl_users"):
        return []
    try:
        with engine.begin() as conn:
            for table in missing:
                table.create(conn, checkfirst=True)
    except sa.exc.DBAPIError:  # another process created them at the same moment
        log.info("session tables were created by another process", exc_info=True)
    return [t.name for t in missing]
