"""Control that holds (issue 12), on the shipped pack and on SQLite and PostgreSQL: nobody
skips an approval, a stock check or a price; operators' pages are for administrators; a
child table's editable_by holds on append; the edit page honours read permissions."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from apihelp import Api, start_api
from fakes import fake_dingtalk

from engine.flows.machine import available_transitions, fire_transition
from engine.forms.records import SYSTEM_ACTOR
from engine.model import clock
from engine.outbox.jobs import JOBS

FAR = (date.today() + timedelta(days=60)).isoformat()
_SERIAL = itertools.count(1)


@pytest.fixture
def api(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    with fake_dingtalk(secret="ding-secret") as ding:
        monkeypatch.setenv("DINGTALK_WEBHOOK", ding.url)
        monkeypatch.setenv("DINGTALK_SECRET", "ding-secret")
        running = start_api(db_url)
        yield running
        clock.set_clock(None)
        running.live.flows.connectors.close()
        running.engine.dispose()


def _master(api: Api, tier: str = "B", price: float = 1000.0) -> tuple[int, int]:
    n = next(_SERIAL)
    records = api.live.records
    customer = records.create(
        "customer", {"code": f"C{n:05d}", "name": f"客户{n}", "tier": tier}, SYSTEM_ACTOR
    )
    product = records.create(
        "product",
        {"code": f"SD-{n:06d}", "name": "座椅面套", "unit_price": price, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    return customer["id"], product["id"]


def _order(api: Api, *, tier: str = "B", price: float = 1000.0, quantity: int = 10) -> int:
    """A draft order filed by li.sales through the API."""
    customer, product = _master(api, tier, price)
    made = api.client("li.sales").post(
        "/api/forms/order/records",
        json={
            "customer": customer,
            "product": product,
            "quantity": quantity,
            "desired_date": FAR,
            "promised_date": FAR,
            "order_type": "normal",
        },
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def _submitted(api: Api, **kw: object) -> int:
    order = _order(api, **kw)  # type: ignore[arg-type]
    moved = api.client("li.sales").post(f"/api/forms/order/records/{order}/actions/submit")
    assert moved.status_code == 200, moved.text
    with api.engine.begin() as conn:  # the warehouse call is not these tests' subject
        conn.execute(JOBS.delete().where(JOBS.c.kind == "flow"))
    return order


def _approving(api: Api, **kw: object) -> int:
    order = _submitted(api, **kw)
    records = api.live.records
    records.update("order", order, {"atp_date": FAR}, SYSTEM_ACTOR)
    fire_transition(records, "order", order, "stock_ok", SYSTEM_ACTOR)
    gate = f"/api/forms/order/records/{order}/confirmations/confirm_promise"
    for user in ("li.sales", "zhou.pd"):
        assert api.client(user).post(gate).status_code == 200
    moved = api.client("li.sales").post(f"/api/forms/order/records/{order}/actions/confirm_promise")
    assert moved.status_code == 200, moved.text
    return order


def _state(api: Api, order: int) -> str:
    return api.live.records.get("order", order)["state"]


# ---------------------------------------------------------------------------- 1. approvals


@pytest.mark.parametrize("who", ["li.sales", "ma.log", "huang.fin", "wang.gm"])
@pytest.mark.parametrize("transition", ["approve", "reject", "return_for_changes"])
def test_nobody_fires_an_approval_outcome_by_hand(api: Api, who: str, transition: str) -> None:
    order = _approving(api)
    answer = api.client(who).post(f"/api/forms/order/records/{order}/actions/{transition}")
    assert answer.status_code == 403, answer.text
    assert "系统" in answer.json()["errors"][0]["message"]
    assert _state(api, order) == "approving"
    tasks = api.client("huang.fin").get("/api/tasks").json()["tasks"]
    assert any(t["record_id"] == order for t in tasks)  # the approval still runs


def test_the_record_page_shows_no_outcome_button(api: Api) -> None:
    order = _approving(api)
    page = api.browser("li.sales")[0].get(f"/forms/order/{order}")
    assert page.status_code == 200
    assert "审批通过" not in page.text and "驳回</button>" not in page.text
    assert f"/forms/order/{order}/edit" not in page.text  # nothing of it is theirs to change now
    record = api.live.records.get("order", order)
    shown = available_transitions(api.live.records, "order", record, _user(api, "ma.log"))
    assert [t.name for t, _ in shown] == []


def _user(api: Api, name: str) -> object:
    from engine.accounts.auth import get_user

    with api.engine.connect() as conn:
        return get_user(conn, name)


# ---------------------------------------------------------------------------- 2. stock check


@pytest.mark.parametrize("transition", ["stock_ok", "stock_wait"])
def test_sales_cannot_skip_the_stock_check(api: Api, transition: str) -> None:
    order = _submitted(api)
    if transition == "stock_ok":  # the warehouse is down: the order waits
        fire_transition(api.live.records, "order", order, "stock_wait", SYSTEM_ACTOR)
    answer = api.client("li.sales").post(f"/api/forms/order/records/{order}/actions/{transition}")
    assert answer.status_code == 403, answer.text
    assert _state(api, order) in ("submitted", "stock_pending")
    assert api.live.records.get("order", order)["atp_date"] is None


# ---------------------------------------------------------------------------- 3. price


def test_sales_cannot_change_a_price_and_finance_can(api: Api) -> None:
    _, product = _master(api, price=56000.0)
    cheap = {"unit_price": "0.01"}
    for who in ("li.sales", "chen.cs", "ma.log", "liu.wh"):
        answer = api.client(who).patch(f"/api/forms/product/records/{product}", json=cheap)
        assert answer.status_code == 403, (who, answer.text)
    answer = api.client("xu.eng").patch(f"/api/forms/product/records/{product}", json=cheap)
    assert answer.status_code == 422  # engineering edits products, not their price
    assert answer.json()["errors"][0]["field"] == "unit_price"
    answer = api.client("huang.fin").patch(f"/api/forms/product/records/{product}", json=cheap)
    assert answer.status_code == 200, answer.text
    assert Decimal(str(answer.json()["unit_price"])) == Decimal("0.01")


def test_sales_cannot_make_a_customer_vip(api: Api) -> None:
    customer, _ = _master(api, tier="B")
    vip = {"tier": "VIP"}
    answer = api.client("li.sales").patch(f"/api/forms/customer/records/{customer}", json=vip)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "tier"
    made = api.client("li.sales").post(
        "/api/forms/customer/records", json={"code": "C99999", "name": "新客户", "tier": "VIP"}
    )
    assert made.status_code == 422  # a new customer cannot be filed as VIP by sales either
    made = api.client("li.sales").post(
        "/api/forms/customer/records", json={"code": "C99999", "name": "新客户"}
    )
    assert made.status_code == 201 and made.json()["tier"] == "B"
    answer = api.client("sun.sales").patch(f"/api/forms/customer/records/{customer}", json=vip)
    assert answer.status_code == 200, answer.text  # the sales manager may
    # the new-customer page shows the tier as set for them, and who sets it — not an input
    page = api.browser("li.sales")[0].get("/forms/customer/new").text
    assert 'name="tier"' not in page and "客户等级只能由以下角色修改：销售经理、财务" in page
    assert 'name="tier"' in api.browser("sun.sales")[0].get("/forms/customer/new").text


def test_the_order_keeps_the_price_it_was_submitted_with(api: Api) -> None:
    order = _submitted(api, price=56000.0, quantity=500)  # 28,000,000: class D (GM)
    record = api.live.records.get("order", order)
    assert Decimal(str(record["unit_price"])) == Decimal("56000.00")
    assert Decimal(str(record["amount"])) == Decimal("28000000.00")
    product = record["product"]
    finance = api.client("huang.fin")
    assert (
        finance.patch(f"/api/forms/product/records/{product}", json={"unit_price": "2"}).status_code
        == 200
    )
    # a later save of the order does not follow the new price
    api.live.records.update("order", order, {"atp_date": FAR}, SYSTEM_ACTOR)
    record = api.live.records.get("order", order)
    assert Decimal(str(record["amount"])) == Decimal("28000000.00")
    events = api.client("li.sales").get(f"/api/forms/order/records/{order}/events").json()
    submit = next(
        e for e in events if e["kind"] == "transition" and e["payload"]["name"] == "submit"
    )
    assert submit["payload"]["changes"]["unit_price"][1] in ("56000.00", 56000.0, "56000")


def test_a_draft_shows_the_current_price(api: Api) -> None:
    order = _order(api, price=10.0, quantity=3)
    record = api.live.records.get("order", order)
    assert record["unit_price"] is None and Decimal(str(record["amount"])) == Decimal("30.00")


# ---------------------------------------------------------------------------- 5. operators


OPERATOR_READS = ["/api/runs", "/api/outbox", "/api/outbox?status=dead"]


def test_operator_endpoints_are_for_administrators(api: Api) -> None:
    for who in ("li.sales", "wang.gm", "zhou.pd"):
        client = api.client(who)
        for url in OPERATOR_READS:
            assert client.get(url).status_code == 403, (who, url)
        assert client.post("/api/outbox/1/retry").status_code == 403
        pages = api.browser(who)[0]
        assert pages.get("/runs").status_code == 403
        assert 'href="/runs"' not in pages.get("/").text
    admin = api.client("qian.it")
    for url in OPERATOR_READS:
        assert admin.get(url).status_code == 200, url
    pages = api.browser("qian.it")[0]
    assert pages.get("/runs").status_code == 200
    assert 'href="/runs"' in pages.get("/").text
    assert admin.post("/api/outbox/999999/retry").status_code == 404


# ---------------------------------------------------------------------------- generic rules

SMALL_APP = {
    "app.yaml": """\
        name: t
        title: T
        locale: en
        calendar: cn
        roles:
          clerk: {label: Clerk}
          boss: {label: Boss}
          auditor: {label: Auditor}
        """,
    "forms/secret.yaml": """\
        title: Secret
        permissions:
          read: [boss]
          create: [boss]
          update: [boss]
        fields:
          name: {type: text, label: Name}
        """,
    "forms/item.yaml": """\
        title: Item
        permissions:
          update: [clerk, boss]
        fields:
          name: {type: text, label: Name}
          notes:
            type: table
            label: Notes
            editable_by: [boss]
            fields:
              text: {type: text, label: Text}
          lines:
            type: table
            label: Lines
            max_rows: 2
            fields:
              what: {type: text, label: What}
              checked: {type: boolean, label: Checked, editable_by: [boss]}
              stamp: {type: text, label: Stamp, readonly: true}
          drawing: {type: files, label: Drawing, accept: [.pdf]}
        """,
    "flows/item.yaml": """\
        form: item
        states:
          open: {label: Open, initial: true, editable: true}
          closed: {label: Closed, final: true}
        transitions:
          close: {label: Close, from: open, to: closed, roles: [boss]}
        """,
    "dashboards/secrets.yaml": """\
        title: Secrets
        kpis:
          how_many:
            title: How many
            form: secret
            measure: count
            unit: n
        """,
}


@pytest.fixture
def small(db_url: str, tmp_path: Path) -> Iterator[Api]:
    root = tmp_path / "small"
    for rel, text in SMALL_APP.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    running = start_api(db_url, root)
    running.add_user("cl", "clerk")
    running.add_user("bo", "boss")
    yield running
    running.engine.dispose()


def test_the_edit_page_honours_read_permissions(small: Api) -> None:
    secret = small.live.records.create("secret", {"name": "the plan"}, SYSTEM_ACTOR)
    clerk = small.browser("cl")[0]
    for url in (
        f"/forms/secret/{secret['id']}/edit",
        f"/forms/secret/{secret['id']}",
        "/forms/secret/new",
    ):
        page = clerk.get(url)
        assert page.status_code == 403, url
        assert "the plan" not in page.text
    assert small.browser("bo")[0].get(f"/forms/secret/{secret['id']}/edit").status_code == 200
    assert "/forms/secret" not in clerk.get("/").text
    assert [f["name"] for f in small.client("cl").get("/api/forms").json()] == ["item"]


def test_a_child_tables_editable_by_holds_on_append_and_on_edit(small: Api) -> None:
    item = small.live.records.create("item", {"name": "x"}, SYSTEM_ACTOR)
    url = f"/api/forms/item/records/{item['id']}"
    clerk, boss = small.client("cl"), small.client("bo")
    answer = clerk.post(url + "/children/notes", json={"text": "sneaky"})
    assert answer.status_code == 403, answer.text
    answer = clerk.patch(url, json={"notes": [{"text": "sneaky"}]})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "notes"
    assert boss.post(url + "/children/notes", json={"text": "fine"}).status_code == 201
    assert clerk.patch(url, json={"name": "y"}).status_code == 200
    assert [r["text"] for r in small.live.records.get("item", item["id"])["notes"]] == ["fine"]


def test_child_columns_keep_their_own_rules(small: Api) -> None:
    item = small.live.records.create("item", {"name": "x"}, SYSTEM_ACTOR)
    url = f"/api/forms/item/records/{item['id']}"
    clerk, boss = small.client("cl"), small.client("bo")
    refused = clerk.post(url + "/children/lines", json={"what": "a", "checked": True})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "lines.checked"
    stamped = clerk.post(url + "/children/lines", json={"what": "a", "stamp": "forged"})
    assert stamped.status_code == 422 and stamped.json()["errors"][0]["field"] == "lines.stamp"
    assert clerk.post(url + "/children/lines", json={"what": "a"}).status_code == 201
    assert (
        boss.post(url + "/children/lines", json={"what": "b", "checked": True}).status_code == 201
    )
    full = boss.post(url + "/children/lines", json={"what": "c"})
    assert full.status_code == 422 and full.json()["errors"][0]["code"] == "max_rows"


def test_child_rows_on_create_obey_editable_by(small: Api) -> None:
    made = small.client("cl").post(
        "/api/forms/item/records", json={"name": "x", "notes": [{"text": "sneaky"}]}
    )
    assert made.status_code == 422, made.text  # the clerk may create items, not notes
    assert [e["field"] for e in made.json()["errors"]] == ["notes"]
    assert (
        small.client("bo")
        .post("/api/forms/item/records", json={"name": "y", "notes": [{"text": "fine"}]})
        .status_code
        == 201
    )


def test_rows_of_a_locked_record_cannot_be_added(small: Api) -> None:
    item = small.live.records.create("item", {"name": "x"}, SYSTEM_ACTOR)
    fire_transition(small.live.records, "item", item["id"], "close", SYSTEM_ACTOR)
    added = small.client("bo").post(
        f"/api/forms/item/records/{item['id']}/children/lines", json={"what": "late"}
    )
    assert added.status_code == 409, added.text
    assert small.live.records.get("item", item["id"])["lines"] == []


def test_nobody_gains_a_file_by_naming_its_id(small: Api) -> None:
    from engine.store.files import store_bytes

    with small.engine.begin() as conn:
        theirs = store_bytes(conn, "plan.pdf", "application/pdf", b"%PDF-1.4\n", "bo")
        mine = store_bytes(conn, "mine.pdf", "application/pdf", b"%PDF-1.4\n", "cl")
    clerk = small.client("cl")
    downloads = small.browser("cl")[0]  # /api/files is served beside the pages
    taken = clerk.post("/api/forms/item/records", json={"name": "x", "drawing": [theirs.id]})
    assert taken.status_code == 422 and taken.json()["errors"][0]["field"] == "drawing"
    assert downloads.get(f"/api/files/{theirs.id}").status_code == 404
    assert downloads.get(f"/api/files/{mine.id}").status_code == 200  # one's own upload
    kept = clerk.post("/api/forms/item/records", json={"name": "y", "drawing": [mine.id]})
    assert kept.status_code == 201, kept.text
    # the boss attached their own file; the clerk may read items, so may download it, and
    # may save the record again with it in place
    item = small.client("bo").post(
        "/api/forms/item/records", json={"name": "z", "drawing": [theirs.id]}
    )
    assert item.status_code == 201
    assert downloads.get(f"/api/files/{theirs.id}").status_code == 200
    again = clerk.patch(f"/api/forms/item/records/{item.json()['id']}", json={"name": "z2"})
    assert again.status_code == 200, again.text


def test_a_drill_down_needs_the_forms_read_permission(small: Api) -> None:
    small.live.records.create("secret", {"name": "the plan"}, SYSTEM_ACTOR)
    clerk, boss = small.client("cl"), small.client("bo")
    assert clerk.get("/api/dashboards/secrets").status_code == 200  # the count is for all
    url = "/api/dashboards/secrets/kpis/how_many/records"
    assert clerk.get(url).status_code == 403
    assert clerk.get(url + ".csv").status_code == 403
    assert boss.get(url).status_code == 200
