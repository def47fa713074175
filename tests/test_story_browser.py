"""The seed's story in a real browser (issue 7): a salesperson orders for a VIP customer in a
rush, the mock warehouse is short, procurement gets a DingTalk to-do, the ATP date comes from
the incoming purchase order, sales and the production director both confirm it at the promise
gate, the director approves from the inbox, the customer gets WeCom progress messages, finds
the order on the tracking page with a one-time code, and the director sees it on the order
health dashboard. Real fakes for the warehouse, DingTalk and WeCom; Debian's Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from apihelp import Api, start_api
from browserhelp import launch, needs_chromium, serve, sign_in
from fakes import FakeDingTalk, FakeWeCom
from packservices import pack_services
from test_track import CODE_RE

from engine.accounts.auth import set_password
from engine.forms.records import SYSTEM_ACTOR
from engine.outbox.worker import Worker
from engine.runtime import Deployments
from engine.web.routes import page_routes
from engine.web.server import create_web_app

pytestmark = needs_chromium

PASSWORD = "order-centre-2026"
SALES, DIRECTOR = "zhang.sales", "zhou.pd"
SHORT = "DP-100001"  # mock_wms.py: 30 available, a purchase order of 100 arrives in 14 days
PHONE = "13905750001"


@dataclass
class Story:
    base: str
    api: Api
    worker: Worker
    dingtalk: FakeDingTalk
    wecom: FakeWeCom

    def work(self) -> None:
        """What the worker process does between clicks: flows, connector calls, messages."""
        self.worker.run_until_idle()

    def order(self, order_id: int) -> dict[str, Any]:
        return self.api.live.records.get("order", order_id)


def _text(messages: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(m, ensure_ascii=False) for m in messages]


@pytest.fixture
def story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Story]:
    with pack_services(monkeypatch) as services:
        ding, wecom = services.ding, services.wecom
        api = start_api(f"sqlite:///{tmp_path / 'story.db'}")
        with api.engine.begin() as conn:
            for user in (SALES, DIRECTOR):
                set_password(conn, user, PASSWORD)
        records = api.live.records
        records.create(
            "customer",
            {
                "code": "C00001",
                "name": "绍兴某汽车",
                "tier": "VIP",
                "contact": "张三丰",
                "phone": PHONE,
                "wecom_id": "wx_c1",
            },
            SYSTEM_ACTOR,
        )
        records.create(
            "product",
            {"code": SHORT, "name": "真皮座椅面套", "unit_price": "120.50", "lead_days": 10},
            SYSTEM_ACTOR,
        )
        worker = Worker(api.engine, lambda: api.live.flows, name="story-worker", schedules=False)
        web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
        try:
            with serve(web) as base:
                yield Story(base, api, worker, ding, wecom)
        finally:
            api.live.flows.connectors.close()
            api.engine.dispose()


def test_the_seed_story_in_a_real_browser(story: Story) -> None:
    from playwright.sync_api import expect, sync_playwright

    base = story.base
    desired = (date.today() + timedelta(days=21)).isoformat()
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            errors: list[str] = []

            def person(**options: Any):  # a browser of one's own: own cookies
                page = chromium.new_context(locale="zh-CN", **options).new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                return page

            # 1. sales orders through the form: VIP customer, rush, more than the stock
            sales = person()
            sales.goto(f"{base}/forms/order/new")
            sign_in(sales, SALES, PASSWORD)
            expect(sales).to_have_url(f"{base}/forms/order/new")
            with sales.expect_response(re.compile(r"/forms/order/pick/customer\?q=")):
                sales.fill("#f-customer", "绍兴")
            expect(sales.locator("#lb-customer [role=option]")).to_have_count(1)
            sales.locator("#lb-customer [role=option]", has_text="绍兴某汽车").click()
            with sales.expect_response(re.compile(r"/forms/order/pick/product\?q=")):
                sales.fill("#f-product", "真皮")
            sales.locator("#lb-product [role=option]", has_text="真皮座椅面套").click()
            sales.fill("#f-quantity", "80")
            sales.fill("#f-desired_date", desired)
            sales.select_option("#f-order_type", label="加急单")
            sales.click("button.primary[type=submit]")
            expect(sales).to_have_url(re.compile(r"/forms/order/\d+$"))
            record_url = sales.url
            order_id = int(record_url.rsplit("/", 1)[1])
            order_no = story.order(order_id)["order_no"]
            expect(sales.locator("h1 small")).to_have_text(order_no)
            sales.get_by_role("button", name="提交订单").click()
            expect(sales.locator(".heading")).to_contain_text("已提交")

            # 2. the stock check runs in the worker: short, so procurement gets a to-do
            story.work()
            order = story.order(order_id)
            assert order["state"] == "stock_checked" and order["atp_date"] is not None
            atp = order["atp_date"].isoformat()
            assert atp > desired  # the incoming purchase order decides the date
            todos = [t for t in _text(story.dingtalk.messages) if "缺料" in t and order_no in t]
            assert len(todos) == 1, _text(story.dingtalk.messages)
            assert SHORT in todos[0] and "在途采购单" in todos[0]

            # 3. the record page shows the ATP date; sales promises it and confirms the gate
            sales.reload()
            expect(sales.locator(".heading")).to_contain_text("库存已校验")
            expect(sales.locator("#v-atp_date")).to_contain_text(atp)
            expect(sales.locator("#v-atp_explanation")).not_to_be_empty()
            sales.get_by_role("link", name="修改", exact=True).click()
            sales.fill("#f-promised_date", atp)
            sales.click("button.primary[type=submit]")
            expect(sales).to_have_url(record_url)
            gate = sales.locator("#gates")
            expect(gate.locator(".gate-value")).to_have_text(atp)
            gate.get_by_role("button", name=re.compile("以销售身份确认")).click()
            expect(gate.locator('li[data-role="sales"]')).to_contain_text("张伟")
            expect(gate.locator('li[data-role="production_director"]')).to_contain_text("未确认")

            # 4. the production director confirms the same date on the same page
            director = person()
            director.goto(record_url)
            sign_in(director, DIRECTOR, PASSWORD)
            expect(director).to_have_url(record_url)
            gate = director.locator("#gates")
            gate.get_by_role("button", name=re.compile("以生产总监身份确认")).click()
            expect(gate.locator('li[data-role="production_director"]')).to_contain_text("周立新")
            expect(gate.locator(".gate.passed")).to_have_count(1)

            # 5. sales sends it to approval; VIP + rush goes straight to the director
            sales.reload()
            sales.get_by_role("button", name="确认承诺交付日").click()
            expect(sales.locator(".heading")).to_contain_text("审批中")
            story.work()
            director.goto(f"{base}/tasks")
            row = director.locator("tr", has=director.locator(f'a[href="/forms/order/{order_id}"]'))
            expect(row).to_have_count(1)
            row.locator("textarea[name=comment]").fill("VIP 加急，按可承诺日交付")
            row.get_by_role("button", name="同意").click()
            expect(director.locator(".notice")).to_have_text("已同意。")
            story.work()
            director.goto(record_url)
            expect(director.locator(".heading")).to_contain_text("已审批")

            # 6. the customer was told at each stage, with the order number and the date
            progress = [t for t in _text(story.wecom.messages) if order_no in t]
            assert len(progress) == 3, _text(story.wecom.messages)
            # the first (before the promise-date gate) states no date; later ones the agreed
            assert "交期确认中" in progress[0] and atp not in progress[0]
            assert all(f"承诺交付日：{atp}" in t for t in progress[1:])
            assert "库存已校验" in progress[0] and "已通过审核" in progress[2]

            # 7. the customer's phone: a one-time code through WeCom, then the chain
            phone = person(viewport={"width": 375, "height": 812}, is_mobile=True)
            phone.goto(f"{base}/track")
            phone.get_by_label("手机号").fill(PHONE)
            phone.get_by_role("button", name="获取验证码").click()
            expect(phone.get_by_role("status")).to_contain_text("如果该号码已登记")
            story.work()  # the code goes out through the outbox
            code = CODE_RE.search(_text(story.wecom.messages)[-1])
            assert code, story.wecom.messages[-1]
            phone.get_by_label("验证码").fill(code[1])
            phone.get_by_role("button", name="查看我的订单").click()
            card = phone.locator(".track-record", has_text=order_no)
            expect(card).to_have_count(1)
            chain = card.locator(".track-chain")
            for stage in ("已接单", "备料中"):  # the customer's stages (tracking.records.stages)
                expect(chain).to_contain_text(stage)
            for state in ("库存已校验", "审批中", "已审批"):  # never the flow's own states
                expect(card).not_to_contain_text(state)
            width = phone.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, f"the tracking page scrolls sideways on a phone ({width} px)"

            # 8. the director's dashboard: the ATP date is later than the desired date, so the
            # order counts against the stock-check pass rate and is listed behind that KPI
            director.goto(f"{base}/dashboards/order_health")
            kpi = director.locator(".kpi", has_text="库存校验通过率")
            expect(kpi.locator(".light")).to_have_text("红灯")
            kpi.locator("h2 a").click()
            expect(director).to_have_url(
                f"{base}/dashboards/order_health/kpis/stock_check_pass_rate"
            )
            link = director.get_by_role("link", name=order_no, exact=True)
            expect(link).to_have_attribute("href", f"/forms/order/{order_id}")
            assert errors == [], errors
        finally:
            chromium.close()
