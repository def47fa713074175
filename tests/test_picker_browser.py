"""The ref picker as people use it: one text box with type-ahead (the WAI-ARIA combobox
pattern), driven with the keyboard, the mouse and a finger, in child-table rows too, and a
plain select when the browser runs no JavaScript (Debian's Chromium through Playwright).

The picker endpoint's answers to odd searches are checked here too, without a browser.
Needs /usr/bin/chromium (``scripts/install-browser``); skipped with the reason when missing.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from apihelp import Api, start_api
from browserhelp import launch, needs_chromium, serve, sign_in
from playwright.sync_api import Locator, Page, expect, sync_playwright
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.accounts.auth import create_user, set_password
from engine.forms.records import SYSTEM_ACTOR
from engine.runtime import Deployments
from engine.web.routes import page_routes
from engine.web.server import create_web_app

PASSWORD = "order-centre-2026"
SHOTS = Path("/tmp/shots_picker")
FAR = (date.today() + timedelta(days=60)).isoformat()
SEAT = "紧凑型SUV真皮座椅面套"  # the name three products share, told apart by their codes
CODES = ("SD-200001", "SD-200002", "SD-200003")

PARTS_APP = {
    "app.yaml": """\
        name: workshop
        title: Workshop
        locale: en
        timezone: Asia/Shanghai
        calendar: cn
        roles:
          clerk: {label: Clerk}
          guest: {label: Guest}
        """,
    "forms/part.yaml": """\
        title: Part
        title_field: name
        picker: {code: code, show: [bin]}
        permissions:
          read: [clerk]
        fields:
          name: {type: text, label: Name, required: true}
          code: {type: text, label: Code}
          bin: {type: text, label: Bin}
        """,
    "forms/job.yaml": """\
        title: Job
        permissions:
          read: [clerk, guest]
          create: [clerk, guest]
          update: [clerk, guest]
        fields:
          main: {type: ref, label: Main part, form: part}
          note: {type: text, label: Note}
          lines:
            type: table
            label: Lines
            fields:
              part: {type: ref, label: Part, form: part, required: true}
              qty: {type: integer, label: Qty, min: 1}
        """,
}

pytestmark = needs_chromium


def web_of(api: Api) -> ASGIApp:
    return create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())


class HeldSearch:
    """The server holds the main picker's search for "wait" until the test lets it go, then
    answers 500: the picker's look while an answer is on its way, and after a failure. Held
    at the server, not by a Playwright route: under the whole suite's load a route let the
    request through now and then (5 runs in 28 once), and the picker said "(nothing found)"."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def held(scope: Scope, receive: Receive, send: Send) -> None:
            query = scope.get("query_string", b"") if scope["type"] == "http" else b""
            if scope.get("path") == "/forms/job/pick/main" and b"q=wait" in query:
                self.arrived.set()
                while not self.release.is_set():
                    await asyncio.sleep(0.02)
                await PlainTextResponse("down", status_code=500)(scope, receive, send)
                return
            await app(scope, receive, send)

        return held


@pytest.fixture
def pack(db_url: str) -> Iterator[tuple[str, Api, dict[str, int]]]:
    """The pack, served, with three products of one name and two customers."""
    api = start_api(db_url)
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", PASSWORD)
    records = api.live.records
    ids = {
        code: records.create(
            "product",
            {
                "code": code,
                "name": SEAT,
                "unit_price": "120",
                "lead_days": 7,
                "category": "座椅面套",
            },
            SYSTEM_ACTOR,
        )["id"]
        for code in CODES
    }
    for code, name in (("C00001", "绍兴某汽车"), ("C00002", "宁波某座椅")):
        ids[code] = records.create(
            "customer", {"code": code, "name": name, "tier": "B"}, SYSTEM_ACTOR
        )["id"]
    with serve(web_of(api)) as base:
        yield base, api, ids
    api.engine.dispose()


@pytest.fixture
def held_search() -> HeldSearch:
    return HeldSearch()


