"""The pack's progress messages to the customer (``progress_to_customer``) on SQLite and
PostgreSQL: on each stage the customer cares about, the WeCom fake receives a structured
message — order number, expected delivery date, the stage in plain words — at any hour (here
a National Day holiday night: nothing waits for business hours), and the first one delivered
is what the outcomes dashboard's headline KPI (order → first progress message) reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from apihelp import start_api
from packservices import pack_services

from engine.dashboards.compute import dashboard_values
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR
from engine.model import clock
from engine.outbox.worker import Worker

SHANGHAI = timedelta(hours=8)


class FakeClock:
    def __init__(self, local: str) -> None:
        self.at = self.local(local)

    @staticmethod
    def local(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC) - SHANGHAI

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch):
    with pack_services(monkeypatch) as services:
        wecom = services.wecom
        fake = FakeClock("2026-10-02 22:40")  # National Day holiday, at night
        clock.set_clock(fake)
        api = start_api(db_url)
        monkeypatch.setattr(api.live.records, "_now", fake)  # record timestamps too
        worker = Worker(api.engine, lambda: api.live.flows, name="test-worker", schedules=False)
        try:
            yield api, worker, wecom, fake
        finally:
            clock.set_clock(None)
            api.live.flows.connectors.close()
            api.engine.dispose()


def _content(message: dict) -> str:
    assert message["msgtype"] == "markdown"
    return message["markdown"]["content"]


def _new_order(records: Any, n: int, city: str) -> dict[str, Any]:
    """A draft regular order of 5 × SD-100000 (made here) for a new class-B customer
    C0000``n`` of ``city``, with a WeCom id."""
    customer = records.create(
        "customer",
        {"code": f"C0000{n}", "name": f"{city}某汽车", "tier": "B", "wecom_id": f"wx_c{n}"},
        SYSTEM_ACTOR,
    )
    product = records.create(
        "product",
        {"code": "SD-100000", "name": "面套", "unit_price": 10, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    values = {"customer": customer["id"], "product": product["id"], "quantity": 5,
              "desired_date": "2026-11-30", "order_type": "normal"}  # fmt: skip
    return records.create("order", values, SYSTEM_ACTOR)


def test_stage_messages_reach_the_customer_at_night_and_feed_the_headline_kpi(world) -> None:
    api, worker, wecom, fake = world
    records = api.live.records
    order = _new_order(records, 1, "绍兴")
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    fake.at += timedelta(minutes=12)  # the worker runs at 22:52 on the holiday
    worker.run_until_idle()
    checked = records.get("order", order["id"])
    assert checked["state"] == "stock_checked" and checked["atp_date"] is not None
    assert len(wecom.messages) == 1
    first = _content(wecom.messages[0])
    assert checked["order_no"] in first
    # the ATP date is the system's estimate, not agreed yet: no date, "being confirmed"
    assert checked["atp_date"].isoformat() not in first
    assert "交付日" in first and "交期确认中" in first
    assert "当前环节：库存已校验，正在与生产确认交付日" in first

    # the headline KPI reads the first delivered message: 22:40 → 22:52 is 0.2 hours
    outcomes = dashboard_values(api.engine, api.app, "outcomes", now=fake())
    kpi = next(k for k in outcomes["kpis"] if k["id"] == "first_progress_message_hours")
    assert kpi["value"] == pytest.approx(0.2, abs=0.01)

    # the gate, approval and scheduling: one message per stage, each in plain words
    promised = checked["atp_date"].isoformat()
    records.update("order", order["id"], {"promised_date": promised}, SYSTEM_ACTOR)
    gate = f"/api/forms/order/records/{order['id']}/confirmations/confirm_promise"
    for user in ("li.sales", "zhou.pd"):
        assert api.client(user).post(gate, json={"value": promised}).status_code == 200
    moved = api.client("li.sales").post(
        f"/api/forms/order/records/{order['id']}/actions/confirm_promise"
    )
    assert moved.status_code == 200, moved.text
    fire_transition(records, "order", order["id"], "approve", SYSTEM_ACTOR)
    fake.at += timedelta(hours=3)  # 01:52, still the holiday
    worker.run_until_idle()
    texts = [_content(m) for m in wecom.messages]
    assert len(texts) == 3
    assert "当前环节：交付日已与生产确认，订单进入审核" in texts[1]
    assert "当前环节：已通过审核，进入排产队列" in texts[2]
    # after the gate: the date the salesperson and the production director confirmed
    assert all(f"承诺交付日：{promised}" in t and checked["order_no"] in t for t in texts[1:])
    assert not any("确认中" in t for t in texts[1:])
    outcomes = dashboard_values(api.engine, api.app, "outcomes", now=fake())
    kpi = next(k for k in outcomes["kpis"] if k["id"] == "first_progress_message_hours")
    assert kpi["value"] == pytest.approx(0.2, abs=0.01)  # still the first message


def test_an_order_back_at_the_gate_is_being_confirmed_again(world) -> None:
    """Returned for changes and resubmitted: the date agreed last time is not stated again
    until the salesperson and the production director confirm it anew."""
    api, worker, wecom, _fake = world
    records = api.live.records
    order = _new_order(records, 2, "宁波")["id"]

    def through_the_gate() -> str:
        promised = records.get("order", order)["atp_date"].isoformat()
        records.update("order", order, {"promised_date": promised}, SYSTEM_ACTOR)
        gate = f"/api/forms/order/records/{order}/confirmations/confirm_promise"
        for user in ("li.sales", "zhou.pd"):
            assert api.client(user).post(gate, json={"value": promised}).status_code == 200
        action = f"/api/forms/order/records/{order}/actions/confirm_promise"
        assert api.client("li.sales").post(action).status_code == 200
        worker.run_until_idle()
        return promised

    fire_transition(records, "order", order, "submit", SYSTEM_ACTOR)
    worker.run_until_idle()
    promised = through_the_gate()
    fire_transition(records, "order", order, "return_for_changes", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "submit", SYSTEM_ACTOR)
    worker.run_until_idle()
    texts = [_content(m) for m in wecom.messages]
    assert [("交期确认中" in t, f"承诺交付日：{promised}" in t) for t in texts] == [
        (True, False),  # stock checked
        (False, True),  # through the gate
        (True, False),  # stock checked again: to be confirmed again
    ]
    assert through_the_gate() == promised
    assert f"承诺交付日：{promised}" in _content(wecom.messages[-1])


@pytest.mark.parametrize("public", ["https://track.example.com/", None])
def test_progress_messages_end_with_the_tracking_link(
    world, monkeypatch: pytest.MonkeyPatch, public: str | None
) -> None:
    """With SEAMLINE_PUBLIC_URL the message ends with a link to /track that fills in the order
    number (the page still asks for the phone and its code); without it, no link at all."""
    if public is None:
        monkeypatch.delenv("SEAMLINE_PUBLIC_URL", raising=False)
    else:
        monkeypatch.setenv("SEAMLINE_PUBLIC_URL", public)
    api, worker, wecom, _fake = world
    records = api.live.records
    order = _new_order(records, 3, "杭州")
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    worker.run_until_idle()
    text = _content(wecom.messages[-1])
    lines = [line for line in text.splitlines() if not line.startswith("<@")]  # not mentions
    if public is None:
        assert "/track" not in text and "在线查看" not in text
        assert lines[-1] == "如有疑问，请直接回复您的销售顾问。"
    else:
        link = f"https://track.example.com/track?no={order['order_no']}"
        assert lines[-2:] == [
            "如有疑问，请直接回复您的销售顾问。",
            f"[在线查看订单进度（需验证手机号）]({link})",
        ]
