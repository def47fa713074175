"""Issue 16's "Done when": a browser story per role of the pack on the demo (built in-process the
way ``seamline demo`` builds it: a year of history, the mock warehouse, the chat sink), with the
worker run between clicks; every role's main pages looked at on a desktop (1280 px) and a phone
(375 px), their visible text checked to be Chinese (no engine English, internal names, Python
reprs) and no page scrolling sideways on the phone. Screenshots go to tmp_path, and to
``$SEAMLINE_SHOTS`` when it names a folder.

Some steps depend on work in progress by other owners (search across refs, the "my work" inbox,
live record pages, the tracking page's links); they are written as they should behave, each in a
helper named after its owner, and run once the owner's name leaves :data:`WAITING_FOR`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from browserhelp import launch, needs_chromium, sign_in
from demohelp import DESKTOP, PHONE, DemoTemplates, DemoWorld, Shots, demo_world
from test_exports import _xlsx
from test_track import CODE_RE

from engine.demo.build import DEMO_PASSWORD
from engine.flows.confirm import confirm_gate
from engine.flows.machine import fire_transition

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = needs_chromium

# Owners whose work these stories wait for; take a name out once its work has landed and the
# helper named after it (``<owner>_…``) passes.
WAITING_FOR: frozenset[str] = frozenset()

VIP = "宁波汽车制造有限公司2"  # data/demo_tour.csv: a VIP customer of the generated history
SHORT = "DP-100001"  # mock_wms.py: 30 available, 100 more on a purchase order in 14 days
SALES, DIRECTOR, PROCUREMENT = "li.sales", "zhou.pd", "wu.proc"
FINANCE, WAREHOUSE, LOGISTICS, SERVICE = "huang.fin", "liu.wh", "ma.log", "chen.cs"
# the flow's own states, which a customer must never read on /track
INTERNAL_STATES = ("草稿", "库存校验等待中", "库存已校验", "审批中", "退回修改", "已审批", "已驳回")


def landed(owner: str) -> bool:
    return owner not in WAITING_FOR


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Story:
    world: DemoWorld
    browser: Browser
    shots: Shots
    errors: list[str]

    @property
    def base(self) -> str:
        return self.world.base

    def person(self, username: str | None, phone: bool = False) -> Page:
        """A browser of one's own (own cookies), signed in as ``username`` (None: a customer)."""
        size = PHONE if phone else DESKTOP
        context = self.browser.new_context(locale="zh-CN", viewport=size, is_mobile=phone)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if username is not None:
            page.goto(f"{self.base}/login")
            sign_in(page, username, DEMO_PASSWORD)
            page.wait_for_url(f"{self.base}/")
        return page

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.world.engine.connect() as conn:
            return list(conn.execute(sa.text(query), params).all())

    def order_no(self, order_id: int) -> str:
        return str(self.world.record("order", order_id)["order_no"])

    def customer_id(self, name: str) -> int:
        return int(self.sql("SELECT id FROM f_customer WHERE name = :n", n=name)[0].id)

    def product_id(self, code: str) -> int:
        return int(self.sql("SELECT id FROM f_product WHERE code = :c", c=code)[0].id)

    def order_in(self, state: str) -> int:
        """The newest order of the history in ``state``."""
        found = self.sql("SELECT max(id) AS id FROM f_order WHERE state = :s", s=state)
        assert found and found[0].id is not None, f"the demo has no order in {state}"
        return int(found[0].id)

    def short_rush_order(self, promise: bool = False, customer: str | int = VIP) -> int:
        """A VIP rush order for more than the stock, filed and submitted by sales, stock
        checked by the worker; with ``promise`` its promised date set to the ATP date and
        confirmed by sales at the promise-date gate."""
        records = self.world.live.records
        sales = self.world.person(SALES)
        desired = (date.today() + timedelta(days=21)).isoformat()
        values = {
            "customer": customer if isinstance(customer, int) else self.customer_id(customer),
            "product": self.product_id(SHORT),
            "quantity": 80,
            "desired_date": desired,
            "order_type": "rush",
        }
        order_id = int(records.create("order", values, sales)["id"])
        fire_transition(records, "order", order_id, "submit", sales)
        self.world.work()
        order = self.world.record("order", order_id)
        assert order["state"] == "stock_checked", order["state"]
        if promise:
            records.update("order", order_id, {"promised_date": order["atp_date"]}, sales)
            confirm_gate(records, "order", order_id, "confirm_promise", sales)
        return order_id


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoTemplates]:
    built = DemoTemplates(tmp_path_factory.mktemp("demo-template"))
    yield built
    built.drop()


