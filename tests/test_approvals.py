"""Approvals end to end on the pack (SQLite and PostgreSQL): the four-tier matrix, countersign,
rejection, return for changes, self-approval, delegation, SLA escalation across a weekend and a
Chinese holiday with a controllable clock, the lock policy, redeploys with approvals in flight,
and the PDF record sealed in the event chain."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apihelp import PACK, Api, start_api
from fakes import fake_dingtalk
from pypdf import PdfReader

from engine.compile import compile_app
from engine.flows.approvals.service import APPROVALS, TASKS
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR
from engine.model import clock
from engine.outbox.jobs import JOBS
from engine.outbox.worker import Worker
from engine.runtime import LiveApp
from engine.store.events import verify_chain
from engine.store.files import store_bytes
from engine.store.system_tables import system_metadata

FAR = (date.today() + timedelta(days=60)).isoformat()
SHANGHAI = timedelta(hours=8)
_SERIAL = itertools.count(1)


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set_local(self, text: str) -> None:
        """Move to a Shanghai wall-clock time, e.g. '2026-11-27 16:00'."""
        self.at = datetime.fromisoformat(text).replace(tzinfo=UTC) - SHANGHAI


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Worker, object]]:
    with fake_dingtalk(secret="ding-secret") as ding:
        monkeypatch.setenv("DINGTALK_WEBHOOK", ding.url)
        monkeypatch.setenv("DINGTALK_SECRET", "ding-secret")
        api = start_api(db_url)
        worker = Worker(api.engine, lambda: api.live.flows, name="test-worker", schedules=False)
        yield api, worker, ding
        clock.set_clock(None)
        api.live.flows.connectors.close()
        api.engine.dispose()


def _customer(api: Api, code: str, tier: str) -> int:
    record = api.live.records.create(
        "customer", {"code": code, "name": f"客户{code}", "tier": tier}, SYSTEM_ACTOR
    )
    return record["id"]


def _product(api: Api, code: str, price: float) -> int:
    record = api.live.records.create(
        "product",
        {"code": code, "name": "座椅面套", "unit_price": price, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    return record["id"]


def _order(api: Api, tier: str, order_type: str, price: float, quantity: int) -> int:
    """An order taken to 'approving' by the salesperson li.sales (the submitter)."""
    records = api.live.records
    n = next(_SERIAL)
    values = {
        "customer": _customer(api, f"C{n:05d}", tier),
        "product": _product(api, f"SD-{n:06d}", price),
        "quantity": quantity,
        "order_type": order_type,
        "desired_date": FAR,
        "promised_date": FAR,
        "atp_date": FAR,
    }
    if order_type == "trial":
        with api.engine.begin() as conn:
            drawing = store_bytes(conn, "drawing.pdf", "application/pdf", b"%PDF-1.4\n", "li.sales")
        values["attachments"] = [drawing.id]
    order = records.create("order", values, SYSTEM_ACTOR)
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    fire_transition(records, "order", order["id"], "stock_ok", SYSTEM_ACTOR)
    with api.engine.begin() as conn:  # the stock check against the warehouse is not this test
        conn.execute(JOBS.delete().where(JOBS.c.kind == "flow"))
    sales = api.client("li.sales")
    _confirm_promise_date(api, order["id"])
    moved = sales.post(f"/api/forms/order/records/{order['id']}/actions/confirm_promise")
    assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "approving"
    return order["id"]


def _confirm_promise_date(api: Api, order: int) -> None:
    """The promise-date gate: the salesperson and the production director confirm it."""
    gate = f"/api/forms/order/records/{order}/confirmations/confirm_promise"
    for user in ("li.sales", "zhou.pd"):
        assert api.client(user).post(gate).status_code == 200


def _tasks(api: Api, user: str) -> list[dict]:
    answer = api.client(user).get("/api/tasks")
    assert answer.status_code == 200, answer.text
    return answer.json()["tasks"]


def _task_for(api: Api, user: str, order: int) -> dict:
    mine = [t for t in _tasks(api, user) if t["record_id"] == order]
    assert len(mine) == 1, (user, mine)
    return mine[0]


def _decide(api: Api, user: str, task: int, what: str, comment: str | None = None):
    body = {} if comment is None else {"comment": comment}
    return api.client(user).post(f"/api/tasks/{task}/{what}", json=body)


def _state(api: Api, order: int) -> str:
    return api.live.records.get("order", order)["state"]


def _approval(api: Api, order: int) -> dict:
    answer = api.client("li.sales").get(f"/api/forms/order/records/{order}/approvals")
    assert answer.status_code == 200, answer.text
    return answer.json()["approvals"][0]


def test_each_class_routes_to_the_right_people(world) -> None:
    api, _worker, _ding = world
    a = _order(api, "VIP", "rush", 120, 100)
    b = _order(api, "B", "normal", 80, 50)
    c = _order(api, "A", "trial", 80, 10)
    d = _order(api, "A", "normal", 500, 1000)  # exactly 500,000: the fourth tier
    routes = {o: _approval(api, o) for o in (a, b, c, d)}
    assert routes[a]["route"] == "class_a" and routes[a]["added"] == []
    assert routes[b]["route"] == "class_b"
    assert routes[c]["route"] == "class_c"
    assert routes[d]["route"] == "class_b" and routes[d]["added"] == [
        "D 类（金额 ≥ 门槛）追加总经理审批"
    ]
    assert [t["record_id"] for t in _tasks(api, "zhou.pd")] == [a]  # production director alone
    assert {t["record_id"] for t in _tasks(api, "huang.fin")} == {b, c, d}
    assert {t["record_id"] for t in _tasks(api, "yang.wh")} == {b, c, d}
    assert [t["record_id"] for t in _tasks(api, "xu.eng")] == [c]  # engineering only on trials
    assert _tasks(api, "wang.gm") == []  # the general manager comes after the countersign
    first = _task_for(api, "huang.fin", b)
    assert first["sla"] == "green" and first["step_label"] == "财务 + 仓储会签"
    assert first["assignees"] == ["huang.fin", "zhao.fin"]
    # the fourth tier: after finance and warehouse approve, the general manager is asked
    assert (
        _decide(api, "zhao.fin", _task_for(api, "zhao.fin", d)["id"], "approve").status_code == 200
    )
    assert _decide(api, "liu.wh", _task_for(api, "liu.wh", d)["id"], "approve").status_code == 200
    assert _state(api, d) == "approving"
    gm = _task_for(api, "wang.gm", d)
    assert _decide(api, "wang.gm", gm["id"], "approve", "同意").status_code == 200
    assert _state(api, d) == "approved"


def test_countersign_needs_everyone_and_one_rejection_ends_it(world) -> None:
    api, worker, ding = world
    order = _order(api, "B", "normal", 80, 50)
    finance = _task_for(api, "huang.fin", order)
    ok = _decide(api, "huang.fin", finance["id"], "approve", "价格无误")
    assert ok.status_code == 200 and ok.json()["approval_status"] == "active"
    assert _state(api, order) == "approving"  # warehouse has not signed yet
    assert _tasks(api, "zhao.fin") == []  # the finance slot is done for both finance people
    again = _decide(api, "zhao.fin", finance["id"], "approve")
    assert again.status_code == 409
    done = _decide(api, "yang.wh", _task_for(api, "yang.wh", order)["id"], "approve")
    assert done.json()["approval_status"] == "approved"
    assert _state(api, order) == "approved"
    # a rejection by one countersigner ends the approval
    other = _order(api, "B", "normal", 80, 60)
    no_reason = _decide(api, "liu.wh", _task_for(api, "liu.wh", other)["id"], "reject")
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "comment"
    rejected = _decide(api, "liu.wh", _task_for(api, "liu.wh", other)["id"], "reject", "库存不足")
    assert rejected.json()["approval_status"] == "rejected"
    assert _state(api, other) == "rejected"
    assert _tasks(api, "huang.fin") == []  # finance's open task was closed with it
    statuses = [t["status"] for t in _approval(api, other)["tasks"]]
    assert sorted(statuses) == ["rejected", "skipped"]
    # the approvers heard of their tasks as DingTalk to-dos through the outbox
    worker.run_until_idle()
    texts = [json.dumps(m, ensure_ascii=False) for m in ding.messages]
    assert sum("待您审批" in t for t in texts) >= 4


def test_pdf_record_is_stored_downloadable_and_sealed(world) -> None:
    api, worker, _ding = world
    order = _order(api, "VIP", "rush", 120, 100)
    task = _task_for(api, "zhou.pd", order)
    assert _decide(api, "zhou.pd", task["id"], "approve", "同意，优先排产").status_code == 200
    worker.run_until_idle()
    approval = _approval(api, order)
    assert approval["record_file"]
    pdf = api.client("li.sales").get(f"/api/approvals/{approval['id']}/record.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    events = api.live.records.events("order", order)
    sealed = [e for e in events if e["kind"] == "approval_record"]
    assert len(sealed) == 1
    assert sealed[0]["payload"]["sha256"] == hashlib.sha256(pdf.content).hexdigest()
    finished = next(e for e in events if e["kind"] == "approval_finished")
    lifecycle = [e["kind"] for e in events if e["kind"].startswith("approval_")]
    assert lifecycle == [
        "approval_started",
        "approval_step_opened",
        "approval_decided",
        "approval_finished",
        "approval_record",
    ]
    assert not api.live.flows.approvals._pending  # every queued event was appended
    assert sealed[0]["payload"]["outcome_hash"] == finished["hash"]
    with api.engine.connect() as conn:
        assert verify_chain(conn, system_metadata()).ok
    # a stranger to the record's form still needs read permission to download
    assert api.client("ma.log").get("/api/approvals/999/record.pdf").status_code == 404


def test_pdf_record_reads_like_the_record_page(world) -> None:
    """Refs by their titles, money with separators and the app's currency (¥), the record's
    name once; read back from the sealed PDF's text."""
    api, worker, _ding = world
    order = _order(api, "VIP", "rush", 1234.5, 10)
    task = _task_for(api, "zhou.pd", order)
    assert _decide(api, "zhou.pd", task["id"], "approve", "同意").status_code == 200
    worker.run_until_idle()
    approval = _approval(api, order)
    pdf = api.client("li.sales").get(f"/api/approvals/{approval['id']}/record.pdf")
    assert pdf.status_code == 200
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages]
    text = "\n".join(pages)
    record = api.live.records.get("order", order)
    customer = api.live.records.get("customer", record["customer"])
    product = api.live.records.get("product", record["product"])
    lines = text.splitlines()
    assert f"客户 {customer['name']}" in lines  # the customer's title, not "客户 1"
    assert f"产品 {product['name']}" in lines
    assert "成交单价 ¥1,234.50" in lines
    assert "订单金额 ¥12,345.00" in lines
    assert "订单类型 加急单" in lines
    # the record's name once in the heading, not "销售订单 · 销售订单 SO-…"
    assert f"销售订单 {record['order_no']}" in lines
    assert "销售订单 · 销售订单" not in text
    assert pages[0].count(record["order_no"]) == 1  # not again among the key fields


