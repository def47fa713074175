"""What operators see of flows: runs with their inputs, outputs and errors, and the outbox
with its dead letters ("retry now")."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from engine.outbox.jobs import JOBS, RUNS, retry_now
from engine.store.storage import reader

__all__ = ["list_jobs", "list_runs", "retry_job"]

JOB_STATUSES = ("ready", "running", "done", "dead")


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