@pytest.fixture
def workshop(
    db_url: str, tmp_path: Path, held_search: HeldSearch
) -> Iterator[tuple[str, Api, dict[str, int]]]:
    """A small app of its own: a job with a ref and a child table with a ref column."""
    root = tmp_path / "workshop"
    for rel, text in PARTS_APP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text), encoding="utf-8")
    api = start_api(db_url, root)
    with api.engine.begin() as conn:
        create_user(conn, "clerk1", ["clerk"], password=PASSWORD, app=api.app)
        create_user(conn, "guest1", ["guest"], password=PASSWORD, app=api.app)
    records = api.live.records
    ids = {  # two parts named Nut, told apart by code and bin
        key: records.create("part", {"name": key.split()[0], "code": code, "bin": b}, SYSTEM_ACTOR)[
            "id"
        ]
        for key, code, b in (
            ("Bolt", "B-1", "A1"),
            ("Nut N-1", "N-1", "A2"),
            ("Nut N-2", "N-2", "B7"),
        )
    }
    with serve(held_search.wrap(web_of(api))) as base:
        try:
            yield base, api, ids
        finally:
            held_search.release.set()  # a held search never keeps the server from stopping
    api.engine.dispose()


def picker(page: Page, name: str) -> tuple[Locator, Locator, Locator]:
    """(combobox, its list box, the hidden input carrying the value) of field ``name``."""
    box = page.locator(f"#f-{name}")
    return box, page.locator(f"#lb-{name}"), page.locator(f'input[type=hidden][name="{name}"]')


def type_in(page: Page, box: Locator, text: str, url: str) -> None:
    """Type as a person does (key by key), and wait for the picker's one debounced request."""
    with page.expect_response(re.compile(re.escape(url) + r"\?q=")):
        box.press_sequentially(text, delay=20)


def test_keyboard_pick_of_same_named_products_then_order(
    pack: tuple[str, Api, dict[str, int]],
) -> None:
    base, api, ids = pack
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            page = chromium.new_context(
                viewport={"width": 1280, "height": 900}, locale="zh-CN"
            ).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url) if "/pick/" in r.url else None)
            page.goto(f"{base}/forms/order/new")
            sign_in(page, "li.sales", PASSWORD)
            expect(page).to_have_url(f"{base}/forms/order/new")

            # accessibility: one combobox per ref, named by its label, owning a list box
            customer, customers, customer_id = picker(page, "customer")
            expect(page.get_by_role("combobox", name="客户")).to_have_count(1)
            expect(customer).to_have_attribute("aria-autocomplete", "list")
            expect(customer).to_have_attribute("aria-expanded", "false")
            expect(customer).to_have_attribute("aria-controls", "lb-customer")
            expect(customer).to_have_attribute("aria-required", "true")
            expect(customers).to_have_attribute("role", "listbox")
            expect(customers).to_be_hidden()
            expect(page.locator(".ref-picker select")).to_have_count(0)  # one control per ref

            # the customer by its code: type, ↓, Enter
            type_in(page, customer, "C00002", "/forms/order/pick/customer")
            expect(customer).to_have_attribute("aria-expanded", "true")
            expect(customers.get_by_role("option")).to_have_count(1)
            expect(page.locator("#row-customer [role=status]")).to_have_text("找到 1 条")
            customer.press("ArrowDown")
            active = customers.get_by_role("option").first
            expect(active).to_have_attribute("aria-selected", "true")
            expect(customer).to_have_attribute(
                "aria-activedescendant", active.get_attribute("id") or "-"
            )
            customer.press("Enter")
            expect(customer).to_have_value("宁波某座椅 · C00002")
            expect(customer_id).to_have_value(str(ids["C00002"]))
            expect(customer).to_have_attribute("aria-expanded", "false")
            expect(page).to_have_url(f"{base}/forms/order/new")  # Enter did not submit

            # the product by part of a name three products share: their codes tell them apart
            product, products, product_id = picker(page, "product")
            asked = len(requests)
            type_in(page, product, "真皮座椅", "/forms/order/pick/product")
            assert len(requests) == asked + 1, requests[asked:]  # one request, not one per key
            options = products.get_by_role("option")
            expect(options).to_have_count(3)
            expect(options.locator(".opt-title")).to_have_text([SEAT] * 3)
            details = options.locator(".opt-detail").all_inner_texts()
            assert sorted(details) == [f"{c} · 座椅面套" for c in CODES], details
            product.press("ArrowDown")
            product.press("ArrowDown")
            product.press("ArrowDown")
            product.press("ArrowUp")  # back to the second
            second = options.nth(1)
            expect(second).to_have_attribute("aria-selected", "true")
            expect(options.nth(0)).to_have_attribute("aria-selected", "false")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "desktop-open.png"))
            wanted = details[1].split(" · ")[0]
            product.press("Enter")
            expect(product).to_have_value(f"{SEAT} · {wanted}")
            expect(product_id).to_have_value(str(ids[wanted]))

            # Escape closes and restores what was chosen; a search that finds nothing says so
            product.fill("")
            type_in(page, product, "zzzz", "/forms/order/pick/product")
            expect(products.get_by_role("option")).to_have_text(["（没有匹配的记录）"])
            expect(product_id).to_have_value("")  # the text was cleared first
            product.press("Escape")
            expect(products).to_be_hidden()
            expect(product).to_have_value("")
            type_in(page, product, wanted.lower(), "/forms/order/pick/product")  # by code
            product.press("Enter")  # the only option
            expect(product_id).to_have_value(str(ids[wanted]))
            type_in(page, product, "x", "/forms/order/pick/product")
            product.press("Escape")
            expect(product).to_have_value(f"{SEAT} · {wanted}")
            expect(product_id).to_have_value(str(ids[wanted]))

            # Tab leaves: unpicked text goes back to the chosen record
            type_in(page, customer, "某", "/forms/order/pick/customer")
            customer.press("Tab")
            expect(customer).to_have_value("宁波某座椅 · C00002")
            expect(customers).to_be_hidden()

            page.fill("#f-quantity", "10")
            page.fill("#f-desired_date", FAR)
            page.click("button.primary[type=submit]")
            expect(page).to_have_url(re.compile(r"/forms/order/\d+$"))
            order_id = int(page.url.rsplit("/", 1)[1])
            expect(page.locator("#v-product a")).to_contain_text(SEAT)
            expect(page.locator("#v-customer a")).to_have_text("宁波某座椅")
            saved = api.live.records.get("order", order_id)
            assert (saved["product"], saved["customer"]) == (ids[wanted], ids["C00002"])

            # the edit form starts with the chosen records; a cleared required ref is an error
            # next to its control, and what was picked elsewhere is kept
            page.goto(f"{base}/forms/order/{order_id}/edit")
            expect(customer).to_have_value("宁波某座椅 · C00002")
            expect(product).to_have_value(f"{SEAT} · {wanted}")
            customer.fill("")
            expect(customer_id).to_have_value("")
            page.click("button.primary[type=submit]")
            expect(page.locator("#e-customer")).to_have_text("客户为必填项")
            expect(customer).to_have_attribute("aria-invalid", "true")
            expect(customer).to_have_attribute("aria-describedby", "e-customer")
            expect(product).to_have_value(f"{SEAT} · {wanted}")
            expect(product_id).to_have_value(str(ids[wanted]))
            assert errors == []
        finally:
            chromium.close()


