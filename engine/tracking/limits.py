"""The tracking page's guards: phone keys, attempt counters and lockouts, in the database.

Phone numbers are never stored here: a phone is known by its *key*, an HMAC-SHA-256 of the
normalised number under the server secret, so counters work the same for numbers that are
registered and numbers that are not. Every counted attempt is a row of ``sl_track_hits``
(``"req-ip:…"``, ``"fail-phone:…"`` …); limits count rows in a window, so they hold across
web processes and restarts on SQLite and PostgreSQL. Counting and adding run under a lock per
key (an advisory lock on PostgreSQL, the write lock on SQLite), so parallel guesses cannot
slip past a limit.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa

from engine.accounts.secret import session_secret
from engine.model.spec import RateSpec, TrackingSpec
from engine.store.system_tables import system_metadata

__all__ = [
    "CODES",
    "HITS",
    "code_hash",
    "count",
    "hit",
    "lock_keys",
    "locked",
    "normalise_phone",
    "over",
    "phone_key",
    "prune",
]

_META = system_metadata()
CODES = _META.tables["sl_track_codes"]
HITS = _META.tables["sl_track_hits"]
_SEPARATORS = re.compile(r"[\s\-()]")
_PHONE = re.compile(r"^\+?[0-9]{5,20}$")


def normalise_phone(raw: str) -> str | None:
    """Digits (and a leading +) of a plausible phone number; +86/0086 of mainland numbers
    dropped. None for anything that cannot be a phone number."""
    text = _SEPARATORS.sub("", raw.strip())[:40]
    if not _PHONE.match(text):
        return None
    for prefix in ("+86", "0086"):
        if text.startswith(prefix) and len(text) == len(prefix) + 11:
            return text[len(prefix) :]
    return text


def _mac(purpose: str, value: str) -> str:
    key = session_secret().encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def phone_key(phone: str) -> str:
    """The phone's stand-in in the database (the same number always gives the same key)."""
    return _mac("seamline.track.phone", phone)


def code_hash(key: str, code: str) -> str:
    """What is stored of a one-time code: bound to the phone key, keyed by the server secret."""
    return _mac("seamline.track.code", f"{key}:{code}")


def lock_keys(conn: sa.Connection, keys: Iterable[str]) -> None:
    """Serialise attempts on these keys until the transaction ends. SQLite already runs one
    writer at a time (``BEGIN IMMEDIATE``); PostgreSQL takes advisory locks, in a fixed order."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def count(conn: sa.Connection, key: str, since: datetime) -> int:
    query = sa.select(sa.func.count()).where(HITS.c.key == key, HITS.c.at > since)
    return int(conn.execute(query).scalar() or 0)


def hit(conn: sa.Connection, keys: Iterable[str], now: datetime) -> None:
    conn.execute(HITS.insert(), [{"key": k, "at": now} for k in keys])


def over(conn: sa.Connection, key: str, rate: RateSpec, now: datetime) -> bool:
    """Has ``key`` used up ``rate`` (count in the window)?"""
    return count(conn, key, now - timedelta(minutes=rate.minutes)) >= rate.count


def locked(conn: sa.Connection, spec: TrackingSpec, pkey: str, ip: str, now: datetime) -> bool:
    """Too many wrong tries for this phone, or from this address, within the lockout window."""
    since = now - timedelta(minutes=spec.lockout_minutes)
    return (
        count(conn, f"fail-phone:{pkey}", since) >= spec.max_attempts
        or count(conn, f"fail-ip:{ip}", since) >= spec.max_attempts_ip
    )


def prune(conn: sa.Connection, spec: TrackingSpec, now: datetime) -> None:
    """Forget attempts older than every window, and codes long past their life."""
    longest = max(spec.lockout_minutes, spec.per_phone.minutes, spec.per_ip.minutes)
    conn.execute(HITS.delete().where(HITS.c.at < now - timedelta(minutes=longest)))
    old = now - timedelta(minutes=spec.code_minutes + spec.lockout_minutes)
    conn.execute(CODES.delete().where(CODES.c.expires_at < old))