def test_only_the_assignee_or_their_delegate_may_act_never_the_submitter(world) -> None:
    api, _worker, _ding = world
    order = _order(api, "B", "normal", 80, 50)
    finance = _task_for(api, "huang.fin", order)
    stranger = _decide(api, "ma.log", finance["id"], "approve")
    assert stranger.status_code == 403
    assert stranger.json()["errors"][0]["code"] == "not-assignee"
    assert _decide(api, "li.sales", finance["id"], "approve").status_code == 403
    # huang.fin is away: wu.proc stands in for a week
    now = clock.now()
    away = api.client("huang.fin").post(
        "/api/delegations",
        json={
            "delegate": "wu.proc",
            "ends": (now + timedelta(days=7)).isoformat(),
            "reason": "出差",
        },
    )
    assert away.status_code == 201, away.text
    inbox = _task_for(api, "wu.proc", order)
    assert inbox["on_behalf_of"] == "huang.fin"
    acted = _decide(api, "wu.proc", finance["id"], "approve", "代黄敏审批")
    assert acted.status_code == 200
    decided = next(t for t in _approval(api, order)["tasks"] if t["id"] == finance["id"])
    assert decided["decided_by"] == "wu.proc" and decided["on_behalf_of"] == "huang.fin"
    # the submitter cannot approve through a delegation either
    api.client("liu.wh").post(
        "/api/delegations",
        json={"delegate": "li.sales", "ends": (now + timedelta(days=1)).isoformat()},
    )
    warehouse = _task_for(api, "liu.wh", order)
    self_approval = _decide(api, "li.sales", warehouse["id"], "approve")
    assert self_approval.status_code == 403
    assert self_approval.json()["errors"][0]["code"] == "self-approval"
    # a revoked delegation no longer lets anyone act
    mine = api.client("huang.fin").get("/api/delegations").json()["delegations"]
    assert api.client("huang.fin").delete(f"/api/delegations/{mine[0]['id']}").status_code == 200
    assert all(t["record_id"] != order for t in _tasks(api, "wu.proc"))
    bad = api.client("huang.fin").post("/api/delegations", json={"delegate": "nobody", "ends": "x"})
    assert bad.status_code == 422


