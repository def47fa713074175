"""The tracking page on a 375-px phone in a real browser: ask for a code, read it from the WeCom
fake, type it, see the order and its progress (Debian's Chromium through Playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from browserhelp import launch, needs_chromium, serve, sign_in
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


def _contrast(fg: str, bg: str) -> float:
    """The WCAG contrast ratio of two CSS ``rgb(r, g, b)`` colours."""

    def luminance(css: str) -> float:
        r, g, b = (int(v) / 255 for v in css[css.index("(") + 1 : -1].split(",")[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_a_message_link_on_a_phone_and_the_staff_box(
    served: tuple[str, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer opens the link of a progress message (/track?no=…) on a phone: the number is
    named, the code still asked for; then the order comes first with its coloured stage and the
    progress line (text contrast WCAG AA). Staff see the same address and its QR code on the
    record page, at 1280 and 375 px."""
    from playwright.sync_api import expect, sync_playwright

    from engine.accounts.auth import set_password

    monkeypatch.delenv("SEAMLINE_PUBLIC_URL", raising=False)
    base, world = served
    mine = world.numbers[world.mine[0]]
    shots = os.environ.get("SEAMLINE_SHOTS")
    with world.api.engine.begin() as conn:
        set_password(conn, "li.sales", "order-centre-2026")
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            phone = chromium.new_context(
                viewport={"width": 375, "height": 812}, locale="zh-CN", is_mobile=True
            )
            page = phone.new_page()
            page.goto(f"{base}/track?no={mine}")
            expect(page.locator(".track-for")).to_contain_text(f"查询订单 {mine}")
            assert "真皮座椅面套" not in page.content()
            page.get_by_label("手机号").fill("13905750001")
            page.get_by_role("button", name="获取验证码").click()
            page.get_by_label("验证码").fill(world.code_sent())
            page.get_by_role("button", name="查看我的订单").click()
            focus = page.locator(".track-focus")
            expect(focus).to_contain_text("您查询的订单")
            expect(focus.get_by_role("heading", name=mine)).to_be_visible()
            current = focus.locator('.track-step[aria-current="step"]')
            expect(current).to_have_text("已接单 · 当前")
            expect(focus.locator(".track-step")).to_have_count(5)  # 已取消 is no step
            for selector in (
                ".track-state",
                '.track-step[aria-current="step"]',
                ".track-step.todo",
            ):
                fg, bg = focus.locator(selector).first.evaluate(
                    """e => { const s = getComputedStyle(e);
                      let b = e; while (getComputedStyle(b).backgroundColor === 'rgba(0, 0, 0, 0)')
                        b = b.parentElement;
                      return [s.color, getComputedStyle(b).backgroundColor]; }"""
                )
                assert _contrast(fg, bg) >= 4.5, (selector, fg, bg)
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= 375, f"the page scrolls sideways on a phone ({width} px)"
            if shots:
                page.screenshot(path=f"{shots}/track-link-375.png", full_page=True)
            for size in (1280, 375):
                staff = chromium.new_context(
                    viewport={"width": size, "height": 900}, locale="zh-CN"
                ).new_page()
                staff.goto(f"{base}/login")
                sign_in(staff, "li.sales", "order-centre-2026")
                staff.wait_for_url(f"{base}/")
                staff.goto(f"{base}/forms/order/{world.mine[0]}")
                box = staff.locator(".track-box")
                expect(box.get_by_role("heading", name="客户查询页")).to_be_visible()
                expect(box.get_by_role("link")).to_have_attribute("href", f"/track?no={mine}")
                qr = box.get_by_role("img", name="订单查询页二维码")
                expect(qr).to_be_visible()
                box.scroll_into_view_if_needed()  # (loaded lazily)
                staff.wait_for_function(  # the SVG loaded and drew
                    "i => i.complete && i.naturalWidth > 0", arg=qr.element_handle()
                )
                if shots:
                    staff.screenshot(path=f"{shots}/track-box-{size}.png", full_page=True)
        finally:
            chromium.close()
