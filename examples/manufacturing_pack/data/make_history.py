"""Generate a realistic order history into a deployed pack database (deterministic per seed).

    python examples/manufacturing_pack/data/make_history.py --db URL --orders N [--seed S]
        [--customers 200] [--products 12000] [--end YYYY-MM-DD]

~200 customers (tiers VIP/A/B/C, regions), products from data/products.csv and N orders over
the year before ``--end`` (default: now) — the newest of them stopping in each state a role of
the demo tour works on (``HALTS``), created in the last three working days, or as long before
as reaching that state takes (shipping waits for the promised date), so the history stops with
orders in flight on any day — each walked through the pack's state machine (draft →
submitted → [stock_pending] → stock_checked → approving → approved → scheduled → shipped →
delivered → invoiced within days, once the communication log holds a note; some returned,
rejected or cancelled) with seeded-random, business-hours-biased
timings. Rows and events are written in bulk, but look like what the records service writes:
the same columns, "created" / "transition" / "changed" / "child_added" events with the same
payloads, computed fields evaluated by the pack's own expressions, order numbers in the
autonumber's format (and ``sl_counters`` moved past them), and every event hash computed with
``engine.store.events`` in id order, with the chain head updated — ``seamline audit verify`` passes.

What the dashboards read is there too: the scheduled date set when scheduling (some after the
promised date), the stock mismatch some shipments find, the tracking number entered after
shipping (late for some) with ``tracking_at`` set as the pack's automation does, the
customer's progress messages delivered (``notify_sent`` of ``progress_to_customer`` seconds —
for a few, hours — after each state it reports) and the communication log: the customer's
progress inquiries and changes (``topic`` progress / change). The promise-date gate is passed as
the service passes it: the salesperson and the production director each confirm the promised
date (``confirmed`` events) before ``confirm_promise``, and a later change of the promised or
ATP date while confirmations stand writes ``confirm_reopened`` with what lapsed.

Not generated: the rest of the flow-run bookkeeping (``flow_started``/``flow_step``/
``notify_queued`` events and ``sl_flow_runs``/``sl_jobs`` rows) and approval instances
(``sl_approvals``, tasks, decision events); the outcome transitions are fired by the approver,
as the approvals service does. ``seamline demo`` starts, through the approvals service, the
approvals of the orders this leaves in approval, and fires the transitions it leaves pending
(``Result.pending``: a few newest drafts to submit, whose stock check then runs for real).
The database is deployed first when it is empty. Events are written in time order (a heap
merges each order's future events with the orders created later), a batch of 2,000 orders per
transaction, stored by a second process while the next batch is made (``StoreBehind``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import heapq
import math
import multiprocessing
import pickle
import queue
import random
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from rich.progress import Progress

HERE = Path(__file__).resolve().parent
PACK = HERE.parent
sys.path.insert(0, str(PACK.parents[1]))

from engine.compile import compile_app  # noqa: E402
from engine.demo.modules import call_in_file  # noqa: E402
from engine.deploy.apply import bundle_sources, deploy, latest_deployment  # noqa: E402
from engine.expressions import EvalEnv  # noqa: E402
from engine.expressions.evaluate import AppRuntime  # noqa: E402
from engine.forms.records import RecordChecks, _as_result  # noqa: E402
from engine.forms.rows import plain  # noqa: E402
from engine.model.calendar import WorkCalendar  # noqa: E402
from engine.model.spec import App, FormSpec  # noqa: E402
from engine.store.autonumber import render_prefix  # noqa: E402
from engine.store.events import GENESIS, canonical, event_hash  # noqa: E402
from engine.store.storage import create_db_engine  # noqa: E402
from engine.store.tables import build_metadata  # noqa: E402

SALES = ("li.sales", "zhang.sales", "sun.sales")
CREATORS = (*SALES, "chen.cs")
APPROVERS = ("huang.fin", "zhao.fin", "wang.gm")
FINANCE = ("huang.fin", "zhao.fin")  # invoice delivered orders
SYSTEM = "system"
TIERS = {"VIP": 1, "A": 3, "B": 4, "C": 2}
TIER_VOLUME = {"VIP": 6.0, "A": 2.5, "B": 1.0, "C": 0.5}  # orders per customer, relative
REGIONS = {"华东": 6, "华南": 2, "华北": 1, "华中": 2, "西南": 1, "海外": 1}
CITY = {
    "华东": "宁波",
    "华南": "广州",
    "华北": "天津",
    "华中": "武汉",
    "西南": "重庆",
    "海外": "曼谷",
}
SPECIAL = ("真皮包覆", "激光打孔", "高频焊接", "装饰缝线", "阻燃处理", "防水涂层", "定制压纹")
CHANNELS = {"企业微信": 6, "电话": 3, "邮件": 2, "面谈": 1}
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
BATCH = 2000  # orders per transaction
BULK_CACHE_KIB = 128 * 1024  # the loader's SQLite page cache (see tune_for_bulk_load)
STATEMENT_PARAMS = 32_000  # parameters in one multi-row INSERT (SQLite's limit: 32,766)
OPEN, CLOSE = time(8, 30), time(17, 30)
DIRECTOR = "zhou.pd"  # confirms the promised date for production, schedules
LOG = "communication_log"
CHILD = f"f_order__{LOG}"
CONCLUSIONS = {
    "progress": "客户询问订单进度，已告知当前环节和预计交付日",
    "change": "客户要求修改订单，已按要求调整",
    "other": "客户确认收货，数量与质量无误，同意开票",
}
INQUIRIES = {0: 30, 1: 30, 2: 20, 3: 10, 4: 6, 5: 4}  # progress inquiries per order, weights


T = TypeVar("T")


class Stop(Exception):
    """The order's next step would fall after the end of the history."""


@dataclass(frozen=True)
class Master:
    id: int
    values: dict[str, Any]


@dataclass
class Order:
    """One order being walked through the state machine; collects its events."""

    id: int
    values: dict[str, Any]
    created_at: datetime
    created_by: str
    product: Master
    customer: Master
    state: str = "draft"
    version: int = 1
    updated_at: datetime | None = None
    events: list[tuple[datetime, str, str, str]] = field(default_factory=list)
    notes: list[tuple[datetime, str, str]] = field(default_factory=list)  # (at, actor, topic)
    confirmed: list[dict[str, Any]] = field(default_factory=list)  # standing at the gate
    halt: str | None = None  # a newest order stops in this state (see HALTS)

    def row(self) -> dict[str, Any]:
        return {
            **self.values,
            "id": self.id,
            "state": self.state,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at or self.created_at,
            "created_by": self.created_by,
        }


