"""The hash-chained event log: tampering is found, appends never fork, numbers never repeat."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from apihelp import start_api

from engine.forms.records import SYSTEM_ACTOR
from engine.store.events import (
    EventIn,
    append_events,
    canonical,
    event_hash,
    hold_chain_head,
    verify_chain,
)
from engine.store.storage import create_db_engine
from engine.store.system_tables import system_metadata

FAR = (date.today() + timedelta(days=60)).isoformat()


@pytest.fixture
def api(db_url: str):
    api = start_api(db_url)
    yield api
    api.engine.dispose()


def _customer_and_product(records) -> tuple[dict, dict]:
    c = records.create("customer", {"code": "C00001", "name": "客户", "tier": "A"}, SYSTEM_ACTOR)
    p = records.create(
        "product",
        {"code": "SD-100001", "name": "面套", "unit_price": 10, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    return c, p


def _orders(api, n: int) -> list[int]:
    records = api.live.records
    c, p = _customer_and_product(records)
    ids = []
    for i in range(n):
        o = records.create(
            "order",
            {
                "customer": c["id"],
                "product": p["id"],
                "quantity": i + 1,
                "desired_date": FAR,
                "order_type": "normal",
            },
            SYSTEM_ACTOR,
        )
        records.update("order", o["id"], {"quantity": i + 100}, SYSTEM_ACTOR)
        ids.append(o["id"])
    return ids


def _verify(api):
    with api.engine.connect() as conn:
        return verify_chain(conn, system_metadata())


def test_intact_chain_verifies(api) -> None:
    _orders(api, 3)
    report = _verify(api)
    assert report.ok and report.checked > 6


def test_edited_payload_is_detected(api) -> None:
    _orders(api, 3)
    with api.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sl_events SET payload = replace(payload, '100', '900') "
                "WHERE kind = 'changed' AND id = (SELECT min(id) FROM sl_events "
                "WHERE kind = 'changed')"
            )
        )
        bad = conn.execute(
            sa.text("SELECT min(id) FROM sl_events WHERE kind = 'changed'")
        ).scalar_one()
    report = _verify(api)
    assert not report.ok and report.first_bad_id == bad
    assert "hash" in (report.reason or "")


def test_edited_actor_with_recomputed_hash_breaks_the_next_link(api) -> None:
    from engine.store.events import event_hash

    _orders(api, 2)
    with api.engine.begin() as conn:
        events = system_metadata().tables["sl_events"]
        row = conn.execute(sa.select(events).where(events.c.id == 3)).mappings().one()
        forged = event_hash(
            row["prev_hash"],
            3,
            row["at"],
            "mallory",
            row["form"],
            row["record_id"],
            row["kind"],
            row["payload"],
        )
        conn.execute(
            sa.text("UPDATE sl_events SET actor = 'mallory', hash = :h WHERE id = 3"), {"h": forged}
        )
    report = _verify(api)
    assert not report.ok and report.first_bad_id == 4


def test_deleted_event_is_detected(api) -> None:
    _orders(api, 3)
    with api.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM sl_events WHERE id = 5"))
    report = _verify(api)
    assert not report.ok and report.first_bad_id == 5
    assert "missing" in (report.reason or "")


def test_deleting_the_newest_events_is_detected(api) -> None:
    _orders(api, 3)
    with api.engine.begin() as conn:
        top = conn.execute(sa.text("SELECT max(id) FROM sl_events")).scalar_one()
        conn.execute(sa.text("DELETE FROM sl_events WHERE id >= :t"), {"t": top - 1})
    report = _verify(api)
    assert not report.ok and "removed" in (report.reason or "")


def test_audit_verify_cli(api, tmp_path) -> None:
    from apihelp import PACK
    from click.testing import CliRunner

    from engine.cli.main import main

    _orders(api, 1)
    url = api.engine.url.render_as_string(hide_password=False)
    ok = CliRunner().invoke(
        main, ["--app", str(PACK), "--db", url, "--lang", "en", "audit", "verify"]
    )
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output
    with api.engine.begin() as conn:
        conn.execute(sa.text("UPDATE sl_events SET actor = 'x' WHERE id = 2"))
    bad = CliRunner().invoke(
        main, ["--app", str(PACK), "--db", url, "--lang", "en", "audit", "verify"]
    )
    assert bad.exit_code == 1
    assert "event 2" in bad.output


def test_parallel_appends_never_fork(api) -> None:
    metadata = system_metadata()
    before = _verify(api).checked

    def work(i: int) -> None:
        for j in range(10):
            with api.engine.begin() as conn:
                append_events(conn, metadata, [EventIn(f"t{i}", "x", j, "test", {"i": i})])

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(work, range(6)))
    report = _verify(api)
    assert report.ok and report.checked == before + 60


def _event(i: int) -> list[EventIn]:
    return [EventIn("t", "x", i, "test", {"i": i})]


def test_appends_in_one_transaction_read_the_head_once(api) -> None:
    metadata = system_metadata()
    reads: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if statement.startswith("SELECT sl_chain_head"):
            reads.append(statement)

    sa.event.listen(api.engine, "before_cursor_execute", count)
    try:
        with api.engine.begin() as conn:
            for i in range(3):
                append_events(conn, metadata, _event(i))
        with api.engine.begin() as conn:  # a new transaction reads it again
            append_events(conn, metadata, _event(3))
        with api.engine.begin() as conn:  # taken ahead of the append (a numbered create)
            hold_chain_head(conn, metadata)
            append_events(conn, metadata, _event(4))
    finally:
        sa.event.remove(api.engine, "before_cursor_execute", count)
    assert len(reads) == 3
    assert _verify(api).ok


def test_a_savepoint_rolled_back_after_an_append_does_not_fork_the_chain(api) -> None:
    metadata = system_metadata()
    before = _verify(api).checked
    with api.engine.begin() as conn:
        append_events(conn, metadata, _event(1))
        nested = conn.begin_nested()
        append_events(conn, metadata, _event(2))  # rolled back below: the head moves back
        nested.rollback()
        append_events(conn, metadata, _event(3))
        with conn.begin_nested():
            append_events(conn, metadata, _event(4))  # released: kept
        append_events(conn, metadata, _event(5))
        with conn.begin_nested():
            pass  # a savepoint that appended nothing changes nothing
        append_events(conn, metadata, _event(6))
    report = _verify(api)
    assert report.ok and report.checked == before + 5, report


def test_parallel_autonumbers_on_several_processes(db_url: str, tmp_path) -> None:
    """Four processes create orders at once; every order number is distinct."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time by design; the PostgreSQL case matters")
    api = start_api(db_url)
    records = api.live.records
    c, p = _customer_and_product(records)
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(tmp_path.parent)!r})
        from apihelp import PACK
        from engine.compile import compile_app
        from engine.forms.records import RecordService, SYSTEM_ACTOR
        from engine.store.storage import create_db_engine
        app = compile_app(PACK).app
        svc = RecordService(app, create_db_engine({db_url!r}))
        for i in range(15):
            svc.create("order", {{"customer": {c["id"]}, "product": {p["id"]}, "quantity": 1,
                                 "desired_date": {FAR!r}, "order_type": "normal"}}, SYSTEM_ACTOR)
    """)
    )
    env_path = str(__import__("pathlib").Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            cwd=env_path,
            env={**__import__("os").environ, "PYTHONPATH": env_path},
        )
        for _ in range(4)
    ]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        numbers = conn.execute(sa.text("SELECT order_no FROM f_order")).scalars().all()
        report = verify_chain(conn, system_metadata())
    assert len(numbers) == 60 and len(set(numbers)) == 60
    assert report.ok and report.checked >= 62
    engine.dispose()
    api.engine.dispose()


@pytest.mark.parametrize(
    "actor",
    ["li.sales", "王\u2028经理", 'quote " and \\ back', "tab\t\nnew\x00line\x1f", "😀 emoji"],
)
@pytest.mark.parametrize("record_id", [None, 0, 12345678901234])
def test_event_hash_is_the_sha256_of_the_canonical_list(actor: str, record_id) -> None:
    """The hash's text is written out by hand for speed; it must stay canonical()'s, byte for
    byte, or every stored chain would stop verifying."""
    import hashlib
    from datetime import UTC, datetime

    at = datetime(2026, 12, 7, 8, 30, 1, 5, tzinfo=UTC)
    payload = canonical({"to": "approved", "note": actor})
    body = canonical(
        [7, "2026-12-07T08:30:01.000005", actor, "order", record_id, "x", payload, "ab"]
    )
    expected = hashlib.sha256(body.encode("utf-8")).hexdigest()
    assert event_hash("ab", 7, at, actor, "order", record_id, "x", payload) == expected


def test_a_numbered_create_takes_the_chain_head_before_its_counter(db_url: str) -> None:
    """Every writer takes the chain head before an autonumber's counter. A transaction that
    appended an event and then creates an order (the head, then the counter) and a plain
    create beside it (before: the counter, then the head) deadlocked on PostgreSQL."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time; the lock order matters on PostgreSQL")
    import threading
    import time

    api = start_api(db_url)
    records = api.live.records
    c, p = _customer_and_product(records)
    order = {
        "customer": c["id"],
        "product": p["id"],
        "quantity": 1,
        "desired_date": FAR,
        "order_type": "normal",
    }
    records.create("order", order, SYSTEM_ACTOR)  # the counter's row exists
    beside: dict[str, object] = {}

    def create_beside() -> None:
        try:
            beside["order"] = records.create("order", order, SYSTEM_ACTOR)
        except Exception as error:  # reported by the assertion below
            beside["error"] = error

    def waiting_on_a_lock(conn: sa.Connection) -> bool:
        query = sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return bool(conn.execute(query).scalar_one())

    try:
        with api.engine.connect() as watch:
            watch.execution_options(isolation_level="AUTOCOMMIT")
            with api.engine.begin() as conn:
                append_events(conn, system_metadata(), _event(1))  # holds the head
                thread = threading.Thread(target=create_beside)
                thread.start()
                deadline = time.monotonic() + 30
                while not waiting_on_a_lock(watch) and time.monotonic() < deadline:
                    time.sleep(0.02)
                mine = records.create("order", order, SYSTEM_ACTOR, conn=conn)
            thread.join(timeout=60)
        assert "error" not in beside, beside.get("error")
        numbers = {mine["order_no"], beside["order"]["order_no"]}  # type: ignore[index]
        assert len(numbers) == 2
        assert _verify(api).ok
    finally:
        api.engine.dispose()
