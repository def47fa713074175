"""The server-rendered pages over the manufacturing pack: sign-in, CSRF, lists, record pages,
create/edit with inline errors in Chinese, append-only entries, template overrides."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from apihelp import Api, start_api
from starlette.testclient import TestClient

from engine.accounts.auth import create_token, set_password
from engine.forms.records import SYSTEM_ACTOR
from engine.runtime import Deployments, LiveApp
from engine.web.routes import STATIC_DIR, page_routes
from engine.web.security import LoginLimiter
from engine.web.server import create_web_app

PASSWORD = "order-centre-2026"
FAR = (date.today() + timedelta(days=60)).isoformat()
TOMORROW = (date.today() + timedelta(days=1)).isoformat()
RULE = "期望交付日不得早于当前日期+3个工作日"


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    api = start_api(db_url)
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", PASSWORD)
        set_password(conn, "huang.fin", PASSWORD)
    yield api
    api.engine.dispose()


def browser(api: Api, live: LiveApp | None = None) -> TestClient:
    web = create_web_app(api.engine, Deployments(api.engine, live or api.live), page_routes())
    web.state.login_limiter = LoginLimiter(max_failures=3)
    return TestClient(web, raise_server_exceptions=False)


def csrf(page_html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert found, page_html[:500]
    return found[1]


def sign_in(client: TestClient, username: str = "li.sales") -> str:
    token = csrf(client.get("/login").text)
    r = client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORD, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf(client.get("/").text)


def error_of(page_html: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="e-{re.escape(field)}"[^>]*>(.*?)</p>', page_html)
    return html.unescape(found[1]) if found else ""


def seed(api: Api) -> tuple[int, int]:
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00001", "name": "绍兴某汽车", "tier": "VIP"}, SYSTEM_ACTOR
    )
    product = records.create(
        "product",
        {"code": "SD-100234", "name": "真皮座椅面套", "unit_price": "120.50", "lead_days": 10},
        SYSTEM_ACTOR,
    )
    return customer["id"], product["id"]


def draft_order(api: Api) -> dict[str, Any]:
    """One order of one piece in draft, by the system, on the seeded customer and product."""
    customer, product = seed(api)
    values = {
        "customer": customer,
        "product": product,
        "quantity": 1,
        "desired_date": FAR,
        "order_type": "normal",
    }
    return api.live.records.create("order", values, SYSTEM_ACTOR)


def order_form(token: str, customer: int, product: int, **values: str) -> dict[str, object]:
    data: dict[str, object] = {
        "csrf_token": token,
        "customer": str(customer),
        "product": str(product),
        "quantity": "10",
        "desired_date": FAR,
        "order_type": "normal",
        "q": "",
    }
    data.update(values)
    return data


# ---------------------------------------------------------------------------- sign-in


def test_pages_need_sign_in(api: Api) -> None:
    client = browser(api)
    r = client.get("/forms/order?q=x", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fforms%2Forder%3Fq%3Dx"
    hx = client.get("/forms/order", headers={"HX-Request": "true"}, follow_redirects=False)
    assert hx.status_code == 401
    assert hx.headers["HX-Redirect"].startswith("/login?next=")
    post = client.post("/forms/customer/new", data={"name": "x"}, follow_redirects=False)
    assert post.status_code == 303
    login = client.get("/login?next=/forms/order")
    assert login.status_code == 200
    assert '<html lang="zh-CN">' in login.text
    assert "登录" in login.text
    assert 'name="viewport"' in login.text


def test_login_flow(api: Api) -> None:
    client = browser(api)
    token = csrf(client.get("/login").text)
    wrong = client.post(
        "/login", data={"csrf_token": token, "username": "li.sales", "password": "nope-nope"}
    )
    assert wrong.status_code == 401
    assert "用户名或密码错误" in wrong.text
    nul = client.post("/login", data={"csrf_token": token, "username": "li\x00", "password": "x"})
    assert nul.status_code == 400
    no_csrf = client.post("/login", data={"username": "li.sales", "password": PASSWORD})
    assert no_csrf.status_code == 403
    assert "表单已过期" in no_csrf.text
    ok = client.post(
        "/login",
        data={
            "csrf_token": token,
            "username": "li.sales",
            "password": PASSWORD,
            "next": "/forms/order",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert ok.headers["location"] == "/forms/order"
    home = client.get("/")
    assert home.status_code == 200
    for title in ("订单中心", "销售订单", "客户", "产品", "李明"):
        assert title in home.text
    assert home.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in home.headers["content-security-policy"]
    # the token changed on sign-in; signing out needs the new one
    new_token = csrf(home.text)
    assert new_token != token
    refused = client.post("/logout", data={"csrf_token": token})
    assert refused.status_code == 403
    out = client.post("/logout", data={"csrf_token": new_token}, follow_redirects=False)
    assert out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_rate_limit_and_safe_next(api: Api) -> None:
    client = browser(api)
    token = csrf(client.get("/login").text)
    for _ in range(3):
        r = client.post(
            "/login", data={"csrf_token": token, "username": "li.sales", "password": "bad-bad-bad"}
        )
        assert r.status_code == 401
    limited = client.post(
        "/login", data={"csrf_token": token, "username": "li.sales", "password": PASSWORD}
    )
    assert limited.status_code == 429
    assert "登录失败次数过多" in limited.text
    assert limited.headers["retry-after"].isdigit()
    other = browser(api)
    token = csrf(other.get("/login").text)
    for target in ("//evil.example/x", "https://evil.example", "/\\evil", "javascript:x"):
        r = other.post(
            "/login",
            data={
                "csrf_token": token,
                "username": "huang.fin",
                "password": PASSWORD,
                "next": target,
            },
            follow_redirects=False,
        )
        assert r.headers["location"] == "/", target
        token = csrf(other.get("/login").text)
        other.post("/logout", data={"csrf_token": csrf(other.get("/").text)})
        token = csrf(other.get("/login").text)


# ---------------------------------------------------------------------------- records


def test_create_with_inline_error_then_edit(api: Api) -> None:
    customer, product = seed(api)
    client = browser(api)
    token = sign_in(client)
    new = client.get("/forms/order/new")
    assert new.status_code == 200
    for text in ("新建销售订单", "期望交付日", "不得早于当前日期 + 3 个工作日", "绍兴某汽车"):
        assert text in new.text
    assert 'type="date"' in new.text
    assert 'hx-get="/forms/order/pick/customer"' in new.text
    assert 'data-upload="/api/files?form=order&amp;field=attachments"' in new.text
    assert 'value="激光打孔"' in new.text  # multiselect as checkboxes
    assert "communication_log-" not in new.text  # append-only: only on the record page

    data = order_form(token, customer, product, desired_date=TOMORROW, remarks="先打样")
    data["special_process"] = ["激光打孔", "装饰缝线"]
    early = client.post("/forms/order/new", data=data, follow_redirects=False)
    assert early.status_code == 422
    assert error_of(early.text, "desired_date") == RULE
    assert "请修正标出的字段" in early.text
    # what was typed is kept
    assert f'value="{TOMORROW}"' in early.text
    assert f'<input type="hidden" name="customer" value="{customer}">' in early.text
    assert 'value="绍兴某汽车 · C00001" data-label="绍兴某汽车 · C00001"' in early.text
    assert 'value="激光打孔" checked' in early.text
    assert 'value="高频焊接" checked' not in early.text
    assert "先打样" in early.text

    created = client.post(
        "/forms/order/new", data=order_form(token, customer, product), follow_redirects=False
    )
    assert created.status_code == 303
    location = created.headers["location"]
    assert re.fullmatch(r"/forms/order/\d+", location)
    record = client.get(location)
    assert record.status_code == 200
    assert "SO-" in record.text
    assert f'<a href="/forms/customer/{customer}">绍兴某汽车</a>' in record.text
    assert "¥1,205.00" in record.text  # the app's currency (app.yaml currency: CNY)
    assert "草稿" in record.text
    assert "创建了记录" in record.text
    # times in the app's zone (Asia/Shanghai), the history as well as the fields
    created_at = re.search(r"李明 · (\d{4}-\d\d-\d\d \d\d:\d\d)", record.text)
    assert created_at, record.text
    assert f"<time>{created_at[1]}</time> <strong>李明</strong> 创建了记录" in record.text

    edit = client.get(location + "/edit")
    assert edit.status_code == 200
    assert 'name="_version" value="1"' in edit.text
    assert 'name="order_no"' not in edit.text  # autonumber: shown, not an input
    edited = client.post(
        location + "/edit",
        data=order_form(token, customer, product, quantity="12", _version="1"),
        follow_redirects=False,
    )
    assert edited.status_code == 303, edited.text
    timeline = client.get(location).text.split('id="history"')[1]
    assert re.search(r"需求数量</span>：<del>10</del> → <ins>12</ins>", timeline)
    assert re.search(r"订单金额</span>：<del>¥1,205.00</del> → <ins>¥1,446.00</ins>", timeline)
    assert "李明" in timeline

    stale = client.post(
        location + "/edit",
        data=order_form(token, customer, product, quantity="13", _version="1"),
    )
    assert stale.status_code == 409
    assert "记录已被他人修改" in stale.text
    # nothing changed: no new event
    same = client.post(
        location + "/edit",
        data=order_form(token, customer, product, quantity="12", _version="2"),
        follow_redirects=False,
    )
    assert same.status_code == 303
    assert client.get(location).text.count('class="event changed"') == 1


def test_bad_input_never_500(api: Api) -> None:
    customer, _ = seed(api)
    client = browser(api)
    token = sign_in(client)
    bad = client.post(
        "/forms/order/new",
        data=order_form(
            token, customer, 999, quantity="many", order_type="urgent", desired_date="31/12"
        ),
    )
    assert bad.status_code == 422
    assert error_of(bad.text, "quantity") == "需求数量：必须是整数"
    assert "不是可选项" in error_of(bad.text, "order_type")
    assert error_of(bad.text, "desired_date") == "期望交付日：必须是日期（YYYY-MM-DD）"
    assert error_of(bad.text, "product") == "产品：不存在编号为 999 的产品"
    assert 'value="many"' in bad.text
    blank = client.post("/forms/customer/new", data={"csrf_token": token})
    assert blank.status_code == 422
    assert error_of(blank.text, "code") == "客户编号为必填项"
    pattern = client.post(
        "/forms/customer/new", data={"csrf_token": token, "code": "X1", "name": "n"}
    )
    assert error_of(pattern.text, "code") == "客户编号格式为 C 加 5 位数字，例如 C00042"
    for path in (
        "/forms/nope",
        "/forms/nope/new",
        "/forms/order/424242",
        "/forms/order/0",
        "/forms/order/99999999999999999999999",
        "/forms/order/424242/edit",
        "/forms/order/pick/quantity",
        "/forms/order/pick/nope.x",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
    assert "没有这个页面或记录" in client.get("/forms/order/424242").text
    assert client.get("/forms/order?cursor=%%%garbage").status_code == 400
    assert client.get("/forms/order?q=a%00b").status_code == 200  # PostgreSQL refuses NUL
    assert client.get("/forms/order/pick/customer?q=a%00b").status_code == 200
    weird = client.post(
        "/forms/order/new",
        data={"csrf_token": token, "customer": "1" * 30, "quantity": "1" * 40},
    )
    assert weird.status_code == 422
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    huge = client.post("/forms/customer/new", content=b"a=" + b"x" * 2_100_000, headers=form_type)
    assert huge.status_code == 413


def test_csrf_refused_on_pages(api: Api) -> None:
    customer, product = seed(api)
    client = browser(api)
    sign_in(client)
    data = order_form("wrong", customer, product)
    r = client.post("/forms/order/new", data=data)
    assert r.status_code == 403
    assert "表单已过期" in r.text
    data.pop("csrf_token")
    assert client.post("/forms/order/new", data=data).status_code == 403
    assert api.live.records.list_page("order").items == []


def test_list_search_filter_and_paging(api: Api) -> None:
    records = api.live.records
    for i in range(30):
        records.create(
            "customer",
            {"code": f"C{i:05d}", "name": f"客户{i} <b>&</b>", "tier": "A", "region": "华东"},
            SYSTEM_ACTOR,
        )
    client = browser(api)
    sign_in(client)
    page = client.get("/forms/customer")
    assert page.status_code == 200
    assert page.text.count("<tr>") == 26  # header + 25 rows
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in page.text  # escaped
    assert "<b>&</b>" not in page.text
    assert 'hx-get="/forms/customer"' in page.text and 'hx-target="#table"' in page.text
    found = re.search(r'href="(\?cursor=[^"]+)" rel="next"', page.text)
    assert found
    next_url = html.unescape(found[1])
    second = client.get("/forms/customer" + next_url)
    assert second.text.count("<tr>") == 6
    assert "第一页" in second.text
    partial = client.get("/forms/customer?q=客户7", headers={"HX-Request": "true"})
    assert "<html" not in partial.text
    assert "C00007" in partial.text and "C00017" not in partial.text
    # orders: state filter
    customer, product = seed(api)
    records.create(
        "order",
        {
            "customer": customer,
            "product": product,
            "quantity": 1,
            "desired_date": FAR,
            "order_type": "rush",
        },
        SYSTEM_ACTOR,
    )
    orders = client.get("/forms/order?state=draft")
    assert "草稿" in orders.text and "加急单" in orders.text
    assert "暂无记录" in client.get("/forms/order?state=approved").text
    assert client.get("/forms/order?state=nonsense").status_code == 200
    picked = client.get("/forms/order/pick/customer?q=客户2")
    assert '<li role="option" aria-selected="false" data-value=' in picked.text
    assert "客户2" in picked.text
    assert "没有匹配" in client.get("/forms/order/pick/customer?q=zzzz").text


def test_append_only_entry_box(api: Api) -> None:
    order = draft_order(api)
    client = browser(api)
    token = sign_in(client)
    url = f"/forms/order/{order['id']}"
    page = client.get(url)
    assert "添加记录" in page.text
    assert 'name="communication_log-0-talked_at"' in page.text
    missing = client.post(
        url + "/children/communication_log",
        data={"csrf_token": token, "communication_log-0-contact": "王经理"},
    )
    assert missing.status_code == 422
    assert error_of(missing.text, "communication_log-0-conclusion") == "关键结论为必填项"
    assert 'value="王经理"' in missing.text
    added = client.post(
        url + "/children/communication_log",
        data={
            "csrf_token": token,
            "communication_log-0-contact": "王经理",
            "communication_log-0-talked_at": "2026-03-02T10:30",
            "communication_log-0-conclusion": "同意延期\n两天",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    page = client.get(url)
    assert "同意延期\n两天" in page.text
    assert "2026-03-02 10:30" in page.text
    assert "在“客户沟通日志”中添加了一行" in page.text
    assert client.post(url + "/children/nope", data={"csrf_token": token}).status_code == 404
    assert "communication_log-" not in client.get(url + "/edit").text


def test_field_permissions_on_the_form(api: Api) -> None:
    client = browser(api)
    sign_in(client, "huang.fin")
    new = client.get("/forms/customer/new")
    assert 'name="credit_limit"' in new.text  # finance may set the credit limit
    order = client.get("/forms/order/new")
    assert 'name="promised_date"' not in order.text  # only sales may
    sales = browser(api)
    sign_in(sales)
    assert 'name="credit_limit"' not in sales.get("/forms/customer/new").text


def test_template_override_from_bundle(api: Api) -> None:
    bundle = {
        "templates/home.html": (
            '{% extends "base.html" %}{% block content %}'
            '<p id="custom">定制首页 {{ app.title }} {{ "<i>" }}</p>{% endblock %}'
        )
    }
    client = browser(api, LiveApp.of(api.app, api.engine, bundle))
    sign_in(client)
    home = client.get("/")
    assert '<p id="custom">定制首页 订单中心 &lt;i&gt;</p>' in home.text
    assert "退出登录" in home.text  # base.html still from the engine
    assert "定制首页" not in browser(api).get("/login").text


def test_static_assets(api: Api) -> None:
    client = browser(api)
    htmx = client.get("/static/htmx.min.js")
    assert htmx.status_code == 200
    vendored = (STATIC_DIR / "VENDORED.md").read_text(encoding="utf-8")
    assert hashlib.sha256(htmx.content).hexdigest() in vendored
    assert client.get("/static/seamline.css").status_code == 200
    assert client.get("/static/seamline.js").status_code == 200


def test_bearer_token_reads_pages(api: Api) -> None:
    with api.engine.begin() as conn:
        token = create_token(conn, "li.sales")
    web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    client = TestClient(web, headers={"Authorization": f"Bearer {token}"})
    assert client.get("/forms/order").status_code == 200
    assert Path(STATIC_DIR / "htmx.min.js").exists()


VISIT_APP = {
    "app.yaml": """\
        name: visits
        title: Visits
        locale: en
        timezone: Asia/Shanghai
        calendar: cn
        roles:
          clerk: {label: Clerk}
        """,
    "forms/item.yaml": """\
        title: Item
        title_field: name
        fields:
          name: {type: text, label: Name, required: true}
        """,
    "forms/visit.yaml": """\
        title: Visit
        list_columns: [item, urgent]
        fields:
          item: {type: ref, label: Main item, form: item, required: true}
          urgent: {type: boolean, label: Urgent}
          at: {type: datetime, label: When}
          lines:
            type: table
            label: Lines
            fields:
              part: {type: ref, label: Part, form: item, required: true}
              qty: {type: integer, label: Qty, min: 1}
        """,
}


def test_child_rows_and_other_inputs(db_url: str, tmp_path: Path) -> None:
    import textwrap

    root = tmp_path / "visits"
    for rel, text in VISIT_APP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    api = start_api(db_url, root)
    try:
        with api.engine.begin() as conn:
            from engine.accounts.auth import create_user

            create_user(conn, "clerk1", ["clerk"], password=PASSWORD, app=api.app)
        bolt = api.live.records.create("item", {"name": "Bolt"}, SYSTEM_ACTOR)["id"]
        nut = api.live.records.create("item", {"name": "Nut"}, SYSTEM_ACTOR)["id"]
        client = browser(api)
        token = sign_in(client, "clerk1")
        new = client.get("/forms/visit/new")
        assert '<template id="tpl-lines">' in new.text
        assert 'name="lines-__i__-part"' in new.text
        assert 'hx-get="/forms/visit/pick/lines.part"' in new.text
        assert '<html lang="en">' in new.text and "Save" in new.text
        assert "Nut" in client.get("/forms/visit/pick/lines.part?q=nu").text
        data = {
            "csrf_token": token,
            "item": str(bolt),
            "urgent": ["false", "true"],
            "at": "2026-05-04T09:15",
            "lines-0-part": str(nut),
            "lines-0-qty": "3",
            "lines-1-part": "",
            "lines-1-qty": "",
            "lines-7-part": str(bolt),
            "lines-7-qty": "0",
        }
        bad = client.post("/forms/visit/new", data=data)
        assert bad.status_code == 422
        assert "Qty: must be at least 1" in bad.text
        assert 'name="lines-1-qty" value="0"' in bad.text  # rows renumbered, values kept
        data["lines-7-qty"] = "5"
        made = client.post("/forms/visit/new", data=data, follow_redirects=False)
        assert made.status_code == 303, made.text
        url = made.headers["location"]
        record = client.get(url).text
        assert "2026-05-04 09:15" in record and "Yes" in record
        assert record.count('href="/forms/item/') == 3
        edit = client.get(url + "/edit").text
        assert 'name="lines-1-qty" value="5"' in edit
        assert 'value="true" checked' in edit
        assert 'name="at" required' not in edit and 'value="2026-05-04T09:15"' in edit
        changed = client.post(
            url + "/edit",
            data={
                "csrf_token": token,
                "item": str(bolt),
                "urgent": "false",
                "at": "2026-05-04T09:15",
                "lines-0-part": str(nut),
                "lines-0-qty": "4",
            },
            follow_redirects=False,
        )
        assert changed.status_code == 303, changed.text
        after = api.live.records.get("visit", int(url.rsplit("/", 1)[1]))
        assert after["urgent"] is False
        assert [(r["part"], r["qty"]) for r in after["lines"]] == [(nut, 4)]
        listing = client.get("/forms/visit").text
        assert re.search(r'<a href="/forms/visit/\d+">Bolt</a>', listing)  # no nested links
        assert '<a href="/forms/item' not in listing.split("<tbody>")[1].split("</td>")[0]
    finally:
        api.engine.dispose()


def test_a_greyed_out_action_says_why_in_visible_words(api: Api) -> None:
    """The reason a transition cannot fire is text on the page (a tooltip is invisible on a
    phone), tied to its button for screen readers."""
    order = draft_order(api)
    table = api.live.metadata.tables["f_order"]
    with api.engine.begin() as conn:  # as if the stock check had answered
        conn.execute(table.update().where(table.c.id == order["id"]).values(state="stock_checked"))
    client = browser(api)
    sign_in(client)
    page = client.get(f"/forms/order/{order['id']}").text
    button = re.search(r"<button[^>]*disabled[^>]*>([^<]*)</button>", page)
    assert button is not None, page
    described = re.search(r'aria-describedby="(why-[a-z_]+)"', button[0])
    assert described is not None
    reason = re.search(rf'<li id="{described[1]}"><strong>([^<]*)</strong> — ([^<]+)</li>', page)
    assert reason is not None, page
    assert reason[1] == button[1]
    assert "承诺交付日" in html.unescape(reason[2])  # promised_date is required to go on