def test_phone_picker_two_lines_by_touch(pack: tuple[str, Api, dict[str, int]]) -> None:
    base, _api, ids = pack
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            phone = chromium.new_context(
                viewport={"width": 375, "height": 740},
                locale="zh-CN",
                has_touch=True,
                is_mobile=True,
            )
            page = phone.new_page()
            page.goto(f"{base}/forms/order/new")
            sign_in(page, "li.sales", PASSWORD)
            product, products, product_id = picker(page, "product")
            type_in(page, product, "座椅", "/forms/order/pick/product")
            options = products.get_by_role("option")
            expect(options).to_have_count(3)
            first = options.first
            title = first.locator(".opt-title").bounding_box()
            detail = first.locator(".opt-detail").bounding_box()
            assert title and detail and detail["y"] >= title["y"] + title["height"] - 1  # two lines
            box = products.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375  # inside the screen
            page.screenshot(path=str(SHOTS / "phone-open.png"), full_page=False)
            code = first.locator(".opt-detail").inner_text().split(" · ")[0]
            first.tap()
            expect(product_id).to_have_value(str(ids[code]))
            expect(product).to_have_value(f"{SEAT} · {code}")
            expect(products).to_be_hidden()
            page.screenshot(path=str(SHOTS / "phone-picked.png"), full_page=True)
        finally:
            chromium.close()


