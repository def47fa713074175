"""List search across refs (customer name/code, product name/SKU) with and without the search
index deploy builds, the index kept in step with writes, and related lists on record pages.
Runs on SQLite and (with SEAMLINE_TEST_PG_URL) PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from apihelp import PACK, Api, start_api

from engine.compile import compile_app
from engine.deploy.apply import bundle_sources, deploy
from engine.deploy.plan import plan_schema
from engine.forms.records import SYSTEM_ACTOR
from engine.store.search_index import has_fts, stale_search_indexes
from engine.web import related

FAR = (date.today() + timedelta(days=60)).isoformat()


@pytest.fixture
def apis() -> Iterator[list[Api]]:
    """The APIs a test starts; their engines are closed after it (PostgreSQL drops the
    database after the test and warns about connections left open)."""
    started: list[Api] = []
    yield started
    for api in started:
        api.engine.dispose()


def _fill(api: Api) -> dict[str, int]:
    r = api.live.records
    ids = {
        "acme": r.create(
            "customer",
            {"code": "C00042", "name": "绍兴精工汽配有限公司", "tier": "A"},
            SYSTEM_ACTOR,
        )["id"],
        "other": r.create(
            "customer", {"code": "C00043", "name": "宁波车辆部件厂", "tier": "B"}, SYSTEM_ACTOR
        )["id"],
    }
    for key, code, name, cat in [
        ("seat", "SD-100234", "紧凑型SUV真皮座椅面套（棕色）", "座椅面套"),
        ("door", "DP-100001", "新能源轿车织物门板饰件（象牙白）", "门板饰件"),
    ]:
        ids[key] = r.create(
            "product",
            {"code": code, "name": name, "unit_price": "12.50", "lead_days": 5, "category": cat},
            SYSTEM_ACTOR,
        )["id"]
    for customer, product, n in [("acme", "seat", 3), ("other", "door", 2), ("acme", "door", 1)]:
        for _ in range(n):
            values = {
                "customer": ids[customer],
                "product": ids[product],
                "quantity": 5,
                "desired_date": FAR,
                "order_type": "normal",
            }
            r.create("order", values, SYSTEM_ACTOR)
    return ids


def _found(api: Api, q: str) -> list[tuple[int, int]]:
    items = api.live.records.list_page("order", q=q, limit=50).items
    return [(row["customer"], row["product"]) for row in items]


def _deployed(db_url: str, apis: list[Api]) -> Api:
    """The pack deployed the way `seamline deploy` does it (search indexes included)."""
    compiled = compile_app(PACK)
    assert compiled.app is not None
    api = start_api(db_url)
    apis.append(api)
    deploy(api.engine, compiled.app, bundle_sources(compiled.workspace))
    return api


@pytest.mark.parametrize("indexed", [False, True], ids=["scan", "indexed"])
def test_search_finds_orders_by_the_text_of_their_refs(
    db_url: str, indexed: bool, apis: list[Api]
) -> None:
    api = _deployed(db_url, apis) if indexed else start_api(db_url)
    apis.append(api)
    ids = _fill(api)
    acme, other, seat, door = ids["acme"], ids["other"], ids["seat"], ids["door"]
    by_acme = [(acme, door)] + [(acme, seat)] * 3
    assert _found(api, "绍兴精工") == by_acme  # customer name, newest first
    assert _found(api, "C00042") == by_acme  # customer code
    assert _found(api, "座椅面套") == [(acme, seat)] * 3  # product name
    assert _found(api, "sd-100234") == [(acme, seat)] * 3  # SKU, any case
    assert _found(api, "门板") == [(acme, door), (other, door), (other, door)]  # short term
    assert _found(api, "无此客户XYZ") == []
    assert _found(api, "%") == [] and _found(api, "_") == []  # wildcards are plain text
    first = api.live.records.list_page("order", sort="id", limit=1).items[0]
    assert [r["id"] for r in api.live.records.list_page("order", q=first["order_no"]).items] == [
        first["id"]
    ]
    # filters and search together, and the API's q (the same code)
    both = api.live.records.list_page("order", filters={"product": str(door)}, q="绍兴精工")
    assert [(r["customer"], r["product"]) for r in both.items] == [(acme, door)]
    answer = api.client("li.sales").get("/api/forms/order/records", params={"q": "DP-100001"})
    assert answer.status_code == 200
    assert len(answer.json()["items"]) == 3


def test_many_matching_targets_page_newest_first(db_url: str, apis: list[Api]) -> None:
    """A term in every target (above FEW ids) is matched while scanning; paging still works."""
    from engine.forms import search

    api = start_api(db_url)
    apis.append(api)
    ids = _fill(api)
    old = search.FEW
    search.FEW = 1  # "C0004" is in both customers' codes: more than FEW
    try:
        page = api.live.records.list_page("order", q="C0004", limit=4)
        rest = api.live.records.list_page("order", q="C0004", limit=4, cursor=page.next_cursor)
    finally:
        search.FEW = old
    assert len(page.items) == 4 and len(rest.items) == 2 and rest.next_cursor is None
    every = page.items + rest.items
    assert [r["id"] for r in every] == sorted((r["id"] for r in every), reverse=True)
    assert {r["customer"] for r in every} == {ids["acme"], ids["other"]}


def test_deploy_builds_the_index_on_an_existing_database_and_writes_keep_it(
    db_url: str, apis: list[Api]
) -> None:
    api = _deployed(db_url, apis)
    ids = _fill(api)
    with api.engine.begin() as conn:  # as a database deployed before the index existed
        if conn.dialect.name == "sqlite":
            for name in ("sx_order", "sx_customer", "sx_product"):
                conn.exec_driver_sql(f"DROP TABLE {name}")
        else:
            for name in conn.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE left(indexname, 3) = 'sx_'"
            ).scalars():
                conn.exec_driver_sql(f'DROP INDEX "{name}"')
        assert stale_search_indexes(conn, api.app) == ["customer", "order", "product"]
        plan = plan_schema(conn, api.app)
    assert [(s.kind, s.table) for s in plan.steps] == [
        ("search_index", "f_customer"),
        ("search_index", "f_order"),
        ("search_index", "f_product"),
    ]
    compiled = compile_app(PACK)
    assert compiled.app is not None
    result = deploy(api.engine, compiled.app, bundle_sources(compiled.workspace))
    assert result.changed
    with api.engine.connect() as conn:
        assert stale_search_indexes(conn, api.app) == []
        if conn.dialect.name == "sqlite":
            assert has_fts(conn, "order")
    assert len(_found(api, "绍兴精工")) == 4  # rows written before the index: rebuilt
    r = api.live.records
    order = api.live.records.list_page("order", limit=1).items[0]
    r.update(
        "order", order["id"], {"remarks": "客户要求镭射雕刻标识"}, SYSTEM_ACTOR, order["version"]
    )
    r.update("customer", ids["other"], {"name": "嘉兴新名称有限公司"}, SYSTEM_ACTOR, 1)
    assert [row["id"] for row in r.list_page("order", q="镭射雕刻").items] == [order["id"]]
    assert len(_found(api, "嘉兴新名称")) == 2
    assert _found(api, "宁波车辆部件厂") == []  # the old name is gone from the index


def test_related_lists_on_record_pages(
    db_url: str, monkeypatch: pytest.MonkeyPatch, apis: list[Api]
) -> None:
    api = start_api(db_url)
    apis.append(api)
    ids = _fill(api)
    client, _ = api.browser("li.sales")
    page = client.get(f"/forms/customer/{ids['acme']}")
    assert page.status_code == 200
    assert f'hx-get="/forms/customer/{ids["acme"]}/related"' in page.text
    part = client.get(f"/forms/customer/{ids['acme']}/related", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert "<html" not in part.text and "销售订单" in part.text
    rows = re.findall(r'href="/forms/order/(\d+)"', part.text)
    assert len(rows) == 4 and rows == sorted(rows, key=int, reverse=True)  # newest first
    assert "全部" not in part.text  # all four shown: no link to more
    monkeypatch.setattr(related, "ROWS", 2)
    monkeypatch.setattr(related, "COUNT_CAP", 3)
    part = client.get(f"/forms/customer/{ids['acme']}/related", headers={"HX-Request": "true"})
    assert len(re.findall(r'href="/forms/order/(\d+)"', part.text)) == 2
    assert f'href="/forms/order?customer={ids["acme"]}">全部 3+ 条 →' in part.text
    listed = client.get(f"/forms/order?customer={ids['acme']}")
    assert listed.text.count('href="/forms/order/') >= 4
    whole = client.get(f"/forms/product/{ids['door']}/related")  # without JS: a page
    assert whole.status_code == 200 and "<html" in whole.text and "相关记录" in whole.text
    assert client.get("/forms/customer/999999/related").status_code == 404


def _clerk_and_boss(
    db_url: str, make_app: Callable[..., Any], apis: list[Api], files: dict[str, str]
) -> Api:
    """The app of ``files`` and a Visit form pointing at its client form, served, with the
    users cleo (role clerk) and bob (role boss)."""
    visit = """
        title: Visit
        fields:
          client: {type: ref, form: client, label: Client}
    """
    result = make_app({**files, "forms/visit.yaml": visit})
    assert result.app is not None, result.diagnostics.sorted()
    api = start_api(db_url, result.workspace.root)
    apis.append(api)
    api.add_user("cleo", "clerk")
    api.add_user("bob", "boss")
    return api


def test_related_lists_leave_out_forms_the_user_may_not_read(
    db_url: str, make_app: Callable[..., Any], apis: list[Api]
) -> None:
    api = _clerk_and_boss(
        db_url,
        make_app,
        apis,
        {
            "forms/client.yaml": """
                title: Client
                title_field: name
                fields:
                  name: {type: text, label: Name, required: true}
            """,
            "forms/deal.yaml": """
                title: Deal
                permissions: {read: [boss], create: [boss], update: [boss]}
                fields:
                  client: {type: ref, form: client, label: Client}
            """,
        },
    )
    client_id = api.live.records.create("client", {"name": "Acme"}, SYSTEM_ACTOR)["id"]
    for form in ("deal", "visit"):
        api.live.records.create(form, {"client": client_id}, SYSTEM_ACTOR)
    seen = {}
    for user in ("cleo", "bob"):
        browser, _ = api.browser(user)
        part = browser.get(f"/forms/client/{client_id}/related", headers={"HX-Request": "true"})
        assert part.status_code == 200
        seen[user] = set(re.findall(r'href="/forms/(deal|visit)/\d+"', part.text))
    assert seen == {"cleo": {"visit"}, "bob": {"deal", "visit"}}


def test_picker_options_show_title_code_and_the_declared_field(
    db_url: str, apis: list[Api]
) -> None:
    """`picker: {code: code, show: [category]}` on the pack's product form: options tell
    same-named products apart; the picker's search finds a product by its code."""
    api = start_api(db_url)
    apis.append(api)
    ids = _fill(api)
    twin = api.live.records.create(
        "product",
        {
            "code": "SD-100235",
            "name": "紧凑型SUV真皮座椅面套（棕色）",
            "unit_price": "9",
            "lead_days": 5,
            "category": "座椅面套",
        },
        SYSTEM_ACTOR,
    )["id"]
    client, _ = api.browser("li.sales")
    answer = client.get("/forms/order/pick/product", params={"q": "棕色"})
    assert answer.status_code == 200
    option = r'data-value="(\d+)".*?"opt-title">([^<]*)</span> <small class="opt-detail">([^<]*)<'
    assert re.findall(option, answer.text) == [
        (str(twin), "紧凑型SUV真皮座椅面套（棕色）", "SD-100235 · 座椅面套"),
        (str(ids["seat"]), "紧凑型SUV真皮座椅面套（棕色）", "SD-100234 · 座椅面套"),
    ]
    by_code = client.get("/forms/order/pick/product", params={"q": "sd-100234"})
    assert re.findall(r'data-value="(\d+)"', by_code.text) == [str(ids["seat"])]
    form = client.get("/forms/order/new")
    assert "绍兴精工汽配有限公司 · C00042" in form.text  # customer: name · code (region unset)


