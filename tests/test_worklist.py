"""One worklist per person (/tasks, the home page, the menu count) over the manufacturing pack,
against the mock warehouse and a fake DingTalk: the shortage to-do in procurement's inbox and
marking it done, the promise-date gate waiting for each role, records waiting for a role to act,
which transitions count as work, and the to-do table reaching an existing database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apihelp import Api, start_api
from demohelp import DemoTemplates, demo_world
from packservices import pack_services, submit_order

from engine.demo import build as demo
from engine.deploy.apply import deploy
from engine.deploy.plan import plan_schema
from engine.flows.machine import fire_transition
from engine.flows.todos import TODOS, Assignee, add_todos
from engine.flows.worklist import CountCache, is_work, work_counts, worklist
from engine.forms.records import SYSTEM_ACTOR
from engine.model import clock
from engine.outbox.worker import Worker

FAR = (date.today() + timedelta(days=90)).isoformat()


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch):
    with pack_services(monkeypatch) as services:
        api = start_api(db_url)
        worker = Worker(api.engine, lambda: api.live.flows, name="worklist-worker")
        records = api.live.records
        customer = records.create(
            "customer",
            {"code": "C00001", "name": "绍兴某汽车", "tier": "A", "wecom_id": "wx_c1"},
            SYSTEM_ACTOR,
        )
        yield api, worker, services.ding, customer["id"]
        api.live.flows.connectors.close()
        api.engine.dispose()


def _product(api: Api, code: str) -> int:
    values = {"code": code, "name": "面套", "unit_price": 10, "lead_days": 5}
    return api.live.records.create("product", values, SYSTEM_ACTOR)["id"]


def _counts(api: Api, username: str):
    user = api.live.records  # the worklist reads what the pages read
    with user.reads.connect() as conn:
        person = _actor(api, username)
        return work_counts(conn, api.app, api.live.metadata, person, clock.now())


def _list(api: Api, username: str):
    with api.live.records.reads.connect() as conn:
        return worklist(
            conn,
            api.app,
            api.live.records.runtime.calendar,
            api.live.metadata,
            _actor(api, username),
            clock.now(),
        )


class _Person:
    def __init__(self, username: str, roles: frozenset[str]) -> None:
        self.username, self.roles = username, roles


def _actor(api: Api, username: str) -> _Person:
    return _Person(username, frozenset(api.app.people[username].roles))


def _section(page: str, name: str) -> str:
    found = re.search(rf'<section id="work-{name}"[^>]*>(.*?)</section>', page, re.S)
    assert found is not None, page
    return found[1]


def _menu_count(page: str) -> int:
    found = re.search(r'href="/tasks"[^>]*>我的待办(?: <span class="count">(\d+)</span>)?', page)
    assert found is not None
    return int(found[1] or 0)


def test_shortage_todo_in_procurement_inbox_marked_done_once(world) -> None:
    api, worker, ding, customer = world
    short = submit_order(api.live.records, customer, _product(api, "HL-100002"), 5000, FAR)
    worker.run_until_idle()
    assert len(ding.messages) == 1  # the DingTalk to-do still goes out
    with api.engine.connect() as conn:
        rows = conn.execute(sa.select(TODOS)).all()
    assert [(r.role, r.user, r.record_id) for r in rows] == [("procurement", None, short)]
    assert "缺料" in rows[0].title
    todo = rows[0].id
    # a retried step (same run, same step) adds no second to-do
    with api.engine.begin() as conn:
        key = rows[0].key.rsplit(":", 1)[0]
        add_todos(conn, key, "order", short, [Assignee(role="procurement")], "x", "x", clock.now())
    with api.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(TODOS)).scalar_one() == 1

    assert _counts(api, "wu.proc").todos == 1
    assert _counts(api, "ma.log").todos == 0
    client, token = api.browser("wu.proc")
    page = client.get("/tasks")
    assert page.status_code == 200
    todos = _section(page.text, "todos")
    assert f'href="/forms/order/{short}"' in todos and "缺料" in todos
    assert f'action="/tasks/todos/{todo}/done"' in todos
    assert _menu_count(page.text) == _counts(api, "wu.proc").total >= 1
    home = client.get("/")
    assert f'action="/tasks/todos/{todo}/done"' in home.text
    # CSRF, then someone else's to-do, then done, then done again
    forged = client.post(f"/tasks/todos/{todo}/done", data={}, follow_redirects=False)
    assert forged.status_code == 403
    other, other_token = api.browser("ma.log")
    refused = other.post(f"/tasks/todos/{todo}/done", data={"csrf_token": other_token})
    assert refused.status_code == 403 and "不是给您的" in refused.text
    done = client.post(
        f"/tasks/todos/{todo}/done", data={"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/tasks"
    after = client.get("/tasks").text
    assert "待办已标记完成" in after
    assert f"/tasks/todos/{todo}/done" not in after
    again = client.post(f"/tasks/todos/{todo}/done", data={"csrf_token": token})
    assert again.status_code == 409 and "已完成" in again.text
    unknown = client.post("/tasks/todos/987654/done", data={"csrf_token": token})
    assert unknown.status_code == 404
    with api.engine.connect() as conn:
        row = conn.execute(sa.select(TODOS).where(TODOS.c.id == todo)).one()
    assert row.done_by == "wu.proc" and row.done_at is not None
    events = [e for e in api.live.records.events("order", short) if e["kind"] == "todo_done"]
    assert len(events) == 1 and events[0]["actor"] == "wu.proc"
    assert _counts(api, "wu.proc").todos == 0
    # the record's timeline, for people (not behind the operators' toggle), says who did it
    page = client.get(f"/forms/order/{short}").text
    assert re.search(r"吴刚</strong>\s*将待办“[^”]+”标记为已完成", page), page[-3000:]


def test_gate_waits_for_each_role_then_sales_fires(world) -> None:
    api, worker, _ding, customer = world
    order = submit_order(api.live.records, customer, _product(api, "SD-100000"), 5, FAR)
    worker.run_until_idle()
    records = api.live.records
    row = records.get("order", order)
    assert row["state"] == "stock_checked"
    records.update("order", order, {"promised_date": row["atp_date"]}, SYSTEM_ACTOR)
    director = _list(api, "zhou.pd")
    assert [(g.transition.name, g.role, g.count) for g in director.gates] == [
        ("confirm_promise", "production_director", 1)
    ]
    assert director.gates[0].items[0].record_id == order
    sales = _list(api, "li.sales")
    assert [(g.role, g.count) for g in sales.gates] == [("sales", 1)]
    assert not [a for a in sales.actions if a.transition.name == "confirm_promise"]
    client, _token = api.browser("zhou.pd")
    page = client.get("/tasks").text
    gates = _section(page, "gates")
    assert "确认承诺交付日（以生产总监身份）" in gates and f'href="/forms/order/{order}"' in gates
    home = client.get("/").text
    assert f'href="/forms/order/{order}"' in home
    # the director confirms: his gate empties; once sales confirmed too, sales may fire it
    gate = f"/api/forms/order/records/{order}/confirmations/confirm_promise"
    assert api.client("zhou.pd").post(gate).status_code == 200
    assert _counts(api, "zhou.pd").gates == 0
    assert _counts(api, "li.sales").gates == 1
    assert api.client("li.sales").post(gate).status_code == 200
    sales = _list(api, "li.sales")
    assert sales.gates == []
    ready = [a for a in sales.actions if a.transition.name == "confirm_promise"]
    assert [(a.count, a.items[0].record_id) for a in ready] == [(1, order)]
    # a change of the promised date re-opens the gate: waiting for both again
    later = date.fromisoformat(str(row["atp_date"])) + timedelta(days=1)
    records.update("order", order, {"promised_date": later.isoformat()}, SYSTEM_ACTOR)
    assert _counts(api, "zhou.pd").gates == 1 and _counts(api, "li.sales").gates == 1


def test_records_waiting_for_a_role_counted_listed_and_linked(world) -> None:
    api, _worker, _ding, customer = world
    records = api.live.records
    product = _product(api, "SD-100000")
    ids = []
    for _ in range(3):
        values = {
            "customer": customer,
            "product": product,
            "quantity": 1,
            "desired_date": FAR,
            "order_type": "normal",
        }
        ids.append(records.create("order", values, SYSTEM_ACTOR)["id"])
    with api.engine.begin() as conn:  # put them where logistics and finance act, directly
        table = api.live.metadata.tables["f_order"]
        conn.execute(table.update().where(table.c.id.in_(ids[:2])).values(state="scheduled"))
        conn.execute(table.update().where(table.c.id == ids[2]).values(state="delivered"))
    logistics = _list(api, "ma.log")
    ship = [a for a in logistics.actions if a.transition.name == "ship"]
    assert [(a.count, a.by_state) for a in ship] == [(2, (("scheduled", 2),))]
    assert {i.record_id for i in ship[0].items} == set(ids[:2])
    assert _counts(api, "ma.log").actions == 2
    finance = _counts(api, "huang.fin")
    assert finance.actions == 1  # one delivered order to invoice
    assert _counts(api, "wu.proc").actions == 0  # procurement fires no transition
    # a draft waits only for whoever created it (the engine here), not every salesperson
    assert not [a for a in _list(api, "li.sales").actions if a.transition.name == "submit"]
    client, _ = api.browser("ma.log")
    page = client.get("/tasks").text
    actions = _section(page, "actions")
    assert "销售订单：发货" in actions or "：发货" in actions
    assert all(f'href="/forms/order/{i}"' in actions for i in ids[:2])
    assert _menu_count(page) == 2
    # more than shown: the link to the list filtered by state
    with api.live.records.reads.connect() as conn:
        few = worklist(
            conn,
            api.app,
            records.runtime.calendar,
            api.live.metadata,
            _actor(api, "ma.log"),
            clock.now(),
            shown=1,
        )
    assert len(few.actions[0].items) == 1 and few.actions[0].count == 2
    home = client.get("/").text
    assert 'id="home-actions"' in home and "没有等您确认的事项" in home
    fire_transition(records, "order", ids[0], "ship", SYSTEM_ACTOR)
    assert _counts(api, "ma.log").actions == 2  # one to ship, one to confirm delivered


def test_which_transitions_are_work(world) -> None:
    api, *_ = world
    machine = api.app.state_machines["order"]
    work = {t.name for t in machine.transitions if is_work(machine, t)}
    # sent back for changes (revise), given up while being prepared (cancel) and the system's
    # own transitions are nobody's pending work
    assert work == {"submit", "confirm_promise", "schedule", "ship", "deliver", "invoice"}


def test_todo_table_reaches_an_existing_database(world) -> None:
    api, *_ = world
    sources = {"app.yaml": "x"}
    deploy(api.engine, api.app, sources)
    with api.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE sl_todos"))
    with api.engine.connect() as conn:
        plan = plan_schema(conn, api.app)
    assert [(s.kind, s.table) for s in plan.steps] == [("create_table", "sl_todos")]
    deploy(api.engine, api.app, sources)
    with api.engine.connect() as conn:
        assert sa.inspect(conn).has_table("sl_todos")
        assert _counts(api, "wu.proc").todos == 0


def test_menu_count_kept_until_the_event_log_moves(world) -> None:
    api, _worker, _ding, customer = world
    records = api.live.records
    table = api.live.metadata.tables["f_order"]
    cache = CountCache()
    logistics = _actor(api, "ma.log")

    def total(kept: CountCache) -> int:
        with records.reads.connect() as conn:
            return kept.total(conn, api.app, api.live.metadata, logistics, clock.now())

    def order() -> int:
        values = {"customer": customer, "product": product, "quantity": 1, "desired_date": FAR}
        return int(records.create("order", {**values, "order_type": "normal"}, SYSTEM_ACTOR)["id"])

    def schedule_behind_its_back(record_id: int) -> None:  # no event: nothing tells the cache
        with api.engine.begin() as conn:
            conn.execute(table.update().where(table.c.id == record_id).values(state="scheduled"))

    product = _product(api, "SD-100000")
    first = order()
    assert total(cache) == 0
    schedule_behind_its_back(first)
    assert total(cache) == 0  # kept: the event log has not moved since
    second = order()  # a change through the service appends an event: counted anew
    assert total(cache) == 1 == _counts(api, "ma.log").total
    schedule_behind_its_back(second)
    assert total(cache) == 1
    assert total(CountCache(ttl=0)) == 2  # the time limit bounds what moves without an event
    assert total(cache) == 1  # each cache keeps its own


@pytest.fixture(scope="module")
def demo_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoTemplates]:
    built = DemoTemplates(tmp_path_factory.mktemp("worklist-demo"))
    yield built
    built.drop()


def test_every_role_of_the_tour_finds_work_on_the_demo(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_templates: DemoTemplates
) -> None:
    """The demo as ``seamline demo`` builds it (300 orders), its worker run once against the
    mock warehouse: everyone whose tour line sends them to "My tasks" finds something there,
    of the kind the line names, and finance's invoicing is a few days' worth, not a year's."""
    with demo_world(db_url, tmp_path / "demo", monkeypatch, demo_templates) as world:
        with world.engine.connect() as conn:
            drafts = conn.exec_driver_sql(
                "SELECT count(*) FROM f_order WHERE state = 'submitted'"
            ).scalar_one()
        assert drafts >= 2  # the newest drafts the demo submitted, their stock check queued
        world.work()
        counts = {}
        with world.live.records.reads.connect() as conn:
            for login in demo.demo_logins(world.app, demo.PACK):
                person = _Person(login.user, frozenset(world.app.people[login.user].roles))
                counts[login.role] = work_counts(
                    conn, world.app, world.live.metadata, person, clock.now()
                )
                if login.try_this is not None and "My tasks" in login.try_this("en"):
                    assert counts[login.role].total > 0, (login.user, counts[login.role])
            states = dict(
                conn.exec_driver_sql("SELECT state, count(*) FROM f_order GROUP BY state").all()
            )
    assert counts["procurement"].todos >= 2  # the shortage of each draft submitted
    assert counts["sales"].actions + counts["sales"].gates >= 2  # their promise dates
    assert counts["sales_manager"].actions >= counts["sales"].actions - 1
    assert counts["production_director"].gates >= 1 and counts["production_director"].approvals
    assert counts["engineering"].approvals >= 1  # a trial order in approval (class C)
    assert counts["warehouse"].approvals >= 2 and counts["finance"].approvals >= 2
    assert counts["logistics"].actions >= 1
    # whatever the day, the newest orders stop in every state a tour line sends someone to:
    # approved (the director schedules), scheduled (logistics ships), shipped (logistics or
    # customer service confirms the delivery), delivered (finance invoices)
    assert all(states.get(s, 0) >= 1 for s in ("approved", "scheduled", "shipped")), states
    assert counts["production_director"].actions >= states["approved"]
    assert counts["logistics"].actions >= states["scheduled"] + states["shipped"]
    assert counts["customer_service"].actions >= states["shipped"]
    # a real factory invoices within days: most delivered orders of the year are invoiced
    assert 1 <= states.get("delivered", 0) <= states["invoiced"] / 20
    assert counts["finance"].actions == states["delivered"]


def test_my_drafts_link_lists_only_mine(world) -> None:
    """Drafts wait only for whoever made them; the home page's "all N" link to the list
    keeps that: it filters by state AND by the person, so it lists the drafts counted."""
    api, _worker, _ding, customer = world
    records = api.live.records
    product = _product(api, "SD-100000")
    values = {"customer": customer, "product": product, "quantity": 5, "desired_date": FAR}
    mine = [records.create("order", values, _actor(api, "li.sales"))["id"] for _ in range(4)]
    theirs = records.create("order", values, _actor(api, "zhang.sales"))["id"]
    client, _ = api.browser("li.sales")
    home = client.get("/").text
    link = "/forms/order?state=draft&amp;created_by=li.sales"
    assert link in home, _section(home, "actions")
    listed = client.get(link.replace("&amp;", "&")).text
    assert all(f'href="/forms/order/{i}"' in listed for i in mine)
    assert f'href="/forms/order/{theirs}"' not in listed