@pytest.fixture
def story(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, templates: DemoTemplates
) -> Iterator[Story]:
    from playwright.sync_api import sync_playwright

    world_here = demo_world(db_url, tmp_path / "demo", monkeypatch, templates)
    with world_here as world, sync_playwright() as pw:
        chromium = launch(pw)
        try:
            errors: list[str] = []
            yield Story(world, chromium, Shots(tmp_path / "shots", world.app), errors)
            assert errors == [], errors
        finally:
            chromium.close()


def _expect() -> Callable[..., Any]:
    from playwright.sync_api import expect

    return expect


# ---------------------------------------------------------------------------- sales


def test_sales_searches_orders_exports_and_promises_a_date(story: Story) -> None:
    expect = _expect()
    base, world = story.base, story.world
    page = story.person(SALES)
    story.shots.look(page, "sales-home")

    # the order list: search by order number, open the order
    known = story.order_in("scheduled")
    known_no = story.order_no(known)
    page.goto(f"{base}/forms/order")
    story.shots.look(page, "sales-orders")
    page.get_by_role("searchbox").first.fill(known_no)
    page.get_by_role("button", name="搜索").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    page.get_by_role("link", name=known_no, exact=True).click()
    expect(page).to_have_url(f"{base}/forms/order/{known}")
    expect(page.locator("h1 small")).to_have_text(known_no)
    if landed("live"):
        live_timeline_reads_as_people_talk(story, page, "sales-order")
    if landed("search"):
        search_finds_orders_by_customer_and_product(story, page)

    # a new order: a VIP customer from the picker, a rush, more than the stock
    page.goto(f"{base}/forms/order/new")
    story.shots.look(page, "sales-order-new")
    pick_customer(page, VIP)
    pick_product(page, SHORT)
    page.fill("#f-quantity", "80")
    page.fill("#f-desired_date", (date.today() + timedelta(days=21)).isoformat())
    page.select_option("#f-order_type", label="加急单")
    page.click("button.primary[type=submit]")
    expect(page).to_have_url(re.compile(r"/forms/order/\d+$"))
    order_id = int(page.url.rsplit("/", 1)[1])
    order_no = story.order_no(order_id)
    page.get_by_role("button", name="提交订单").click()
    expect(page.locator(".heading")).to_contain_text("已提交")

    # the stock check runs in the worker; the page shows its result
    world.work()
    if landed("live"):
        live_page_shows_the_stock_check_without_reload(page)
    else:
        page.reload()
    expect(page.locator(".heading")).to_contain_text("库存已校验")
    atp = world.record("order", order_id)["atp_date"].isoformat()
    expect(page.locator("#v-atp_date")).to_contain_text(atp)
    story.shots.look(page, "sales-order-stock-checked")

    # the promise date: sales takes the ATP date and confirms it at the gate
    page.locator(".heading").get_by_role("link", name="修改", exact=True).click()
    page.fill("#f-promised_date", atp)
    page.click("button.primary[type=submit]")
    expect(page).to_have_url(f"{base}/forms/order/{order_id}")
    gate = page.locator("#gates")
    expect(gate.locator(".gate-value")).to_have_text(atp)
    gate.get_by_role("button", name=re.compile("以销售身份确认")).click()
    expect(gate.locator('li[data-role="sales"]')).to_contain_text("李明")
    expect(gate.locator('li[data-role="production_director"]')).to_contain_text("未确认")

    # the list, exported as it is filtered: CSV with a BOM, and Excel
    page.goto(f"{base}/forms/order?q={order_no}")
    with page.expect_download() as csv_file:
        page.get_by_role("link", name="导出 CSV").click()
    data = Path(csv_file.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), data[:20]  # Excel reads Chinese
    text = data.decode("utf-8-sig")
    assert "订单号" in text and order_no in text and VIP in text
    assert text.count("\n") == 2, text  # the header and the one order searched for
    with page.expect_download() as xlsx_file:
        page.get_by_role("link", name="导出 Excel").click()
    rows = _xlsx(Path(xlsx_file.value.path()).read_bytes())
    assert len(rows) == 2 and order_no in [text for _kind, text in rows[1]], rows

    # the customer's page
    customer = story.customer_id(VIP)
    page.goto(f"{base}/forms/customer/{customer}")
    story.shots.look(page, "sales-customer")
    if landed("search"):
        customer_page_lists_its_orders(story, page, order_no)