class History:
    """The pack, its calendar and the random source shared by every order."""

    def __init__(self, app: App, rng: random.Random, end: datetime) -> None:
        self.app = app
        self.rng = rng
        self.end = end
        self.tz = ZoneInfo(app.timezone)
        self.calendar: WorkCalendar = AppRuntime.of(app).calendar
        self.env = EvalEnv(calendar=self.calendar, now=lambda: end, timezone=app.timezone)
        self.checks = RecordChecks(app, now=lambda: end)  # a transition's set:, as the service
        self.form: FormSpec = app.forms["order"]
        machine = app.state_machines["order"]
        self.transitions = {t.name: t for t in machine.transitions}
        self.number_format = self.form.by_name["order_no"].format or ""
        self.counters: dict[str, int] = {}
        self.workday_cache: dict[tuple[date, int], date] = {}
        self.state_labels = {s.name: s.label for s in machine.states}
        progress = next(a for a in app.automations if a.name == "progress_to_customer")
        self.progress_states = set(progress.on.names)  # the states it reports
        self.gate = self.transitions["confirm_promise"].confirm
        assert self.gate is not None
        self.computed_specs = [
            f for f in self.form.fields if f.type == "computed" and f.expr is not None
        ]
        # fields the computed ones read: changing anything else leaves them as they are
        self.computed_inputs = {n.split(".")[0] for f in self.computed_specs for n in f.expr.names}  # type: ignore[union-attr]

    # ------------------------------------------------------------------ time
    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def office(self, moment: datetime) -> bool:
        local = self.local(moment)
        return self.calendar.is_workday(local.date()) and OPEN <= local.time() < CLOSE

    def next_opening(self, moment: datetime) -> datetime:
        day = self.local(moment).date()
        if self.local(moment).time() >= OPEN:
            day += timedelta(days=1)
        while not self.calendar.is_workday(day):
            day += timedelta(days=1)
        return datetime.combine(day, OPEN, tzinfo=self.tz).astimezone(UTC)

    def after(self, moment: datetime, minutes: float, people: bool = True) -> datetime:
        """``minutes`` later; a person's step mostly lands in office hours (next opening)."""
        result = moment + timedelta(minutes=minutes, microseconds=self.rng.randrange(10**6))
        if people and not self.office(result) and self.rng.random() < 0.9:
            result = self.next_opening(result) + timedelta(minutes=self.rng.expovariate(1 / 40))
        return result

    def minutes(self, median: float, spread: float = 0.8) -> float:
        return self.rng.lognormvariate(math.log(median), spread)

    def workdays(self, day: date, n: int) -> date:
        key = (day, n)
        found = self.workday_cache.get(key)
        if found is None:
            found = self.workday_cache[key] = self.calendar.add_workdays(day, n)
        return found

    # ------------------------------------------------------------------ values
    def computed(self, order: Order) -> None:
        """The form's computed fields, by the pack's own expressions (as the service does)."""
        ctx = dict(order.values)
        ctx.update(state=order.state, id=order.id, customer=order.customer.values)
        ctx["product"] = order.product.values
        for _ in range(2):
            for spec in self.computed_specs:
                value = _as_result(spec, spec.expr(ctx, self.env))  # type: ignore[misc]
                order.values[spec.name] = ctx[spec.name] = value

    def order_no(self, moment: datetime) -> str:
        prefix = render_prefix(self.number_format, self.local(moment))
        self.counters[prefix] = self.counters.get(prefix, 0) + 1
        return prefix.replace("{seq:5}", f"{self.counters[prefix]:05d}")

    # ------------------------------------------------------------------ events
    def emit(self, order: Order, at: datetime, actor: str, kind: str, payload: Any) -> None:
        if at > self.end:
            raise Stop
        order.events.append((at, actor, kind, canonical(payload)))
        if kind in ("changed", "transition"):  # what the service writes to the row
            order.version += 1
            order.updated_at = at

    def move(self, order: Order, at: datetime, actor: str, name: str) -> None:
        transition = self.transitions[name]
        assert order.state in transition.sources, (order.state, name)
        if order.halt == order.state:
            raise Stop  # a newest order waits here when the history ends
        payload: dict[str, Any] = {"name": name, "from": order.state, "to": transition.target}
        if transition.sets:  # e.g. submit keeps the unit price: the service's own code
            loaded = {"customer": order.customer.values, "product": order.product.values}
            record = {**order.values, "state": order.state, "id": order.id}
            values = self.checks.transition_values(self.form, record, transition.sets, loaded)
            changes = {k: [order.values.get(k), v] for k, v in values.items()}
            changes = {k: pair for k, pair in changes.items() if pair[0] != pair[1]}
            order.values.update(values)
            if changes:
                payload["changes"] = plain(changes)
        self.emit(order, at, actor, "transition", payload)
        order.state = transition.target
        if name == "confirm_promise":
            order.confirmed = []  # passing the gate uses the confirmations up
        if order.state in self.progress_states:
            self.progress_message(order, at)

    def confirm(self, order: Order, at: datetime, actor: str, role: str) -> None:
        """``actor`` confirms the promised date at the gate, as the service records it."""
        assert self.gate is not None
        if order.halt == order.state and role == "production_director":
            raise Stop  # sales confirmed; the director has not yet
        value = plain(order.values[self.gate.field])
        payload = {
            "transition": "confirm_promise",
            "field": self.gate.field,
            "role": role,
            "value": value,
        }
        self.emit(order, at, actor, "confirmed", payload)
        order.confirmed.append({"role": role, "user": actor, "value": value})

    def progress_message(self, order: Order, at: datetime) -> None:
        """The worker delivers progress_to_customer's message: seconds later, or — the WeCom
        robot down, retried with backoff — hours later; none when that is after the end."""
        if self.rng.random() < 0.03:
            delay = timedelta(hours=self.rng.uniform(1, 6))
        else:
            delay = timedelta(seconds=self.rng.uniform(2, 40))
        if at + delay > self.end:
            return
        title = f"订单 {order.values['order_no']} 进度：{self.state_labels[order.state]}"
        payload = {
            "via": "wecom",
            "title": title,
            "attempts": 1 if delay < timedelta(minutes=5) else self.rng.randint(2, 5),
            "automation": "progress_to_customer",
        }
        self.emit(order, at + delay, "flow", "notify_sent", payload)

    def note(self, order: Order, at: datetime, actor: str, topic: str) -> None:
        """A communication-log row (its child_added event is written with the row's id)."""
        at = max(at, order.created_at + timedelta(seconds=1))
        if at <= self.end:
            order.notes.append((at, actor, topic))

    def change(self, order: Order, at: datetime, actor: str, updates: Mapping[str, Any]) -> None:
        if at > self.end:
            raise Stop
        before = dict(order.values)
        order.values.update(updates)
        touched = list(updates)  # what can differ now: the updates and what follows from them
        if not self.computed_inputs.isdisjoint(updates):
            self.computed(order)
            touched += [spec.name for spec in self.computed_specs]
        changes = {
            k: [before.get(k), order.values[k]] for k in touched if before.get(k) != order.values[k]
        }
        if changes:
            self.emit(order, at, actor, "changed", {"changes": plain(changes)})
        assert self.gate is not None
        watched = sorted(set(self.gate.watched) & set(changes))
        if watched and order.confirmed:  # the gate re-opens, as the service's listener says
            payload = {
                "transition": "confirm_promise",
                "field": self.gate.field,
                "changed": watched,
                "lapsed": order.confirmed,
            }
            self.emit(order, at, actor, "confirm_reopened", payload)
            order.confirmed = []


