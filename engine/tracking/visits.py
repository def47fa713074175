"""The tracking page's visits, kept on the server (``sl_track_visits``).

A verified visitor gets a random visit id (in the signed ``seamline_track`` cookie, next to
the contact ids and phone key it was verified for); the table holds only the id's SHA-256,
those contacts, the phone key and the expiry. A request is let in only while its visit exists,
has not ended and has not expired — and only for the contacts and phone key stored with it —
so a copy of the cookie is refused once the visitor leaves (POST /track/logout) or the visit
times out. Times come from :mod:`engine.model.clock`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa

from engine.model import clock
from engine.store.storage import reader
from engine.store.system_tables import system_metadata

__all__ = ["VISITS", "end_visit", "start_visit", "visit_is_live"]

VISITS = system_metadata().tables["sl_track_visits"]
KEEP_AFTER_EXPIRY = timedelta(days=1)
MAX_ID_LENGTH = 100


def _hash(visit_id: str) -> str:
    return hashlib.sha256(b"track-visit:" + visit_id.encode("utf-8")).hexdigest()


def start_visit(
    engine: sa.Engine, contacts: Sequence[int], phone_key: str, minutes: float
) -> tuple[str, int]:
    """A new visit: its id (for the cookie only) and its end as a Unix timestamp."""
    now = clock.now()
    ends = now + timedelta(minutes=minutes)
    visit_id = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(VISITS.delete().where(VISITS.c.expires_at < now - KEEP_AFTER_EXPIRY))
        conn.execute(
            VISITS.insert().values(
                id_hash=_hash(visit_id),
                contacts=list(contacts),
                phone_key=phone_key,
                created_at=now,
                expires_at=ends,
                ended_at=None,
            )
        )
    return visit_id, int(ends.timestamp())


def visit_is_live(
    engine: sa.Engine, visit_id: str, contacts: Sequence[int], phone_key: str
) -> bool:
    """True while the visit has neither ended nor expired and was made for exactly these
    contacts and this phone key."""
    if not visit_id or len(visit_id) > MAX_ID_LENGTH:
        return False
    with reader(engine).connect() as conn:
        row = conn.execute(
            sa.select(VISITS.c.contacts, VISITS.c.phone_key).where(
                VISITS.c.id_hash == _hash(visit_id),
                VISITS.c.ended_at.is_(None),
                VISITS.c.expires_at > clock.now(),
            )
        ).first()
    if row is None:
        return False
    stored = sorted(int(i) for i in row.contacts or [])
    return stored == sorted(contacts) and secrets.compare_digest(
        str(row.phone_key).encode(), phone_key.encode()
    )


def end_visit(engine: sa.Engine, visit_id: str) -> bool:
    """End the visit (the visitor left); False when there was no open one."""
    if not visit_id or len(visit_id) > MAX_ID_LENGTH:
        return False
    with engine.begin() as conn:
        done = conn.execute(
            VISITS.update()
            .where(VISITS.c.id_hash == _hash(visit_id), VISITS.c.ended_at.is_(None))
            .values(ended_at=clock.now())
        )
    return bool(done.rowcount)
