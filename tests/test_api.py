"""The JSON API over the manufacturing pack, on SQLite and PostgreSQL."""

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


def seed(api) -> tuple[int, int]:
    """A customer and a product, filed by finance (who may set a tier and a price)."""
    client = api.client("huang.fin")
    c = client.post(
        "/api/forms/customer/records", json={"code": "C00001", "name": "绍兴某汽车", "tier": "VIP"}
    )
    assert c.status_code == 201, c.text
    p = client.post(
        "/api/forms/product/records",
        json={"code": "SD-100234", "name": "真皮座椅面套", "unit_price": "120.50", "lead_days": 10},
    )
    assert p.status_code == 201, p.text
    return c.json()["id"], p.json()["id"]


def test_health_and_forms(api) -> None:
    client = api.client("li.sales")
    assert client.get("/api/health").json()["app"] == "order_flow"
    forms = {f["name"] for f in client.get("/api/forms").json()}
    assert forms == {"customer", "product", "order"}
    order = client.get("/api/forms/order").json()
    names = [f["name"] for f in order["fields"]]
    assert names[:4] == ["order_no", "customer", "product", "quantity"]
    customer = next(f for f in order["fields"] if f["name"] == "customer")
    assert customer == {
        "name": "customer",
        "type": "ref",
        "label": "客户",
        "required": True,
        "ref": "customer",
    }
    assert order["children"][0]["name"] == "communication_log"
    assert order["children"][0]["append_only"] is True
    assert {
        "name": "submit",
        "label": "提交订单",
        "from": ["draft", "returned"],
        "to": "submitted",
    } in order["transitions"]


def test_unauthenticated_is_401(api) -> None:
    from starlette.testclient import TestClient

    from engine.runtime import Deployments
    from engine.web.server import create_web_app

    anon = TestClient(create_web_app(api.engine, Deployments(api.engine, api.live)))
    assert anon.get("/api/forms").status_code == 401
    bad = anon.get("/api/forms", headers={"Authorization": "Bearer sl_nope"})
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["code"]


