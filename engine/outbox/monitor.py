"""What operators see of flows: runs with their inputs, outputs and errors, and the outbox
with its dead letters ("retry now")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.model import clock
from engine.outbox.jobs import JOBS, RUNS, retry_now
from engine.store.storage import reader

__all__ = [
    "QueueFigures",
    "list_jobs",
    "list_runs",
    "queue_figures",
    "queue_lag",
    "retry_job",
]

JOB_STATUSES = ("ready", "running", "done", "dead")


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """The job queue at one moment, read from ``sl_jobs`` — the source of truth on both paths
    (the table loop, and procrastinate on PostgreSQL, whose dispatches claim these rows)."""

    due: int  # due and not done: waiting (ready) or being run (running)
    lag_seconds: float  # age of the oldest of them past its due time (0 when none)
    dead: int  # dead letters, every kind
    sent: int  # outbox messages delivered (kind effect, done)
    failed: int  # outbox messages given up on (kind effect, dead)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def queue_lag(engine: sa.Engine, now: datetime | None = None) -> tuple[int, float]:
    """(due jobs, lag in seconds of the oldest): what ``/api/ready`` asks at every probe — one
    range read of ``ix_sl_jobs_due`` (status, due_at), however many jobs are done."""
    now = now or clock.now()
    waiting = sa.and_(JOBS.c.status.in_(("ready", "running")), JOBS.c.due_at <= now)
    with reader(engine).connect() as conn:
        due, oldest = conn.execute(
            sa.select(sa.func.count(), sa.func.min(JOBS.c.due_at)).where(waiting)
        ).one()
    lag = max(0.0, (now - _aware(oldest)).total_seconds()) if oldest is not None else 0.0
    return int(due), lag


def queue_figures(engine: sa.Engine, now: datetime | None = None) -> QueueFigures:
    """Due jobs, the lag, dead letters and delivery counts (``/metrics``, at each scrape; the
    counts of done and dead jobs read the same index)."""
    due, lag = queue_lag(engine, now)
    by_status = (
        sa.select(JOBS.c.status, JOBS.c.kind, sa.func.count())
        .where(JOBS.c.status.in_(("dead", "done")))
        .group_by(JOBS.c.status, JOBS.c.kind)
    )
    with reader(engine).connect() as conn:
        counts = conn.execute(by_status).all()
    dead = sum(n for status, _kind, n in counts if status == "dead")
    sent = sum(n for status, kind, n in counts if status == "done" and kind == "effect")
    failed = sum(n for status, kind, n in counts if status == "dead" and kind == "effect")
    return QueueFigures(due, lag, int(dead), int(sent), int(failed))


def list_runs(
    engine: sa.Engine,
    *,
    form: str | None = None,
    record_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    query = sa.select(RUNS).order_by(RUNS.c.id.desc()).limit(max(1, min(limit, 500)))
    if form:
        query = query.where(RUNS.c.form == form)
    if record_id is not None:
        query = query.where(RUNS.c.record_id == record_id)
    if status:
        query = query.where(RUNS.c.status == status)
    with reader(engine).connect() as conn:
        runs = [dict(r._mapping) for r in conn.execute(query)]
        ids = [r["id"] for r in runs]
        attempts: dict[int, list[dict[str, Any]]] = {}
        if ids:
            for job in conn.execute(
                sa.select(JOBS).where(JOBS.c.run_id.in_(ids)).order_by(JOBS.c.id)
            ):
                attempts.setdefault(job.run_id, []).append(_job(job))
    for run in runs:
        run["jobs"] = attempts.get(run["id"], [])
    return runs


def list_jobs(
    engine: sa.Engine, *, status: str | None = None, kind: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    query = sa.select(JOBS).order_by(JOBS.c.id.desc()).limit(max(1, min(limit, 500)))
    if status:
        query = query.where(JOBS.c.status == status)
    if kind:
        query = query.where(JOBS.c.kind == kind)
    with reader(engine).connect() as conn:
        return [_job(r) for r in conn.execute(query)]


def retry_job(engine: sa.Engine, job_id: int) -> bool:
    with engine.begin() as conn:
        return retry_now(conn, job_id)


def _job(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "run_id": row.run_id,
        "form": row.form,
        "record_id": row.record_id,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "due_at": row.due_at,
        "last_error": row.last_error,
        "done_at": row.done_at,
        "title": (row.payload or {}).get("title"),
        "via": (row.payload or {}).get("connector"),
    }
