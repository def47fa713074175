"""The dashboard pages over the pack (SQLite and PostgreSQL), on the fixed history of
test_dashboards (its ``world``: red, amber, green and unrated KPIs at 2026-03-20 10:00 Shanghai):
the list, the cards with their lights in words, thresholds and sparkline data, the htmx
fragment, the period selector, the drill-down list with its CSV link, roles (403) and unknown
names (404), and the vendored Chart.js."""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from starlette.testclient import TestClient
from test_dashboards import NOW, World, local, world_fixture  # noqa: F401  (the world fixture)
from test_pages import PASSWORD, browser, sign_in

from engine.accounts.auth import set_password
from engine.dashboards.compute import dashboard_values, drill_down
from engine.web.pages_dashboards import shown
from engine.web.routes import STATIC_DIR

WORDS = {"green": "绿灯", "amber": "黄灯", "red": "红灯", "none": "无灯"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def expected(
    world: World, now: datetime | None = None, dashboard: str = "order_health"
) -> dict[str, dict]:
    """The KPIs as engine.dashboards computes them (test_dashboards checks those by hand)."""
    api = world.api
    at = now or local(NOW)
    got = dashboard_values(api.engine, api.app, dashboard, at, api.live.metadata)
    return {k["id"]: k for k in got["kpis"]}


def drilled(world: World, kpi: str) -> list[int]:
    api = world.api
    got = drill_down(api.engine, api.app, "order_health", kpi, local(NOW), 200, api.live.metadata)
    return [r["id"] for r in got["records"]]


def red_kpi(world: World) -> str:
    reds = [k for k, v in expected(world).items() if v["status"] == "red"]
    assert reds, "the fixed history should make a light red"
    return reds[0]


@pytest.fixture
def client(world: World) -> TestClient:
    return signed_in(world, "li.sales")  # sales: one of order_health's roles


def signed_in(world: World, username: str) -> TestClient:
    with world.api.engine.begin() as conn:
        set_password(conn, username, PASSWORD)
    web = browser(world.api)
    sign_in(web, username)
    return web


def card(page_html: str, kpi: str) -> str:
    found = re.search(rf'<li class="card kpi [^"]*" id="kpi-{kpi}".*?</li>', page_html, re.S)
    assert found, page_html[:2000]
    return found[0]


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def test_list_and_navigation(client: TestClient) -> None:
    page = client.get("/dashboards")
    assert page.status_code == 200
    assert '<a href="/dashboards/order_health">订单健康度</a>' in page.text
    assert "6 项指标" in page.text
    assert '<a href="/dashboards/outcomes">成效指标</a>' in page.text and "8 项指标" in page.text
    assert re.search(r'<a href="/dashboards" aria-current="page">看板</a>', page.text)
    assert '<a href="/dashboards">看板</a>' in client.get("/").text


def test_cards_show_values_lights_thresholds_and_trends(client: TestClient, world: World) -> None:
    statuses = set()
    for name, count in (("order_health", 6), ("outcomes", 8)):
        kpis = expected(world, dashboard=name)
        statuses |= {k["status"] for k in kpis.values()}
        page = client.get(f"/dashboards/{name}")
        assert page.status_code == 200, page.text
        assert page.text.count('<p class="light"') == len(kpis) == count
        for kpi, value in kpis.items():
            shown_card = card(page.text, kpi)
            status = value["status"]
            assert value["title"] in shown_card
            assert f'data-status="{status}"' in shown_card
            assert f'<span class="word">{WORDS[status]}</span>' in shown_card
            assert f'href="/dashboards/{name}/kpis/{kpi}"' in shown_card
            assert f"{shown(value['value'])} {value['unit']}" in text_of(shown_card)
    assert statuses == set(WORDS)  # every light is exercised
    page = client.get("/dashboards/order_health")
    assert "<h1>订单健康度</h1>" in page.text
    red = text_of(card(page.text, "schedule_match_rate"))
    assert "红灯" in red and "绿灯 ≥ 95 · 黄灯 ≥ 85 · 其余红灯" in red and "近 30 天" in red
    first = text_of(card(page.text, "first_response_hours"))
    assert "2 小时" in first and "目标 1 小时" in first
    groups = text_of(card(page.text, "first_pass_approval_rate"))
    assert "按订单类型，最差在前 常规单 80 % 黄灯" in groups
    spark = re.search(r"data-spark='([^']*)'", card(page.text, "first_response_hours"))
    assert spark
    data = json.loads(html.unescape(spark[1]))
    points = expected(world)["first_response_hours"]["trend"]["points"]
    assert data["values"] == [p["value"] for p in points]
    assert data["labels"] == [p["start"] for p in points]
    assert data["labels"][-1] == "2026-03-16"
    # the week still running is sent as partial, for the chart to draw it apart (issue 16)
    assert data["partial"] is True
    assert [p["partial"] for p in points] == [False] * (len(points) - 1) + [True]
    assert '<script src="/static/chart.umd.js" defer></script>' in page.text
    assert '<script src="/static/dashboards.js" defer></script>' in page.text
    assert 'hx-get="/dashboards/order_health/cards" hx-trigger="every 60s"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # nothing inline: the CSP would block it
    outcomes = client.get("/dashboards/outcomes")
    assert "1 小时" in text_of(card(outcomes.text, "approval_hours"))  # median 1 h, by hand
    assert "5,000 元" in text_of(card(outcomes.text, "order_amount"))
    assert "未设阈值" in text_of(card(outcomes.text, "order_amount"))
    assert "data-spark" not in card(outcomes.text, "open_orders")  # no trend declared


def test_htmx_fragment(client: TestClient, world: World) -> None:
    fragment = client.get("/dashboards/order_health/cards", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert fragment.text.count('<p class="light"') == 6
    assert 'data-status="red"' in card(fragment.text, "schedule_match_rate")
    anonymous = browser(world.api).get(
        "/dashboards/order_health/cards", headers={"HX-Request": "true"}, follow_redirects=False
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["HX-Redirect"].startswith("/login?next=")


def test_period_selector(client: TestClient, world: World) -> None:
    # as of the end of 2026-02-28 in Shanghai: "this month" is February
    end_of_day = datetime(2026, 2, 28, 23, 59, 59, tzinfo=SHANGHAI)
    february = expected(world, end_of_day, "outcomes")["order_amount"]["value"]
    assert february != expected(world, dashboard="outcomes")["order_amount"]["value"]
    page = client.get("/dashboards/outcomes?at=2026-02-28")
    assert page.status_code == 200
    assert 'name="at" value="2026-02-28"' in page.text
    assert f"{shown(february)} 元" in text_of(card(page.text, "order_amount"))
    assert "hx-trigger" not in page.text  # a past day does not change: no refresh
    assert 'href="/dashboards/outcomes/kpis/order_amount?at=2026-02-28"' in page.text
    for odd in ("nonsense", "2099-01-01"):  # ignored: now
        again = client.get(f"/dashboards/outcomes?at={odd}")
        assert again.status_code == 200
        assert "5,000 元" in text_of(card(again.text, "order_amount"))


def test_drill_down_lists_the_records_behind_a_red_light(client: TestClient, world: World) -> None:
    kpi = red_kpi(world)
    title = expected(world)[kpi]["title"]
    page = client.get(f"/dashboards/order_health/kpis/{kpi}")
    assert page.status_code == 200
    assert f"“{title}”的明细" in page.text
    assert 'data-status="red"' in page.text and "红灯" in page.text
    rows = [int(r) for r in re.findall(r'<tr data-id="(\d+)">', page.text)]
    behind = drilled(world, kpi)
    assert rows == behind and behind
    for record_id in behind:
        label = world.labels[world.name(record_id)]
        assert f'<a href="/forms/order/{record_id}">{label}</a>' in page.text
    if kpi == "schedule_match_rate":  # by hand: O1, scheduled after its promised date
        assert [world.name(r) for r in rows] == ["O1"]
        assert '<th scope="col">排产交付日</th>' in page.text
        assert "2026-04-12" in text_of(page.text)
    csv_link = f"/api/dashboards/order_health/kpis/{kpi}/records.csv"
    assert f'href="{csv_link}"' in page.text and "导出 CSV" in page.text
    exported = client.get(csv_link)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    for record_id in behind:
        assert world.labels[world.name(record_id)] in exported.text
    hours = client.get("/dashboards/outcomes/kpis/approval_hours")
    assert '<th scope="col">数值</th>' in hours.text
    assert "5 小时" in text_of(hours.text)  # O8: approving 10:00 → approved 15:00


def test_roles_and_unknown_names(world: World) -> None:
    outsider = signed_in(world, "liu.wh")  # warehouse: not among order_health's roles
    assert "暂无您可以查看的看板" in outsider.get("/dashboards").text
    for path in ("", "/cards", "/kpis/first_response_hours"):
        refused = outsider.get(f"/dashboards/order_health{path}")
        assert refused.status_code == 403, path
        assert "此看板仅限销售、客服、财务、生产总监、总经理查看" in refused.text
    sales = signed_in(world, "li.sales")
    assert sales.get("/dashboards/nope").status_code == 404
    assert sales.get("/dashboards/order_health/kpis/nope").status_code == 404
    assert "没有这个页面或记录" in sales.get("/dashboards/nope").text


def test_vendored_chart_is_served(client: TestClient) -> None:
    chart = client.get("/static/chart.umd.js")
    assert chart.status_code == 200
    assert chart.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    vendored = (STATIC_DIR / "VENDORED.md").read_text(encoding="utf-8")
    assert hashlib.sha256(chart.content).hexdigest() in vendored
    assert b"Released under the MIT License" in chart.content[:300]
    assert (
        (STATIC_DIR / "chart.js.LICENSE.md")
        .read_text(encoding="utf-8")
        .startswith("The MIT License")
    )
    script = client.get("/static/dashboards.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