def test_create_order_validation_and_history(api) -> None:
    client = api.client("li.sales")
    customer, product = seed(api)
    too_early = client.post(
        "/api/forms/order/records",
        json={
            "customer": customer,
            "product": product,
            "quantity": 10,
            "desired_date": date.today().isoformat(),
            "order_type": "rush",
        },
    )
    assert too_early.status_code == 422
    assert too_early.json()["errors"] == [
        {"field": "desired_date", "code": "rule", "message": "期望交付日不得早于当前日期+3个工作日"}
    ]
    created = client.post(
        "/api/forms/order/records",
        json={
            "customer": customer,
            "product": product,
            "quantity": 10,
            "desired_date": FAR,
            "order_type": "rush",
        },
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["amount"] == "1205.00"
    assert order["order_no"].startswith("SO-")
    assert order["state"] == "draft"
    assert order["_titles"] == {"customer": "绍兴某汽车", "product": "真皮座椅面套"}
    changed = client.patch(f"/api/forms/order/records/{order['id']}", json={"quantity": 12})
    assert changed.status_code == 200, changed.text
    assert changed.json()["amount"] == "1446.00"
    events = client.get(f"/api/forms/order/records/{order['id']}/events").json()
    assert [e["kind"] for e in events] == ["created", "changed"]
    assert events[1]["payload"]["changes"]["quantity"] == [10, 12]
    assert events[1]["actor"] == "li.sales"


def test_field_errors_are_422_with_fields(api) -> None:
    client = api.client("li.sales")
    r = client.post(
        "/api/forms/order/records",
        json={"quantity": "many", "order_type": "urgent", "nope": 1, "amount": 5},
    )
    assert r.status_code == 422
    got = {(e["field"], e["code"]) for e in r.json()["errors"]}
    assert {
        ("quantity", "type"),
        ("order_type", "option"),
        ("nope", "unknown_field"),
        ("amount", "readonly"),
        ("customer", "required"),
        ("product", "required"),
        ("desired_date", "required"),
    } <= got


def test_bad_bodies_are_4xx_not_500(api) -> None:
    client = api.client("li.sales")
    url = "/api/forms/order/records"
    assert (
        client.post(url, content=b"{", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert client.post(url, content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    assert client.post(url, json=[1, 2]).status_code == 422
    assert client.get("/api/forms/nope/records").status_code == 404
    assert client.get(url + "/999999").status_code == 404
    assert client.get(url + "/abc").status_code == 404
    assert client.get(url + "?sort=attachments").status_code == 400
    assert client.get(url + "?quantity__gte=x").status_code == 400
    assert client.get(url + "?cursor=!!!").status_code == 400


def test_a_request_is_judged_who_then_csrf_then_body_and_the_body_is_bounded(api) -> None:
    """``guarded``: 401 before 403 before 400/415, whatever the body; a body over MAX_BODY is
    refused (413) by its Content-Length or, sent without one, as soon as it passes the limit;
    nothing is created by any of them."""
    from starlette.testclient import TestClient

    from engine.runtime import Deployments
    from engine.web.jsonio import MAX_BODY
    from engine.web.server import create_web_app

    url = "/api/forms/order/records"
    broken = {"content": b"{", "headers": {"content-type": "application/json"}}
    big = b'{"note": "' + b"x" * MAX_BODY + b'"}'
    anon = TestClient(create_web_app(api.engine, Deployments(api.engine, api.live)))
    assert anon.post(url, **broken).status_code == 401
    # no credentials at all: refused before the body is read, however large it says it is
    oversized = anon.post(url, content=big, headers={"content-type": "application/json"})
    assert oversized.status_code == 401 and codes(oversized) == ["unauthenticated"]
    forged = anon.post(
        url,
        content=b"{",
        headers={"content-type": "application/json", "authorization": "Bearer sl_forged"},
    )
    assert forged.status_code == 401
    session, token = api.browser("li.sales")
    no_csrf = session.post(url, **broken)
    assert no_csrf.status_code == 403 and codes(no_csrf) == ["csrf"]
    with_csrf = session.post(
        url, content=b"{", headers={"content-type": "application/json", "x-csrf-token": token}
    )
    assert with_csrf.status_code == 400 and codes(with_csrf) == ["json"]
    client = api.client("li.sales")
    declared = client.post(url, content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and codes(declared) == ["too_large"]
    pieces = (big[i : i + 65536] for i in range(0, len(big), 65536))
    streamed = client.post(url, content=pieces, headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and codes(streamed) == ["too_large"]
    assert client.get(url).json()["items"] == []


def test_a_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    """``read_body`` stops taking chunks once the body is over MAX_BODY (a body sent without
    Content-Length is never held whole), and trusts only a plain ASCII Content-Length."""
    import asyncio

    from starlette.requests import Request

    from engine.model.errors import TooLarge
    from engine.web.jsonio import MAX_BODY, read_body

    chunk = b"x" * 100_000
    taken: list[int] = []

    def request(headers: list[tuple[bytes, bytes]], chunks: int) -> Request:
        async def receive() -> dict[str, object]:
            taken.append(1)
            return {"type": "http.request", "body": chunk, "more_body": len(taken) < chunks}

        scope = {"type": "http", "method": "POST", "headers": headers, "path": "/"}
        return Request(scope, receive)

    with pytest.raises(TooLarge):
        asyncio.run(read_body(request([], chunks=1000)))
    assert len(taken) == MAX_BODY // len(chunk) + 1  # 21 chunks of 1,000 taken, not all
    taken.clear()
    with pytest.raises(TooLarge):  # a declared length over the limit: nothing is read
        asyncio.run(read_body(request([(b"content-length", b"99999999")], chunks=1000)))
    assert taken == []
    odd = [(b"content-length", "²".encode())]  # str.isdigit() says yes; int() would fail
    assert asyncio.run(read_body(request(odd, chunks=2))) == chunk * 2


def codes(response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def test_field_permission_by_role_is_enforced(api) -> None:
    sales = api.client("li.sales")
    r = sales.post(
        "/api/forms/customer/records",
        json={"code": "C00002", "name": "X", "tier": "A", "credit_limit": 100},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "forbidden"
    finance = api.client("huang.fin")
    assert (
        finance.post(
            "/api/forms/customer/records",
            json={"code": "C00002", "name": "X", "tier": "A", "credit_limit": 100},
        ).status_code
        == 201
    )


def test_append_only_log(api) -> None:
    client = api.client("li.sales")
    customer, product = seed(api)
    order = client.post(
        "/api/forms/order/records",
        json={
            "customer": customer,
            "product": product,
            "quantity": 1,
            "desired_date": FAR,
            "order_type": "normal",
        },
    ).json()
    url = f"/api/forms/order/records/{order['id']}"
    row = client.post(
        url + "/children/communication_log", json={"contact": "王经理", "conclusion": "确认颜色"}
    )
    assert row.status_code == 201, row.text
    refused = client.patch(url, json={"communication_log": []})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["code"] == "append_only"
    assert len(client.get(url).json()["communication_log"]) == 1


def test_listing_filters_sort_paging_search(api) -> None:
    client = api.client("huang.fin")  # finance may file customers with a tier
    for i in range(7):
        assert (
            client.post(
                "/api/forms/customer/records",
                json={"code": f"C1000{i}", "name": f"客户{i}号", "tier": "AB"[i % 2]},
            ).status_code
            == 201
        )
    seen, cursor = [], None
    while True:
        url = "/api/forms/customer/records?tier=A&sort=code&limit=2"
        page = client.get(url + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [r["code"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["C10000", "C10002", "C10004", "C10006"]
    found = client.get("/api/forms/customer/records?q=3号").json()["items"]
    assert [r["code"] for r in found] == ["C10003"]


def test_created_record_equals_what_is_read_back(api) -> None:
    client = api.client("li.sales")
    customer, product = seed(api)
    created = client.post(
        "/api/forms/order/records",
        json={
            "customer": customer,
            "product": product,
            "quantity": 3,
            "desired_date": FAR,
            "order_type": "rush",
            "special_process": ["激光打孔"],
            "communication_log": [{"contact": "王经理", "conclusion": "确认", "todo": "寄样"}],
        },
    ).json()
    assert created.get("errors") is None
    read = client.get(f"/api/forms/order/records/{created['id']}").json()
    assert read == created


def test_form_permissions_are_enforced_on_the_server(api) -> None:
    warehouse = api.client("liu.wh")
    refused = warehouse.post(
        "/api/forms/customer/records", json={"code": "C00009", "name": "X", "tier": "A"}
    )
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "forbidden"
    created = api.client("huang.fin").post(
        "/api/forms/customer/records", json={"code": "C00009", "name": "X", "tier": "A"}
    )
    assert created.status_code == 201
    url = f"/api/forms/customer/records/{created.json()['id']}"
    assert warehouse.get(url).status_code == 200  # everyone signed in may read
    assert warehouse.patch(url, json={"name": "Y"}).status_code == 403


def test_nul_characters_are_refused_not_500(api) -> None:
    client = api.client("li.sales")
    for url in (
        "/api/forms/order/records?q=a%00b",
        "/api/forms/order/records?order_no=a%00b",
        "/api/forms/customer/records?name__ne=%00",
    ):
        assert client.get(url).status_code == 400, url
    r = client.post(
        "/api/forms/customer/records", json={"code": "C00001", "name": "a\x00b", "tier": "A"}
    )
    assert r.status_code == 422
