"""SQLite writers of one process queue on the file's write gate (engine.store.sqlite_gate):
held from BEGIN IMMEDIATE to the end of COMMIT / ROLLBACK / close, however the transaction
ends, so concurrent writers never sleep in SQLite's busy handler and none is lost. Readers
queue on the read gate, briefly, and never when their thread holds a gate already."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store import sqlite_gate
from engine.store.sqlite_gate import read_gate, write_gate
from engine.store.storage import create_db_engine, reader


@pytest.fixture
def db(tmp_path: Path):
    path = tmp_path / "gate.db"
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")
    gate = write_gate(str(path))
    assert gate is not None
    yield engine, gate
    engine.dispose()


def test_the_gate_is_held_for_the_write_transaction_however_it_ends(db) -> None:
    engine, gate = db
    assert not gate.locked()
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t (who) VALUES ('a')")
        assert gate.locked()
    assert not gate.locked()  # committed
    with pytest.raises(ZeroDivisionError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t (who) VALUES ('b')")
        1 / 0  # noqa: B018
    assert not gate.locked()  # rolled back
    conn = engine.connect()
    conn.begin()
    conn.exec_driver_sql("INSERT INTO t (who) VALUES ('c')")
    conn.close()  # closed with the transaction open
    assert not gate.locked()
    with reader(engine).connect() as conn:  # readers never take it
        conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one()
        assert not gate.locked()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT who FROM t").scalars().all() == ["a"]


def test_a_second_writer_waits_for_the_first_then_lands(db) -> None:
    engine, gate = db
    entered = threading.Event()

    def second() -> None:
        with engine.begin() as conn:
            entered.set()
            conn.exec_driver_sql("INSERT INTO t (who) VALUES ('second')")

    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t (who) VALUES ('first')")
        thread = threading.Thread(target=second)
        thread.start()
        assert not entered.wait(0.3)  # queued behind the open write transaction
    thread.join(10)
    assert entered.is_set() and not gate.locked()
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT who FROM t ORDER BY id").scalars().all()
    assert rows == ["first", "second"]


def test_concurrent_writers_all_land(db) -> None:
    engine, gate = db
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(40):
                with engine.begin() as conn:
                    conn.execute(sa.text("INSERT INTO t (who) VALUES (:w)"), {"w": f"{worker}:{i}"})
        except BaseException as failed:
            failures.append(failed)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 320
    assert not gate.locked()


def test_in_memory_databases_have_no_gate() -> None:
    assert write_gate(":memory:") is None and write_gate("") is None
    assert read_gate(":memory:") is None


def _read(engine: sa.Engine) -> list[str]:
    with reader(engine).connect() as conn:
        return conn.exec_driver_sql("SELECT who FROM t").scalars().all()


def _in_thread(call) -> tuple[threading.Thread, threading.Event]:
    done = threading.Event()

    def run() -> None:
        call()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def test_readers_take_turns_and_release_the_read_gate_however_they_end(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = db
    gate = read_gate(str(tmp_path / "gate.db"))
    assert gate is not None
    monkeypatch.setattr(sqlite_gate, "READ_WAIT", 30.0)
    with reader(engine).connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()
        assert gate.locked()
        thread, done = _in_thread(lambda: _read(engine))
        assert not done.wait(0.3)  # the second reader waits for the first
    thread.join(10)
    assert done.is_set() and not gate.locked()
    with pytest.raises(ZeroDivisionError), reader(engine).connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()
        1 / 0  # noqa: B018
    assert not gate.locked()


def test_a_thread_holding_a_gate_reads_without_waiting(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read inside a read, or inside a write transaction, does not take the read gate: else
    it would wait for itself, or for a reader that waits for its write."""
    engine, write = db
    gate = read_gate(str(tmp_path / "gate.db"))
    assert gate is not None
    monkeypatch.setattr(sqlite_gate, "READ_WAIT", 30.0)

    def nested_read() -> None:
        with reader(engine).connect() as outer:
            outer.exec_driver_sql("SELECT 1").all()
            assert _read(engine) == []

    def read_in_write() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t (who) VALUES ('w')")
            assert write.locked() and not gate.locked()
            assert _read(engine) == []  # its own connection: the write is not committed yet

    for call in (nested_read, read_in_write):
        thread, done = _in_thread(call)
        thread.join(10)
        assert done.is_set(), call.__name__
    assert not gate.locked() and not write.locked()

    def read_in_write_beside_a_reader() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t (who) VALUES ('v')")
            assert len(_read(engine)) == 1  # 'w' only: it did not wait for the gate's holder

    with reader(engine).connect() as held:  # another thread's reader holds the read gate
        held.exec_driver_sql("SELECT 1").all()
        assert gate.locked()
        thread, done = _in_thread(read_in_write_beside_a_reader)
        thread.join(10)
        assert done.is_set()
    assert not gate.locked() and not write.locked()


def test_a_reader_goes_on_beside_a_long_one_after_the_read_wait(
    db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = db
    gate = read_gate(str(tmp_path / "gate.db"))
    monkeypatch.setattr(sqlite_gate, "READ_WAIT", 0.05)
    with reader(engine).connect() as conn:
        conn.exec_driver_sql("SELECT 1").all()
        assert gate is not None and gate.locked()
        thread, done = _in_thread(lambda: _read(engine))
        thread.join(10)
        assert done.is_set()  # it read while the first reader still held the gate
    assert not gate.locked()
