"""The tracking page on a 375-px phone in a real browser: ask for a code, read it from the WeCom
fake, type it, see the order and its progress (Debian's Chromium through Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from browserhelp import launch, needs_chromium, serve
from test_track import PACK, World, _world

from engine.runtime import Deployments
from engine.web.routes import page_routes
from engine.web.server import create_web_app

pytestmark = needs_chromium


@pytest.fixture
def served(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, World]]:
    for world in _world(f"sqlite:///{tmp_path / 'track.db'}", PACK, monkeypatch):
        web = create_web_app(
            world.api.engine, Deployments(world.api.engine, world.api.live), page_routes()
        )
        with serve(web) as base:
            yield base, world


def test_code_flow_on_a_phone(served: tuple[str, World]) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, world = served
    mine, theirs = world.numbers[world.mine[0]], world.numbers[world.theirs]
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            context = chromium.new_context(
                viewport={"width": 375, "height": 812}, locale="zh-CN", is_mobile=True
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(  # every asset loads (the browser's own favicon.ico guess aside)
                "response",
                lambda r: (
                    errors.append(r.url)
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )
            page.goto(base + "/track")
            expect(page.get_by_role("heading", name="订单进度查询")).to_be_visible()
            page.get_by_label("手机号").fill("139 0575 0001")
            page.get_by_role("button", name="获取验证码").click()
            expect(page.get_by_role("status")).to_contain_text("如果该号码已登记")
            page.get_by_label("验证码").fill(world.code_sent())
            page.get_by_role("button", name="查看我的订单").click()
            expect(page.get_by_role("heading", name=mine)).to_be_visible()
            expect(page.locator(".track-chain")).to_contain_text("已接单")  # a stage, not a state
            expect(page.locator(".track-top")).to_have_text("绍兴某汽车内饰有限公司")
            if shots := os.environ.get("SEAMLINE_SHOTS"):  # for a person to look at
                page.screenshot(path=f"{shots}/track-375.png", full_page=True)
            assert "139****0001" in page.content() and theirs not in page.content()
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, f"the page scrolls sideways on a phone ({width} px)"
            cookie = next(c for c in context.cookies() if c["name"] == "seamline_track")
            assert (
                cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/track"
            )
            page.get_by_role("button", name="退出查询").click()
            expect(page.get_by_label("手机号")).to_be_visible()
            assert not [c for c in context.cookies() if c["name"] == "seamline_track"]
            assert errors == [], errors
        finally:
            chromium.close()
