"""The tracking page's proofs: one-time codes (request, verify) and the number-suffix check.

Known and unknown phone numbers go through the same steps — the same limits, a code made,
hashed and stored, the message rendered — except that nothing is sent and no event is written
for a number nobody registered. A code is random (``secrets``), stored only as an HMAC, lives
``code.minutes``, is used once, and is replaced by the next one asked for. Too many wrong tries
lock the phone (and the address) for ``lockout_minutes``; the code in flight is burnt then.
The message goes out through the outbox (an ``effect`` job: retried, never lost). Requests,
successes and lockouts of registered contacts are events on the contact record (never the
code itself).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from engine.model import clock
from engine.model.logs import logger
from engine.model.spec import TrackingSpec
from engine.outbox import jobs
from engine.outbox.connectors import ConnectorError, Recipient
from engine.store.events import EventIn, append_events
from engine.tracking.limits import (
    CODES,
    code_hash,
    hit,
    lock_keys,
    locked,
    over,
    phone_key,
    prune,
)
from engine.tracking.live import Live

__all__ = [
    "ACTOR",
    "JOB_PREFIX",
    "Outcome",
    "find_contacts",
    "recent_code_messages",
    "request_code",
    "verify_code",
    "verify_suffix",
]

log = logger(__name__)
ACTOR = "tracking-page"
JOB_PREFIX = "track:"  # outbox keys of code messages (the outbox page shows them to some roles)
EXPIRED_PREFIX = "track-expired:"
_SUFFIX_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

Status = Literal["sent", "limited", "locked", "ok", "wrong"]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    contacts: tuple[int, ...] = ()
    phone_key: str = ""


# ---------------------------------------------------------------------------- contacts


def _digits_only(column: Any) -> Any:
    for mark in (" ", "-", "(", ")"):
        column = sa.func.replace(column, mark, "")
    return column


def find_contacts(conn: sa.Connection, live: Live, spec: TrackingSpec, phone: str) -> list[Any]:
    """The contact rows whose phone field is this number (however it was typed in)."""
    table = live.records.table(spec.contact_form)
    stored = _digits_only(table.c[spec.phone_field])
    wanted = [phone] + ([f"+86{phone}", f"0086{phone}"] if len(phone) == 11 else [])
    return list(conn.execute(sa.select(table).where(stored.in_(wanted)).order_by(table.c.id)))


def _audit(
    conn: sa.Connection, live: Live, form: str, ids: Sequence[int], kind: str, ip: str
) -> None:
    if ids:
        events = [EventIn(ACTOR, form, i, kind, {"ip": ip}) for i in ids]
        append_events(conn, live.records.metadata, events)


# ---------------------------------------------------------------------------- codes


def _new_code(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def _recipients(live: Live, spec: TrackingSpec, rows: Sequence[Any], phone: str) -> list[Recipient]:
    kind = live.app.connectors[spec.via or ""].type
    attribute = {"wecom": "wecom_id", "dingtalk": "dingtalk_id", "email": "email"}.get(kind)
    out = []
    for row in rows:
        channel = row._mapping.get(spec.channel_field or "")
        if not channel:
            continue
        ids: dict[str, Any] = {attribute: str(channel)} if attribute else {}
        user = str(channel) if attribute is None else str(row.id)
        out.append(Recipient(user=user, phone=phone, **ids))
    return out


def _message(live: Live, spec: TrackingSpec, code: str, to: Sequence[Recipient]) -> dict[str, Any]:
    minutes = f"{spec.code_minutes:g}"
    context = {"code": code, "minutes": minutes, "app": {"title": live.app.title}}
    via, template = spec.via or "", spec.template or ""
    return live.effects.message_payload(via, template, False, to, context)


def request_code(live: Live, spec: TrackingSpec, phone: str, ip: str) -> Status:
    """Make and send a code for ``phone``: "sent" (also for unknown numbers), "limited"
    (asked too often from this phone or address) or "locked"."""
    key = phone_key(phone)
    now = clock.now()
    with live.records.engine.begin() as conn:
        lock_keys(conn, (f"phone:{key}", f"ip:{ip}"))
        prune(conn, spec, now)
        _expire_messages(conn, spec, now)
        if locked(conn, spec, key, ip, now):
            return "locked"
        if over(conn, f"req-ip:{ip}", spec.per_ip, now) or over(
            conn, f"req-phone:{key}", spec.per_phone, now
        ):
            return "limited"
        hit(conn, (f"req-ip:{ip}", f"req-phone:{key}"), now)
        rows = find_contacts(conn, live, spec, phone)
        code = _new_code(spec.code_length)
        to = _recipients(live, spec, rows, phone)
        conn.execute(
            CODES.update()
            .where(CODES.c.phone_key == key, CODES.c.used_at.is_(None))
            .values(used_at=now)
        )
        conn.execute(
            CODES.insert().values(
                phone_key=key,
                code_hash=code_hash(key, code),
                contacts=[r.id for r in rows] if to else [],
                created_at=now,
                expires_at=now + timedelta(minutes=spec.code_minutes),
                failures=0,
                used_at=None,
            )
        )
        try:  # rendered for every number alike; sent only to registered ones
            payload = _message(live, spec, code, to or [Recipient(user="-")])
        except ConnectorError:
            log.exception("the tracking code message cannot be rendered")
            return "sent"
        if to:
            jobs.enqueue(
                conn,
                "effect",
                JOB_PREFIX + secrets.token_hex(12),
                payload,
                form=spec.contact_form,
                record_id=rows[0].id,
                max_attempts=live.effects.attempts(spec.via),
            )
            _audit(conn, live, spec.contact_form, [r.id for r in rows], "track_code_requested", ip)
    return "sent"


def _expire_messages(conn: sa.Connection, spec: TrackingSpec, now: datetime) -> None:
    """Code messages older than a code's life lose their text (the code) and stop retrying."""
    jobs_table = jobs.JOBS
    stale = conn.execute(
        sa.select(jobs_table.c.id, jobs_table.c.key, jobs_table.c.payload, jobs_table.c.status)
        .where(
            jobs_table.c.key.like(JOB_PREFIX + "%"),
            jobs_table.c.created_at < now - timedelta(minutes=spec.code_minutes),
            jobs_table.c.status != "running",
        )
        .limit(200)
    ).all()
    for row in stale:
        payload = {**dict(row.payload), "text": "—", "to": []}
        conn.execute(
            jobs_table.update()
            .where(jobs_table.c.id == row.id)
            .values(
                key=EXPIRED_PREFIX + row.key[len(JOB_PREFIX) :],
                payload=payload,
                status="dead" if row.status == "ready" else row.status,
                last_error="the code expired before it could be sent"
                if row.status == "ready"
                else None,
            )
        )