def _escalations(api: Api, order: int) -> list[dict]:
    return [
        e["payload"]
        for e in api.live.records.events("order", order)
        if e["kind"] == "approval_escalated"
    ]


def test_sla_escalates_up_the_chain_across_a_weekend(world) -> None:
    api, worker, ding = world
    fake = FakeClock(datetime.now(UTC))
    clock.set_clock(fake)
    fake.set_local("2026-11-27 16:00")  # a Friday; 1.5 + 2.5 business hours: Monday 11:00
    order = _order(api, "B", "normal", 80, 50)
    task = _task_for(api, "huang.fin", order)
    due = datetime.fromisoformat(task["due_at"])
    assert (due + SHANGHAI).strftime("%Y-%m-%d %H:%M") == "2026-11-30 11:00"
    fake.set_local("2026-11-30 10:15")  # reminder (1 business hour before) but no escalation
    worker.run_until_idle()
    assert _escalations(api, order) == []
    assert _task_for(api, "huang.fin", order)["sla"] == "amber"
    assert any("即将超时" in json.dumps(m, ensure_ascii=False) for m in ding.messages)
    fake.set_local("2026-11-30 11:01")
    worker.run_until_idle()
    first = [e for e in _escalations(api, order) if e["task_id"] == task["id"]]
    assert first == [
        {
            **first[0],
            "level": 1,
            "from": ["huang.fin", "zhao.fin"],
            "to": ["wang.gm"],
        }
    ]
    assert _tasks(api, "huang.fin") == []
    escalated = _task_for(api, "wang.gm", order)
    assert escalated["escalations"] == 1 and escalated["sla"] == "green"
    warehouse = [e for e in _escalations(api, order) if e["task_id"] != task["id"]]
    assert warehouse[0]["from"] == ["liu.wh", "yang.wh"] and warehouse[0]["to"] == ["zhou.pd"]
    # four more business hours: the warehouse task goes up again; finance has nobody above
    fake.set_local("2026-11-30 16:05")
    worker.run_until_idle()
    warehouse = [e for e in _escalations(api, order) if e["task_id"] != task["id"]]
    assert [e["to"] for e in warehouse] == [["zhou.pd"], ["wang.gm"]]
    kinds = [e["kind"] for e in api.live.records.events("order", order)]
    assert "approval_overdue" in kinds  # the general manager has no manager: stays, is flagged
    assert _decide(api, "wang.gm", escalated["id"], "approve").status_code == 200


