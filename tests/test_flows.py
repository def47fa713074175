"""Flows at run time against real local servers: the pack's stock check with the mock
warehouse, DingTalk to-dos and WeCom progress messages through the outbox, and faults."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from apihelp import PACK, start_api
from packservices import pack_services, submit_order

from engine.forms.records import SYSTEM_ACTOR
from engine.outbox.jobs import JOBS, RUNS
from engine.outbox.worker import Worker
from engine.store.events import verify_chain
from engine.store.system_tables import system_metadata

FAR = (date.today() + timedelta(days=90)).isoformat()
WMS_AUTH = {"Authorization": "Bearer wms-secret"}


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch):
    with pack_services(monkeypatch) as services:
        wms, ding, wecom = services.wms, services.ding, services.wecom
        api = start_api(db_url)
        worker = Worker(api.engine, lambda: api.live.flows, name="test-worker")
        records = api.live.records
        customer = records.create(
            "customer",
            {"code": "C00001", "name": "绍兴某汽车", "tier": "A", "wecom_id": "wx_c1"},
            SYSTEM_ACTOR,
        )
        yield api, worker, wms, ding, wecom, customer["id"]
        api.live.flows.connectors.close()
        api.engine.dispose()


def _product(api, code: str) -> int:
    return api.live.records.create(
        "product", {"code": code, "name": "面套", "unit_price": 10, "lead_days": 5}, SYSTEM_ACTOR
    )["id"]


def _submit(api, customer: int, product: int, quantity: int) -> int:
    return submit_order(api.live.records, customer, product, quantity, FAR)


def _kinds(api, order_id: int) -> list[str]:
    return [e["kind"] for e in api.live.records.events("order", order_id)]


def test_stock_check_shortage_todo_and_customer_message(world) -> None:
    api, worker, _wms, ding, wecom, customer = world
    plenty = _submit(api, customer, _product(api, "SD-100000"), 5)
    short = _submit(api, customer, _product(api, "HL-100002"), 5000)
    worker.run_until_idle()
    records = api.live.records
    ok = records.get("order", plenty)
    assert ok["state"] == "stock_checked"
    assert ok["atp_date"] is not None and ok["atp_explanation"]
    lacking = records.get("order", short)
    assert lacking["state"] == "stock_checked"
    assert "不足" in lacking["atp_explanation"] or "缺" in lacking["atp_explanation"]
    # one DingTalk to-do for the shortage (signed), customer progress messages on WeCom
    assert len(ding.messages) == 1
    assert "缺料提醒" in str(ding.messages[0])
    assert len(wecom.messages) == 2
    kinds = _kinds(api, short)
    assert kinds.count("notify_sent") == 2 and "flow_done" in kinds
    with api.engine.connect() as conn:
        assert verify_chain(conn, system_metadata()).ok


def test_warehouse_down_then_recovering_loses_nothing_checks_once(world) -> None:
    api, worker, wms, _ding, _wecom, customer = world
    product = _product(api, "SD-100000")
    httpx.post(wms.base_url + "/_control", json={"mode": "fail", "status": 500, "count": 25})
    orders = [_submit(api, customer, product, 1 + i) for i in range(5)]
    # while the warehouse fails, the orders wait visibly in 'stock_pending'
    for _ in range(3):
        worker.run_once()
    states = {api.live.records.get("order", o)["state"] for o in orders}
    assert states <= {"stock_pending", "submitted"} and "stock_pending" in states
    # let every retry be due now, until the warehouse recovers
    for _ in range(40):
        with api.engine.begin() as conn:
            conn.execute(
                JOBS.update()
                .where(JOBS.c.status == "ready")
                .values(due_at=sa.func.current_timestamp())
            )
        worker.run_until_idle()
        if all(api.live.records.get("order", o)["state"] == "stock_checked" for o in orders):
            break
    assert all(api.live.records.get("order", o)["state"] == "stock_checked" for o in orders)
    with api.engine.connect() as conn:
        runs = conn.execute(sa.select(RUNS.c.status, RUNS.c.automation)).all()
    checks = [r for r in runs if r.automation == "stock_check"]
    assert len(checks) == 5 and {r.status for r in checks} == {"done"}
    # each order's stock check completed exactly once: one stock query, one reservation
    for o in orders:
        assert _kinds(api, o).count("flow_done") >= 1
        steps = [
            e["payload"]["operation"]
            for e in api.live.records.events("order", o)
            if e["kind"] == "flow_step" and e["payload"].get("action") == "call"
        ]
        assert steps == ["stock", "reserve"]
    held = httpx.get(wms.base_url + "/api/reservations?status=active", headers=WMS_AUTH).json()
    assert held["count"] == 5
    assert sorted(r["quantity"] for r in held["reservations"]) == [1, 2, 3, 4, 5]


def test_outbox_survives_a_dead_robot_then_delivers_once(world) -> None:
    api, worker, _wms, _ding, wecom, customer = world
    wecom.fail_next(4, status=500)
    order = _submit(api, customer, _product(api, "SD-100000"), 1)
    for _ in range(20):
        with api.engine.begin() as conn:
            conn.execute(
                JOBS.update()
                .where(JOBS.c.status == "ready")
                .values(due_at=sa.func.current_timestamp())
            )
        worker.run_until_idle()
    assert len(wecom.messages) == 1
    sent = [e for e in api.live.records.events("order", order) if e["kind"] == "notify_sent"]
    assert len(sent) == 1 and sent[0]["payload"]["attempts"] == 5


def test_timers_due_during_downtime_fire_at_next_start(world) -> None:
    from datetime import UTC, datetime

    from engine.outbox import jobs

    api, _worker, *_ = world
    with api.engine.begin() as conn:
        jobs.enqueue(
            conn,
            "flow",
            "timer:test",
            {"run_id": 999999},
            due_at=datetime.now(UTC) - timedelta(hours=3),
        )
    fresh = Worker(api.engine, lambda: api.live.flows, name="after-restart")
    assert fresh.run_until_idle() >= 1
    with api.engine.connect() as conn:
        status = conn.execute(
            sa.select(JOBS.c.status).where(JOBS.c.key == "timer:test")
        ).scalar_one()
    assert status == "done"


def test_mock_wms_answers_the_pack_connector(world) -> None:
    api, _worker, _wms, *_ = world
    answer = api.live.flows.connectors.call(
        "wms", "stock", {"sku": "SD-100000"}, idempotency_key="t-1"
    )
    assert answer.data["sku"] == "SD-100000"
    assert Path(PACK / "mock_wms.py").is_file()


def test_outbox_gives_up_into_the_dead_letter_list_then_retry_now(world) -> None:
    from engine.outbox.jobs import retry_now

    api, worker, _wms, _ding, wecom, customer = world
    wecom.fail_next(6, status=500)  # the wecom connector allows 5 retries: 6 attempts
    order = _submit(api, customer, _product(api, "SD-100000"), 1)
    for _ in range(20):
        with api.engine.begin() as conn:
            conn.execute(
                JOBS.update()
                .where(JOBS.c.status == "ready")
                .values(due_at=sa.func.current_timestamp())
            )
        worker.run_until_idle()
    assert wecom.messages == []
    with api.engine.connect() as conn:
        dead = conn.execute(sa.select(JOBS.c.id).where(JOBS.c.status == "dead")).scalars().all()
    assert len(dead) == 1
    assert "notify_dead" in _kinds(api, order)
    with api.engine.begin() as conn:
        assert retry_now(conn, dead[0])
    worker.run_until_idle()
    assert len(wecom.messages) == 1


def test_runs_and_dead_letters_in_the_api_and_the_page(world) -> None:
    import re

    from starlette.testclient import TestClient

    from engine.accounts.auth import set_password
    from engine.runtime import Deployments
    from engine.web.routes import page_routes
    from engine.web.server import create_web_app

    api, worker, _wms, _ding, wecom, customer = world
    wecom.fail_next(6, status=500)
    order = _submit(api, customer, _product(api, "SD-100000"), 1)
    for _ in range(20):
        with api.engine.begin() as conn:
            conn.execute(
                JOBS.update()
                .where(JOBS.c.status == "ready")
                .values(due_at=sa.func.current_timestamp())
            )
        worker.run_until_idle()
    client = api.client("qian.it")  # runs and the outbox are for administrators
    runs = client.get(f"/api/runs?form=order&record_id={order}").json()
    assert {r["automation"] for r in runs} == {"stock_check", "progress_to_customer"}
    stock = next(r for r in runs if r["automation"] == "stock_check")
    assert stock["status"] == "done" and stock["results"]["stock"]["available"] > 0
    dead = client.get("/api/outbox?status=dead").json()
    assert len(dead) == 1 and dead[0]["via"] == "wecom" and dead[0]["attempts"] == 6
    assert client.get("/api/outbox?status=nope").status_code == 400
    with api.engine.begin() as conn:
        set_password(conn, "qian.it", "correct-horse-1")
    browser = TestClient(
        create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    )
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text).group(1)
    browser.post(
        "/login", data={"username": "qian.it", "password": "correct-horse-1", "csrf_token": token}
    )
    record_page = browser.get(f"/forms/order/{order}").text
    # the timeline for people: the run folded into one line by its actor, no raw names
    assert "系统（“提交订单”后的自动流程）</strong> 已完成" in record_page
    assert "提交订单：草稿 → 已提交" in record_page
    assert "stock_check" not in record_page.split('id="history"')[1]
    page = browser.get("/runs")
    assert page.status_code == 200 and "立即重试" in page.text
    # for people: the app's language, inputs and outputs as key: value lines, not raw JSON
    heads = re.findall(r"<th>([^<]*)</th>", page.text)
    assert {"自动流程", "单据", "状态", "触发", "结果", "执行记录"} <= set(heads), heads
    assert not {"automation", "record", "status", "results", "error", "jobs"} & set(heads)
    assert re.search(r"<dt>stock\.available:</dt> <dd>\d+</dd>", page.text)
    assert "<dt>to:</dt> <dd>stock_checked</dd>" in page.text  # what started the run
    assert "&#34;available&#34;" not in page.text and '"available"' not in page.text
    assert "销售订单 #" in page.text and "完成" in page.text
    assert 'href="/runs"' in page.text  # in the operator's menu
    # a salesperson: no menu link, and the page refuses on the server
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", "correct-horse-1")
    sales = TestClient(create_web_app(api.engine, Deployments(api.engine, api.live), page_routes()))
    token = re.search(r'name="csrf_token" value="([^"]+)"', sales.get("/login").text).group(1)
    sales.post(
        "/login", data={"username": "li.sales", "password": "correct-horse-1", "csrf_token": token}
    )
    home = sales.get("/")
    assert home.status_code == 200 and 'href="/runs"' not in home.text
    assert sales.get("/runs").status_code == 403
    assert (
        sales.post(f"/runs/jobs/{dead[0]['id']}/retry", data={"csrf_token": token}).status_code
        == 403
    )
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert (
        browser.post(
            f"/runs/jobs/{dead[0]['id']}/retry", data={"csrf_token": token}, follow_redirects=False
        ).status_code
        == 303
    )
    worker.run_until_idle()
    assert len(wecom.messages) == 1
    assert client.get("/api/outbox?status=dead").json() == []


def test_the_branch_taken_is_saved_before_a_call_and_kept_on_retry(world) -> None:
    """An ``if`` moves the run on without a write of its own, but the branch it took is saved
    before the call inside it: a retry of that call goes on from the call (same position,
    so the same idempotency key), not from the ``if``."""
    from engine.flows.machine import fire_transition

    api, worker, wms, _ding, _wecom, customer = world
    records = api.live.records
    order = records.create(
        "order",
        {
            "customer": customer,
            "product": _product(api, "SD-100000"),
            "quantity": 2,
            "desired_date": FAR,
            "order_type": "normal",
        },
        SYSTEM_ACTOR,
    )
    held = httpx.post(  # a re-submitted order holds last time's reservation
        wms.base_url + "/api/reservations",
        json={"sku": "SD-100000", "quantity": 2, "order_no": order["order_no"]},
        headers={**WMS_AUTH, "Idempotency-Key": "last-time"},
    ).json()
    table = api.live.metadata.tables["f_order"]
    with api.engine.begin() as conn:
        conn.execute(
            table.update().where(table.c.id == order["id"]).values(reservation_id=held["id"])
        )
    httpx.post(wms.base_url + "/_control", json={"mode": "fail", "status": 500, "count": 1})
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    worker.run_once()  # `if reservation_id` → then → the release call fails (transient)
    with api.engine.connect() as conn:
        run = conn.execute(
            sa.select(RUNS.c.position, RUNS.c.status).where(RUNS.c.automation == "stock_check")
        ).one()
    assert run.status == "running" and list(run.position) == [0, "then", 0]
    with api.engine.begin() as conn:
        conn.execute(
            JOBS.update().where(JOBS.c.status == "ready").values(due_at=sa.func.current_timestamp())
        )
    worker.run_until_idle()
    calls = [
        e["payload"]["operation"]
        for e in records.events("order", order["id"])
        if e["kind"] == "flow_step" and e["payload"].get("action") == "call"
    ]
    assert calls == ["release", "stock", "reserve"]
    assert records.get("order", order["id"])["state"] == "stock_checked"