def test_child_rows_mouse_pick_and_without_javascript(
    workshop: tuple[str, Api, dict[str, int]], held_search: HeldSearch
) -> None:
    base, api, ids = workshop
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/forms/job/new")
            sign_in(page, "clerk1", PASSWORD)
            main, mains, main_id = picker(page, "main")
            # while the answer is on its way the picker says it is searching; a failure says so
            main.fill("wait")
            assert held_search.arrived.wait(10), "the search for 'wait' never reached the server"
            status = page.locator("#row-main [role=status]")
            expect(status).to_have_text("Searching…")
            expect(status).to_be_visible()
            page.screenshot(path=str(SHOTS / "loading.png"))
            held_search.release.set()
            expect(status).to_have_text("The search failed; type again to retry.")
            expect(status).to_be_visible()
            # the top-level ref: by mouse
            main.fill("")
            type_in(page, main, "bol", "/forms/job/pick/main")
            mains.get_by_role("option", name=re.compile("Bolt")).click()
            expect(main).to_have_value("Bolt · B-1")
            expect(main_id).to_have_value(str(ids["Bolt"]))
            # a row added with the button: its picker works like the others
            page.get_by_role("button", name="Add a row").click()
            part, parts, part_id = picker(page, "lines-0-part")
            expect(part).to_be_focused()
            type_in(page, part, "nut", "/forms/job/pick/lines.part")
            options = parts.get_by_role("option")
            expect(options.locator(".opt-detail")).to_have_text(["N-2 · B7", "N-1 · A2"])
            page.screenshot(path=str(SHOTS / "rows-open.png"))
            part.press("ArrowDown")
            part.press("Enter")
            expect(part_id).to_have_value(str(ids["Nut N-2"]))
            page.get_by_role("button", name="Add a row").click()
            second, seconds, second_id = picker(page, "lines-1-part")
            type_in(page, second, "n-1", "/forms/job/pick/lines.part")
            seconds.get_by_role("option").first.click()
            expect(second_id).to_have_value(str(ids["Nut N-1"]))
            page.fill("#f-lines-1-qty", "4")
            page.screenshot(path=str(SHOTS / "rows.png"), full_page=True)
            # a non-required ref can be emptied
            main.fill("")
            page.click("button.primary[type=submit]")
            expect(page).to_have_url(re.compile(r"/forms/job/\d+$"))
            job = api.live.records.get("job", int(page.url.rsplit("/", 1)[1]))
            assert job["main"] is None
            assert [(r["part"], r["qty"]) for r in job["lines"]] == [
                (ids["Nut N-2"], None),
                (ids["Nut N-1"], 4),
            ]
            assert errors == []

            # without JavaScript: a plain select of the newest and the chosen records
            plain = chromium.new_context(java_script_enabled=False).new_page()
            plain.goto(f"{base}/forms/job/new")
            sign_in(plain, "clerk1", PASSWORD)
            expect(plain.locator("#f-main")).to_be_hidden()
            select = plain.get_by_role("combobox", name="Main part")
            select.select_option(label="Nut · N-1 · A2")
            plain.fill("#f-note", "no script")
            plain.screenshot(path=str(SHOTS / "no-javascript.png"))
            plain.click("button.primary[type=submit]")
            expect(plain).to_have_url(re.compile(r"/forms/job/\d+$"))
            job = api.live.records.get("job", int(plain.url.rsplit("/", 1)[1]))
            assert job["main"] == ids["Nut N-1"]
            plain.goto(plain.url + "/edit")
            expect(plain.get_by_role("combobox", name="Main part")).to_have_value(
                str(ids["Nut N-1"])
            )
        finally:
            chromium.close()


def test_pick_answers_odd_searches_with_4xx_or_options_never_500(
    workshop: tuple[str, Api, dict[str, int]],
) -> None:
    _base, api, _ids = workshop
    api.live.records.create(
        "part", {"name": '<script>alert("x")</script>', "code": "&<>"}, SYSTEM_ACTOR
    )
    client = TestClient(web_of(api), raise_server_exceptions=False)

    def signed_in(user: str) -> TestClient:
        client.cookies.clear()
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token
        form = {"csrf_token": token[1], "username": user, "password": PASSWORD, "next": "/"}
        assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        return client

    clerk = signed_in("clerk1")
    url = "/forms/job/pick/lines.part"
    escaped = clerk.get(url, params={"q": "script"})
    assert escaped.status_code == 200
    assert "<script>" not in escaped.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in escaped.text
    assert (
        'data-label="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; · &amp;&lt;&gt;"'
        in escaped.text
    )
    for odd in ("x" * 5000, "a\x00b\x1b[31m\x7f", "%", "'\"`;--", "\u202e\ufeff"):
        answer = clerk.get(url, params={"q": odd})
        assert answer.status_code < 500, (odd[:20], answer.status_code)
    assert "(nothing found)" in clerk.get(url, params={"q": "zzz"}).text
    assert clerk.get("/forms/job/pick/note").status_code == 404
    assert clerk.get("/forms/job/pick/lines.qty").status_code == 404
    # a guest may fill jobs but not read parts: no picker answers, the form shows only ids
    guest = signed_in("guest1")
    assert guest.get(url, params={"q": "nut"}).status_code == 403
    assert "Nut" not in guest.get("/forms/job/new").text