def entered(order: Order) -> datetime:
    """When the order came into its state: its last transition, or its creation."""
    moves = [at for at, _, kind, _ in order.events if kind == "transition"]
    return max(moves, default=order.created_at)


def created_payload(order: Order) -> dict[str, Any]:
    row = {**order.values, "state": order.state}
    return {"values": plain({k: v for k, v in row.items() if v is not None})}


# ---------------------------------------------------------------------------- one order
class OrderWalk:
    """The life of one order: its values at creation, then its steps until --end."""

    def __init__(self, h: History, order: Order) -> None:
        self.h, self.o = h, order
        self.rng = h.rng
        self.sales = order.created_by if order.created_by in SALES else self.rng.choice(SALES)

    def run(self, slow: bool) -> None:
        with contextlib.suppress(Stop):
            self.walk(slow)
        self.inquiries()
        if self.o.state == "delivered":
            with contextlib.suppress(Stop):
                self.invoice(self.o.updated_at or self.o.created_at)

    def walk(self, slow: bool) -> None:
        h, o, rng = self.h, self.o, self.rng
        at = o.created_at
        if rng.random() < 0.12:  # the customer changes something before submission
            at = h.after(at, h.minutes(20))
            self.edit(at, self.sales)
        if rng.random() < 0.02:
            h.move(o, h.after(at, h.minutes(60 * 24)), self.sales, "cancel")
            return
        for attempt in range(3):
            at = self.submit(at, slow and attempt == 0)
            at, aligned = self.stock_and_promise(at)
            if not aligned:
                if rng.random() < 0.6:
                    h.move(o, h.after(at, h.minutes(60 * 20)), self.sales, "cancel")
                    return
                at = h.after(at, h.minutes(180))
                h.move(o, at, self.sales, "revise")
                at = self.rework(at)
                continue
            at = h.after(at, h.minutes(4))
            h.confirm(o, at, self.sales, "sales")
            at = h.after(at, h.minutes(6))
            h.confirm(o, at, DIRECTOR, "production_director")
            at += timedelta(seconds=rng.uniform(5, 60))
            h.move(o, at, self.sales, "confirm_promise")
            at = h.after(at, h.minutes(70, 1.0))
            roll = rng.random()
            approver = rng.choice(APPROVERS)
            if roll < 0.04:
                h.move(o, at, approver, "reject")
                return
            if roll < 0.12 and attempt < 2:
                h.move(o, at, approver, "return_for_changes")
                at = self.rework(at)
                continue
            h.move(o, at, approver, "approve")
            self.fulfil(at)
            return

    def submit(self, at: datetime, slow: bool) -> datetime:
        h = self.h
        delay = h.minutes(60 * 8, 0.9) if slow else h.minutes(35, 0.7)
        at = h.after(at, delay)
        h.move(self.o, at, self.sales, "submit")
        return at

    def stock_and_promise(self, at: datetime) -> tuple[datetime, bool]:
        """The stock-check flow (maybe waiting on the warehouse), then the promise date."""
        h, o, rng = self.h, self.o, self.rng
        if rng.random() < 0.08:
            at = h.after(at, rng.uniform(0.05, 1), people=False)
            h.move(o, at, SYSTEM, "stock_wait")
            at = h.after(at, h.minutes(150, 1.0), people=False)
        else:
            at = h.after(at, h.minutes(6, 0.9), people=False)
        atp = self.atp(h.local(at).date())
        explanation = f"可用库存与在途采购可满足 {o.values['quantity']} 件，按生产周期最早 {atp}"
        h.change(o, at, SYSTEM, {"atp_date": atp, "atp_explanation": explanation})
        at += timedelta(seconds=rng.uniform(0.2, 3))
        h.move(o, at, SYSTEM, "stock_ok")
        promised = self.promise(atp)
        if promised != o.values.get("promised_date"):
            at = h.after(at, h.minutes(40))
            h.change(o, at, self.sales, {"promised_date": promised})
        return at, o.values["promise_gap_days"] <= 2

    def atp(self, today: date) -> date:
        desired: date = self.o.values["desired_date"]
        lead = int(self.o.product.values["lead_days"])
        if self.rng.random() < 0.86:
            earliest = self.h.workdays(today, min(lead, 5))
            return max(earliest, self.h.workdays(desired, -self.rng.randint(0, 4)))
        return self.h.workdays(desired, self.rng.randint(1, 12))

    def promise(self, atp: date) -> date:
        roll = self.rng.random()
        if roll < 0.78:
            return atp
        if roll < 0.93:
            return self.h.workdays(atp, self.rng.choice((-2, -1, 1, 2)))
        return self.h.workdays(atp, self.rng.choice((-6, -4, 4, 8)))

    def edit(self, at: datetime, actor: str) -> None:
        """The customer changes the quantity or the date; sales logs the call."""
        rng, values = self.rng, self.o.values
        self.h.note(self.o, at - timedelta(minutes=rng.uniform(2, 30)), actor, "change")
        if rng.random() < 0.6:
            quantity = max(1, int(values["quantity"] * rng.uniform(0.6, 1.5)))
            self.h.change(self.o, at, actor, {"quantity": quantity})
        else:
            later = self.h.workdays(values["desired_date"], rng.randint(1, 8))
            self.h.change(self.o, at, actor, {"desired_date": later})

    def rework(self, at: datetime) -> datetime:
        at = self.h.after(at, self.h.minutes(90))
        self.edit(at, self.sales)
        return at

    def fulfil(self, at: datetime) -> None:
        h, o, rng = self.h, self.o, self.rng
        at = h.after(at, h.minutes(60 * 5, 1.0))
        promised: date = o.values["promised_date"]
        if rng.random() < 0.9:  # production meets the promise, mostly with a day or two spare
            scheduled = h.workdays(promised, -rng.randint(0, 3))
        else:
            scheduled = h.workdays(promised, rng.randint(1, 5))
        h.change(o, at, DIRECTOR, {"scheduled_date": scheduled})
        h.move(o, at + timedelta(seconds=rng.uniform(1, 20)), DIRECTOR, "schedule")
        ship_day = max(h.local(at).date(), h.workdays(scheduled, -rng.randint(0, 2)))
        ship = datetime.combine(ship_day, time(9), tzinfo=h.tz).astimezone(UTC)
        at = h.after(max(ship, at), h.minutes(120))
        if rng.random() < 0.015:  # picking finds less than the stock check said
            h.change(
                o, at - timedelta(minutes=rng.uniform(5, 60)), "liu.wh", {"stock_mismatch": True}
            )
        h.move(o, at, "ma.log", "ship")
        delivered = h.after(at, 60 * 24 * rng.uniform(0.5, 3))
        if rng.random() < 0.85:  # the carrier's number comes back within the hour or so
            tracked = at + timedelta(minutes=h.minutes(25, 0.7))
        else:
            tracked = at + timedelta(hours=rng.uniform(2.5, 30))
        tracked = min(tracked, delivered - timedelta(minutes=1))
        h.change(o, tracked, "ma.log", {"tracking_no": f"SF{rng.randrange(10**12):012d}"})
        h.change(
            o, tracked + timedelta(seconds=rng.uniform(1, 20)), SYSTEM, {"tracking_at": tracked}
        )
        h.move(o, delivered, rng.choice(("ma.log", "chen.cs")), "deliver")

    def invoice(self, delivered: datetime) -> None:
        """Finance invoices within days of the delivery — once the communication log holds a
        note (the pack's guard): without one, sales first logs the customer's confirmation of
        receipt, some days later (the orders that wait for it are what the guard is for)."""
        h, o, rng = self.h, self.o, self.rng
        at = h.after(delivered, h.minutes(60 * 24 * 2, 0.6))
        if not any(when <= at for when, _, _ in o.notes):
            at = h.after(at, h.minutes(60 * 24 * 3, 1.0))
            h.note(o, at, self.sales, "other")
            at = h.after(at, h.minutes(60 * 4))
        h.move(o, at, rng.choice(FINANCE), "invoice")

    def inquiries(self) -> None:
        """The customer asks sales how the order is doing, until it is delivered (or ends)."""
        h, o, rng = self.h, self.o, self.rng
        count = rng.choices(list(INQUIRIES), weights=list(INQUIRIES.values()))[0]
        last = o.updated_at or o.created_at
        span = max((last - o.created_at).total_seconds(), 3600.0)
        for _ in range(count):
            at = h.after(o.created_at, rng.uniform(0, span) / 60)
            h.note(o, at, self.sales, "progress")


