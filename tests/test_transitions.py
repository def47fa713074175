"""State machines at run time: transitions through the API with every server-side check."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from apihelp import start_api

FAR = (date.today() + timedelta(days=60)).isoformat()


@pytest.fixture
def api(db_url: str):
    api = start_api(db_url)
    yield api
    api.engine.dispose()


def order(client, finance) -> dict:
    """An order filed by ``client``; its customer and product by ``finance``."""
    c = finance.post(
        "/api/forms/customer/records", json={"code": "C00001", "name": "客户", "tier": "A"}
    ).json()
    p = finance.post(
        "/api/forms/product/records",
        json={"code": "SD-100001", "name": "面套", "unit_price": 10, "lead_days": 5},
    ).json()
    r = client.post(
        "/api/forms/order/records",
        json={
            "customer": c["id"],
            "product": p["id"],
            "quantity": 2,
            "desired_date": FAR,
            "order_type": "normal",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_submit_moves_state_and_is_in_history(api) -> None:
    sales = api.client("li.sales")
    o = order(sales, api.client("huang.fin"))
    r = sales.post(f"/api/forms/order/records/{o['id']}/actions/submit")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "submitted"
    events = sales.get(f"/api/forms/order/records/{o['id']}/events").json()
    moves = [e for e in events if e["kind"] == "transition"]
    assert moves[-1]["payload"] == {
        "name": "submit",
        "from": "draft",
        "to": "submitted",
        "changes": {"unit_price": [None, "10.00"]},  # the price it was submitted with
    }
    assert events[-1]["kind"] == "flow_started"  # the stock check starts in the same commit


def test_refusals_explain_why(api) -> None:
    sales = api.client("li.sales")
    o = order(sales, api.client("huang.fin"))
    url = f"/api/forms/order/records/{o['id']}/actions"
    wrong_state = sales.post(url + "/confirm_promise")  # sales may, but not from a draft
    assert wrong_state.status_code == 409
    assert sales.post(url + "/ship").status_code == 403  # who comes before when
    assert "草稿" in wrong_state.json()["errors"][0]["message"]
    warehouse = api.client("liu.wh")
    forbidden = warehouse.post(url + "/submit")
    assert forbidden.status_code == 403
    assert "销售" in forbidden.json()["errors"][0]["message"]
    assert sales.post(url + "/nope").status_code == 404
    assert sales.post(url + "/submit").status_code == 200
    # move on to the promise-date gate: guard and required field
    admin = api.live.records
    from engine.flows.machine import fire_transition
    from engine.forms.records import SYSTEM_ACTOR

    fire_transition(admin, "order", o["id"], "stock_ok", SYSTEM_ACTOR)
    missing = sales.post(url + "/confirm_promise")
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "promised_date"
    admin.update(
        "order",
        o["id"],
        {"atp_date": (date.today() + timedelta(days=40)).isoformat()},
        SYSTEM_ACTOR,
    )
    assert (
        sales.patch(
            f"/api/forms/order/records/{o['id']}",
            json={"promised_date": (date.today() + timedelta(days=20)).isoformat()},
        ).status_code
        == 200
    )
    gated = sales.post(url + "/confirm_promise")
    assert gated.status_code == 422
    assert gated.json()["errors"][0]["code"] == "guard"
    assert "相差超过 2 个工作日" in gated.json()["errors"][0]["message"]
    sales.patch(
        f"/api/forms/order/records/{o['id']}",
        json={"promised_date": (date.today() + timedelta(days=40)).isoformat()},
    )
    unconfirmed = sales.post(url + "/confirm_promise")
    assert unconfirmed.status_code == 422  # the gate: sales and production confirm the date
    assert unconfirmed.json()["errors"][0]["code"] == "unconfirmed"
    gate = f"/api/forms/order/records/{o['id']}/confirmations/confirm_promise"
    assert sales.post(gate).status_code == 200
    assert api.client("zhou.pd").post(gate).status_code == 200
    ok = sales.post(url + "/confirm_promise")
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "approving"


def test_record_locked_after_leaving_an_editable_state(api) -> None:
    sales = api.client("li.sales")
    o = order(sales, api.client("huang.fin"))
    sales.post(f"/api/forms/order/records/{o['id']}/actions/submit")
    r = sales.patch(f"/api/forms/order/records/{o['id']}", json={"quantity": 9})
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "locked"


def test_transition_buttons_on_the_record_page(api) -> None:
    import re

    from starlette.testclient import TestClient

    from engine.accounts.auth import set_password
    from engine.runtime import Deployments
    from engine.web.routes import page_routes
    from engine.web.server import create_web_app

    sales = api.client("li.sales")
    o = order(sales, api.client("huang.fin"))
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", "correct-horse-1")
    web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    browser = TestClient(web)
    page = browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    browser.post(
        "/login", data={"username": "li.sales", "password": "correct-horse-1", "csrf_token": token}
    )
    record = browser.get(f"/forms/order/{o['id']}")
    assert "提交订单" in record.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', record.text).group(1)
    done = browser.post(
        f"/forms/order/{o['id']}/actions/submit",
        data={"csrf_token": token, "version": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    again = browser.get(f"/forms/order/{o['id']}")
    assert "已提交" in again.text
    stale = browser.post(
        f"/forms/order/{o['id']}/actions/submit", data={"csrf_token": token, "version": "2"}
    )
    assert stale.status_code == 409
    assert "不能执行" in stale.text
    no_csrf = browser.post(f"/forms/order/{o['id']}/actions/stock_ok", data={"version": "2"})
    assert no_csrf.status_code == 403
