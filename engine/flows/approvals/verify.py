"""Check the sealed approval records: every PDF named by an ``approval_record`` event is
still stored and still hashes to the SHA-256 the (hash-chained) event recorded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import sqlalchemy as sa

from engine.store.files import load_file
from engine.store.system_tables import system_metadata

EVENTS = system_metadata().tables["sl_events"]


@dataclass(frozen=True)
class RecordProblem:
    event_id: int
    file_id: str
    reason: str  # "missing" | "altered"


def verify_approval_records(conn: sa.Connection) -> tuple[int, list[RecordProblem]]:
    """(how many records were checked, what is wrong with them)."""
    checked, problems = 0, []
    rows = conn.execute(
        sa.select(EVENTS.c.id, EVENTS.c.payload)
        .where(EVENTS.c.kind == "approval_record")
        .order_by(EVENTS.c.id)
    )
    for row in rows:
        payload = json.loads(row.payload)
        checked += 1
        found = load_file(conn, payload.get("file_id", ""))
        if found is None:
            problems.append(RecordProblem(row.id, payload.get("file_id", ""), "missing"))
        elif hashlib.sha256(found[1]).hexdigest() != payload.get("sha256"):
            problems.append(RecordProblem(row.id, payload["file_id"], "altered"))
    return checked, problems