# ---------------------------------------------------------------------------- master data
def load_products(limit: int) -> list[dict[str, Any]]:
    with (HERE / "products.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:limit]
    return [
        {**r, "unit_price": Decimal(r["unit_price"]), "lead_days": int(r["lead_days"])}
        for r in rows
    ]


def make_customers(rng: random.Random, count: int) -> list[dict[str, Any]]:
    with (HERE / "customers.csv").open(encoding="utf-8") as f:
        rows: list[dict[str, Any]] = [dict(r) for r in csv.DictReader(f)][:count]
    for i in range(len(rows) + 1, count + 1):
        region = rng.choices(list(REGIONS), weights=list(REGIONS.values()))[0]
        rows.append(
            {
                "code": f"C{i:05d}",
                "name": f"{CITY[region]}{rng.choice(['汽车', '汽配', '车业'])}"
                f"{rng.choice(['制造', '科技', '工业'])}有限公司{i}",
                "tier": rng.choices(list(TIERS), weights=list(TIERS.values()))[0],
                "region": region,
                "contact": f"联系人{i}",
                "phone": f"1390575{i:04d}",
                "wecom_id": f"wx_c{i:05d}",
            }
        )
    for row in rows:
        row["credit_limit"] = Decimal(rng.choice((200_000, 500_000, 1_000_000, 3_000_000)))
    return rows


# ---------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class Batch:
    """One transaction of the history: rows per table, events, the chain head after them."""

    rows: Mapping[str, list[dict[str, Any]]]
    events: list[dict[str, Any]]
    last_id: int
    last_hash: str


class Writer:
    """Bulk inserts, and the event chain continued from the database's head."""

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData) -> None:
        self.engine = engine
        self.metadata = metadata
        self.events = metadata.tables["sl_events"]
        self.head = metadata.tables["sl_chain_head"]
        with engine.connect() as conn:
            row = conn.execute(sa.select(self.head).where(self.head.c.id == 1)).first()
        self.has_head = row is not None
        self.last_id: int = row.last_id if row else 0
        self.last_hash: str = row.last_hash if row else GENESIS
        self.written = 0

    def next_id(self, table: str) -> int:
        t = self.metadata.tables[table]
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(t.c.id))).scalar() or 0) + 1

    def chain(self, form: str, record_id: int, event: tuple[datetime, str, str, str]) -> dict:
        at, actor, kind, payload = event
        self.last_id += 1
        digest = event_hash(self.last_hash, self.last_id, at, actor, form, record_id, kind, payload)
        row = {
            "id": self.last_id,
            "at": at,
            "actor": actor,
            "form": form,
            "record_id": record_id,
            "kind": kind,
            "payload": payload,
            "prev_hash": self.last_hash,
            "hash": digest,
        }
        self.last_hash = digest
        return row

    def write(self, rows: Mapping[str, list[dict[str, Any]]], events: list[dict]) -> None:
        self.store(self.batch(rows, events))

    def batch(self, rows: Mapping[str, list[dict[str, Any]]], events: list[dict]) -> Batch:
        """What :meth:`store` writes: ``rows`` and the events chained so far (the head now)."""
        self.written += len(events)
        return Batch(rows, events, self.last_id, self.last_hash)

    def store(self, batch: Batch) -> None:
        """One transaction: the rows of each table, the events, the chain head."""
        with self.engine.begin() as conn:
            for table, items in batch.rows.items():
                if items:
                    insert_many(conn, self.metadata.tables[table], items)
            if batch.events:
                insert_many(conn, self.events, batch.events)
                self.move_head(conn, batch)

    def move_head(self, conn: sa.Connection, batch: Batch) -> None:
        values = {"last_id": batch.last_id, "last_hash": batch.last_hash}
        if self.has_head:
            conn.execute(self.head.update().where(self.head.c.id == 1).values(values))
        else:
            conn.execute(self.head.insert().values(id=1, **values))
            self.has_head = True