def test_search_matches_only_the_title_of_refs_the_user_may_not_read(
    db_url: str, make_app: Callable[..., Any], apis: list[Api]
) -> None:
    """A clerk who may list visits but not read clients finds a visit by its client's name
    (the list shows it) but not by the client's secret note: no guessing what one may not see."""
    api = _clerk_and_boss(
        db_url,
        make_app,
        apis,
        {
            "forms/client.yaml": """
                title: Client
                title_field: name
                permissions: {read: [boss], create: [boss], update: [boss]}
                fields:
                  name: {type: text, label: Name, required: true}
                  note: {type: text, label: Note}
            """,
        },
    )
    client_id = api.live.records.create(
        "client", {"name": "Acme Works", "note": "wx_secret_777"}, SYSTEM_ACTOR
    )["id"]
    visit = api.live.records.create("visit", {"client": client_id}, SYSTEM_ACTOR)["id"]

    def found(user: str, q: str) -> list[int]:
        browser, _ = api.browser(user)
        answer = browser.get("/api/forms/visit/records", params={"q": q})
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["items"]]

    assert found("cleo", "Acme Works") == [visit]
    assert found("cleo", "wx_secret_777") == []
    assert found("cleo", "secret") == []
    assert found("bob", "wx_secret_777") == [visit]
