"""PostgreSQL jobs on procrastinate: every sl_jobs row is dispatched in its own transaction,
the sweeper re-sends what no worker waits for, and a job dispatched twice runs once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fakes import fake_webhook
from test_workers import APP, FORM  # the same one-form app with a webhook connector

from engine.compile import compile_app
from engine.deploy.apply import bundle_sources, deploy
from engine.outbox import jobs, procrastinate_queue
from engine.outbox.worker import procrastinate_worker, uses_procrastinate
from engine.runtime import LiveApp
from engine.store.storage import create_db_engine

WAITING = sa.text(
    "SELECT queueing_lock, task_name, scheduled_at, args FROM procrastinate_jobs "
    "WHERE status = 'todo' AND task_name = 'seamline.run_job' ORDER BY id"
)


@pytest.fixture
def pg(tmp_path: Path, db_url: str):
    if not db_url.startswith("postgresql"):
        pytest.skip("procrastinate is the PostgreSQL job queue")
    root = tmp_path / "app"
    (root / "forms").mkdir(parents=True)
    (root / "app.yaml").write_text(APP, encoding="utf-8")
    (root / "forms" / "note.yaml").write_text(FORM, encoding="utf-8")
    result = compile_app(root)
    assert result.app is not None
    engine = create_db_engine(db_url)
    deploy(engine, result.app, bundle_sources(result.workspace))
    yield engine, result.app
    engine.dispose()


def _effect(conn: sa.Connection, i: int, due: datetime | None = None) -> None:
    payload = {"connector": "hook", "title": f"#{i}", "text": "t", "todo": False, "to": []}
    jobs.enqueue(conn, "effect", f"effect:q:{i}", payload, due_at=due, max_attempts=5)


def _job_id(engine: sa.Engine, key: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(jobs.JOBS.c.id).where(jobs.JOBS.c.key == key)).scalar_one()


def test_deploy_installs_the_queue_and_enqueue_dispatches_in_the_same_transaction(pg) -> None:
    engine, _ = pg
    assert uses_procrastinate(engine)
    later = datetime.now(UTC) + timedelta(hours=2)
    with engine.begin() as conn:
        _effect(conn, 1)
        _effect(conn, 2, due=later)
        _effect(conn, 2, due=later)  # the same key again: no second row, no second dispatch
    with pytest.raises(RuntimeError), engine.begin() as conn:
        _effect(conn, 3)
        raise RuntimeError("the change rolls back")  # …and takes its dispatch with it
    with engine.connect() as conn:
        waiting = conn.execute(WAITING).all()
    one, two = _job_id(engine, "effect:q:1"), _job_id(engine, "effect:q:2")
    assert [w.queueing_lock for w in waiting] == [f"sl-job:{one}", f"sl-job:{two}"]
    assert [w.args for w in waiting] == [{"job_id": one}, {"job_id": two}]
    assert abs((waiting[1].scheduled_at - later).total_seconds()) < 0.01  # a timer waits


def test_a_batched_block_dispatches_each_job_it_added_once_at_its_due_time(pg) -> None:
    engine, _ = pg
    later = datetime.now(UTC) + timedelta(hours=2)
    with engine.begin() as conn:
        _effect(conn, 1)
    with engine.begin() as conn, jobs.batched(conn):
        _effect(conn, 1)  # there already: neither a row nor a dispatch
        _effect(conn, 2, due=later)
        _effect(conn, 2)  # the same key again: stored, and so dispatched, as first given
        _effect(conn, 3)
        _effect(conn, 3)
    with engine.connect() as conn:
        waiting = conn.execute(WAITING).all()
    ids = [_job_id(engine, f"effect:q:{i}") for i in (1, 2, 3)]
    assert sorted(w.queueing_lock for w in waiting) == sorted(f"sl-job:{i}" for i in ids)
    timer = next(w for w in waiting if w.args == {"job_id": ids[1]})
    assert abs((timer.scheduled_at - later).total_seconds()) < 0.01


def test_claim_by_id_runs_a_job_once_however_often_it_is_dispatched(pg) -> None:
    engine, _ = pg
    with engine.begin() as conn:
        _effect(conn, 1)
        _effect(conn, 2, due=datetime.now(UTC) + timedelta(hours=1))
    one, two = _job_id(engine, "effect:q:1"), _job_id(engine, "effect:q:2")
    first = jobs.claim_one(engine, "w1", one)
    assert first is not None and first.attempts == 1
    assert jobs.claim_one(engine, "w2", one) is None  # held by w1
    assert jobs.claim_one(engine, "w2", two) is None  # not due: dispatched again for its time
    with engine.connect() as conn:
        locks = [w.queueing_lock for w in conn.execute(WAITING)]
    assert locks.count(f"sl-job:{two}") == 1  # the queueing lock kept it to one


def _fetched(engine: sa.Engine, key: str) -> int:
    """The row of ``key``, its procrastinate job taken by a worker (what procrastinate's fetch
    does before the task runs)."""
    job_id = _job_id(engine, key)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE procrastinate_jobs SET status = 'doing' WHERE queueing_lock = :lock"),
            {"lock": procrastinate_queue.queueing_lock(job_id)},
        )
    return job_id


def test_one_dispatch_claims_a_batch_and_takes_the_others_out_of_line(pg) -> None:
    engine, _ = pg
    later = datetime.now(UTC) + timedelta(hours=1)
    with engine.begin() as conn:
        for i in range(25):
            _effect(conn, i)
        _effect(conn, 99, due=later)  # a timer: its dispatch is not due, nobody steals it
    first = _fetched(engine, "effect:q:0")
    taken = jobs.claim_dispatched(engine, "w1", first, limit=10)
    ids = [job.id for job in taken]
    assert ids[0] == first and len(ids) == 10 and len(set(ids)) == 10
    with engine.connect() as conn:
        locks = {w.queueing_lock for w in conn.execute(WAITING)}
        running = conn.execute(
            sa.select(jobs.JOBS.c.id).where(jobs.JOBS.c.status == "running")
        ).scalars()
        assert set(running) == set(ids)
    # the first job's own dispatch is procrastinate's to finish; the 9 stolen ones are gone
    assert not {f"sl-job:{i}" for i in ids[1:]} & locks
    assert len(locks) == 15 + 1 and f"sl-job:{_job_id(engine, 'effect:q:99')}" in locks
    # a second worker's batch never overlaps the first one's
    second = jobs.claim_dispatched(engine, "w2", _fetched(engine, "effect:q:24"), limit=10)
    assert len(second) == 10 and not {job.id for job in second} & set(ids)


def test_a_batch_takes_a_share_of_the_line_and_at_least_the_least(pg) -> None:
    """A long line goes in large batches, its end in small ones (for the other job slots)."""
    engine, _ = pg
    with engine.begin() as conn:
        for i in range(40):
            _effect(conn, i)
    sizes, taken_ids, next_key = [], set(), 0
    while next_key < 40:
        taken = jobs.claim_dispatched(
            engine, "w1", _fetched(engine, f"effect:q:{next_key}"), limit=20, least=3, share=4
        )
        sizes.append(len(taken))
        taken_ids |= {job.id for job in taken}
        next_key += len(taken)
    # 39 wait beside the first: a quarter of them (9) with it; then 29 → 7, 21 → 5, 15 → 3;
    # below that the least (3 in all); never more than the limit
    assert sizes == [10, 8, 6, 4, 3, 3, 3, 3]
    assert len(taken_ids) == 40
    with engine.connect() as conn:
        assert not conn.execute(WAITING).all()


def test_flow_steps_are_never_batched(pg) -> None:
    engine, _ = pg
    with engine.begin() as conn:
        _effect(conn, 1)
        for i in range(3):
            jobs.enqueue(conn, "flow", f"flow:q:{i}", {})
    step = _fetched(engine, "flow:q:0")
    assert [job.id for job in jobs.claim_dispatched(engine, "w1", step, limit=10)] == [step]
    message = _fetched(engine, "effect:q:1")
    assert len(jobs.claim_dispatched(engine, "w1", message, limit=10)) == 1  # steps stay
    with engine.connect() as conn:
        assert len(conn.execute(WAITING).all()) == 2  # flow:q:1 and flow:q:2, each its own


def test_a_stolen_row_that_cannot_be_claimed_is_dispatched_again(pg) -> None:
    engine, _ = pg
    with engine.begin() as conn:
        _effect(conn, 1)
        _effect(conn, 2)
        # job 2 was moved to the future after its dispatch (a retry_now race, a skewed clock)
        conn.execute(
            jobs.JOBS.update()
            .where(jobs.JOBS.c.key == "effect:q:2")
            .values(due_at=datetime.now(UTC) + timedelta(minutes=5))
        )
    one, two = _fetched(engine, "effect:q:1"), _job_id(engine, "effect:q:2")
    taken = jobs.claim_dispatched(engine, "w1", one, limit=10)
    assert [job.id for job in taken] == [one]
    with engine.connect() as conn:
        waiting = {w.queueing_lock: w.scheduled_at for w in conn.execute(WAITING)}
    assert f"sl-job:{two}" in waiting  # back in line, at its new time
    assert waiting[f"sl-job:{two}"] > datetime.now(UTC) + timedelta(minutes=4)


def test_release_gives_unstarted_jobs_back_without_spending_an_attempt(pg) -> None:
    engine, _ = pg
    with engine.begin() as conn:
        for i in range(3):
            _effect(conn, i)
    taken = jobs.claim_dispatched(engine, "w1", _fetched(engine, "effect:q:0"), limit=3)
    assert len(taken) == 3
    jobs.release(engine, "w2", taken[1:])  # not w2's: nothing happens
    jobs.release(engine, "w1", taken[1:])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.JOBS.c.id, jobs.JOBS.c.status, jobs.JOBS.c.attempts).order_by(
                jobs.JOBS.c.id
            )
        ).all()
        locks = {w.queueing_lock for w in conn.execute(WAITING)}
    assert [(r.status, r.attempts) for r in rows] == [("running", 1), ("ready", 0), ("ready", 0)]
    assert locks == {f"sl-job:{job.id}" for job in taken[1:]}  # back in line


def test_sweeper_redispatches_rows_no_worker_waits_for(pg) -> None:
    engine, _ = pg
    with engine.begin() as conn:
        _effect(conn, 1)
        _effect(conn, 2)
        conn.execute(sa.text("DELETE FROM procrastinate_jobs"))  # e.g. written before install
        conn.execute(jobs.JOBS.update().values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    assert procrastinate_queue.sweep(engine) == 2
    assert procrastinate_queue.sweep(engine) == 0  # already waiting in line
    # a crashed worker's job: running, lease run out, no waiting dispatch
    one = _job_id(engine, "effect:q:1")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM procrastinate_jobs"))
        conn.execute(
            jobs.JOBS.update()
            .where(jobs.JOBS.c.id == one)
            .values(status="running", locked_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert procrastinate_queue.sweep(engine) == 2


def test_in_process_worker_delivers_and_stops(pg, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, app = pg
    with fake_webhook(secret="s3cret") as hook:
        monkeypatch.setenv("HOOK_URL", hook.url)
        monkeypatch.setenv("HOOK_SECRET", "s3cret")
        live = LiveApp.of(app, engine, {})
        runtime = live.flows
        worker = procrastinate_worker(engine, lambda: runtime, concurrency=2)
        worker.start()
        try:
            with engine.begin() as conn:
                for i in range(50):
                    _effect(conn, i)
            deadline = time.monotonic() + 30
            while hook.applied < 50 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop()
            runtime.connectors.close()
    assert hook.applied == 50 and hook.repeats == 0
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(jobs.JOBS.c.status, jobs.JOBS.c.attempts)).all()
        left = conn.execute(WAITING).all()
    assert {(s.status, s.attempts) for s in statuses} == {("done", 1)}
    assert left == []


def test_table_queue_setting_defers_nothing(pg, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = pg
    monkeypatch.setenv("SEAMLINE_JOB_QUEUE", "table")
    assert not uses_procrastinate(engine)
    with engine.begin() as conn:
        _effect(conn, 1)
    with engine.connect() as conn:
        assert conn.execute(WAITING).all() == []  # procrastinate_jobs stays empty