def store_batches(url: str, metadata: sa.MetaData, batches: Any, done: Any) -> None:
    """The storing process of :class:`StoreBehind`: stores each batch from ``batches`` in one
    transaction, in order, until None; then puts None on ``done`` — or, on a failure, its
    traceback as text, and stores nothing more (only plain values cross the process boundary,
    see :meth:`StoreBehind.write`). Ctrl-C is the making process's to handle: it waits for the
    batches it handed over, as it did for its thread. A making process that is gone ends this
    one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    engine = create_db_engine(url)
    tune_for_bulk_load(engine)
    try:
        writer = Writer(engine, metadata)
        while True:
            try:
                batch = batches.get(timeout=1)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    raise StoreFailed("the making process ended before its last batch") from None
                continue
            if batch is None:
                break
            writer.store(Batch(*pickle.loads(batch)))
        done.put(None)
    except BaseException as exc:  # told to the making process, which raises it
        done.put("".join(traceback.format_exception(exc)).rstrip())
    finally:
        engine.dispose()


class StoreFailed(Exception):
    """The storing process failed; the message is its traceback (or why it ended)."""


class StoreBehind:
    """Stores the writer's batches in a second process while the next ones are made. Making
    and chaining the orders' events and inserting them (the event log's indexes take most
    inserts at a random place) each take most of a core; in one process, the writing thread
    and the making one shared a GIL. The process is started with ``spawn`` (the demo runs
    server threads beside it) through :func:`engine.demo.modules.call_in_file`, as this file
    is loaded by path. Batches are stored in order, at most ``depth`` wait; a failure is
    raised by the next write or by close."""

    def __init__(self, writer: Writer, url: str, depth: int = 2) -> None:
        self.writer = writer
        context = multiprocessing.get_context("spawn")
        self.batches: Any = context.Queue(maxsize=depth)
        # exiting must not wait for the queue's feeder thread if the storing process is gone
        # with a batch half sent: close() waits for that process's own answer instead
        self.batches.cancel_join_thread()
        self.done: Any = context.Queue()
        name = "make_history" if __name__ == "__main__" else __name__
        self.process = context.Process(
            target=call_in_file,
            args=(__file__, name, "store_batches", url, writer.metadata, self.batches, self.done),
            name="history-writer",
            daemon=True,
        )
        self.process.start()

    def write(self, rows: Mapping[str, list[dict[str, Any]]], events: list[dict]) -> None:
        batch = self.writer.batch(rows, events)
        # pickled here, as plain values: the queue's feeder thread would drop an item it cannot
        # pickle with only a message on stderr — and a Batch from a second load of this file
        # (a test and the demo both load it) does not pickle by name
        values = (batch.rows, batch.events, batch.last_id, batch.last_hash)
        self._put(pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL))

    def close(self) -> None:
        """Wait until every batch is stored."""
        self._put(None)
        try:
            while True:
                try:
                    outcome = self.done.get(timeout=0.5)
                    break
                except queue.Empty:
                    if not self.process.is_alive():
                        raise self._ended() from None
        finally:
            self.process.join(timeout=10)
        if outcome is not None:
            raise StoreFailed(outcome)

    def _put(self, batch: bytes | None) -> None:
        while True:
            if not self.done.empty():
                raise StoreFailed(self.done.get())
            if not self.process.is_alive():
                raise self._ended()
            try:
                self.batches.put(batch, timeout=0.5)
                return
            except queue.Full:
                continue

    def _ended(self) -> StoreFailed:
        return StoreFailed(
            f"the history's storing process ended (exit code {self.process.exitcode}) "
            "before its batches were stored"
        )


def insert_many(conn: sa.Connection, table: sa.Table, items: list[dict[str, Any]]) -> None:
    """``table.insert()`` of ``items`` (dicts with the keys of the first), each value through
    its column type's own bind processor (the values SQLAlchemy would send), handed straight
    to the driver: SQLAlchemy's per-row parameter handling cost more than the insert. On
    PostgreSQL the rows go through ``COPY`` (:func:`copy_rows`; the 42,000-order demo's
    history 104 → 46 s against executemany); on SQLite many rows go in one statement
    (``VALUES (…), (…)``): one call into the driver per few thousand rows, not one per row."""
    dialect = conn.dialect
    compiled = table.insert().compile(dialect=dialect, column_keys=list(items[0]))
    names = list(compiled.positiontup or items[0])
    values = [[item[name] for name in names] for item in items]
    for i, name in enumerate(names):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            for row in values:
                row[i] = process(row[i])
    if dialect.name == "postgresql":
        copy_rows(conn, table, names, values)
        return
    if not compiled.positional:
        rows = [dict(zip(names, row, strict=True)) for row in values]
        conn.exec_driver_sql(compiled.string, rows)
        return
    head, group = compiled.string.split(" VALUES ")
    per = max(1, STATEMENT_PARAMS // len(names))
    for start in range(0, len(values), per):
        chunk = values[start : start + per]
        sql = f"{head} VALUES {', '.join([group] * len(chunk))}"
        conn.exec_driver_sql(sql, tuple(value for row in chunk for value in row))


def copy_rows(
    conn: sa.Connection, table: sa.Table, names: list[str], values: list[list[Any]]
) -> None:
    """PostgreSQL: ``values`` (bound as SQLAlchemy binds them) into ``table`` through one
    ``COPY … FROM STDIN`` in the connection's transaction — one stream, where executemany
    runs the insert once per row."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {quote(table.name)} ({columns}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
    finally:
        cursor.close()


