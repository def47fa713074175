"""Workers as real processes: SIGKILL in the middle of 1,000 queued effects, and two workers
sharing 1,000 jobs on PostgreSQL. The receiver honours idempotency keys and counts repeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa
from fakes import fake_webhook

from engine.compile import compile_app
from engine.deploy.apply import bundle_sources, deploy
from engine.outbox import jobs
from engine.outbox import worker as worker_module
from engine.outbox.worker import BATCH, BATCH_MOST, Worker
from engine.runtime import LiveApp
from engine.store.storage import create_db_engine

APP = """\
name: hooks
title: Hooks
locale: en
roles:
  clerk: {label: Clerk}
connectors:
  hook: {type: webhook, url_env: HOOK_URL, token_env: HOOK_SECRET}
"""
FORM = "title: Note\nfields:\n  text: {type: text, label: Text}\n"
N = 1000


def _setup(tmp_path: Path, db_url: str, n: int = N) -> tuple[Path, sa.Engine]:
    root = tmp_path / "app"
    (root / "forms").mkdir(parents=True)
    (root / "app.yaml").write_text(APP, encoding="utf-8")
    (root / "forms" / "note.yaml").write_text(FORM, encoding="utf-8")
    result = compile_app(root)
    assert result.app is not None
    engine = create_db_engine(db_url)
    deploy(engine, result.app, bundle_sources(result.workspace))
    with engine.begin() as conn:
        for i in range(n):
            jobs.enqueue(
                conn,
                "effect",
                f"effect:test:{i}",
                {"connector": "hook", "title": f"#{i}", "text": "t", "todo": False, "to": []},
                max_attempts=50,
            )
    return root, engine


def _worker(root: Path, db_url: str, url: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOOK_URL": url, "HOOK_SECRET": "s3cret", "SEAMLINE_JOB_LEASE": "2"}
    out: int | IO[bytes] = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine.cli.main",
                "--app",
                str(root),
                "--db",
                db_url,
                "worker",
                "--poll",
                "0.05",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        )
    finally:
        if not isinstance(out, int):
            out.close()  # the child has its own copy


def _done(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(jobs.JOBS).where(jobs.JOBS.c.status == "done")
        ).scalar_one()


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigkill_mid_flight_then_restart_delivers_everything_once(tmp_path, db_url) -> None:
    root, engine = _setup(tmp_path, db_url)
    with fake_webhook(secret="s3cret") as hook:
        first = _worker(root, db_url, hook.url)
        try:
            assert _wait(lambda: hook.applied >= 150, 60), "the worker did not start delivering"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        delivered_before = hook.applied
        assert delivered_before < N  # it really died in the middle
        second = _worker(root, db_url, hook.url)
        try:
            assert _wait(lambda: _done(engine) == N, 120), f"only {_done(engine)} done"
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    assert hook.applied == N  # every effect applied exactly once at the receiver
    # a repeat can only be a delivery of a batch the worker had not committed as done when it
    # died, resent with its key: one batch on the table loop, one per concurrent job on
    # procrastinate (`seamline worker`'s default concurrency 4, up to BATCH_MOST each)
    in_flight = BATCH_MOST * 4 if db_url.startswith("postgresql") else BATCH
    assert hook.repeats <= in_flight, hook.repeats
    print(
        f"\nSIGKILL after {delivered_before} of {N}: repeats delivered again with the same "
        f"key: {hook.repeats}"
    )
    engine.dispose()


def test_two_workers_share_jobs_without_running_one_twice(tmp_path, db_url) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers on one database is the PostgreSQL set-up")
    root, engine = _setup(tmp_path, db_url)
    with fake_webhook(secret="s3cret") as hook:
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        workers = [_worker(root, db_url, hook.url, log) for log in logs]
        try:
            assert _wait(lambda: _done(engine) == N, 120), f"only {_done(engine)} done"
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(20)
    assert hook.applied == N and hook.repeats == 0
    for log in logs:  # on PostgreSQL the workers take their jobs from procrastinate
        assert "procrastinate" in log.read_text(encoding="utf-8")
    with engine.connect() as conn:
        attempts = conn.execute(sa.select(jobs.JOBS.c.attempts, jobs.JOBS.c.locked_by)).all()
    assert {a.attempts for a in attempts} == {1}  # nobody took a job twice
    engine.dispose()


def _one_round(root: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch):
    """One round of the table-loop worker against a fake webhook: (jobs taken, the hook)."""
    with fake_webhook(secret="s3cret") as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        monkeypatch.setenv("HOOK_SECRET", "s3cret")
        result = compile_app(root)
        assert result.app is not None
        runtime = LiveApp.of(result.app, engine, {}).flows
        try:
            return Worker(engine, lambda: runtime, schedules=False).run_once(), hook
        finally:
            runtime.connectors.close()


def test_a_batch_marks_webhook_deliveries_done_in_one_commit(
    tmp_path, db_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, engine = _setup(tmp_path, db_url, n=5)
    finishing: list[str] = []

    def count(conn, cursor, statement, parameters, *args) -> None:
        if statement.startswith("UPDATE sl_jobs SET status") and "done" in str(parameters):
            finishing.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        taken, hook = _one_round(root, engine, monkeypatch)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert taken == 5 and hook.applied == 5 and len(finishing) == 1  # five deliveries, one commit
    assert _done(engine) == 5
    engine.dispose()


def test_a_batch_that_runs_long_gives_its_unstarted_jobs_back(
    tmp_path, db_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, engine = _setup(tmp_path, db_url, n=3)
    monkeypatch.setattr(worker_module, "BATCH_BUDGET", 0.0)  # every batch has run too long
    taken, hook = _one_round(root, engine, monkeypatch)
    assert taken == 3
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.JOBS.c.status, jobs.JOBS.c.attempts, jobs.JOBS.c.locked_by).order_by(
                jobs.JOBS.c.id
            )
        ).all()
    # the first ran; the other two are back in line, their claim not counted as an attempt
    assert [tuple(r) for r in rows] == [("done", 1, None), ("ready", 0, None), ("ready", 0, None)]
    assert hook.applied == 1
    engine.dispose()


def test_a_batched_block_writes_its_jobs_in_one_statement(tmp_path, db_url) -> None:
    """``jobs.batched``: the jobs enqueued inside (an inner block adds to the outer one) are one
    INSERT at the end; a key already there, or twice in the block, is one row; a block that
    raises writes nothing, an inner one that raises takes its own jobs back."""
    _root, engine = _setup(tmp_path, db_url, n=1)
    inserts: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:
        if statement.startswith("INSERT INTO sl_jobs"):
            inserts.append(statement)

    def job(conn: sa.Connection, i: int) -> None:
        payload = {"connector": "hook", "title": f"#{i}", "text": "t", "todo": False, "to": []}
        jobs.enqueue(conn, "effect", f"effect:test:{i}", payload)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as conn, jobs.batched(conn):
            job(conn, 0)  # already there (from _setup)
            job(conn, 1)
            with jobs.batched(conn):
                job(conn, 2)
                job(conn, 2)
            with pytest.raises(ValueError), jobs.batched(conn):
                job(conn, 4)
                raise ValueError("an inner block fails; the caller goes on")
            assert inserts == []  # nothing yet: the block is still open
        assert len(inserts) == 1
        with pytest.raises(RuntimeError), engine.begin() as conn, jobs.batched(conn):
            job(conn, 3)
            raise RuntimeError("the change rolls back")
        assert len(inserts) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    with engine.connect() as conn:
        keys = conn.execute(sa.select(jobs.JOBS.c.key).order_by(jobs.JOBS.c.id)).scalars().all()
    engine.dispose()
    assert keys == ["effect:test:0", "effect:test:1", "effect:test:2"]