def _failed(
    conn: sa.Connection,
    live: Live,
    spec: TrackingSpec,
    key: str,
    ip: str,
    now: datetime,
    contacts: Sequence[int],
) -> Outcome:
    """Count a wrong try; at the limit burn the phone's codes and say "locked"."""
    hit(conn, (f"fail-phone:{key}", f"fail-ip:{ip}"), now)
    if not locked(conn, spec, key, ip, now):
        return Outcome("wrong")
    conn.execute(
        CODES.update()
        .where(CODES.c.phone_key == key, CODES.c.used_at.is_(None))
        .values(used_at=now)
    )
    _audit(conn, live, spec.contact_form, contacts, "track_locked", ip)
    log.warning("tracking page: phone key %s… locked after wrong tries from %s", key[:8], ip)
    return Outcome("locked")


def verify_code(live: Live, spec: TrackingSpec, phone: str, code: str, ip: str) -> Outcome:
    """Check a one-time code: "ok" with the contact ids, "wrong", or "locked" (then even the
    right code is refused until the lockout ends)."""
    key = phone_key(phone)
    now = clock.now()
    given = code_hash(key, code.strip()[:20])
    with live.records.engine.begin() as conn:
        lock_keys(conn, (f"phone:{key}", f"ip:{ip}"))
        if locked(conn, spec, key, ip, now):
            return Outcome("locked")
        row = conn.execute(
            sa.select(CODES)
            .where(
                CODES.c.phone_key == key,
                CODES.c.used_at.is_(None),
                CODES.c.expires_at > now,
            )
            .order_by(CODES.c.id.desc())
            .limit(1)
        ).first()
        stored = row.code_hash if row is not None else code_hash(key, "-")
        contacts = tuple(int(i) for i in (row.contacts if row is not None else []))
        if row is not None and secrets.compare_digest(stored, given) and contacts:
            conn.execute(CODES.update().where(CODES.c.id == row.id).values(used_at=now))
            _audit(conn, live, spec.contact_form, contacts, "track_verified", ip)
            return Outcome("ok", contacts, key)
        if row is not None:
            conn.execute(
                CODES.update().where(CODES.c.id == row.id).values(failures=CODES.c.failures + 1)
            )
        return _failed(conn, live, spec, key, ip, now, contacts)


def verify_suffix(live: Live, spec: TrackingSpec, phone: str, suffix: str, ip: str) -> Outcome:
    """The lighter proof: the phone plus the last characters of one of its records' numbers."""
    key = phone_key(phone)
    now = clock.now()
    wanted = suffix.strip().upper()
    well_formed = len(wanted) == spec.suffix_length and set(wanted) <= _SUFFIX_CHARS
    with live.records.engine.begin() as conn:
        lock_keys(conn, (f"phone:{key}", f"ip:{ip}"))
        if locked(conn, spec, key, ip, now):
            return Outcome("locked")
        contacts = tuple(r.id for r in find_contacts(conn, live, spec, phone))
        table = live.records.table(spec.record_form)
        number = sa.func.upper(table.c[spec.number_field])
        match = conn.execute(
            sa.select(table.c.id)
            .where(
                table.c[spec.contact_ref].in_(contacts or (-1,)),
                number.like("%" + (wanted if well_formed else "\x01")),
            )
            .limit(1)
        ).first()
        if match is not None and well_formed and contacts:
            _audit(conn, live, spec.contact_form, contacts, "track_verified", ip)
            return Outcome("ok", contacts, key)
        return _failed(conn, live, spec, key, ip, now, contacts)


def recent_code_messages(engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The newest code messages in the outbox (for the outbox page, roles in ``visible_to``)."""
    table = jobs.JOBS
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table)
            .where(table.c.key.like(JOB_PREFIX + "%"))
            .order_by(table.c.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "created_at": r.created_at,
            "status": r.status,
            "attempts": r.attempts,
            "via": r.payload.get("connector"),
            "to": ", ".join(
                t.get("wecom_id") or t.get("user") or "" for t in r.payload.get("to", [])
            ),
            "text": r.payload.get("text", ""),
            "error": r.last_error or "",
        }
        for r in rows
    ]
