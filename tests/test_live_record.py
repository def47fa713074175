"""Live record pages (issue 16): while work is pending for a record its page polls
``/forms/F/ID/live``; the fragment answers 204 when nothing changed, the record's live regions
(out of band) when something did, 286 when nothing is pending any more; the status line says
what the engine does and, while the warehouse is down, why the order waits and when it retries.
On SQLite and PostgreSQL with the pack's mock warehouse (a real HTTP server); then in Chromium:
an order submitted in the browser turns 库存已校验 without a reload, waits visibly while the
warehouse is down and recovers when it is back."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from apihelp import Api, start_api
from browserhelp import launch, needs_chromium, serve, sign_in
from packservices import pack_services, submit_order
from starlette.testclient import TestClient

from engine.accounts.auth import set_password
from engine.forms.records import SYSTEM_ACTOR
from engine.outbox.jobs import JOBS
from engine.outbox.worker import Worker
from engine.runtime import Deployments
from engine.web.routes import page_routes
from engine.web.server import create_web_app

PASSWORD = "live-record-2026"
FAR = (date.today() + timedelta(days=90)).isoformat()
POLL = re.compile(r'hx-get="(/forms/order/\d+/live\?[^"]+)"')


@dataclass
class World:
    api: Api
    worker: Worker
    wms: str
    customer: int
    product: int
    web: object


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with pack_services(monkeypatch) as services:
        api = start_api(db_url)
        with api.engine.begin() as conn:
            for user in ("li.sales", "qian.it"):
                set_password(conn, user, PASSWORD)
        records = api.live.records
        customer = records.create(
            "customer", {"code": "C00001", "name": "绍兴某汽车", "tier": "A"}, SYSTEM_ACTOR
        )["id"]
        product = records.create(
            "product",
            {"code": "SD-100000", "name": "面套", "unit_price": 10, "lead_days": 5},
            SYSTEM_ACTOR,
        )["id"]
        worker = Worker(api.engine, lambda: api.live.flows, name="live-worker", schedules=False)
        web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
        try:
            yield World(api, worker, services.wms.base_url, customer, product, web)
        finally:
            api.live.flows.connectors.close()
            api.engine.dispose()


def _client(world: World, username: str = "li.sales") -> TestClient:
    client = TestClient(world.web)  # type: ignore[arg-type]
    login = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token
    client.post("/login", data={"csrf_token": token[1], "username": username, "password": PASSWORD})
    return client


def _poll_url(html: str) -> str | None:
    found = POLL.search(html)
    return found[1].replace("&amp;", "&") if found else None


def _retries_due_now(world: World) -> None:
    with world.api.engine.begin() as conn:
        conn.execute(
            JOBS.update().where(JOBS.c.status == "ready").values(due_at=sa.func.current_timestamp())
        )


def test_the_fragment_follows_the_stock_check(world: World) -> None:
    client = _client(world)
    order = submit_order(world.api.live.records, world.customer, world.product, 5, FAR)
    page = client.get(f"/forms/order/{order}").text
    poll = _poll_url(page)
    assert poll and 'hx-trigger="every 2s"' in page  # the stock check is running
    assert "系统正在处理" in page  # the status line is in the page itself (no JS needed)
    # nothing moved: 204, htmx keeps the page and polls again
    assert client.get(poll, headers={"HX-Request": "true"}).status_code == 204
    world.worker.run_until_idle()
    moved = client.get(poll, headers={"HX-Request": "true"})
    assert moved.status_code == 200
    assert 'id="record-head" hx-swap-oob="true"' in moved.text
    assert "库存已校验" in moved.text.split('id="record-head"')[1].split("</h1>")[1]
    assert 'id="v-reserved_qty">5<' in moved.text  # the value the flow set
    assert 'id="history" hx-swap-oob="true"' in moved.text
    # the editing boxes are never in the fragment: what people type survives
    assert "<form" not in moved.text.split('id="history"')[0].split('id="record-fields"')[1]
    assert 'class="entry card"' not in moved.text and 'id="f-' not in moved.text
    # done: the new status region polls no more, and the old mark is told to stop (286)
    assert _poll_url(moved.text) is None
    page = client.get(f"/forms/order/{order}").text
    assert _poll_url(page) is None and 'id="live"' in page
    stopped = client.get(poll.replace(poll.split("v=")[1].split("&")[0], "x"))
    assert stopped.status_code == 200  # an unknown mark gets the fresh regions
    mark = re.search(r"v=([0-9a-f-]+)", poll)
    assert mark
    assert client.get(f"/forms/order/{order}/live?v=0-0-0").status_code == 200


def test_the_fragment_stops_with_286_and_refuses_what_it_must(world: World) -> None:
    client = _client(world)
    order = submit_order(world.api.live.records, world.customer, world.product, 5, FAR)
    world.worker.run_until_idle()
    page = client.get(f"/forms/order/{order}").text
    assert _poll_url(page) is None
    # a page from before (any mark) that is current now gets 286 + no swap: polling stops
    first = client.get(f"/forms/order/{order}/live?v=stale")
    assert first.status_code == 200
    new_mark = re.search(r'id="live"[^>]*>', first.text)
    assert new_mark and "hx-get" not in new_mark[0]
    # ask with the current mark (taken from a page that still polled: build it the same way)
    from engine.web.live_record import last_event_id, live_mark, live_status
    from engine.web.templating import Formatter

    live = world.api.live
    record = live.records.get("order", order)
    form = live.records.form("order")
    status = live_status(live, form, record, Formatter(live.app, "zh"))
    mark = live_mark(record, last_event_id(live, form, order), status)
    done = client.get(f"/forms/order/{order}/live?v={mark}", headers={"HX-Request": "true"})
    assert done.status_code == 286 and done.headers["HX-Reswap"] == "none"
    assert client.get("/forms/order/999999/live?v=1").status_code == 404
    # polled for a record that is gone: stop polling (htmx keeps asking after a 404)
    gone = client.get("/forms/order/999999/live?v=1", headers={"HX-Request": "true"})
    assert gone.status_code == 286 and gone.headers["HX-Reswap"] == "none"
    assert client.get("/forms/nope/1/live").status_code == 404
    anonymous = TestClient(world.web)  # type: ignore[arg-type]
    refused = anonymous.get(f"/forms/order/{order}/live", headers={"HX-Request": "true"})
    assert refused.status_code == 401 and refused.headers["HX-Redirect"].startswith("/login")


def test_a_dead_warehouse_is_said_in_plain_words(world: World) -> None:
    client = _client(world)
    httpx.post(world.wms + "/_control", json={"mode": "fail", "status": 503, "count": 3})
    order = submit_order(world.api.live.records, world.customer, world.product, 5, FAR)
    for _ in range(2):
        world.worker.run_once()
        _retries_due_now(world)
    world.worker.run_once()
    page = client.get(f"/forms/order/{order}").text
    assert "库存校验等待中" in page
    line = re.search(
        r'<div id="live" class="live-status waiting"[^>]*>\s*<p role="status">([^<]+)', page
    )
    assert line, page.split('id="live"')[1][:400]
    assert re.fullmatch(
        r"仓储管理系统（WMS）无响应，第 3 次重试将在 (\d\d:\d\d|[\d-]+ [\d:]+) 进行。", line[1]
    )
    assert "503" not in line[1] and "Error" not in line[1]
    assert _poll_url(page)
    # the warehouse is back: the retry succeeds and the page's poll brings the new state
    _retries_due_now(world)
    world.worker.run_until_idle()
    fragment = client.get(_poll_url(page) or "", headers={"HX-Request": "true"}).text
    status = fragment.split("</div>")[0]
    assert "库存已校验" in fragment and "无响应" not in status and "hx-get" not in status


@needs_chromium
def test_the_order_page_updates_without_reload_in_a_browser(world: World, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path("/tmp/shots_live")
    shots.mkdir(exist_ok=True)
    records = world.api.live.records
    draft = records.create(
        "order",
        {
            "customer": world.customer,
            "product": world.product,
            "quantity": 30,
            "desired_date": FAR,
            "order_type": "normal",
        },
        SYSTEM_ACTOR,
    )["id"]
    second = records.create(
        "order",
        {
            "customer": world.customer,
            "product": world.product,
            "quantity": 7,
            "desired_date": FAR,
            "order_type": "normal",
        },
        SYSTEM_ACTOR,
    )["id"]

    def work_until(check, rounds: int = 60) -> None:
        for _ in range(rounds):
            world.worker.run_until_idle()
            if check():
                return
            time.sleep(0.1)

    with serve(world.web) as base, sync_playwright() as pw:
        chromium = launch(pw)
        try:
            errors: list[str] = []
            page = chromium.new_context(locale="zh-CN").new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{base}/forms/order/{draft}")
            sign_in(page, "li.sales", PASSWORD)
            page.get_by_role("button", name="提交订单").click()
            expect(page.locator(".heading")).to_contain_text("已提交")
            # someone types into the communication log's entry box meanwhile: it must survive
            box = page.locator("form.entry textarea, form.entry input[type=text]").first
            box.fill("客户来电确认规格")
            page.screenshot(path=str(shots / "submitted-desktop.png"), full_page=True)
            work_until(lambda: records.get("order", draft)["state"] == "stock_checked")
            expect(page.locator(".heading")).to_contain_text("库存已校验", timeout=10_000)
            expect(page.locator("#v-reserved_qty")).to_have_text("30")
            expect(box).to_have_value("客户来电确认规格")
            expect(page.locator("#history")).to_contain_text("库存已校验")
            page.screenshot(path=str(shots / "checked-desktop.png"), full_page=True)

            # the warehouse stops answering: the second order waits, and the page says why
            httpx.post(world.wms + "/_control", json={"mode": "fail", "status": 503})
            phone = chromium.new_context(
                locale="zh-CN", viewport={"width": 375, "height": 812}, is_mobile=True
            ).new_page()
            phone.on("pageerror", lambda exc: errors.append(str(exc)))
            phone.goto(f"{base}/forms/order/{second}")
            sign_in(phone, "li.sales", PASSWORD)
            phone.get_by_role("button", name="提交订单").click()
            for _ in range(3):
                world.worker.run_once()
                _retries_due_now(world)
            status = phone.locator("#live")
            expect(status).to_contain_text("仓储管理系统（WMS）无响应", timeout=10_000)
            expect(phone.locator(".heading")).to_contain_text("库存校验等待中")
            phone.screenshot(path=str(shots / "waiting-phone.png"), full_page=True)
            width = phone.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, f"the record page scrolls sideways on a phone ({width} px)"

            # it is back: the page recovers by itself
            httpx.post(world.wms + "/_control", json={"mode": "ok"})

            def recovered() -> bool:
                _retries_due_now(world)
                return records.get("order", second)["state"] == "stock_checked"

            work_until(recovered)
            expect(phone.locator(".heading")).to_contain_text("库存已校验", timeout=10_000)
            expect(status).not_to_contain_text("无响应")
            phone.screenshot(path=str(shots / "recovered-phone.png"), full_page=True)
            assert errors == [], errors
        finally:
            chromium.close()
