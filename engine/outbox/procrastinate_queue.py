"""Jobs on procrastinate: how PostgreSQL deployments share work between any number of workers.

``sl_jobs`` stays the source of truth — the transactional outbox, flow steps and timers are
written there in the same transaction as the change that causes them, and the runs page and
dead-letter list read it. On PostgreSQL every such row is also *dispatched* as a procrastinate
job (``seamline.run_job``) in that same transaction, scheduled at the row's due time, by calling
procrastinate's own ``procrastinate_defer_jobs_v1`` SQL function on our connection. Procrastinate
workers (``seamline worker``; one runs inside ``seamline serve`` too) are woken by LISTEN/NOTIFY,
fetch jobs with its locking and run them; the task claims the ``sl_jobs`` row by id, so a
dispatch that arrives twice still runs the effect once.

Two periodic tasks keep it whole: ``seamline.sweep`` re-dispatches rows that are due but have no
waiting procrastinate job (a crashed worker's lease ran out, or the row was written before the
schema was installed), and ``seamline.schedules`` fires cron automations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.model.extras import require
from engine.model.i18n import Text
from engine.model.logs import logger

log = logger(__name__)

QUEUE = "seamline"
RUN_JOB = "seamline.run_job"
_PURPOSE = Text("the PostgreSQL job queue", "PostgreSQL 任务队列")
SWEEP_GRACE = 5.0  # seconds a due row may wait for its dispatch before the sweeper re-sends it
_RECHECK = 30.0  # seconds before asking again whether a database has the schema
_installed: weakref.WeakKeyDictionary[sa.Engine, tuple[bool, float]] = weakref.WeakKeyDictionary()
_DEFER = sa.text(
    "SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, NULL, :qlock, "
    "CAST(:args AS jsonb), :at)::procrastinate_job_to_defer_v1])"
)


# Seconds between a worker's own looks for jobs, besides LISTEN/NOTIFY. Not a mere safety
# net: procrastinate 3.10's worker clears its "new job" flag after each fetch, so a
# notification that arrives while a fetch finds nothing is lost until this poll (1.1–1.25 s
# for about one stock check in 200 with procrastinate's 1 s). 0.2 s, as the table loop polls.
POLL = 0.2


def queueing_lock(job_id: int) -> str:
    """One waiting procrastinate job per ``sl_jobs`` row at most."""
    return f"sl-job:{job_id}"


def active(conn: sa.Connection) -> bool:
    """Whether jobs on this connection's database are dispatched through procrastinate."""
    if conn.dialect.name != "postgresql" or os.environ.get("SEAMLINE_JOB_QUEUE") == "table":
        return False  # SEAMLINE_JOB_QUEUE=table: the table loop only, nothing deferred
    engine = conn.engine
    known = _installed.get(engine)
    if known is not None and (known[0] or time.monotonic() - known[1] < _RECHECK):
        return known[0]
    found = _has_schema(conn)
    _installed[engine] = (found, time.monotonic())
    return found


def _has_schema(conn: sa.Connection) -> bool:
    return bool(
        conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar()
    )


def install_schema(conn: sa.Connection) -> bool:
    """Create procrastinate's tables and functions unless they exist; True if created.

    Runs in the caller's transaction (``seamline deploy`` holds its advisory lock around it).
    """
    if conn.dialect.name != "postgresql" or _has_schema(conn):
        return False
    require("postgres", "procrastinate", purpose=_PURPOSE)
    from procrastinate.schema import SchemaManager

    cursor = conn.connection.cursor()  # the driver's own cursor: no parameter parsing of the SQL
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()
    _installed.pop(conn.engine, None)
    return True


def dispatch(conn: sa.Connection, job_id: int, due_at: datetime, *, may_exist: bool) -> None:
    """Defer ``seamline.run_job`` for ``job_id`` at ``due_at`` in the caller's transaction.

    ``may_exist``: a waiting dispatch may already be there (retries, the sweeper); then the
    unique queueing lock refuses the second one, inside a savepoint so the caller goes on.
    """
    params = {
        "queue": QUEUE,
        "task": RUN_JOB,
        "qlock": queueing_lock(job_id),
        "args": json.dumps({"job_id": job_id}),
        "at": due_at,
    }
    if not may_exist:
        conn.execute(_DEFER, params)
        return
    try:
        with conn.begin_nested():
            conn.execute(_DEFER, params)
    except sa.exc.IntegrityError:
        pass  # already waiting in line


_STEAL = sa.text(
    """
    DELETE FROM procrastinate_jobs WHERE id IN (
      SELECT p.id FROM procrastinate_jobs p
      JOIN sl_jobs j ON j.id = CAST(p.args ->> 'job_id' AS bigint)
      WHERE p.status = 'todo' AND p.queue_name = :queue AND p.task_name = :task
        AND p.queueing_lock <> :own AND (p.scheduled_at IS NULL OR p.scheduled_at <= now())
        AND j.kind = ANY(:kinds)
      ORDER BY p.priority DESC, p.id
      LIMIT LEAST(:limit, GREATEST(:least, (
        SELECT count(*) FROM (
          SELECT 1 FROM procrastinate_jobs w
          WHERE w.status = 'todo' AND w.queue_name = :queue AND w.task_name = :task
            AND (w.scheduled_at IS NULL OR w.scheduled_at <= now())
          LIMIT :limit * :share) line) / :share))
      FOR UPDATE OF p SKIP LOCKED)
    RETURNING CAST(args ->> 'job_id' AS bigint)
    """
)


