"""Dashboards at run time on the pack (SQLite and PostgreSQL): every KPI of both pack
dashboards (the seed's six order-health KPIs and its outcome measures) against values worked
out by hand on a small fixed history, threshold colours at the boundaries,
percentiles (odd and even counts), windows in the app's time zone, trend buckets, drill-down,
roles, CSV export, and the validate-time refusal of conditions SQL cannot run."""

from __future__ import annotations

import csv
import dataclasses
import io
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apihelp import Api, start_api
from conftest import codes

from engine.dashboards.compile_kpi import compile_kpi
from engine.dashboards.compute import _Context, dashboard_values, drill_down, status_of
from engine.flows.confirm import confirm_gate
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR, RecordService
from engine.model import clock
from engine.model.spec import KpiSpec, ThresholdSpec
from engine.store.events import EventIn, append_events

SHANGHAI = timedelta(hours=8)
NOW = "2026-03-20 10:00"  # a Friday, Shanghai wall clock


def local(text: str) -> datetime:
    """A Shanghai wall-clock time as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - SHANGHAI


class Clock:
    def __init__(self) -> None:
        self.at = local(NOW)

    def __call__(self) -> datetime:
        return self.at


# Each order: (created, quantity, atp, promised, desired, [(step, at), ...]); a step is a
# transition's name, a dict of fields to set (``*_at`` values are Shanghai wall-clock times),
# ("note", topic) — a communication-log row — or "sent": the customer's progress message
# delivered (what the worker writes for progress_to_customer). Unit price 100, so amount =
# 100 × quantity.
ORDERS = {
    "O1": ("2026-03-02 09:00", 10, "2026-04-10", "2026-04-10", "2026-04-15",
           [("submit", "2026-03-02 09:30"), ("stock_ok", "2026-03-02 10:00"),
            ("sent", "2026-03-02 10:06"), ("confirm_promise", "2026-03-02 11:00"),
            ("approve", "2026-03-02 11:30"), (("note", "progress"), "2026-03-02 15:00"),
            ({"scheduled_date": "2026-04-12"}, "2026-03-03 08:50"),
            ("schedule", "2026-03-03 09:00")]),
    "O2": ("2026-03-05 08:00", 20, "2026-04-20", "2026-04-20", "2026-04-10",
           [(("note", "change"), "2026-03-05 08:04"),
            ({"desired_date": "2026-04-12"}, "2026-03-05 08:05"),
            ("submit", "2026-03-05 08:10"), ("stock_ok", "2026-03-05 11:00"),
            ("sent", "2026-03-05 11:06"), ("confirm_promise", "2026-03-05 12:00"),
            ("approve", "2026-03-05 16:00"),
            ({"scheduled_date": "2026-04-20"}, "2026-03-06 08:50"),
            ("schedule", "2026-03-06 09:00"), (("note", "progress"), "2026-03-06 10:00"),
            (("note", "progress"), "2026-03-07 10:00")]),
    "O3": ("2026-03-10 09:00", 5, "2026-04-01", "2026-04-30", "2026-04-30",
           [(("note", "change"), "2026-03-10 09:01"),
            ({"desired_date": "2026-05-06"}, "2026-03-10 09:02"),
            ("submit", "2026-03-10 09:05"), ("stock_ok", "2026-03-10 14:00"),
            ("sent", "2026-03-10 14:06")]),
    "O4": ("2026-03-01 00:30", 1, None, None, "2026-04-30", []),  # March locally, Feb in UTC
    "O5": ("2026-02-25 10:00", 7, "2026-04-05", "2026-04-05", "2026-04-06",
           [("submit", "2026-02-25 10:30"), ("stock_ok", "2026-02-25 12:00"),
            ("sent", "2026-02-25 12:06"), ("confirm_promise", "2026-02-25 13:00"),
            ("approve", "2026-02-25 14:00"),
            ({"scheduled_date": "2026-04-03"}, "2026-02-26 08:50"),
            ("schedule", "2026-02-26 09:00"), ({"stock_mismatch": True}, "2026-03-03 08:30"),
            ("ship", "2026-03-03 09:00"),
            ({"tracking_no": "SF1", "tracking_at": "2026-03-03 10:30"}, "2026-03-03 10:30"),
            ("deliver", "2026-03-05 09:00")]),
    "O6": ("2026-01-15 10:00", 3, "2026-02-20", "2026-02-20", "2026-02-27",
           [("submit", "2026-01-15 10:00"), ("stock_ok", "2026-01-15 20:00"),
            ("confirm_promise", "2026-01-16 09:00"), ("approve", "2026-01-16 11:00")]),
    "O7": ("2026-03-16 09:00", 4, None, None, "2026-04-30",
           [("submit", "2026-03-16 09:10"), ("stock_ok", "2026-03-16 11:00"),
            ("cancel", "2026-03-16 12:00")]),
    "O8": ("2026-03-18 09:00", 2, "2026-04-02", "2026-04-02", "2026-04-20",
           [("submit", "2026-03-18 09:10"), ("stock_ok", "2026-03-18 09:30"),
            ("sent", "2026-03-18 09:36"),
            ("confirm_promise", "2026-03-18 10:00"), ("return_for_changes", "2026-03-18 11:00"),
            ("submit", "2026-03-18 12:00"), ("stock_ok", "2026-03-18 12:30"),
            ("confirm_promise", "2026-03-18 13:00"), ("approve", "2026-03-18 15:00"),
            (("note", "progress"), "2026-03-19 10:00")]),
    "O9": ("2026-02-28 23:30", 9, None, None, "2026-04-30", []),  # February locally
    # the 30d window opens at local 02-19 00:00 = 02-18 16:00 UTC; all of O10 is before
    # 02-19 in UTC (a window bound left in local time would lose it on SQLite)
    "O10": ("2026-02-19 03:00", 6, "2026-04-10", None, "2026-04-15",
            [("submit", "2026-02-19 04:00"), ("stock_ok", "2026-02-19 05:00")]),
    "O11": ("2026-03-09 09:00", 8, "2026-04-01", "2026-04-01", "2026-04-10",
            [("submit", "2026-03-09 09:10"), ("stock_ok", "2026-03-09 09:40"),
             ("sent", "2026-03-09 09:46"), ("confirm_promise", "2026-03-09 10:00"),
             ("approve", "2026-03-09 10:30")]),
}  # fmt: skip


@dataclasses.dataclass
class World:
    api: Api
    ids: dict[str, int]  # "O1" → record id
    labels: dict[str, str]  # "O1" → order number

    def name(self, record_id: int) -> str:
        return next(k for k, v in self.ids.items() if v == record_id)


def _step(records: RecordService, order: int, step: object, moment: datetime) -> None:
    if isinstance(step, dict):
        values = {k: local(v).isoformat() if k.endswith("_at") else v for k, v in step.items()}
        records.update("order", order, values, SYSTEM_ACTOR)
    elif isinstance(step, tuple):
        row = {"topic": step[1], "contact": "王经理", "conclusion": "已告知"}
        records.add_child_row("order", order, "communication_log", row, SYSTEM_ACTOR)
    elif step == "sent":
        payload = {"via": "wecom", "title": "进度", "automation": "progress_to_customer"}
        with records.engine.begin() as conn:
            sent = EventIn("flow", "order", order, "notify_sent", payload)
            append_events(conn, records.metadata, [sent], moment)
    else:
        assert isinstance(step, str)
        if step == "confirm_promise":  # the gate: sales and production confirm the date
            for _side in ("sales", "production_director"):
                confirm_gate(records, "order", order, step, SYSTEM_ACTOR)
        fire_transition(records, "order", order, step, SYSTEM_ACTOR)


def _load(api: Api) -> World:
    at = Clock()
    at.at = local("2026-01-01 08:00")
    records = RecordService(api.app, api.engine, api.live.metadata, now=at)
    customer = records.create(
        "customer", {"code": "C00001", "name": "甲", "tier": "A"}, SYSTEM_ACTOR
    )
    product = records.create(
        "product",
        {"code": "SD-100001", "name": "面套", "unit_price": 100, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    ids, labels = {}, {}
    for key, (created, qty, atp, promised, desired, steps) in ORDERS.items():
        at.at = local(created)
        values = {
            "customer": customer["id"],
            "product": product["id"],
            "quantity": qty,
            "desired_date": desired,
            "atp_date": atp,
            "promised_date": promised,
        }
        order = records.create("order", values, SYSTEM_ACTOR)
        for step, moment in steps:
            at.at = local(moment)
            _step(records, order["id"], step, at.at)
        ids[key], labels[key] = order["id"], order["order_no"]
    return World(api, ids, labels)


@pytest.fixture(name="world")
def world_fixture(db_url: str) -> Iterator[World]:
    """The fixed history on a fresh database, the clock at NOW (test_dashboard_pages too)."""
    api = start_api(db_url)
    clock.set_clock(lambda: local(NOW))
    try:
        yield _load(api)
    finally:
        clock.set_clock(None)
        api.live.flows.connectors.close()
        api.engine.dispose()


HEALTH, OUTCOMES = "order_health", "outcomes"


def _values(world: World, dashboard: str = HEALTH) -> dict[str, dict]:
    api = world.api
    got = dashboard_values(api.engine, api.app, dashboard, local(NOW), api.live.metadata)
    return {k["id"]: k for k in got["kpis"]}


def _kpi(world: World, name: str, dashboard: str = HEALTH) -> KpiSpec:
    return next(k for k in world.api.app.dashboards[dashboard].kpis if k.name == name)


def _compute(world: World, kpi: KpiSpec) -> float | int | None:
    api = world.api
    ctx = _Context(api.engine, api.app, local(NOW), api.live.metadata)
    query = compile_kpi(api.app, ctx.metadata, kpi, api.engine.dialect.name, ctx.env, ctx.now)
    with api.engine.connect() as conn:
        return query.finish(conn.execute(query.value_select()).first())


def _drill(world: World, kpi: str, dashboard: str = HEALTH) -> list[str]:
    api = world.api
    got = drill_down(api.engine, api.app, dashboard, kpi, local(NOW), 50, api.live.metadata)
    return [world.name(r["id"]) for r in got["records"]]


# ---------------------------------------------------------------------------- pack KPIs
# 30d = from local midnight 2026-02-19: every order but O6 (January) — the windows below are
# on creation unless said otherwise.


def test_the_six_order_health_kpis_by_hand(world: World) -> None:
    kpis = _values(world)
    assert list(kpis) == [
        "first_response_hours",
        "stock_check_pass_rate",
        "first_pass_approval_rate",
        "schedule_match_rate",
        "tracking_on_time_rate",
        "customer_changes_per_order",
    ]
    # (1) First response (created → first stock_checked), hours: O1 09:00→10:00 = 1,
    #   O2 08:00→11:00 = 3, O3 09:00→14:00 = 5, O5 10:00→12:00 = 2, O7 09:00→11:00 = 2,
    #   O8 09:00→09:30 = 0.5, O10 03:00→05:00 = 2, O11 09:00→09:40 = 2/3; O4, O9 never checked.
    #   sorted 0.5 0.67 1 2 2 2 3 5 → median 2 → not "<= 1", exactly "<= 2": amber (red above 2)
    first = kpis["first_response_hours"]
    assert first["value"] == pytest.approx(2.0) and first["status"] == "amber"
    assert first["target"] == 1.0
    assert first["thresholds"]["amber"] == {"op": "<=", "value": 2.0}
    # (2) Stock check pass rate: population state != draft → O1 O2 O3 O5 O7 O8 O10 O11 (8);
    #   atp set and atp <= desired: O1 (04-10 ≤ 04-15), O3, O5, O8, O10, O11; not O2 (04-20 >
    #   04-12), not O7 (no atp) → 6 / 8 = 75 % → exactly at amber ">= 75"
    stock = kpis["stock_check_pass_rate"]
    assert stock["value"] == pytest.approx(75.0) and stock["status"] == "amber"
    # (3) First-pass approval: decided (entered approved or rejected) → O1 O2 O5 O8 O11; in
    #   approving exactly once and approved → all but O8 (returned, approved the second time)
    #   → 4 / 5 = 80 % → exactly at amber ">= 80". Per order type: all are normal orders.
    approval = kpis["first_pass_approval_rate"]
    assert approval["value"] == pytest.approx(80.0) and approval["status"] == "amber"
    assert approval["groups"] == [
        {"key": "normal", "label": "常规单", "value": 80.0, "status": "amber"}
    ]
    # (4) Schedule match: scheduled date set → O1 (04-12 after the promised 04-10), O2 (04-20 =
    #   04-20), O5 (04-03 before 04-05) → 2 / 3 = 66.67 % → below amber 85: red
    schedule = kpis["schedule_match_rate"]
    assert schedule["value"] == pytest.approx(200 / 3, abs=1e-3)
    assert schedule["status"] == "red"
    # (5) Tracking number within 2 h of shipping (window on the shipping time): O5 shipped
    #   03-03 09:00, number in at 10:30 = 1.5 h → 1 / 1 = 100 % → green
    tracking = kpis["tracking_on_time_rate"]
    assert tracking["value"] == pytest.approx(100.0) and tracking["status"] == "green"
    # (6) Customer changes per order (product, quantity, desired date, type, special process):
    #   O2 and O3 changed their desired date once; 10 orders → 0.2 → exactly "<= 0.2": green
    changes = kpis["customer_changes_per_order"]
    assert changes["value"] == pytest.approx(0.2) and changes["status"] == "green"
    assert [(g["label"], g["value"]) for g in changes["groups"]] == [("甲", 0.2)]
    assert [k["status"] for k in kpis.values()].count("red") == 1  # one light to click


def test_the_outcome_kpis_by_hand(world: World) -> None:
    kpis = _values(world, OUTCOMES)
    # Headline: created → the first progress_to_customer message delivered, hours:
    #   O1 1.1, O2 3.1, O3 5.1, O5 2.1, O8 0.6, O11 0.77 → median (1.1 + 2.1) / 2 = 1.6
    #   → "<= 2.5": green (no message yet for O4 O7 O9 O10)
    first = kpis["first_progress_message_hours"]
    assert first["value"] == pytest.approx(1.6) and first["status"] == "green"
    assert first["target"] == 2.1
    # Stock data accuracy: shipped → O5, whose picking found a mismatch → 0 % → red
    assert kpis["stock_data_accuracy"]["value"] == pytest.approx(0.0)
    assert kpis["stock_data_accuracy"]["status"] == "red"
    # Rework from changes: submitted → O1 O2 O3 O5 O7 O8 O10 O11 (8); returned → O8 → 12.5 %
    #   → not "<= 10": red
    assert kpis["change_rework_rate"]["value"] == pytest.approx(12.5)
    assert kpis["change_rework_rate"]["status"] == "red"
    # Progress inquiries per order: O1 1, O2 2, O8 1 (the "change" notes do not count) over
    #   10 orders → 0.4 → green
    inquiries = kpis["progress_inquiries_per_order"]
    assert inquiries["value"] == pytest.approx(0.4) and inquiries["status"] == "green"
    assert [(g["label"], g["value"]) for g in inquiries["groups"]] == [("甲", 0.4)]
    # Approval (first approving → first approved after it), hours, approving in the window:
    #   O1 0.5, O2 4, O5 1, O8 5 (returned and resubmitted: the first approving counts),
    #   O11 0.5 → median 1 → exactly "<= 1": green
    assert kpis["approval_hours"]["value"] == pytest.approx(1.0)
    assert kpis["approval_hours"]["status"] == "green"
    # Promise alignment: promised and atp set → O1 O2 O3 O5 O8 O11 (O10 has no promise); all
    #   but O3 (04-01 vs 04-30) → 5 / 6 = 83.3 % → amber
    assert kpis["promise_alignment"]["value"] == pytest.approx(500 / 6, abs=1e-3)
    assert kpis["promise_alignment"]["status"] == "amber"
    # Open orders (all time): not draft/delivered/rejected/cancelled → O1 O2 O3 O6 O8 O10 O11
    assert kpis["open_orders"]["value"] == 7
    assert kpis["open_orders"]["status"] == "green"
    # Amount this month (from local 2026-03-01 00:00): O1 1000 + O2 2000 + O3 500 +
    #   O4 100 (00:30 local on 03-01 — still February in UTC) + O7 400 + O8 200 + O11 800 =
    #   5000; O9 (02-28 23:30 local), O5 and O10 are February. No thresholds: status none.
    assert kpis["order_amount"]["value"] == pytest.approx(5000.0)
    assert kpis["order_amount"]["status"] == "none"
    assert kpis["order_amount"]["thresholds"] == {"green": None, "amber": None}


def test_trend_buckets_by_week(world: World) -> None:
    kpis = _values(world)
    trend = kpis["first_response_hours"]["trend"]
    assert trend["bucket"] == "week"
    starts = ["01-26", "02-02", "02-09", "02-16", "02-23", "03-02", "03-09", "03-16"]
    assert [p["start"] for p in trend["points"]] == [f"2026-{s}" for s in starts]
    # 02-16: O10 2 | 02-23: O5 2 | 03-02: O1 1, O2 3 → 2 | 03-09: O3 5, O11 2/3 → 2.8333 |
    # 03-16: O7 2, O8 0.5 → 1.25
    values = [p["value"] for p in trend["points"]]
    assert values[:6] == [None, None, None, 2.0, 2.0, 2.0]
    assert values[6] == pytest.approx(17 / 6, abs=1e-4) and values[7] == 1.25
    approval = [p["value"] for p in _values(world, OUTCOMES)["approval_hours"]["trend"]["points"]]
    # 02-23: O5 1 | 03-02: O1 0.5, O2 4 → 2.25 | 03-09: O11 0.5 | 03-16: O8 5
    assert approval == [None, None, None, None, 1.0, 2.25, 0.5, 5.0]
    first_pass = [p["value"] for p in kpis["first_pass_approval_rate"]["trend"]["points"]]
    # by creation week: 02-23 O5 | 03-02 O1 O2 | 03-09 O11 | 03-16 O8 (not first pass)
    assert first_pass == [None, None, None, None, 100.0, 100.0, 100.0, 0.0]
    assert kpis["stock_check_pass_rate"]["trend"] is None


def test_percentiles_odd_and_even(world: World) -> None:
    first = _kpi(world, "first_response_hours")
    even = [0.5, 2 / 3, 1, 2, 2, 2, 3, 5]  # the 30d window
    odd = [*even, 10]  # all time adds O6: 10:00 → 20:00
    p90 = dataclasses.replace(first, measure="percentile_hours", percentile=90)
    # percentile_cont: position 0.9 × (n − 1); even: 6.3 → 3 + 0.3 × (5 − 3) = 3.6
    assert _compute(world, p90) == pytest.approx(3.6)
    assert statistics.quantiles(even, n=10, method="inclusive")[8] == pytest.approx(3.6)
    # odd: 0.9 × 8 = 7.2 → 5 + 0.2 × (10 − 5) = 6
    all_time = dataclasses.replace(p90, window="all")
    assert _compute(world, all_time) == pytest.approx(6.0)
    assert statistics.quantiles(odd, n=10, method="inclusive")[8] == pytest.approx(6.0)
    median_all = dataclasses.replace(first, window="all")
    assert _compute(world, median_all) == pytest.approx(statistics.median(odd)) == 2.0
    p25 = dataclasses.replace(all_time, percentile=25)  # 0.25 × 8 = 2 → the third value, 1
    assert _compute(world, p25) == pytest.approx(1.0)


def test_windows(world: World) -> None:
    amount = _kpi(world, "order_amount", OUTCOMES)
    # today (2026-03-20): nothing created
    assert _compute(world, dataclasses.replace(amount, window="today")) == 0.0
    # 7d = from local 03-14: O7 400 + O8 200
    assert _compute(world, dataclasses.replace(amount, window="7d")) == pytest.approx(600.0)
    # all: 100 × (10 + 20 + 5 + 1 + 7 + 3 + 4 + 2 + 9 + 6 + 8) = 7500
    assert _compute(world, dataclasses.replace(amount, window="all")) == pytest.approx(7500.0)
    count = dataclasses.replace(amount, measure="count", field=None, window="30d")
    assert _compute(world, count) == 10  # everything but O6
    avg = dataclasses.replace(amount, measure="avg", window="7d")
    assert _compute(world, avg) == pytest.approx(300.0)


def test_drill_down(world: World) -> None:
    # rate: the population NOT in the numerator, newest first
    assert _drill(world, "stock_check_pass_rate") == ["O7", "O2"]
    assert _drill(world, "schedule_match_rate") == ["O1"]
    assert _drill(world, "first_pass_approval_rate") == ["O8"]
    assert _drill(world, "promise_alignment", OUTCOMES) == ["O3"]
    # durations: the longest first (ties by id)
    assert _drill(world, "first_response_hours") == [
        "O3", "O2", "O5", "O7", "O10", "O1", "O11", "O8",
    ]  # fmt: skip
    # on time: the late ones (none here); per record: the most first, then the newest
    assert _drill(world, "tracking_on_time_rate") == []
    assert _drill(world, "customer_changes_per_order")[:2] == ["O3", "O2"]
    assert _drill(world, "progress_inquiries_per_order", OUTCOMES)[:3] == ["O2", "O8", "O1"]
    # count: the records counted, newest first; sum: the largest first
    assert _drill(world, "open_orders", OUTCOMES) == ["O8", "O3", "O11", "O2", "O1", "O10", "O6"]
    assert _drill(world, "order_amount", OUTCOMES) == ["O2", "O1", "O11", "O3", "O7", "O8", "O4"]
    api = world.api
    got = drill_down(api.engine, api.app, HEALTH, "first_response_hours", local(NOW), 2)
    assert [(r["label"], r["value"]) for r in got["records"]] == [
        (world.labels["O3"], 5.0),
        (world.labels["O2"], 3.0),
    ]
    assert got["columns"] == [
        {"name": "customer", "label": "客户"},
        {"name": "order_type", "label": "订单类型"},
        {"name": "channel", "label": "接单渠道"},
    ]
    assert got["records"][0]["fields"] == {
        "customer": "甲",
        "order_type": "常规单",
        "channel": None,
    }
    scheduled = drill_down(api.engine, api.app, HEALTH, "schedule_match_rate", local(NOW))
    assert scheduled["records"][0]["fields"] == {
        "customer": "甲",
        "promised_date": "2026-04-10",
        "scheduled_date": "2026-04-12",
    }


def test_status_boundaries() -> None:
    low = KpiSpec("k", "K", "f", "count", green=ThresholdSpec("<=", 2), amber=ThresholdSpec("<", 4))
    # decided on the value as shown (one place): 2.04 shows "2.0", 3.96 shows "4.0"
    assert [status_of(low, v) for v in (2, 2.04, 2.06, 3.94, 3.96, 4, None)] == [
        "green",
        "green",
        "amber",
        "amber",
        "red",
        "red",
        "none",
    ]
    high = KpiSpec(
        "k", "K", "f", "rate", green=ThresholdSpec(">", 90), amber=ThresholdSpec(">=", 80)
    )
    assert [status_of(high, v) for v in (90.5, 90.04, 80, 79.96, 79.94)] == [
        "green",
        "amber",
        "amber",
        "amber",
        "red",
    ]
    assert status_of(KpiSpec("k", "K", "f", "count"), 5) == "none"


# ---------------------------------------------------------------------------- HTTP
def test_api_values_roles_and_csv(world: World) -> None:
    api = world.api
    api.add_user("ops.viewer", "logistics")
    boss = api.client("li.sales")
    listed = boss.get("/api/dashboards")
    assert listed.status_code == 200, listed.text
    assert [d["name"] for d in listed.json()["dashboards"]] == ["order_health", "outcomes"]
    shown = boss.get("/api/dashboards/order_health")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["name"] == "order_health" and body["title"] == "订单健康度"
    by_id = {k["id"]: k for k in body["kpis"]}
    assert by_id["schedule_match_rate"]["status"] == "red"
    assert set(by_id["first_pass_approval_rate"]) >= {
        "id", "title", "value", "unit", "status", "trend", "target", "groups",
    }  # fmt: skip
    assert by_id["first_pass_approval_rate"]["groups"][0]["label"] == "常规单"
    outcomes = boss.get("/api/dashboards/outcomes").json()
    assert {k["id"]: k["value"] for k in outcomes["kpis"]}["open_orders"] == 7

    outsider = api.client("ops.viewer")
    assert outsider.get("/api/dashboards").json()["dashboards"] == []
    refused = outsider.get("/api/dashboards/order_health")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "forbidden"
    assert outsider.get("/api/dashboards/outcomes/kpis/open_orders/records").status_code == 403
    assert boss.get("/api/dashboards/nope").status_code == 404
    assert boss.get("/api/dashboards/order_health/kpis/nope/records").status_code == 404
    assert boss.get("/api/dashboards/outcomes/kpis/open_orders/records?limit=0").status_code == 422

    drilled = boss.get("/api/dashboards/order_health/kpis/stock_check_pass_rate/records")
    assert drilled.status_code == 200, drilled.text
    assert [r["id"] for r in drilled.json()["records"]] == [world.ids["O7"], world.ids["O2"]]
    exported = boss.get("/api/dashboards/order_health/kpis/stock_check_pass_rate/records.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", "label", "state", "value", "客户", "期望交付日", "可承诺交付日"]
    assert rows[1:] == [
        [str(world.ids["O7"]), world.labels["O7"], "cancelled", "", "甲", "2026-04-30", ""],
        [
            str(world.ids["O2"]),
            world.labels["O2"],
            "scheduled",
            "",
            "甲",
            "2026-04-12",
            "2026-04-20",
        ],
    ]


# ---------------------------------------------------------------------------- validate
DASHBOARD = """\
title: Items
kpis:
  big:
    title: Big items
    form: item
    measure: rate
    where: "qty > 0"
    numerator: "{expr}"
