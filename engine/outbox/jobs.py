"""Durable jobs: the outbox, flow steps and timers are rows of ``sl_jobs``.

A job is written in the same transaction as the change that causes it, so nothing is sent for a
change that rolled back and nothing is lost for one that committed. Workers claim due jobs with
a lease (``locked_until``): ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers on
any number of machines never run a job twice at once; a crashed worker's lease runs out and the
job is claimed again. Failures back off exponentially with jitter up to ``max_attempts``, then
the job is dead (the dead-letter list) until someone retries it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.model import clock
from engine.model.logs import logger
from engine.outbox import procrastinate_queue
from engine.store.system_tables import system_metadata

__all__ = [
    "Job",
    "backoff",
    "batched",
    "claim",
    "claim_dispatched",
    "claim_one",
    "enqueue",
    "finish",
    "release",
    "retry_later",
    "retry_now",
]

log = logger(__name__)
_META = system_metadata()
JOBS = _META.tables["sl_jobs"]
RUNS = _META.tables["sl_flow_runs"]
# How long a claimed job is a worker's; after that a crashed worker's job is claimed again.
LEASE = timedelta(seconds=float(os.environ.get("SEAMLINE_JOB_LEASE", "60")))
BASE_DELAY = 0.5
CLOCK_SKEW = timedelta(seconds=1)
MAX_DELAY = 300.0


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    key: str
    run_id: int | None
    form: str | None
    record_id: int | None
    payload: Mapping[str, Any]
    attempts: int
    max_attempts: int


def _now() -> datetime:
    return clock.now()


@functools.lru_cache(maxsize=2)
def _enqueue_statement(dialect: str) -> sa.Insert:
    """The outbox insert, built once per dialect (a statement built per call pays its cache
    key each time, and a change enqueues several jobs): values come as parameters; it returns
    the rows it added (none for a key already there)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(JOBS)
        .on_conflict_do_nothing(index_elements=[JOBS.c.key])
        .returning(JOBS.c.id, JOBS.c.key)
    )


_BATCH = "seamline_job_batch"  # conn.info: the jobs a ``batched`` block has enqueued so far


@contextlib.contextmanager
def batched(conn: sa.Connection) -> Iterator[None]:
    """Write the jobs enqueued inside the block in one statement when it ends (an approval
    step that opens several tasks arms their timers and messages together). Inside an outer
    block it adds to that one. If the block raises, the jobs it enqueued are dropped (an
    inner block's too, even when the caller goes on). Nothing in the same transaction sees
    the jobs before the block ends, and a savepoint rolled back inside the block does not
    take back the jobs enqueued under it: open savepoints outside a batch."""
    outer = conn.info.get(_BATCH)
    if outer is not None:
        mark = len(outer)
        try:
            yield
        except BaseException:
            del outer[mark:]
            raise
        return
    pending: list[dict[str, Any]] = []
    conn.info[_BATCH] = pending
    try:
        yield
    finally:
        conn.info.pop(_BATCH, None)
    _insert(conn, pending)


def enqueue(
    conn: sa.Connection,
    kind: str,
    key: str,
    payload: Mapping[str, Any],
    *,
    run_id: int | None = None,
    form: str | None = None,
    record_id: int | None = None,
    due_at: datetime | None = None,
    max_attempts: int = 10,
) -> None:
    """Add a job unless one with the same key exists (the key makes enqueueing idempotent);
    inside :func:`batched`, when the block ends."""
    now = _now()
    row = {
        "kind": kind,
        "key": key,
        "payload": dict(payload),
        "run_id": run_id,
        "form": form,
        "record_id": record_id,
        "status": "ready",
        "due_at": due_at or now,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
    }
    pending = conn.info.get(_BATCH)
    if pending is not None:
        pending.append(row)
    else:
        _insert(conn, [row])