def steal(
    conn: sa.Connection,
    limit: int,
    running: int,
    kinds: tuple[str, ...],
    *,
    least: int | None = None,
    share: int = 1,
) -> list[int]:
    """Take up to ``limit`` due ``seamline.run_job`` jobs for ``sl_jobs`` rows of ``kinds``
    (other than ``running``, the row being run) out of procrastinate's line, in the caller's
    transaction; returns their ``sl_jobs`` ids for the caller to claim and run.

    With ``share`` > 1, no more than 1/``share`` of the due line (counted up to ``limit`` ×
    ``share``) but at least ``least``: a long line goes in large batches, and its end in
    small ones that the workers' job slots run side by side.

    The same pick as procrastinate's own fetch (todo, due, by priority then id, SKIP LOCKED);
    deleting a waiting job is what procrastinate itself does when a job finishes."""
    if limit < 1 or not active(conn):
        return []
    params = {
        "queue": QUEUE,
        "task": RUN_JOB,
        "limit": limit,
        "least": limit if least is None else min(least, limit),
        "share": max(1, share),
        "own": queueing_lock(running),
        "kinds": list(kinds),
    }
    found = conn.execute(_STEAL, params)
    return [job_id for job_id in found.scalars() if job_id is not None]


_LOST = sa.text(
    """
    SELECT j.id, j.due_at FROM sl_jobs j
    WHERE j.kind IN ('flow', 'effect', 'approval')
      AND j.due_at <= now() - make_interval(secs => :grace)
      AND (j.status = 'ready' OR (j.status = 'running' AND j.locked_until < now()))
      AND NOT EXISTS (
        SELECT 1 FROM procrastinate_jobs p
        WHERE p.queueing_lock = 'sl-job:' || j.id AND p.status = 'todo')
    ORDER BY j.due_at LIMIT 500
    """
)


def sweep(engine: sa.Engine) -> int:
    """Re-dispatch due rows that no procrastinate job waits for; returns how many."""
    with engine.begin() as conn:
        lost = conn.execute(_LOST, {"grace": SWEEP_GRACE}).all()
        for row in lost:
            dispatch(conn, row.id, row.due_at, may_exist=True)
    return len(lost)


def conninfo(engine: sa.Engine) -> str:
    """The libpq connection string for ``engine``'s database (procrastinate uses psycopg)."""
    url = engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def build_app(engine: sa.Engine, run_job: Callable[[int], Any], schedules: Callable[[], Any]):
    """A procrastinate App whose tasks run Seamline's jobs through ``run_job(job_id)``."""
    require("postgres", "procrastinate", purpose=_PURPOSE)
    import procrastinate

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo(engine), min_size=1, max_size=4)
    )

    @app.task(name=RUN_JOB, queue=QUEUE)
    def run_job_task(job_id: int) -> None:
        run_job(job_id)

    @app.periodic(cron="* * * * * */5", periodic_id="sweep")
    @app.task(name="seamline.sweep", queue=QUEUE, queueing_lock="seamline.sweep")
    def sweep_task(timestamp: int) -> None:
        found = sweep(engine)
        if found:
            log.warning("re-dispatched %d jobs that no worker was waiting to run", found)

    @app.periodic(cron="* * * * * */15", periodic_id="schedules")
    @app.task(name="seamline.schedules", queue=QUEUE, queueing_lock="seamline.schedules")
    def schedules_task(timestamp: int) -> None:
        schedules()

    @app.periodic(cron="* * * * *", periodic_id="stalled")
    @app.task(name="seamline.stalled", queue=QUEUE, queueing_lock="seamline.stalled")
    async def stalled_task(timestamp: int) -> None:
        # a killed worker leaves its procrastinate job "doing"; put it back in line
        for job in await app.job_manager.get_stalled_jobs(queue=QUEUE, task_name=RUN_JOB):
            await app.job_manager.retry_job(job)

    return app


class ProcrastinateWorker:
    """Runs a procrastinate worker for Seamline's queue, in this thread or a background one."""

    def __init__(
        self,
        engine: sa.Engine,
        run_job: Callable[[int], Any],
        schedules: Callable[[], Any],
        *,
        name: str,
        concurrency: int = 4,
        poll: float = POLL,
    ) -> None:
        self.engine = engine
        self.name = name
        self.concurrency = concurrency
        self.poll = poll
        self.app = build_app(engine, run_job, schedules)
        self.thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()

    async def _run(self, signals: bool) -> None:
        async with self.app.open_async():
            self._task = asyncio.current_task()  # type: ignore[assignment]
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self.app.run_worker_async(
                queues=[QUEUE],
                name=self.name,
                concurrency=self.concurrency,
                fetch_job_polling_interval=self.poll,
                install_signal_handlers=signals,
                delete_jobs="successful",
            )

    def run_forever(self) -> None:
        """Run in this (main) thread until SIGINT/SIGTERM."""
        asyncio.run(self._run(signals=True))

    def start(self) -> None:
        def target() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                asyncio.run(self._run(signals=False))

        self.thread = threading.Thread(target=target, name="seamline-procrastinate", daemon=True)
        self.thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the procrastinate worker did not start (see the log above)")

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self.thread is not None:
            self.thread.join(timeout=10)
