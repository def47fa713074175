"""The pack's promise-date gate (a transition's ``confirm:``) and its invoicing guard, through
the API and the record page, on SQLite and PostgreSQL: sales and the production director must
both confirm the same current promised date before the order goes to approval; any change of
the promised date or of the ATP date re-opens the gate; each confirmation and re-opening is on
the timeline; an order without a communication-log note cannot be invoiced."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from apihelp import start_api
from starlette.testclient import TestClient

from engine.flows.confirm import confirm_gate
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR

ATP = date.today() + timedelta(days=60)
URL = "/api/forms/order/records/{id}"


@pytest.fixture
def api(db_url: str):
    api = start_api(db_url)
    yield api
    api.engine.dispose()


def _at_gate(api, promised: date = ATP) -> int:
    """An order in 'stock_checked' with an ATP date and the salesperson's promised date."""
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00009", "name": "宁波某汽配", "tier": "A"}, SYSTEM_ACTOR
    )
    product = records.create(
        "product",
        {"code": "SD-100009", "name": "面套", "unit_price": 10, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    order = records.create(
        "order",
        {
            "customer": customer["id"],
            "product": product["id"],
            "quantity": 5,
            "desired_date": ATP.isoformat(),
            "order_type": "normal",
        },
        SYSTEM_ACTOR,
    )
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    records.update("order", order["id"], {"atp_date": ATP.isoformat()}, SYSTEM_ACTOR)
    fire_transition(records, "order", order["id"], "stock_ok", SYSTEM_ACTOR)
    sales = api.client("li.sales")
    moved = sales.patch(URL.format(id=order["id"]), json={"promised_date": promised.isoformat()})
    assert moved.status_code == 200, moved.text
    return order["id"]


def _confirm(client, order: int, **body):
    return client.post(URL.format(id=order) + "/confirmations/confirm_promise", json=body)


def _fire(client, order: int):
    return client.post(URL.format(id=order) + "/actions/confirm_promise")


def _gate_events(api, order: int) -> list[dict]:
    events = api.client("li.sales").get(URL.format(id=order) + "/events").json()
    return [e for e in events if e["kind"] in ("confirmed", "confirm_reopened")]


def test_both_sides_must_confirm_the_same_current_date(api) -> None:
    order = _at_gate(api)
    sales, director = api.client("li.sales"), api.client("zhou.pd")
    one = _confirm(sales, order, value=ATP.isoformat())
    assert one.status_code == 200, one.text
    assert one.json()["missing"] == ["production_director"]
    assert [c["user"] for c in one.json()["confirmed"]] == ["li.sales"]

    refused = _fire(sales, order)
    assert refused.status_code == 422
    error = refused.json()["errors"][0]
    assert error["code"] == "unconfirmed" and error["field"] == "promised_date"
    assert "生产总监" in error["message"] and "销售" not in error["message"]

    # the director saw another date: refused, nothing recorded
    stale = _confirm(director, order, value=(ATP + timedelta(days=1)).isoformat())
    assert stale.status_code == 409
    assert stale.json()["errors"][0]["code"] == "changed"
    gates = sales.get(URL.format(id=order) + "/confirmations").json()["gates"]
    assert gates[0]["missing"] == ["production_director"] and gates[0]["open"]

    # the promised date moves: the sales confirmation lapses, the gate is open again
    later = ATP + timedelta(days=1)
    assert sales.patch(URL.format(id=order), json={"promised_date": later.isoformat()}).is_success
    again = _fire(sales, order)
    assert again.status_code == 422
    assert "销售、生产总监" in again.json()["errors"][0]["message"]

    assert _confirm(director, order, value=later.isoformat()).json()["missing"] == ["sales"]
    # a new ATP date (a reopen_on field) re-opens it as well
    api.live.records.update("order", order, {"atp_date": later.isoformat()}, SYSTEM_ACTOR)
    assert _fire(sales, order).status_code == 422

    assert _confirm(sales, order).json()["missing"] == ["production_director"]
    both = _confirm(director, order, value=later.isoformat())
    assert both.json()["missing"] == [] and not both.json()["open"]
    moved = _fire(sales, order)
    assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "approving"

    # the timeline: who confirmed what, and what re-opened the gate
    seen = [
        (e["kind"], e["actor"], e["payload"].get("role"), e["payload"].get("value"))
        for e in _gate_events(api, order)
    ]
    assert seen == [
        ("confirmed", "li.sales", "sales", ATP.isoformat()),
        ("confirm_reopened", "li.sales", None, None),
        ("confirmed", "zhou.pd", "production_director", later.isoformat()),
        ("confirm_reopened", "system", None, None),
        ("confirmed", "li.sales", "sales", later.isoformat()),
        ("confirmed", "zhou.pd", "production_director", later.isoformat()),
    ]
    reopened = [e["payload"] for e in _gate_events(api, order) if e["kind"] == "confirm_reopened"]
    assert reopened[0]["changed"] == ["promised_date"]
    assert reopened[0]["lapsed"] == [
        {"role": "sales", "user": "li.sales", "value": ATP.isoformat()}
    ]
    assert reopened[1]["changed"] == ["atp_date"]


def test_confirming_needs_a_role_of_the_gate_and_the_gate_state(api) -> None:
    order = _at_gate(api)
    warehouse = api.client("liu.wh")
    forbidden = _confirm(warehouse, order)
    assert forbidden.status_code == 403
    assert "销售" in forbidden.json()["errors"][0]["message"]
    as_other = _confirm(api.client("li.sales"), order, role="production_director")
    assert as_other.status_code == 403
    assert _confirm(api.client("li.sales"), order, role=7).status_code == 400
    unknown = api.client("li.sales").post(URL.format(id=order) + "/confirmations/submit")
    assert unknown.status_code == 404
    fire_transition(api.live.records, "order", order, "revise", SYSTEM_ACTOR)
    wrong_state = _confirm(api.client("li.sales"), order)
    assert wrong_state.status_code == 409
    assert _gate_events(api, order) == []


def test_passing_the_gate_uses_the_confirmations_up(api) -> None:
    order = _at_gate(api)
    records = api.live.records
    confirm_gate(records, "order", order, "confirm_promise", SYSTEM_ACTOR)  # as sales
    confirm_gate(records, "order", order, "confirm_promise", SYSTEM_ACTOR)  # as the director
    fire_transition(records, "order", order, "confirm_promise", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "return_for_changes", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "submit", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "stock_ok", SYSTEM_ACTOR)
    refused = _fire(api.client("li.sales"), order)
    assert refused.status_code == 422  # back at the gate: both confirm again
    assert refused.json()["errors"][0]["code"] == "unconfirmed"


def _browser(api, user: str) -> TestClient:
    from engine.accounts.auth import set_password
    from engine.runtime import Deployments
    from engine.web.routes import page_routes
    from engine.web.server import create_web_app

    with api.engine.begin() as conn:
        set_password(conn, user, "correct-horse-1")
    web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    browser = TestClient(web)
    token = _token(browser.get("/login").text)
    browser.post(
        "/login", data={"username": user, "password": "correct-horse-1", "csrf_token": token}
    )
    return browser


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_record_page_shows_dates_side_by_side_and_confirms_with_csrf(api) -> None:
    order = _at_gate(api, promised=ATP - timedelta(days=10))  # far from the ATP date
    browser = _browser(api, "zhou.pd")
    page = browser.get(f"/forms/order/{order}")
    assert page.status_code == 200
    assert 'class="compare highlight"' in page.text  # more than 2 workdays apart
    assert "与可承诺交付日相差超过 2 个工作日" in page.text
    assert 'id="v-atp_date"' in page.text and ATP.isoformat() in page.text
    assert 'id="gates"' in page.text and "以生产总监身份确认" in page.text
    action = f"/forms/order/{order}/confirm/confirm_promise"
    value = (ATP - timedelta(days=10)).isoformat()
    no_csrf = browser.post(action, data={"role": "production_director", "value": value})
    assert no_csrf.status_code == 403
    assert _gate_events(api, order) == []
    done = browser.post(
        action,
        data={"csrf_token": _token(page.text), "role": "production_director", "value": value},
        follow_redirects=False,
    )
    assert done.status_code == 303
    again = browser.get(f"/forms/order/{order}")
    assert "以生产总监身份确认承诺交付日" in again.text  # on the timeline
    assert 'data-role="production_director"' in again.text and "✓ 周立新" in again.text
    stale = browser.post(
        action, data={"csrf_token": _token(again.text), "role": "sales", "value": value}
    )
    assert stale.status_code == 403  # the director does not hold the sales role
    assert "只有销售、生产总监可以确认" in stale.text

    sales = api.client("li.sales")
    sales.patch(URL.format(id=order), json={"promised_date": ATP.isoformat()})
    calm = browser.get(f"/forms/order/{order}")
    assert 'class="compare"' in calm.text and "相差超过" not in calm.text.split('id="gates"')[0]
    assert "确认作废" in calm.text  # the change re-opened the gate, on the timeline


def _delivered(api) -> int:
    order = _at_gate(api)
    records = api.live.records
    for _ in range(2):
        confirm_gate(records, "order", order, "confirm_promise", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "confirm_promise", SYSTEM_ACTOR)
    fire_transition(records, "order", order, "approve", SYSTEM_ACTOR)
    records.update("order", order, {"scheduled_date": ATP.isoformat()}, SYSTEM_ACTOR)
    for name in ("schedule", "ship", "deliver"):
        fire_transition(records, "order", order, name, SYSTEM_ACTOR)
    return order


def test_no_invoice_without_a_communication_note(api) -> None:
    order = _delivered(api)
    finance = api.client("huang.fin")
    url = URL.format(id=order)
    refused = finance.post(url + "/actions/invoice")
    assert refused.status_code == 422
    assert "没有客户沟通纪要" in refused.json()["errors"][0]["message"]
    assert api.client("li.sales").post(url + "/actions/invoice").status_code == 403
    note = {"contact": "王经理（采购）", "conclusion": "确认收货无误，同意开票", "todo": "寄发票"}
    added = api.client("li.sales").post(url + "/children/communication_log", json=note)
    assert added.status_code == 201, added.text
    assert api.client("li.sales").patch(url, json={"communication_log": []}).status_code == 422
    invoiced = finance.post(url + "/actions/invoice")
    assert invoiced.status_code == 200, invoiced.text
    assert invoiced.json()["state"] == "invoiced"
    assert len(invoiced.json()["communication_log"]) == 1