"""


@pytest.mark.parametrize(
    ("expr", "col"),
    [
        ("len(name) > 3", 17),
        ("qty ** 2 > 4", 17),
        ("qty > 1 and startswith(name, 'x')", 29),
        ("hours_between(created_at, updated_at) > 1", 17),
        ("qty % 2 == 0", 17),
    ],
)
def test_validate_refuses_what_sql_cannot_run(make_app, expr: str, col: int) -> None:
    from conftest import MINIMAL_FORM

    result = make_app(
        {"forms/item.yaml": MINIMAL_FORM, "dashboards/d.yaml": DASHBOARD.format(expr=expr)}
    )
    found = [c for c in codes(result) if c[3] != "unknown-function"]
    assert ("d.yaml", 8, col, "not-sql") in found, found
    message = next(d for d in result.diagnostics.sorted() if d.code == "not-sql").message
    assert "cannot run in the database" in message.en


@pytest.mark.parametrize(
    "expr",
    [
        "qty >= 2 and qty < 10 or name == None",
        "1 < qty <= 5 and not (name in ('a', 'b'))",
        "qty * 2 + 1 > 3 and name != None and created_at >= date(2026, 1, 1)",
        "abs(qty - 3) <= 1 or lower(name) == 'x'",
    ],
)
def test_validate_accepts_sql_conditions(make_app, expr: str) -> None:
    from conftest import MINIMAL_FORM

    result = make_app(
        {"forms/item.yaml": MINIMAL_FORM, "dashboards/d.yaml": DASHBOARD.format(expr=expr)}
    )
    assert result.app is not None, result.diagnostics.sorted()


def test_pack_validates() -> None:
    from engine.compile import compile_app

    result = compile_app(Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack")
    assert result.app is not None
    assert not [d for d in result.diagnostics.sorted() if d.code == "not-sql"]