def pick_customer(page: Page, name: str) -> None:
    """The customer picker: type the name, choose the customer with the mouse."""
    expect = _expect()
    with page.expect_response(re.compile(r"/forms/order/pick/customer\?q=")):
        page.fill("#f-customer", name)
    title = page.locator(".opt-title", has_text=re.compile("^" + re.escape(name) + "$"))
    option = page.locator("#lb-customer [role=option]").filter(has=title)
    expect(option).to_have_count(1)
    option.click()
    expect(page.locator("#f-customer")).to_have_value(re.compile("^" + re.escape(name) + " · "))


def pick_product(page: Page, code: str) -> None:
    """The product picker: type the product's code, choose the one it finds with the keyboard."""
    expect = _expect()
    with page.expect_response(re.compile(r"/forms/order/pick/product\?q=")):
        page.fill("#f-product", code)
    expect(page.locator("#lb-product [role=option]")).to_have_count(1)
    page.press("#f-product", "ArrowDown")
    page.press("#f-product", "Enter")
    expect(page.locator("#f-product")).to_have_value(re.compile(" · " + re.escape(code) + "$"))


def search_finds_orders_by_customer_and_product(story: Story, page: Page) -> None:
    """[search] The list finds orders by the customer's name and the product's SKU."""
    expect = _expect()
    page.goto(f"{story.base}/forms/order")
    page.get_by_role("searchbox").first.fill(VIP)
    page.get_by_role("button", name="搜索").click()
    rows = page.locator("table.list tbody tr")
    expect(rows.first).to_contain_text(VIP)
    for row in rows.all():
        expect(row).to_contain_text(VIP)
    customer = story.customer_id(VIP)
    page.goto(f"{story.base}/forms/order?customer={customer}")
    for row in page.locator("table.list tbody tr").all():
        expect(row).to_contain_text(VIP)
    story.shots.look(page, "sales-orders-of-a-customer")


def customer_page_lists_its_orders(story: Story, page: Page, order_no: str) -> None:
    """[search] The customer's page lists the customer's orders, the new one among them."""
    expect = _expect()
    expect(page.get_by_role("link", name=order_no, exact=True)).to_be_visible()


def live_page_shows_the_stock_check_without_reload(page: Page) -> None:
    """[live] The order page follows the stock check by itself (no reload)."""
    _expect()(page.locator(".heading")).to_contain_text("库存已校验", timeout=15_000)


def live_timeline_reads_as_people_talk(story: Story, page: Page, name: str) -> None:
    """[live] The timeline names people and business events, in Chinese: the page passes the
    language check with the timeline on it."""
    story.shots.look(page, name)


# ---------------------------------------------------------------------------- procurement


def test_procurement_sees_the_shortage_and_opens_the_order(story: Story) -> None:
    expect = _expect()
    order_id = story.short_rush_order()
    order_no = story.order_no(order_id)
    todo = [m for m in story.world.chat() if "缺料" in m["text"] and order_no in m["text"]]
    assert len(todo) == 1, [m["title"] for m in story.world.chat()]
    assert SHORT in todo[0]["text"]

    page = story.person(PROCUREMENT)
    story.shots.look(page, "procurement-home")
    page.goto(f"{story.base}/tasks")
    story.shots.look(page, "procurement-inbox")
    if landed("worklist"):
        worklist_shows_the_shortage_with_a_count(story, page, order_id, order_no)
    page.goto(f"{story.base}/forms/order?q={order_no}")
    page.get_by_role("link", name=order_no, exact=True).click()
    expect(page).to_have_url(f"{story.base}/forms/order/{order_id}")
    expect(page.locator(".heading")).to_contain_text("库存已校验")
    expect(page.locator("#v-atp_explanation")).not_to_be_empty()
    page.goto(f"{story.base}/forms/product")
    story.shots.look(page, "procurement-products")


def worklist_shows_the_shortage_with_a_count(
    story: Story, page: Page, order_id: int, order_no: str
) -> None:
    """[worklist] Procurement's inbox holds the shortage to-do, counted in the menu."""
    expect = _expect()
    item = page.get_by_role("link", name=re.compile(re.escape(order_no)))
    expect(item).to_be_visible()
    expect(page.locator("header.top a[href='/tasks'] .count")).to_have_text(re.compile(r"[1-9]"))
    item.first.click()
    expect(page).to_have_url(f"{story.base}/forms/order/{order_id}")
    page.goto(f"{story.base}/tasks")


# ---------------------------------------------------------------------------- director