def tune_for_bulk_load(engine: sa.Engine) -> None:
    """Give the loader's SQLite connections a larger page cache: the event log's indexes (the
    hash, the record and the KPI indexes) take every insert at a random place, and with the
    default 2 MB most of their pages are read again for each batch (42,000 orders: the writing
    thread's 65 s become 55 s, for about 120 MB more memory). Only this engine's connections,
    which :func:`generate` disposes of when done."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _cache(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA cache_size=-{BULK_CACHE_KIB}")


_SECONDARY = sa.text(
    """
    SELECT t.relname AS tab, c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition,
           con.conname AS constraint_name, pg_get_constraintdef(con.oid) AS constraint_def
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_class t ON t.oid = i.indrelid
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.contype = 'u'
    WHERE t.relname = ANY(:tables) AND t.relkind = 'r' AND NOT i.indisprimary
      AND pg_table_is_visible(t.oid)
      AND NOT EXISTS (SELECT 1 FROM pg_constraint f
                      WHERE f.contype = 'f' AND f.conindid = i.indexrelid)
    ORDER BY t.relname, c.relname
    """
)
BULK_TABLES = ("sl_events", "f_order", CHILD)


@dataclass(frozen=True)
class SetAside:
    """A secondary index (or unique constraint) dropped for a bulk load, to be made again."""

    table: str
    name: str
    create: str


def set_indexes_aside(engine: sa.Engine) -> list[SetAside]:
    """PostgreSQL: drop the secondary indexes of the tables the history fills (the hash's
    unique key, the event and KPI indexes, the search indexes) and return how to make them
    again — at a million orders, keeping them up to date row by row slowed the load to a
    crawl (the hash key alone takes every insert at a random place). Made again by
    :func:`restore_indexes`, sorted in one pass each. Nothing on SQLite."""
    if engine.dialect.name != "postgresql":
        return []
    aside = []
    with engine.begin() as conn:
        for row in conn.execute(_SECONDARY, {"tables": list(BULK_TABLES)}):
            if row.constraint_name is not None:
                create = (
                    f'ALTER TABLE "{row.tab}" ADD CONSTRAINT "{row.constraint_name}" '
                    f"{row.constraint_def}"
                )
                conn.execute(
                    sa.text(f'ALTER TABLE "{row.tab}" DROP CONSTRAINT "{row.constraint_name}"')
                )
            else:
                create = row.definition
                conn.execute(sa.text(f'DROP INDEX "{row.name}"'))
            aside.append(SetAside(row.tab, row.name, create))
    return aside


def restore_indexes(engine: sa.Engine, aside: list[SetAside]) -> None:
    """Make the indexes :func:`set_indexes_aside` dropped (one transaction)."""
    if not aside:
        return
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        for index in aside:
            conn.execute(sa.text(index.create))


def ensure_deployed(engine: sa.Engine, app: App, sources: Mapping[str, str]) -> None:
    with engine.connect() as conn:
        deployed = latest_deployment(conn)
    if deployed is None:
        deploy(engine, app, sources, actor="make_history")


def masters(
    writer: Writer, h: History, form: str, rows: list[dict[str, Any]], at: datetime
) -> list[Master]:
    """Create the master records (and their "created" events) in one transaction."""
    first = writer.next_id(f"f_{form}")
    out, table_rows, events = [], [], []
    for i, values in enumerate(rows):
        rid = first + i
        moment = at + timedelta(seconds=i)
        out.append(Master(rid, values))
        table_rows.append(
            {
                **values,
                "id": rid,
                "state": None,
                "version": 1,
                "created_at": moment,
                "updated_at": moment,
                "created_by": SYSTEM,
            }
        )
        payload = {"values": plain({k: v for k, v in values.items() if v is not None})}
        events.append(writer.chain(form, rid, (moment, SYSTEM, "created", canonical(payload))))
    writer.write({f"f_{form}": table_rows}, events)
    return out


def creation_times(h: History, n: int, start: datetime) -> tuple[list[datetime], int]:
    """``n`` creation instants, mostly work days, mostly office hours: the sorted ones of the
    history, and how many newest orders (see ``Generator.newest``) take the place of its last."""
    days = [(start + timedelta(days=d)).astimezone(h.tz).date() for d in range(366)]
    weights = [1.0 if h.calendar.is_workday(d) else 0.08 for d in days]
    out = []
    for day in h.rng.choices(days, weights=weights, k=n):
        if h.rng.random() < 0.85:
            minute = h.rng.uniform(8.5 * 60, 17.5 * 60)
        else:
            minute = h.rng.uniform(0, 24 * 60)
        local = datetime.combine(day, time(), tzinfo=h.tz) + timedelta(minutes=minute)
        out.append(local.astimezone(UTC))
    kept = sorted(t for t in out if start <= t <= h.end)
    recent = min(len(kept), max(RECENT_MIN, len(kept) // RECENT_SHARE))
    return kept[: len(kept) - recent], recent


# where the newest orders stop, in turn (None: as far as the clock lets them): each role of the
# pack finds work — drafts the demo submits (the real stock check runs for them: sales then
# promise a date, procurement gets the shortage to-do), the director a promise date to confirm,
# approvers tasks, the director orders to schedule, logistics orders to ship and deliveries to
# confirm, finance orders to invoice
HALTS = (
    *("draft", "stock_checked", "approving", "approved", "scheduled", "shipped", "delivered"),
    None,
)
# at least three orders stop in each halt (so all three APPROVING kinds wait), or 1 in 60
RECENT_MIN, RECENT_SHARE = 3 * len(HALTS), 60
# the products of the drafts left for the demo to submit, in turn: the mock warehouse's
# showcase SKUs that are short (mock_wms.py), so the stock check finds a shortage
SHORT_SKUS = ("DP-100001", "HL-100002", "CP-100003")
# the orders stopped in approval, in turn, so that each approval route has one waiting: a trial
# order (finance, warehouse and engineering countersign), a VIP rush order (the director), a
# regular one (finance and warehouse)
APPROVING = (("trial", None), ("rush", "VIP"), ("normal", None))
FRESH_DAYS = 3  # a newest order is created, or reaches its halt, in the last working days
BACK_DAYS = 120  # … or, when its state takes longer (shipping waits for the date), before


@dataclass(frozen=True)
class Newest:
    """One of the newest orders: the state it stops in (``halt``), which of the orders
    stopping there it is (``turn``), and its own random source (``seed``), so that a trial walk
    foretells its real one and the rest of the history stays as the seed makes it."""

    halt: str | None
    turn: int
    seed: str


def working_days_back(h: History, count: int) -> list[date]:
    """The last ``count`` working days up to the end's day, newest first."""
    days: list[date] = []
    day = h.local(h.end).date()
    while len(days) < count:
        if h.calendar.is_workday(day):
            days.append(day)
        day -= timedelta(days=1)
    return days