def _insert(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (one statement: several rows go as one multi-row INSERT), skipping keys
    already there, and hand the added ones to procrastinate when it runs the jobs."""
    if not rows:
        return
    statement = _enqueue_statement(conn.dialect.name)
    params: Any = rows[0] if len(rows) == 1 else list(rows)
    added = conn.execute(statement, params).all()
    if added and procrastinate_queue.active(conn):
        due: dict[str, datetime] = {}
        for row in rows:  # a key given twice is stored as first given
            due.setdefault(row["key"], row["due_at"])
        for job_id, key in added:
            procrastinate_queue.dispatch(conn, job_id, due[key], may_exist=False)


def _job(r: Any) -> Job:
    return Job(
        r.id, r.kind, r.key, r.run_id, r.form, r.record_id, r.payload, r.attempts, r.max_attempts
    )


def _free(now: datetime) -> sa.ColumnElement[bool]:
    """Nobody holds the job: waiting, or running on a lease that has run out."""
    return sa.or_(
        JOBS.c.status == "ready", sa.and_(JOBS.c.status == "running", JOBS.c.locked_until < now)
    )


def _lease(worker: str, now: datetime) -> dict[str, Any]:
    """The columns that make a job ``worker``'s until the lease ends (one attempt more)."""
    return {
        "status": "running",
        "locked_by": worker,
        "locked_until": now + LEASE,
        "attempts": JOBS.c.attempts + 1,
    }


def claim_one(engine: sa.Engine, worker: str, job_id: int) -> Job | None:
    """Take the job ``job_id`` if it is due and nobody holds it (a procrastinate dispatch)."""
    taken = claim_dispatched(engine, worker, job_id, limit=1)
    return taken[0] if taken else None


def claim_dispatched(
    engine: sa.Engine,
    worker: str,
    job_id: int,
    limit: int,
    batched: tuple[str, ...] = ("effect",),
    *,
    least: int | None = None,
    share: int = 1,
) -> list[Job]:
    """Take the dispatched job ``job_id``; if it is of a ``batched`` kind (outbox messages),
    also up to ``limit - 1`` more of those kinds that wait in procrastinate's line — one
    transaction, the batch of one procrastinate job. With ``share`` > 1 the batch is at most
    1/``share`` of the line, and at least ``least`` (see ``procrastinate_queue.steal``).

    The other rows' waiting procrastinate jobs are taken out of the line in the same
    transaction (``procrastinate_queue.steal``), so no worker fetches them for nothing; a row
    that cannot be claimed after all (not due by this clock, or held) is dispatched again at
    its due time. Flow steps and timers are never batched: each keeps its own dispatch, so
    concurrent workers run them side by side. Rows are locked with SKIP LOCKED."""
    now = _now()
    with engine.begin() as conn:
        own = _claim_ids(conn, worker, [job_id], now)
        if not own:
            _dispatch_again(conn, [job_id])
            return []
        if limit < 2 or own[0].kind not in batched:
            return [_job(own[0])]
        stolen = procrastinate_queue.steal(
            conn,
            limit - 1,
            job_id,
            batched,
            least=None if least is None else least - 1,
            share=share,
        )
        rows = _claim_ids(conn, worker, stolen, now) if stolen else []
        claimed = {row.id for row in rows}
        _dispatch_again(conn, [i for i in stolen if i not in claimed])
    return [_job(own[0]), *(_job(r) for r in sorted(rows, key=lambda r: (r.due_at, r.id)))]


def _claim_ids(conn: sa.Connection, worker: str, ids: list[int], now: datetime) -> Sequence[Any]:
    """Lease the rows of ``ids`` that are due and free (SKIP LOCKED: never wait on another
    worker); returns them."""
    claimable = (
        sa.select(JOBS.c.id)
        .where(
            JOBS.c.id.in_(ids),
            # procrastinate judges "due" by the database's clock; allow for a small skew
            JOBS.c.due_at <= now + CLOCK_SKEW,
            _free(now),
        )
        .with_for_update(skip_locked=True)
    )
    return conn.execute(
        JOBS.update()
        .where(JOBS.c.id.in_(claimable.scalar_subquery()))
        .values(_lease(worker, now))
        .returning(*JOBS.c)
    ).all()


def _dispatch_again(conn: sa.Connection, missed: list[int]) -> None:
    """Rows a dispatch could not claim that are still waiting (not due yet: a retry_now moved
    one, or clocks differ): dispatch them again at their time."""
    if not missed or not procrastinate_queue.active(conn):
        return
    waiting = conn.execute(
        sa.select(JOBS.c.id, JOBS.c.due_at).where(JOBS.c.id.in_(missed), JOBS.c.status == "ready")
    ).all()
    for row in waiting:
        procrastinate_queue.dispatch(conn, row.id, row.due_at, may_exist=True)


def release(engine: sa.Engine, worker: str, held: list[Job]) -> None:
    """Give back claimed jobs this worker has not started (a batch that ran long): ready now,
    the claim's attempt not counted, dispatched again on procrastinate."""
    if not held:
        return
    now = _now()
    with engine.begin() as conn:
        back = (
            conn.execute(
                JOBS.update()
                .where(
                    JOBS.c.id.in_([job.id for job in held]),
                    JOBS.c.status == "running",
                    JOBS.c.locked_by == worker,
                )
                .values(
                    status="ready",
                    locked_by=None,
                    locked_until=None,
                    due_at=now,
                    attempts=JOBS.c.attempts - 1,
                )
                .returning(JOBS.c.id)
            )
            .scalars()
            .all()
        )
        if procrastinate_queue.active(conn):
            for job_id in back:
                procrastinate_queue.dispatch(conn, job_id, now, may_exist=True)


def claim(
    engine: sa.Engine,
    worker: str,
    limit: int = 10,
    kinds: tuple[str, ...] = ("flow", "effect", "approval"),
) -> list[Job]:
    """Take up to ``limit`` due jobs for ``worker`` (leased for a minute)."""
    now = _now()
    due = sa.and_(JOBS.c.kind.in_(kinds), JOBS.c.due_at <= now, _free(now))
    with engine.begin() as conn:
        query = sa.select(JOBS.c.id).where(due).order_by(JOBS.c.due_at, JOBS.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = [row.id for row in conn.execute(query)]
        if not ids:
            return []
        conn.execute(JOBS.update().where(JOBS.c.id.in_(ids)).values(_lease(worker, now)))
        rows = conn.execute(sa.select(JOBS).where(JOBS.c.id.in_(ids)).order_by(JOBS.c.id)).all()
    return [_job(r) for r in rows]


def finish(conn: sa.Connection, *done: Job) -> None:
    """Mark ``done`` finished (one statement however many)."""
    conn.execute(
        JOBS.update()
        .where(JOBS.c.id.in_([job.id for job in done]))
        .values(status="done", done_at=_now(), locked_by=None, locked_until=None)
    )


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, capped, with ±50 % jitter."""
    delay = min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1))
    return delay * random.uniform(0.5, 1.5)


def retry_later(
    engine: sa.Engine,
    job: Job,
    error: str,
    *,
    permanent: bool = False,
    delay: float | None = None,
    failed: bool = True,
) -> str:
    """Schedule the next attempt, or mark the job dead; returns the new status.

    Logged (``seamline.outbox.jobs``, with the job's id, kind and attempt): a failure as a
    warning, a dead letter as an error; ``failed=False`` (a timer that woke early) only at
    DEBUG. ``error`` names what went wrong, never a URL or a key (connectors say which
    connector, not where it points)."""
    dead = permanent or job.attempts >= job.max_attempts
    wait = backoff(job.attempts) if delay is None else delay
    fields = {
        "job_id": job.id,
        "job_kind": job.kind,
        "attempt": job.attempts,
        "max_attempts": job.max_attempts,
        "error": error[:500],
    }
    if dead:
        log.error(
            "job %s (%s) is dead after attempt %d/%d: %s",
            job.id,
            job.kind,
            job.attempts,
            job.max_attempts,
            error[:500],
            extra={**fields, "dead": True},
        )
    elif failed:
        log.warning(
            "job %s (%s) failed on attempt %d/%d, retry in %.1f s: %s",
            job.id,
            job.kind,
            job.attempts,
            job.max_attempts,
            wait,
            error[:500],
            extra={**fields, "retry_in": round(wait, 3)},
        )
    else:
        log.debug("job %s (%s) waits %.1f s more", job.id, job.kind, wait, extra=fields)
    due = _now() + timedelta(seconds=0 if dead else wait)
    with engine.begin() as conn:
        conn.execute(
            JOBS.update()
            .where(JOBS.c.id == job.id)
            .values(
                status="dead" if dead else "ready",
                last_error=error[:2000],
                locked_by=None,
                locked_until=None,
                due_at=due,
            )
        )
        if not dead and procrastinate_queue.active(conn):
            procrastinate_queue.dispatch(conn, job.id, due, may_exist=True)
    return "dead" if dead else "ready"


def retry_now(conn: sa.Connection, job_id: int) -> bool:
    """Put a dead (or waiting) job back in line now — the dead-letter list's "retry now"."""
    now = _now()
    result = conn.execute(
        JOBS.update()
        .where(JOBS.c.id == job_id, JOBS.c.status.in_(("dead", "ready")))
        .values(status="ready", due_at=now, attempts=0, last_error=None)
    )
    if result.rowcount and procrastinate_queue.active(conn):
        procrastinate_queue.dispatch(conn, job_id, now, may_exist=True)
    return result.rowcount > 0