def test_director_confirms_the_gate_approves_and_reads_the_dashboard(story: Story) -> None:
    expect = _expect()
    base, world = story.base, story.world
    order_id = story.short_rush_order(promise=True)
    order_no = story.order_no(order_id)
    page = story.person(DIRECTOR)
    story.shots.look(page, "director-home")
    page.goto(f"{base}/tasks")
    if landed("worklist"):
        worklist_shows_the_gate_confirmation(story, page, order_id, order_no)

    # the gate: the director confirms the date sales confirmed
    page.goto(f"{base}/forms/order/{order_id}")
    gate = page.locator("#gates")
    gate.get_by_role("button", name=re.compile("以生产总监身份确认")).click()
    expect(gate.locator('li[data-role="production_director"]')).to_contain_text("周立新")
    expect(gate.locator(".gate.passed")).to_have_count(1)

    # sales sends it to approval; VIP + rush comes straight to the director's inbox
    records = world.live.records
    fire_transition(records, "order", order_id, "confirm_promise", world.person(SALES))
    world.work()
    page.goto(f"{base}/tasks")
    row = page.locator("tr", has=page.locator(f'a[href="/forms/order/{order_id}"]'))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(order_no)
    story.shots.look(page, "director-inbox")
    row.locator("textarea[name=comment]").fill("VIP 加急，按可承诺日交付")
    row.get_by_role("button", name="同意").click()
    expect(page.locator(".notice")).to_have_text("已同意。")
    world.work()
    page.goto(f"{base}/forms/order/{order_id}")
    expect(page.locator(".heading")).to_contain_text("已审批")

    # the order-health dashboard: a card per KPI, each with its light
    page.goto(f"{base}/dashboards/order_health")
    cards = page.locator(".kpi")
    expect(cards).to_have_count(len(world.app.dashboards["order_health"].kpis))
    expect(cards.first.locator(".light")).to_have_text(re.compile("绿灯|黄灯|红灯|暂无"))
    story.shots.look(page, "director-dashboard")
    page.goto(f"{base}/dashboards")
    story.shots.look(page, "director-dashboards")


def worklist_shows_the_gate_confirmation(
    story: Story, page: Page, order_id: int, order_no: str
) -> None:
    """[worklist] The director's inbox holds the promise date waiting for his confirmation."""
    expect = _expect()
    item = page.get_by_role("link", name=re.compile(re.escape(order_no)))
    expect(item.first).to_be_visible()
    expect(page.get_by_text("承诺交付日").first).to_be_visible()
    story.shots.look(page, "director-inbox-gate")
    item.first.click()
    expect(page).to_have_url(f"{story.base}/forms/order/{order_id}")


# ---------------------------------------------------------------------------- finance, warehouse


def test_finance_invoices_only_with_a_log_and_warehouse_sees_its_pages(story: Story) -> None:
    expect = _expect()
    base, world = story.base, story.world
    bare = story.sql(
        "SELECT max(o.id) AS id FROM f_order o WHERE o.state = 'delivered' AND NOT EXISTS "
        "(SELECT 1 FROM f_order__communication_log l WHERE l.parent_id = o.id)"
    )[0].id
    assert bare is not None, "the demo has no delivered order without a communication log"
    page = story.person(FINANCE)
    story.shots.look(page, "finance-home")
    page.goto(f"{base}/forms/order/{bare}")
    invoice = page.get_by_role("button", name="开票")
    expect(invoice).to_be_disabled()
    reason = page.locator("#why-invoice")
    expect(reason).to_be_visible()  # words on the page, not only a hover tooltip
    expect(reason).to_contain_text("没有客户沟通纪要")
    story.shots.look(page, "finance-order-refused")

    # customer service logs a call; now finance invoices it
    service = story.person(SERVICE)
    service.goto(f"{base}/forms/order/{bare}")
    entry = service.locator("form.entry")
    entry.locator("select").first.select_option(label="客户询问进度")
    entry.get_by_label("沟通对象").fill("王经理（采购）")
    entry.get_by_label("关键结论").fill("货已收到，数量无误")
    entry.get_by_role("button", name="添加记录").click()
    expect(service.locator("#communication_log tbody")).to_contain_text("货已收到")
    page.reload()
    expect(page.get_by_role("button", name="开票")).to_be_enabled()
    page.get_by_role("button", name="开票").click()
    expect(page.locator(".heading")).to_contain_text("已开票")
    assert world.record("order", bare)["state"] == "invoiced"

    keeper = story.person(WAREHOUSE)
    story.shots.look(keeper, "warehouse-home")
    keeper.goto(f"{base}/tasks")
    story.shots.look(keeper, "warehouse-inbox")
    keeper.goto(f"{base}/forms/product")
    story.shots.look(keeper, "warehouse-products")
    scheduled = story.order_in("scheduled")
    keeper.goto(f"{base}/forms/order/{scheduled}")
    expect(keeper.locator(".heading")).to_contain_text("已排产")
    story.shots.look(keeper, "warehouse-order")


