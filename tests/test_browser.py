"""A real browser against a real server: sign in, order with a too-early date, fix it, edit
the quantity and see the change in the history (Debian's Chromium through Playwright).

Needs /usr/bin/chromium (``scripts/install-browser``); skipped with the reason when missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from apihelp import Api, start_api
from browserhelp import launch, needs_chromium, serve, sign_in
from starlette.testclient import TestClient

from engine.accounts.auth import create_token, set_password
from engine.runtime import Deployments
from engine.web.routes import page_routes
from engine.web.server import create_web_app

PASSWORD = "order-centre-2026"
RULE = "期望交付日不得早于当前日期+3个工作日"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40

pytestmark = needs_chromium


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Api]]:
    api = start_api(f"sqlite:///{tmp_path / 'browser.db'}")
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", PASSWORD)
    web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    with serve(web) as base:
        yield base, api
    api.engine.dispose()


def seed_through_api(api: Api) -> None:
    with api.engine.begin() as conn:
        token = create_token(conn, "huang.fin")  # finance files customers and prices products
    web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    client = TestClient(web, headers={"Authorization": f"Bearer {token}"})
    c = client.post(
        "/api/forms/customer/records", json={"code": "C00001", "name": "绍兴某汽车", "tier": "VIP"}
    )
    assert c.status_code == 201, c.text
    p = client.post(
        "/api/forms/product/records",
        json={"code": "SD-100234", "name": "真皮座椅面套", "unit_price": "120.50", "lead_days": 10},
    )
    assert p.status_code == 201, p.text


def test_order_in_a_real_browser(server: tuple[str, Api], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, api = server
    seed_through_api(api)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    far = (date.today() + timedelta(days=60)).isoformat()
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            context = chromium.new_context(viewport={"width": 1000, "height": 900}, locale="zh-CN")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(f"{base}/forms/order/new")
            expect(page).to_have_url(re.compile(r"/login\?next="))
            sign_in(page, "li.sales", PASSWORD)
            expect(page).to_have_url(f"{base}/forms/order/new")
            expect(page.locator("h1")).to_contain_text("新建销售订单")

            # ref pickers: type, the options come through htmx, choose one
            with page.expect_response(re.compile(r"/forms/order/pick/customer\?q=")):
                page.fill("#f-customer", "绍兴")
            expect(page.locator("#lb-customer [role=option]")).to_have_count(1)
            page.locator("#lb-customer [role=option]", has_text="绍兴某汽车").click()
            with page.expect_response(re.compile(r"/forms/order/pick/product\?q=")):
                page.fill("#f-product", "真皮")
            page.locator("#lb-product [role=option]", has_text="真皮座椅面套").click()
            page.fill("#f-quantity", "10")
            page.fill("#f-desired_date", tomorrow)
            page.check("input[name=special_process][value=激光打孔]")
            # a file goes to /api/files and its id into a hidden input
            page.set_input_files(
                "#f-attachments", {"name": "样品.png", "mimeType": "image/png", "buffer": PNG}
            )
            expect(page.locator("#row-attachments li a")).to_have_text("样品.png")
            page.set_input_files(
                "#f-attachments", {"name": "bad.png", "mimeType": "image/png", "buffer": b"nope"}
            )
            expect(page.locator("#row-attachments .upload-msg")).to_contain_text("内容与扩展名")
            page.click("button.primary[type=submit]")

            expect(page.locator("#e-desired_date")).to_have_text(RULE)
            expect(page.locator("#f-quantity")).to_have_value("10")
            expect(page.locator("#row-attachments li a")).to_have_text("样品.png")
            page.fill("#f-desired_date", far)
            page.click("button.primary[type=submit]")

            expect(page).to_have_url(re.compile(r"/forms/order/\d+$"))
            expect(page.locator("#v-quantity")).to_have_text("10")
            expect(page.locator("#v-customer a")).to_have_text("绍兴某汽车")
            expect(page.locator("#v-attachments a")).to_have_text("样品.png")
            record_url = page.url

            page.get_by_role("link", name="修改", exact=True).click()
            expect(page).to_have_url(record_url + "/edit")
            page.fill("#f-quantity", "12")
            page.click("button.primary[type=submit]")
            expect(page).to_have_url(record_url)
            expect(page.locator("#v-quantity")).to_have_text("12")
            change = page.locator(".timeline .changes li", has_text="需求数量")
            expect(change).to_have_text("需求数量：10 → 12")
            expect(page.locator(".timeline")).to_contain_text("李明")

            # the communication log takes entries on the record page
            page.fill("#f-communication_log-0-contact", "王经理")
            page.fill("#f-communication_log-0-conclusion", "同意按期交付")
            page.click("form.entry button[type=submit]")
            expect(page.locator("#communication_log table")).to_contain_text("同意按期交付")

            shot = tmp_path / "order.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert errors == []
        finally:
            chromium.close()


def test_approve_from_the_inbox_in_a_real_browser(server: tuple[str, Api]) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_approvals import _order

    base, api = server
    with api.engine.begin() as conn:
        set_password(conn, "huang.fin", PASSWORD)
    order = _order(api, "B", "normal", 80, 50)
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            page = chromium.new_context(locale="zh-CN").new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/tasks")
            sign_in(page, "huang.fin", PASSWORD)
            expect(page).to_have_url(f"{base}/tasks")
            row = page.locator("tr", has=page.locator(f'a[href="/forms/order/{order}"]'))
            expect(row.locator("[data-sla]")).to_have_text("正常")
            row.locator("textarea[name=comment]").fill("价格无误")
            row.get_by_role("button", name="同意").click()
            expect(page).to_have_url(f"{base}/tasks")
            expect(page.locator(".notice")).to_have_text("已同意。")
            expect(page.locator(f'a[href="/forms/order/{order}"]')).to_have_count(0)
            assert errors == []
        finally:
            chromium.close()
    approvals = api.client("huang.fin").get(f"/api/forms/order/records/{order}/approvals")
    decided = [t for t in approvals.json()["approvals"][0]["tasks"] if t["comment"]]
    assert [(t["decided_by"], t["comment"]) for t in decided] == [("huang.fin", "价格无误")]


def test_dashboard_red_light_to_its_orders_in_a_real_browser(server: tuple[str, Api]) -> None:
    from playwright.sync_api import expect, sync_playwright
    from test_dashboards import NOW, _load, local

    from engine.dashboards.compute import dashboard_values, drill_down
    from engine.model import clock

    base, api = server
    world = _load(api)  # test_dashboards' fixed history: its schedule match rate is red
    values = dashboard_values(api.engine, api.app, "order_health", local(NOW), api.live.metadata)
    reds = [k["id"] for k in values["kpis"] if k["status"] == "red"]
    assert len(reds) == 1, values
    behind = drill_down(api.engine, api.app, "order_health", reds[0], local(NOW))["records"]
    assert behind
    clock.set_clock(lambda: local(NOW))
    try:
        with sync_playwright() as pw:
            chromium = launch(pw)
            try:
                page = chromium.new_context(
                    viewport={"width": 390, "height": 844}, locale="zh-CN"
                ).new_page()  # a phone: the cards wrap into one column
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{base}/")
                sign_in(page, "li.sales", PASSWORD)
                page.get_by_role("link", name="看板", exact=True).click()
                page.get_by_role("link", name="订单健康度").click()
                expect(page).to_have_url(f"{base}/dashboards/order_health")
                expect(page.locator(".kpi .light")).to_have_count(6)
                expect(page.locator(".kpi canvas[data-drawn]")).to_have_count(2)  # Chart.js drew
                red = page.locator(".kpi", has=page.locator('.light[data-status="red"]'))
                expect(red).to_have_count(1)
                expect(red.locator(".light")).to_have_text("红灯")
                red.locator("h2 a").click()
                expect(page).to_have_url(f"{base}/dashboards/order_health/kpis/{reds[0]}")
                expect(page.locator("table.drill-records tbody tr")).to_have_count(len(behind))
                for row in behind:
                    link = page.get_by_role("link", name=row["label"], exact=True)
                    expect(link).to_have_attribute("href", f"/forms/order/{row['id']}")
                assert {r["label"] for r in behind} <= set(world.labels.values())
                assert errors == []
            finally:
                chromium.close()
    finally:
        clock.set_clock(None)
