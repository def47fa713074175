"""The pack's history generator (examples/manufacturing_pack/data/make_history.py) on a fresh
database: the event chain verifies, records read back through the records service look like
the service's own (computed fields equal their formulas, the same created-event payload keys),
every order's state is reached by its recorded transitions, what the dashboards read is there
(scheduled dates, tracking numbers and their times, delivered progress messages, logged
inquiries), and both pack dashboards have a value for every KPI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from apihelp import PACK

from engine.compile import compile_app
from engine.dashboards.compute import dashboard_values
from engine.demo.modules import load_module
from engine.forms.records import SYSTEM_ACTOR, RecordService
from engine.model.spec import App
from engine.store.events import verify_chain
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata

sys.path.insert(0, str(PACK / "data"))

from make_history import StoreBehind, StoreFailed, Writer, generate

END = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)


@dataclass
class Generated:
    app: App
    engine: sa.Engine
    records: RecordService
    orders: int


@contextmanager
def generated_history(db_url: str) -> Iterator[Generated]:
    result = generate(db_url, 300, seed=7, customers=30, products=60, end=END, progress=False)
    compiled = compile_app(PACK)
    assert compiled.app is not None
    engine = create_db_engine(db_url)
    records = RecordService(compiled.app, engine, build_metadata(compiled.app))
    try:
        yield Generated(compiled.app, engine, records, result.orders)
    finally:
        engine.dispose()


def check_chain_verifies(generated: Generated) -> None:
    with generated.engine.connect() as conn:
        report = verify_chain(conn, generated.records.metadata)
    assert report.ok, report
    assert report.checked > generated.orders * 5


def check_records_read_back_with_computed_fields(generated: Generated) -> None:
    records = generated.records
    page = records.list_page("order", limit=50, sort="-id")
    assert len(page.items) == 50 and page.next_cursor
    for item in page.items:
        order = records.get("order", item["id"])
        product = records.get("product", order["product"])
        assert order["amount"] == (order["quantity"] * product["unit_price"]).quantize(
            Decimal("0.01")
        )
        assert order["order_no"].startswith("SO-") and order["_titles"]["customer"]
        assert order["created_by"] and order["state"]


def check_orders_reach_their_state_by_their_events(generated: Generated) -> None:
    machine = generated.app.state_machines["order"]
    transitions = {t.name: t for t in machine.transitions}
    events = generated.records.metadata.tables["sl_events"]
    orders = generated.records.table("order")
    with generated.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(orders))}
        history = conn.execute(
            sa.select(events).where(events.c.form == "order").order_by(events.c.id)
        ).all()
    by_order: dict[int, list[sa.Row]] = {}
    for event in history:
        by_order.setdefault(event.record_id, []).append(event)
    assert set(by_order) == set(rows)
    for record_id, items in by_order.items():
        assert items[0].kind == "created"
        state, at = json.loads(items[0].payload)["values"]["state"], items[0].at
        for event in items[1:]:
            assert event.at >= at
            at = event.at
            if event.kind == "transition":
                payload = json.loads(event.payload)
                spec = transitions[payload["name"]]
                assert payload["from"] == state and state in spec.sources
                assert payload["to"] == spec.target
                state = spec.target
        row = rows[record_id]
        assert state == row.state
        assert row.version == 1 + sum(e.kind in ("changed", "transition") for e in items)


def check_created_event_has_the_service_payload_shape(generated: Generated) -> None:
    records = RecordService(
        generated.app, generated.engine, generated.records.metadata, lambda: END
    )
    ours = records.events("order", 1)[0]["payload"]["values"]
    orders = records.table("order")
    with generated.engine.connect() as conn:
        numbers = conn.execute(
            sa.select(orders.c.order_no).where(orders.c.order_no.like("SO-202603-%"))
        ).scalars()
        last = max(int(n.rsplit("-", 1)[1]) for n in numbers)
    made = records.create(
        "order",
        {
            "customer": 1,
            "product": 1,
            "quantity": 3,
            "desired_date": (END + timedelta(days=400)).date().isoformat(),
            "order_type": "normal",
            "channel": "电话",
        },
        SYSTEM_ACTOR,
    )
    theirs = records.events("order", made["id"])[0]["payload"]["values"]
    assert set(ours) - {"promised_date"} == set(theirs)
    assert made["order_no"] == f"SO-202603-{last + 1:05d}"  # the counter moved past ours


def check_what_the_dashboards_read(generated: Generated) -> None:
    events = generated.records.metadata.tables["sl_events"]
    orders = generated.records.table("order")
    log = generated.records.child_table("order", "communication_log")
    with generated.engine.connect() as conn:
        sent = conn.execute(
            sa.select(events.c.payload).where(events.c.kind == "notify_sent")
        ).scalars()
        automations = {json.loads(p)["automation"] for p in sent}
        shipped = conn.execute(
            sa.select(orders.c.tracking_no, orders.c.tracking_at, orders.c.scheduled_date).where(
                orders.c.state.in_(("shipped", "delivered"))
            )
        ).all()
        topics = dict(
            conn.execute(sa.select(log.c.topic, sa.func.count()).group_by(log.c.topic)).all()
        )
        added = conn.execute(
            sa.select(sa.func.count()).where(events.c.kind == "child_added")
        ).scalar_one()
    assert automations == {"progress_to_customer"}
    assert shipped and all(r.scheduled_date is not None for r in shipped)
    delivered_tracked = [r for r in shipped if r.tracking_no]
    assert len(delivered_tracked) >= len(shipped) * 0.8
    assert all(r.tracking_at is not None for r in delivered_tracked)
    assert topics["progress"] > generated.orders and topics["change"] > 0
    assert added == sum(topics.values())


def check_dashboards_have_every_value(generated: Generated) -> None:
    for name in ("order_health", "outcomes"):
        values = dashboard_values(generated.engine, generated.app, name, now=END)
        missing = [k["id"] for k in values["kpis"] if k["value"] is None]
        assert missing == [], name


def test_generated_history(db_url: str) -> None:
    """One generation per database (it is the slow part), every check on it."""
    with generated_history(db_url) as generated:
        check_chain_verifies(generated)
        check_records_read_back_with_computed_fields(generated)
        check_orders_reach_their_state_by_their_events(generated)
        check_created_event_has_the_service_payload_shape(generated)
        check_what_the_dashboards_read(generated)
        check_dashboards_have_every_value(generated)


@contextmanager
def store_behind(db_url: str) -> Iterator[StoreBehind]:
    """A storing process for a database that has the chain head's table but no form tables."""
    compiled = compile_app(PACK)
    assert compiled.app is not None
    metadata = build_metadata(compiled.app)
    engine = create_db_engine(db_url)
    try:
        metadata.tables["sl_chain_head"].create(engine)
        behind = StoreBehind(Writer(engine, metadata), db_url)
        try:
            yield behind
        finally:
            behind.process.kill()
            behind.process.join()
    finally:
        engine.dispose()