# ---------------------------------------------------------------------------- logistics


def test_logistics_ships_with_a_courier_number_and_confirms_delivery(story: Story) -> None:
    expect = _expect()
    base, world = story.base, story.world
    order_id = story.order_in("scheduled")
    page = story.person(LOGISTICS)
    story.shots.look(page, "logistics-home")
    page.goto(f"{base}/forms/order?state=scheduled")
    story.shots.look(page, "logistics-scheduled")
    page.goto(f"{base}/forms/order/{order_id}")
    page.get_by_role("button", name="发货").click()
    expect(page.locator(".heading")).to_contain_text("已发货")
    page.locator(".heading").get_by_role("link", name="修改", exact=True).click()
    page.fill("#f-tracking_no", "SF1234567890123")
    page.click("button.primary[type=submit]")
    expect(page).to_have_url(f"{base}/forms/order/{order_id}")
    expect(page.locator("#v-tracking_no")).to_have_text("SF1234567890123")
    world.work()
    page.reload()
    expect(page.locator("#v-tracking_at")).not_to_have_text("—")
    story.shots.look(page, "logistics-shipped")
    page.get_by_role("button", name="确认送达").click()
    expect(page.locator(".heading")).to_contain_text("已送达")
    assert world.record("order", order_id)["state"] == "delivered"


# ---------------------------------------------------------------------------- customer


def test_customer_tracks_orders_on_a_phone(story: Story) -> None:
    expect = _expect()
    world = story.world
    order_id = story.order_in("scheduled")
    records = world.live.records
    courier = world.person(LOGISTICS)
    fire_transition(records, "order", order_id, "ship", courier)
    records.update("order", order_id, {"tracking_no": "YT9876543210"}, courier)
    world.work()
    order = world.record("order", order_id)
    phone_no = story.sql("SELECT phone FROM f_customer WHERE id = :i", i=order["customer"])[0].phone
    # one more, stock checked: the customer sees it as received, never by its internal state
    pending = story.short_rush_order(customer=int(order["customer"]))

    phone = story.person(None, phone=True)
    phone.goto(f"{story.base}/track")
    story.shots.look(phone, "customer-track")
    phone.get_by_label("手机号").fill(phone_no)
    phone.get_by_role("button", name="获取验证码").click()
    expect(phone.get_by_role("status")).to_contain_text("如果该号码已登记")
    world.work()  # the code goes out through the outbox, to the customer's WeCom
    sent = [m["text"] for m in world.chat() if CODE_RE.search(m["text"])]
    assert sent, [m["title"] for m in world.chat()]
    code = CODE_RE.search(sent[-1])
    assert code is not None
    story.shots.look(phone, "customer-track-code")
    phone.get_by_label("验证码").fill(code[1])
    phone.get_by_role("button", name="查看我的订单").click()
    card = phone.locator(".track-record", has_text=order["order_no"])
    expect(card).to_have_count(1)
    expect(card).to_contain_text("已发货")
    expect(card).to_contain_text("YT9876543210")
    listed = phone.locator("main").inner_text()
    for state in INTERNAL_STATES:
        assert state not in listed, f"/track shows the internal state {state}"
    received = phone.locator(".track-record", has_text=story.order_no(pending))
    expect(received).to_contain_text("已接单")
    story.shots.look(phone, "customer-track-orders")
    if landed("track"):
        track_stages_are_coloured_and_linked(story, phone, order["order_no"])


def track_stages_are_coloured_and_linked(story: Story, phone: Page, order_no: str) -> None:
    """[track] The order's stage is a coloured badge and the current step of its progress;
    the link in the customer's messages (/track?no=…) brings the order to the top."""
    expect = _expect()
    card = phone.locator(".track-record", has_text=order_no).first
    expect(card.locator(".track-state")).to_have_text("已发货")
    expect(card.locator(".track-state")).to_have_class(re.compile(r"badge \w+"))
    expect(card.locator('[aria-current="step"]')).to_contain_text("已发货")
    phone.goto(f"{story.base}/track?no={order_no}")
    expect(phone.locator(".track-focus")).to_contain_text(order_no)
    story.shots.look(phone, "customer-track-link")