def office_time(h: History, rng: random.Random, days: list[date]) -> datetime | None:
    """A moment in the office hours of one of ``days``, not after the end (None: none is)."""
    spans = []
    for day in days:
        opening = datetime.combine(day, OPEN, tzinfo=h.tz).astimezone(UTC)
        closing = min(datetime.combine(day, CLOSE, tzinfo=h.tz).astimezone(UTC), h.end)
        if opening < closing:
            spans.append((opening, closing))
    if not spans:
        return None
    opening, closing = rng.choice(spans)
    return opening + (closing - opening) * rng.random()


class Generator:
    """Orders in creation order; their events merged into one time-ordered chain."""

    def __init__(
        self,
        h: History,
        writer: Writer,
        customers: list[Master],
        products: list[Master],
        store: Callable[[Mapping[str, list[dict[str, Any]]], list[dict]], None],
    ) -> None:
        self.h, self.writer, self.store = h, writer, store
        self.customers, self.products = customers, products
        self.customer_weights = [TIER_VOLUME[c.values["tier"]] for c in customers]
        self.pending: list[tuple[datetime, int, int, tuple[datetime, str, str, str]]] = []
        self.seq = 0
        self.rows: dict[str, list[dict[str, Any]]] = self.empty_rows()
        self.events: list[dict[str, Any]] = []
        self.next_note = writer.next_id(CHILD)
        self.left: list[Pending] = []  # what the demo does through the records service

    @staticmethod
    def empty_rows() -> dict[str, list[dict[str, Any]]]:
        return {"f_order": [], CHILD: [], "sl_files": []}  # parents before their rows

    def order(self, rid: int, created: datetime, newest: Newest | None) -> Order:
        h, rng = self.h, self.h.rng
        halt = newest.halt if newest is not None else None
        customer = rng.choices(self.customers, weights=self.customer_weights)[0]
        product = rng.choice(self.products)
        kind = rng.choices(("normal", "rush", "trial"), weights=(80, 13, 7))[0]
        if halt == "approving":
            kind, tier = APPROVING[newest.turn % len(APPROVING)]  # type: ignore[union-attr]
            if tier is not None and customer.values["tier"] != tier:
                customer = next(c for c in self.customers if c.values["tier"] == tier)
        quantity = max(1, round(rng.lognormvariate(math.log(300 if kind != "trial" else 20), 1)))
        if halt == "draft":
            code = SHORT_SKUS[newest.turn % len(SHORT_SKUS)]  # type: ignore[union-attr]
            product = next((p for p in self.products if p.values["code"] == code), product)
            quantity = max(quantity, 80)
        today = h.local(created).date()
        lead = 3 + (rng.randint(2, 10) if kind == "rush" else rng.randint(5, 30))
        values: dict[str, Any] = {f.name: None for f in h.form.fields if f.type != "table"}
        values.update(
            order_no=h.order_no(created),
            customer=customer.id,
            product=product.id,
            quantity=min(quantity, 1_000_000),
            desired_date=h.workdays(today, lead),
            order_type=kind,
            special_process=rng.sample(SPECIAL, rng.choices((0, 1, 2), (6, 3, 1))[0]),
            attachments=self.attachments(kind, created),
            channel=rng.choices(list(CHANNELS), weights=list(CHANNELS.values()))[0],
        )
        if rng.random() < 0.4:
            values["promised_date"] = values["desired_date"]
        creator = rng.choice(CREATORS)
        order = Order(rid, values, created, creator, product, customer)
        h.computed(order)
        h.emit(order, created, creator, "created", created_payload(order))
        return order

    def attachments(self, kind: str, at: datetime) -> list[str]:
        if kind != "trial" and self.h.rng.random() > 0.1:
            return []
        file_id = f"{self.h.rng.getrandbits(128):032x}"
        self.rows["sl_files"].append(
            {
                "id": file_id,
                "sha256": hashlib.sha256(PDF).hexdigest(),
                "name": "drawing.pdf",
                "content_type": "application/pdf",
                "size": len(PDF),
                "data": PDF,
                "uploaded_by": "li.sales",
                "uploaded_at": at - timedelta(minutes=2),
            }
        )
        return [file_id]

    def add(self, rid: int, created: datetime, newest: Newest | None = None) -> None:
        self.release(created)
        order = self.walk(rid, created, newest)
        if order.halt == "draft" and order.state == "draft":
            self.left.append(Pending("order", rid, "submit", order.created_by))
        self.rows["f_order"].append(order.row())
        self.log_rows(order)
        for event in order.events:
            self.seq += 1
            heapq.heappush(self.pending, (event[0], self.seq, rid, event))

    def walk(self, rid: int, created: datetime, newest: Newest | None) -> Order:
        """The order made and walked until it stops; a newest one with its own random source."""
        h = self.h
        shared = h.rng
        if newest is not None:
            h.rng = random.Random(newest.seed)
        try:
            order = self.order(rid, created, newest)
            order.halt = newest.halt if newest is not None else None
            OrderWalk(h, order).run(slow=h.rng.random() < 0.2)
        finally:
            h.rng = shared
        return order

    def trial(self, created: datetime, newest: Newest) -> Order:
        """Where the newest order would stop if created at ``created``: its walk, undone."""
        counters, files = dict(self.h.counters), len(self.rows["sl_files"])
        try:
            return self.walk(0, created, newest)
        finally:
            self.h.counters = counters
            del self.rows["sl_files"][files:]

    def newest(self, count: int, seed: int) -> list[tuple[datetime, Newest]]:
        """The newest ``count`` orders, stopping in the HALTS in turn, each created so that it
        really gets there: in the last working days when its state comes within hours of the
        order; earlier — a working day further back each trial, with a fresh random source —
        when it takes longer (an order ships near its promised date, weeks after it is made),
        preferring one that reaches its state in the last working days. Every order is
        walked through the state machine; the trials only choose when it was made."""
        days = working_days_back(self.h, BACK_DAYS + FRESH_DAYS)
        fresh = datetime.combine(days[FRESH_DAYS - 1], time(), tzinfo=self.h.tz)
        turns: dict[str | None, int] = {}
        out = []
        for slot in range(count):
            halt = HALTS[slot % len(HALTS)]
            turn = turns[halt] = turns.get(halt, -1) + 1
            found: tuple[datetime, Newest] | None = None
            for back in range(BACK_DAYS):
                pick = random.Random(f"newest:{seed}:{count}:{slot}:{back}")
                created = office_time(self.h, pick, days[back : back + FRESH_DAYS])
                if created is None:
                    continue
                candidate = (created, Newest(halt, turn, f"{seed}:{count}:{slot}:{back}"))
                if halt is None:
                    found = candidate
                    break
                order = self.trial(*candidate)
                if order.state != halt:
                    continue
                found = found or candidate
                if entered(order) >= fresh:
                    found = candidate
                    break
            if found is None:
                raise RuntimeError(f"no order reaches {halt} in {BACK_DAYS} working days")
            out.append(found)
        return out

    def log_rows(self, order: Order) -> None:
        """The order's communication-log rows, in time order, and their child_added events."""
        contact = order.customer.values["contact"]
        for position, (at, actor, topic) in enumerate(sorted(order.notes), start=1):
            values = {
                "topic": topic,
                "contact": contact,
                "talked_at": at,
                "conclusion": CONCLUSIONS[topic],
            }
            row_id, self.next_note = self.next_note, self.next_note + 1
            self.rows[CHILD].append(
                {
                    **values,
                    "todo": None,
                    "id": row_id,
                    "parent_id": order.id,
                    "position": position,
                    "created_at": at,
                    "created_by": actor,
                }
            )
            payload = {"child": LOG, "row_id": row_id, "values": plain(values)}
            order.events.append((at, actor, "child_added", canonical(payload)))

    def release(self, before: datetime | None) -> None:
        """Chain every pending event earlier than ``before`` (all of them with None)."""
        while self.pending and (before is None or self.pending[0][0] < before):
            _, _, rid, event = heapq.heappop(self.pending)
            self.events.append(self.writer.chain("order", rid, event))

    def flush(self) -> None:
        self.store(self.rows, self.events)
        self.rows = self.empty_rows()
        self.events = []