def test_sla_clock_skips_a_chinese_holiday(world) -> None:
    api, worker, _ding = world
    fake = FakeClock(datetime.now(UTC))
    clock.set_clock(fake)
    fake.set_local("2026-09-30 16:00")  # the eve of the National Day week
    order = _order(api, "B", "normal", 80, 50)
    task = _task_for(api, "huang.fin", order)
    due = datetime.fromisoformat(task["due_at"])
    calendar = api.live.records.runtime.calendar
    local_due = (due + SHANGHAI).date()
    assert local_due > date(2026, 10, 7) and calendar.is_workday(local_due)
    assert round(calendar.business_hours_between(fake.at, due), 6) == 4
    fake.at = due - timedelta(minutes=5)  # the holiday does not count: still in time
    worker.run_until_idle()
    assert _escalations(api, order) == []
    fake.at = due + timedelta(minutes=1)
    worker.run_until_idle()
    assert len(_escalations(api, order)) == 2  # both countersign slots


def test_record_is_locked_while_approving_and_return_reopens_it(world) -> None:
    api, _worker, _ding = world
    order = _order(api, "B", "normal", 80, 50)
    sales = api.client("li.sales")
    locked = sales.patch(f"/api/forms/order/records/{order}", json={"quantity": 70})
    assert locked.status_code in (409, 422)  # the pack's 'approving' state is not editable
    assert api.live.records.get("order", order)["quantity"] == 50
    back = _decide(
        api, "huang.fin", _task_for(api, "huang.fin", order)["id"], "return", "数量请确认"
    )
    assert back.json()["approval_status"] == "returned"
    assert _state(api, order) == "returned"
    assert (
        sales.patch(f"/api/forms/order/records/{order}", json={"quantity": 70}).status_code == 200
    )
    records = api.live.records
    fire_transition(records, "order", order, "submit", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "stock_ok", SYSTEM_ACTOR)
    _confirm_promise_date(api, order)
    assert (
        sales.post(f"/api/forms/order/records/{order}/actions/confirm_promise").status_code == 200
    )
    approvals = sales.get(f"/api/forms/order/records/{order}/approvals").json()["approvals"]
    assert [a["status"] for a in approvals] == ["active", "returned"]  # re-entered routing


