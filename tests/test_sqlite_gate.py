"""SQLite writers of one process queue on the file's write gate (engine.store.sqlite_gate):
held from BEGIN IMMEDIATE to the end of COMMIT / ROLLBACK / close, however the transaction
ends, so concurrent writers never sleep in SQLite's busy handler and none is lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from engine.store.sqlite_gate import write_gate
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