def save_counters(engine: sa.Engine, metadata: sa.MetaData, counters: Mapping[str, int]) -> None:
    table = metadata.tables["sl_counters"]
    with engine.begin() as conn:
        for prefix, value in counters.items():
            series = f"order.order_no:{prefix.replace('{seq:5}', '#')}"
            conn.execute(table.delete().where(table.c.series == series))
            conn.execute(table.insert().values(series=series, value=value))


def fix_sequences(engine: sa.Engine) -> None:
    """Explicit ids do not move PostgreSQL's sequences: move them past the rows."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in ("f_customer", "f_product", "f_order", CHILD):
            conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
            )


def gather_statistics(engine: sa.Engine) -> None:
    """ANALYZE after the bulk load: without statistics (autovacuum off, or not yet run)
    PostgreSQL plans the dashboards' event joins as nested loops over ~1 row — the trend
    snapshots of 42,000 orders then ran for over 12 minutes instead of about 1 s."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))


@dataclass(frozen=True)
class Pending:
    """A transition the history leaves to the real flow: the demo fires it through the records
    service as ``actor`` (the record's creator), so its automations run in the worker."""

    form: str
    record_id: int
    transition: str
    actor: str


@dataclass(frozen=True)
class Result:
    orders: int
    events: int
    seconds: float
    end: datetime
    pending: tuple[Pending, ...] = ()


def generate(
    url: str,
    orders: int,
    seed: int = 1,
    customers: int = 200,
    products: int = 12_000,
    end: datetime | None = None,
    progress: bool = True,
    bulk: bool = False,
) -> Result:
    """Deploy the pack when the database is empty, then write the history. ``bulk``: on
    PostgreSQL, drop the filled tables' secondary indexes for the load and make them again
    after it (:func:`set_indexes_aside`; benchmarks' million-order histories — a load killed
    half-way leaves them dropped)."""
    import time as clock

    began = clock.perf_counter()
    result = compile_app(PACK)
    assert result.app is not None, result.diagnostics.sorted()
    app = result.app
    engine = create_db_engine(url)
    tune_for_bulk_load(engine)
    try:
        ensure_deployed(engine, app, bundle_sources(result.workspace))
        metadata = build_metadata(app)
        rng = random.Random(seed)
        end = (end or datetime.now(UTC)).astimezone(UTC)
        h = History(app, rng, end)
        start = end - timedelta(days=365)
        writer = Writer(engine, metadata)
        masters_at = start - timedelta(days=30)
        cust = masters(writer, h, "customer", make_customers(rng, customers), masters_at)
        prod = masters(writer, h, "product", load_products(products), masters_at)
        existing = prefix_counters(engine, metadata)
        h.counters.update(existing)
        aside = set_indexes_aside(engine) if bulk else []
        try:  # the indexes come back even when storing failed or never started
            behind = StoreBehind(writer, url)
            try:
                gen = Generator(h, writer, cust, prod, behind.write)
                older, recent = creation_times(h, orders, start)
                newest = gen.newest(recent, seed)
                plan = sorted([*((t, None) for t in older), *newest], key=lambda p: p[0])
                first = writer.next_id("f_order")
                for i, (created, halt) in _progress(plan, progress):
                    gen.add(first + i, created, halt)
                    if (i + 1) % BATCH == 0:
                        gen.flush()
                gen.release(None)
                gen.flush()
            finally:
                behind.close()
        finally:
            restore_indexes(engine, aside)
        save_counters(engine, metadata, h.counters)
        fix_sequences(engine)
        gather_statistics(engine)
        spent = clock.perf_counter() - began
        return Result(len(plan), writer.written, spent, end, tuple(gen.left))
    finally:
        engine.dispose()


def prefix_counters(engine: sa.Engine, metadata: sa.MetaData) -> dict[str, int]:
    table = metadata.tables["sl_counters"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.series.like("order.order_no:%"))).all()
    return {r.series.split(":", 1)[1].replace("#", "{seq:5}"): int(r.value) for r in rows}


def _progress(times: list[T], show: bool) -> Iterator[tuple[int, T]]:
    if not show:
        yield from enumerate(times)
        return
    with Progress() as bar:
        task = bar.add_task("orders", total=len(times))
        for i, moment in enumerate(times):
            yield i, moment
            if i % 500 == 499:
                bar.update(task, completed=i + 1)
        bar.update(task, completed=len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--orders", type=int, default=42_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--products", type=int, default=12_000)
    parser.add_argument("--end", default=None, help="last day of the history (default: now)")
    args = parser.parse_args()
    end = None
    if args.end:
        end = datetime.combine(
            date.fromisoformat(args.end), time(18), tzinfo=ZoneInfo("Asia/Shanghai")
        )
    r = generate(args.db, args.orders, args.seed, args.customers, args.products, end)
    print(
        f"{r.orders:,} orders, {r.events:,} events in {r.seconds:.1f} s "
        f"({r.orders / r.seconds:,.0f} orders/s, {r.events / r.seconds:,.0f} events/s), "
        f"history up to {r.end.isoformat()}"
    )


if __name__ == "__main__":
    main()