ROW = {"id": 1, "order_no": "SO-1", "state": "draft", "version": 1, "created_by": "x"}


def test_a_failure_in_the_storing_process_is_raised_with_its_cause(db_url: str) -> None:
    with store_behind(db_url) as behind:
        behind.write({"f_order": [ROW]}, [])
        with pytest.raises(StoreFailed, match="f_order"):
            behind.close()


def test_a_storing_process_that_died_is_raised_not_waited_for(db_url: str) -> None:
    with store_behind(db_url) as behind:
        behind.process.kill()
        behind.process.join()
        with pytest.raises(StoreFailed, match="exit code -9"):
            behind.write({"f_order": [ROW]}, [])
        with pytest.raises(StoreFailed, match="exit code -9"):
            behind.close()


def gone(pid: int) -> bool:
    """The process has ended (an unreaped zombie counts: nobody may be left to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_a_storing_process_ends_when_the_making_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the generator must not leave its storing process holding the database."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(PACK / "data")!r}]
        from make_history import PACK, StoreBehind, Writer
        from engine.compile import compile_app
        from engine.store.storage import create_db_engine
        from engine.store.tables import build_metadata
        metadata = build_metadata(compile_app(PACK).app)
        engine = create_db_engine({url!r})
        metadata.tables["sl_chain_head"].create(engine)
        behind = StoreBehind(Writer(engine, metadata), {url!r})
        print(behind.process.pid, flush=True)
        time.sleep(120)
    """)
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as maker:
        try:
            assert maker.stdout is not None
            child = int(maker.stdout.readline())
            assert not gone(child)
        finally:
            os.kill(maker.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60  # a liveness bound, not a speed check: it polls each 1 s
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(child)


def test_generate_after_the_file_is_loaded_again(tmp_path: Path) -> None:
    """The demo loads make_history.py by path under the same name a test imported it by: the
    batches and failures that cross to the storing process must not depend on which class
    object ``make_history.Batch`` names (an item the queue cannot pickle is silently lost)."""
    first = sys.modules["make_history"]
    again = load_module("make_history", PACK / "data" / "make_history.py")
    try:
        assert again is not None and again.Batch is not first.Batch
        result = generate(
            f"sqlite:///{tmp_path / 'h.db'}",
            40,
            seed=3,
            customers=5,
            products=10,
            end=END,
            progress=False,
        )
    finally:
        sys.modules["make_history"] = first
    engine = create_db_engine(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM sl_events")).scalar_one()
            orders = conn.execute(sa.text("SELECT count(*) FROM f_order")).scalar_one()
    finally:
        engine.dispose()
    assert orders == result.orders > 0
    assert stored == result.events + 1  # and the deploy event