def test_the_communication_log_stays_appendable_while_approving(world) -> None:
    """The pack locks orders while approving, but a call with the customer is still logged
    (an append-only table): 201, and the approval goes on as it was."""
    api, _worker, _ding = world
    order = _order(api, "B", "normal", 80, 50)
    before = _approval(api, order)
    assert before["status"] == "active"
    note = {"topic": "progress", "contact": "王经理（采购）", "conclusion": "询问审批进度"}
    for user in ("li.sales", "zhou.pd"):
        added = api.client(user).post(
            f"/api/forms/order/records/{order}/children/communication_log", json=note
        )
        assert added.status_code == 201, added.text
    assert len(api.live.records.get("order", order)["communication_log"]) == 2
    assert _approval(api, order) == before
    kinds = [e["kind"] for e in api.live.records.events("order", order)]
    assert "approval_restarted" not in kinds and "approval_cancelled" not in kinds
    answer = _decide(api, "huang.fin", _task_for(api, "huang.fin", order)["id"], "approve")
    assert answer.status_code == 200, answer.text


def test_cancelling_while_approving_closes_the_tasks(world) -> None:
    api, _worker, _ding = world
    order = _order(api, "B", "normal", 80, 50)
    # an administrator moves the order back (the pack lets approvers return it)
    fire_transition(api.live.records, "order", order, "return_for_changes", SYSTEM_ACTOR)
    assert _approval(api, order)["status"] == "cancelled"
    assert _tasks(api, "huang.fin") == []


def test_redeploy_with_an_edited_route_leaves_approvals_in_flight_alone(
    world, tmp_path: Path
) -> None:
    api, _worker, _ding = world
    before = _order(api, "B", "normal", 80, 50)
    # the consultant drops the warehouse from class B and redeploys
    edited = tmp_path / "pack"
    import shutil

    shutil.copytree(PACK, edited, ignore=shutil.ignore_patterns("*.db"))
    path = edited / "approvals" / "order.yaml"
    text = path.read_text(encoding="utf-8")
    old = "        all_of: [{role: finance}, {role: warehouse}]\n"
    assert old in text
    path.write_text(text.replace(old, "        all_of: [{role: finance}]\n"), encoding="utf-8")
    result = compile_app(edited)
    assert result.app is not None
    api.live = LiveApp.of(result.app, api.engine, api.live.bundle)
    after = _order(api, "B", "normal", 80, 50)
    assert _task_for(api, "liu.wh", before)  # the old plan still asks the warehouse
    assert all(t["record_id"] != after for t in _tasks(api, "liu.wh"))
    _decide(api, "huang.fin", _task_for(api, "huang.fin", before)["id"], "approve")
    assert _state(api, before) == "approving"  # finishes on the version it started with
    _decide(api, "liu.wh", _task_for(api, "liu.wh", before)["id"], "approve")
    assert _state(api, before) == "approved"
    _decide(api, "huang.fin", _task_for(api, "huang.fin", after)["id"], "approve")
    assert _state(api, after) == "approved"
    with api.engine.connect() as conn:
        hashes = {
            r.record_id: r.config_hash
            for r in conn.execute(sa.select(APPROVALS.c.record_id, APPROVALS.c.config_hash))
        }
        open_tasks = conn.execute(
            sa.select(sa.func.count()).select_from(TASKS).where(TASKS.c.status == "open")
        ).scalar_one()
    assert hashes[before] != hashes[after] and open_tasks == 0


def test_audit_verify_checks_the_stored_pdf_against_its_sealed_hash(world) -> None:
    from click.testing import CliRunner

    from engine.cli.main import main
    from engine.store.system_tables import system_metadata as meta

    api, worker, _ding = world
    order = _order(api, "VIP", "rush", 120, 100)
    _decide(api, "zhou.pd", _task_for(api, "zhou.pd", order)["id"], "approve", "同意")
    worker.run_until_idle()
    url = api.engine.url.render_as_string(hide_password=False)
    args = ["--app", str(PACK), "--db", url, "--lang", "en", "audit", "verify"]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert "1 approval records match" in ok.output
    files = meta().tables["sl_files"]
    file_id = _approval(api, order)["record_file"]
    with api.engine.begin() as conn:  # someone swaps the PDF in the database
        conn.execute(files.update().where(files.c.id == file_id).values(data=b"%PDF-1.4 forged"))
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 1
    assert f"approval record {file_id}" in bad.output and "altered" in bad.output
