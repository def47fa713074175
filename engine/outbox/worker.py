"""The worker: claims due jobs and runs them — flow steps, outbox messages, timers.

``seamline serve`` runs one in a thread; ``seamline worker`` runs them as separate processes
(any number, on any machines, against one PostgreSQL). The configuration is taken from the
current deployment for every job, so workers switch versions like web processes do.

Two ways to find work, one way to run it (``run_job``):

* the table loop (``Worker``) claims due ``sl_jobs`` rows in batches — SQLite, and ``--drain``;
* on PostgreSQL (once ``seamline deploy`` installed procrastinate's schema) procrastinate
  dispatches each row to one worker (``procrastinate_worker``), which claims it by id.
  ``SEAMLINE_JOB_QUEUE=table`` keeps the table loop on PostgreSQL too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa

from engine.model.logs import logger
from engine.outbox import jobs, procrastinate_queue
from engine.outbox.procrastinate_queue import ProcrastinateWorker

log = logger(__name__)
SCHEDULE_EVERY = 15.0  # seconds between looks at the schedule: automations (cron: minutes)
BATCH = 20  # jobs one claim takes (the table loop's round; messages for one procrastinate job)
# A procrastinate job takes up to BATCH_MOST messages while the line is long: its fetch, its
# claim and its commit are then shared by more messages (outbox at concurrency 4: 1.9–2.0× the
# direct time with batches of 20, 1.6–1.7× with this). It takes at most 1/(2 × concurrency) of
# the line, as if a second worker like it were there, and at least BATCH: the end of the line
# goes in batches of 20 that the workers' job slots run side by side (a slow receiver).
BATCH_MOST = 50
# a batch that has run this long gives its unstarted jobs back, well before their lease ends
BATCH_BUDGET = jobs.LEASE.total_seconds() / 3


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class JobRunner(Protocol):
    """What a worker runs: one claimed job, and a periodic round (schedules, snapshots).
    :class:`engine.flows.runner.FlowRuntime` is the one the application gives it."""

    def run_job(self, job: jobs.Job, delivered: list[jobs.Job] | None = None) -> object: ...

    def finish_delivered(self, done: list[jobs.Job]) -> None: ...

    def periodic(self) -> None: ...


def run_job(
    engine: sa.Engine,
    runtime: JobRunner,
    job: jobs.Job,
    delivered: list[jobs.Job] | None = None,
) -> None:
    """Run one claimed job; a bug in it is recorded on the job and retried, never raised."""
    try:
        runtime.run_job(job, delivered)
    except Exception as exc:  # a bug in one job must not stop the others
        log.exception(
            "job %s (%s) raised on attempt %d/%d",
            job.id,
            job.kind,
            job.attempts,
            job.max_attempts,
            extra={"job_id": job.id, "job_kind": job.kind, "attempt": job.attempts},
        )
        jobs.retry_later(engine, job, f"{type(exc).__name__}: {exc}")


def run_batch(engine: sa.Engine, runtime: JobRunner, name: str, taken: list[jobs.Job]) -> None:
    """Run claimed jobs in order; webhook deliveries are marked done in one commit at the end
    (their receivers de-duplicate, so a crash before it only repeats them, applied once).
    Once the batch has taken ``BATCH_BUDGET`` seconds (slow receivers), the jobs not started
    yet go back in line for any worker, lease unspent."""
    start = time.monotonic()
    delivered: list[jobs.Job] = []
    try:
        for done, job in enumerate(taken):
            if done and time.monotonic() - start > BATCH_BUDGET:
                jobs.release(engine, name, taken[done:])
                return
            run_job(engine, runtime, job, delivered)
    finally:
        if delivered:
            runtime.finish_delivered(delivered)


def procrastinate_worker(
    engine: sa.Engine,
    runtime: Callable[[], JobRunner],
    concurrency: int = 4,
    poll: float = procrastinate_queue.POLL,
) -> ProcrastinateWorker:
    """The PostgreSQL worker: procrastinate dispatches one job; its task claims that row by id
    and, for an outbox message, more messages whose dispatches wait in line (taking those
    out of it): ``BATCH`` to ``BATCH_MOST`` in all, by the length of the line."""
    name = worker_name()

    def run(job_id: int) -> None:
        taken = jobs.claim_dispatched(
            engine, name, job_id, BATCH_MOST, least=BATCH, share=2 * concurrency
        )
        run_batch(engine, runtime(), name, taken)

    return ProcrastinateWorker(
        engine, run, lambda: runtime().periodic(), name=name, concurrency=concurrency, poll=poll
    )


def uses_procrastinate(engine: sa.Engine) -> bool:
    if os.environ.get("SEAMLINE_JOB_QUEUE", "auto") == "table":
        return False
    with engine.connect() as conn:
        return procrastinate_queue.active(conn)


def start_worker(
    engine: sa.Engine, runtime: Callable[[], JobRunner]
) -> Worker | ProcrastinateWorker:
    """The in-process worker of ``seamline serve``, of the kind this database uses."""
    worker: Worker | ProcrastinateWorker
    if uses_procrastinate(engine):
        worker = procrastinate_worker(engine, runtime, concurrency=2)
    else:
        worker = Worker(engine, runtime)
    worker.start()
    return worker


class Worker:
    def __init__(
        self,
        engine: sa.Engine,
        runtime: Callable[[], JobRunner],
        name: str | None = None,
        batch: int = BATCH,
        schedules: bool = True,
    ) -> None:
        self.engine = engine
        self.runtime = runtime
        self.name = name or worker_name()
        self.batch = batch
        self.stop_event = threading.Event()
        self._schedules_checked = -SCHEDULE_EVERY
        self.schedules = schedules  # tests that drive the clock themselves turn this off
        self.thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Run one batch of due jobs; returns how many were taken."""
        runtime = self.runtime()
        if self.schedules and time.monotonic() - self._schedules_checked >= SCHEDULE_EVERY:
            self._schedules_checked = time.monotonic()
            runtime.periodic()
        taken = jobs.claim(self.engine, self.name, self.batch)
        run_batch(self.engine, runtime, self.name, taken)
        return len(taken)

    def run_until_idle(self, max_batches: int = 10_000) -> int:
        """Run batches until nothing is due (tests, ``seamline worker --drain``)."""
        total = 0
        for _ in range(max_batches):
            taken = self.run_once()
            total += taken
            if not taken:
                break
        return total

    def run_forever(self, poll: float = 0.2) -> None:
        while not self.stop_event.is_set():
            try:
                if self.run_once():
                    continue
            except sa.exc.DBAPIError:
                log.exception("the database is unavailable; waiting")
                self.stop_event.wait(2.0)
            self.stop_event.wait(poll)

    def start(self, poll: float = 0.2) -> None:
        self.thread = threading.Thread(
            target=self.run_forever, args=(poll,), name="seamline-worker", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
