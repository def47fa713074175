"""The public tracking page /track on the manufacturing pack: one-time codes through the
WeCom fake, enumeration, lockouts, expiry, sessions, tampering, the suffix variant, CSRF and
garbage — on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from apihelp import PACK, Api, start_api
from fakes import FakeWeCom, fake_wecom
from itsdangerous import URLSafeSerializer
from starlette.testclient import TestClient

from engine.accounts.auth import set_password
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR
from engine.model import clock
from engine.outbox import jobs
from engine.outbox.worker import run_job
from engine.runtime import Deployments
from engine.tracking.limits import CODES, HITS
from engine.tracking.qr import qr_svg
from engine.web.asgi import server_options
from engine.web.routes import page_routes
from engine.web.security import session_secret
from engine.web.server import create_web_app
from engine.web.track import TRACK_COOKIE

PHONE, OTHER_PHONE = "13905750001", "13905750002"
FAR = "2099-06-30"
PASSWORD = "order-centre-2026"
CODE_RE = re.compile(r"验证码是 (\d{6})")


class Clock:
    """The engine's clock, held still and moved by hand."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)
        clock.set_clock(lambda: self.at)

    def forward(self, minutes: float) -> None:
        self.at += timedelta(minutes=minutes)


@dataclass
class World:
    api: Api
    wecom: FakeWeCom
    mine: list[int]  # customer A's order ids (the first is past draft)
    theirs: int  # customer B's order id
    numbers: dict[int, str]

    def browser(self, ip: str = "203.0.113.7") -> TestClient:
        web = create_web_app(
            self.api.engine, Deployments(self.api.engine, self.api.live), page_routes()
        )
        return TestClient(web, raise_server_exceptions=False, client=(ip, 50000))

    def deliver(self) -> None:
        """Run the outbox's due messages (only messages: the order flows stay where they are)."""
        for job in jobs.claim(self.api.engine, "test", limit=100, kinds=("effect",)):
            run_job(self.api.engine, self.api.live.flows, job)

    def code_sent(self) -> str:
        self.deliver()
        assert self.wecom.messages, "no message reached the WeCom robot"
        found = CODE_RE.search(json.dumps(self.wecom.messages[-1], ensure_ascii=False))
        assert found
        return found[1]


@pytest.fixture
def moment() -> Iterator[Clock]:
    yield Clock()
    clock.set_clock(None)


def _pack(tmp_path: Path, verify: str) -> Path:
    if verify == "code":
        return PACK
    root = tmp_path / "pack"
    shutil.copytree(PACK, root, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    app_yaml = root / "app.yaml"
    text = app_yaml.read_text(encoding="utf-8").replace("verify: code ", f"verify: {verify} ")
    app_yaml.write_text(text, encoding="utf-8")
    return root


def _world(db_url: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with fake_wecom() as robot:
        monkeypatch.setenv("WECOM_WEBHOOK", robot.url)
        api = start_api(db_url, root)
        records = api.live.records
        a = records.create(
            "customer",
            {
                "code": "C00001",
                "name": "绍兴某汽车",
                "tier": "A",
                "contact": "张三丰",
                "phone": "139-0575-0001",
                "wecom_id": "wx_c1",
            },
            SYSTEM_ACTOR,
        )
        b = records.create(
            "customer",
            {
                "code": "C00002",
                "name": "宁波某汽车",
                "tier": "B",
                "contact": "李四",
                "phone": OTHER_PHONE,
                "wecom_id": "wx_c2",
            },
            SYSTEM_ACTOR,
        )
        product = records.create(
            "product",
            {"code": "SD-100234", "name": "真皮座椅面套", "unit_price": "120.50", "lead_days": 10},
            SYSTEM_ACTOR,
        )

        def order(customer: int, states: list[str], remarks: str) -> int:
            made = records.create(
                "order",
                {
                    "customer": customer,
                    "product": product["id"],
                    "quantity": 10,
                    "desired_date": FAR,
                    "order_type": "normal",
                    "remarks": remarks,
                },
                SYSTEM_ACTOR,
            )
            for transition in states:
                fire_transition(records, "order", made["id"], transition, SYSTEM_ACTOR)
            return int(made["id"])

        shown = order(a["id"], ["submit", "stock_ok"], "内部备注：可再降价")
        records.add_child_row(
            "order",
            shown,
            "communication_log",
            {"contact": "王经理", "conclusion": "内部沟通纪要XYZ"},
            SYSTEM_ACTOR,
        )
        draft = order(a["id"], [], "草稿")
        theirs = order(b["id"], ["submit"], "B 的备注")
        with api.engine.connect() as conn:
            table = records.table("order")
            numbers = dict(conn.execute(sa.select(table.c.id, table.c.order_no)).all())
        # the orders' own progress messages are not this test's business
        with api.engine.begin() as conn:
            conn.execute(jobs.JOBS.delete())
        yield World(api, robot, [shown, draft], theirs, numbers)
        api.live.flows.connectors.close()
        api.engine.dispose()


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch, moment: Clock) -> Iterator[World]:
    yield from _world(db_url, PACK, monkeypatch)


@pytest.fixture
def suffix_world(
    db_url: str, monkeypatch: pytest.MonkeyPatch, moment: Clock, tmp_path: Path
) -> Iterator[World]:
    yield from _world(db_url, _pack(tmp_path, "order_suffix"), monkeypatch)


def csrf(page_html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert found, page_html[:500]
    return found[1]


def ask(client: TestClient, phone: str, token: str | None = None):
    token = token or csrf(client.get("/track").text)
    return client.post("/track/code", data={"csrf_token": token, "phone": phone})


def verify(client: TestClient, phone: str, code: str, token: str | None = None):
    token = token or csrf(client.get("/track").text)
    return client.post(
        "/track/verify",
        data={"csrf_token": token, "phone": phone, "code": code},
        follow_redirects=False,
    )


def text_of(page_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page_html))


def _kinds(world: World, form: str, record_id: int) -> list[str]:
    return [e["kind"] for e in world.api.live.records.events(form, record_id)]


# ---------------------------------------------------------------------------- the story


def test_code_arrives_on_wecom_and_shows_only_my_orders(world: World) -> None:
    browser = world.browser()
    r = ask(browser, "139 0575 0001")
    assert r.status_code == 200
    assert "如果该号码已登记，验证码已发送" in r.text
    code = world.code_sent()
    sent = world.wecom.messages[-1]
    assert "<@wx_c1>" in sent["markdown"]["content"]
    r = verify(browser, PHONE, code)
    assert r.status_code == 303 and r.headers["location"] == "/track/orders"
    cookie = r.headers["set-cookie"]
    assert TRACK_COOKIE in cookie and "HttpOnly" in cookie and "Path=/track" in cookie
    assert "samesite=strict" in cookie.lower() and "Max-Age=900" in cookie
    page = browser.get("/track/orders")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert world.numbers[world.mine[0]] in shown
    assert "真皮座椅面套" in shown and "10" in shown
    assert "已接单" in shown  # the customer's stage (app.yaml tracking.records.stages) ...
    for internal in ("已提交", "库存已校验", "审批中", "库存校验等待中", "草稿"):
        assert internal not in shown, internal  # ... never the flow's own states
    # the badge, the stage on the progress line, and one line of history (not three: the
    # submitted → stock_checked → approving steps inside 已接单 are the company's business)
    assert shown.count("已接单") == 3
    assert '<span class="badge blue track-state">已接单</span>' in page.text  # its colour
    assert 'class="track-step current blue" aria-current="step"' in page.text
    todo = re.findall(r'class="track-step todo (\w+)">.*?track-step-label">([^<]+)<', page.text)
    assert todo == [
        ("blue", "备料中"),
        ("blue", "生产中"),
        ("green", "已发货"),
        ("green", "已送达"),
    ]
    assert "已取消" not in shown  # a way out (final states only) is no step of the line
    assert "绍兴某汽车内饰有限公司" in shown and "订单中心" not in page.text  # the company
    assert "物流单号" not in shown and "还有" not in shown  # nothing shipped; one page
    assert "139****0001" in shown and "张**" in shown
    assert PHONE not in page.text and "张三丰" not in page.text
    # never: the draft, another customer's order, prices, remarks, the communication log
    assert world.numbers[world.mine[1]] not in page.text
    assert world.numbers[world.theirs] not in page.text
    for secret in ("120.5", "1,205", "1205", "内部备注", "内部沟通", "王经理", "宁波", "C00001"):
        assert secret not in page.text, secret
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert 'name="viewport"' in page.text and "https://" not in page.text
    # the audit trail on the customer, without the code
    customer = 1
    kinds = _kinds(world, "customer", customer)
    assert "track_code_requested" in kinds and "track_verified" in kinds
    events = world.api.live.records.events("customer", customer)
    assert code not in json.dumps([e["payload"] for e in events], ensure_ascii=False)
    with world.api.engine.connect() as conn:
        stored = conn.execute(sa.select(CODES.c.code_hash)).scalars().all()
    assert stored and all(code not in h for h in stored) and all(len(h) == 64 for h in stored)


def test_enumerating_a_thousand_numbers_is_limited_and_learns_nothing(
    world: World, moment: Clock
) -> None:
    browser = world.browser()
    token = csrf(browser.get("/track").text)
    answers: dict[str, tuple[int, str]] = {}
    numbers = [f"1390575{n:04d}" for n in range(1000)]  # …0001 and …0002 are registered
    for number in numbers:
        r = ask(browser, number, token)
        answers[number] = (r.status_code, r.text.replace(number, "N"))
    statuses = [answers[n][0] for n in numbers]
    assert statuses[:20] == [200] * 20 and set(statuses[20:]) == {429}  # 20 per address
    assert answers[PHONE] == answers["13905750000"] == answers["13905750002"]
    assert answers[numbers[500]] == answers[numbers[999]]
    world.deliver()
    sent = json.dumps(world.wecom.messages)
    assert len(world.wecom.messages) == 2  # only the two registered numbers got a message
    assert "wx_c1" in sent and "wx_c2" in sent
    # from many addresses, each number still gets 3 requests per 10 minutes
    moment.forward(11)
    statuses = [ask(world.browser(f"198.51.100.{i}"), OTHER_PHONE).status_code for i in range(5)]
    unknown = [ask(world.browser(f"198.51.101.{i}"), "13800000000").status_code for i in range(5)]
    assert statuses == unknown == [200, 200, 200, 429, 429]


def test_wrong_codes_lock_the_phone_even_for_the_right_code(world: World, moment: Clock) -> None:
    browser = world.browser()
    ask(browser, PHONE)
    code = world.code_sent()
    wrong = "000000" if code != "000000" else "111111"
    statuses = [verify(browser, PHONE, wrong).status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 400, 429]
    r = verify(browser, PHONE, code)
    assert r.status_code == 429 and "错误次数过多" in r.text
    assert TRACK_COOKIE not in r.headers.get("set-cookie", "")
    assert verify(world.browser("192.0.2.9"), PHONE, code).status_code == 429  # per phone
    assert "track_locked" in _kinds(world, "customer", 1)
    moment.forward(16)
    assert verify(browser, PHONE, code).status_code == 400  # burnt by the lockout
    ask(browser, PHONE)
    assert verify(browser, PHONE, world.code_sent()).status_code == 303


def test_unknown_numbers_lock_the_same_way(world: World) -> None:
    browser = world.browser()
    for phone in ("13800000000", PHONE):
        ask(browser, phone)
        statuses = [verify(browser, phone, "123456").status_code for _ in range(6)]
        assert statuses == [400, 400, 400, 400, 429, 429], phone


def test_address_lockout_across_numbers(world: World) -> None:
    browser = world.browser()
    token = csrf(browser.get("/track").text)
    statuses = [verify(browser, f"1380000{n:04d}", "123456", token).status_code for n in range(25)]
    assert statuses[:19] == [400] * 19 and set(statuses[19:]) == {429}
    ask(world.browser("192.0.2.1"), PHONE)
    assert verify(browser, PHONE, world.code_sent(), token).status_code == 429
    assert verify(world.browser("192.0.2.1"), PHONE, world.code_sent()).status_code == 303


def test_codes_expire_are_single_use_and_replaced(world: World, moment: Clock) -> None:
    browser = world.browser()
    ask(browser, PHONE)
    first = world.code_sent()
    assert verify(browser, PHONE, first).status_code == 303
    assert verify(world.browser(), PHONE, first).status_code == 400  # used
    ask(browser, PHONE)
    second = world.code_sent()
    ask(browser, PHONE)
    third = world.code_sent()
    if second != third:
        assert verify(browser, PHONE, second).status_code == 400  # replaced by the third
    moment.forward(5.5)
    assert verify(browser, PHONE, third).status_code == 400  # expired
    # the outbox forgets the expired code's text at the next request
    ask(world.browser("192.0.2.2"), OTHER_PHONE)
    with world.api.engine.connect() as conn:
        texts = [
            json.dumps(p, ensure_ascii=False)
            for p in conn.execute(sa.select(jobs.JOBS.c.payload)).scalars()
        ]
    assert not any(c in t for c in (first, second, third) for t in texts)


def test_visit_expires_and_cookies_cannot_be_forged(world: World, moment: Clock) -> None:
    browser = world.browser()
    ask(browser, PHONE)
    assert verify(browser, PHONE, world.code_sent()).status_code == 303
    mine = world.numbers[world.mine[0]]
    assert mine in browser.get("/track/orders").text
    # parameters change nothing: the page reads the contact ids of the signed cookie only
    theirs = world.numbers[world.theirs]
    for query in ("?customer=2", "?id=3", f"?order_no={theirs}", "?c=2&p=x"):
        page = browser.get("/track/orders" + query)
        assert mine in page.text and theirs not in page.text
    good = browser.cookies.get(TRACK_COOKIE, path="/track")
    assert good
    data = URLSafeSerializer(session_secret(), salt="seamline.track").loads(good)
    forged = dict(data, c=[2])  # customer B's id with A's verified phone: shown nothing
    other_key = URLSafeSerializer("not-the-secret", salt="seamline.track").dumps(dict(data, c=[2]))
    signed = URLSafeSerializer(session_secret(), salt="seamline.track").dumps(forged)
    for value in (signed, other_key, good[:-3] + "abc", "garbage", "x" * 5000):
        page = world.browser().get("/track/orders", headers={"cookie": f"{TRACK_COOKIE}={value}"})
        assert page.status_code in (200, 401) and theirs not in page.text and mine not in page.text
    moment.forward(16)
    page = browser.get("/track/orders")
    assert page.status_code == 401 and "查询已超时" in page.text and mine not in page.text


def test_csrf_is_required(world: World) -> None:
    browser = world.browser()
    browser.get("/track")
    r = browser.post("/track/code", data={"phone": PHONE})
    assert r.status_code == 403
    r = browser.post("/track/code", data={"phone": PHONE, "csrf_token": "forged"})
    assert r.status_code == 403
    other = world.browser()
    r = other.post("/track/verify", data={"phone": PHONE, "code": "123456", "csrf_token": "x"})
    assert r.status_code == 403
    world.deliver()
    assert world.wecom.messages == []
    with world.api.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(HITS)).scalar() == 0


@pytest.mark.parametrize(
    "phone",
    ["", "abc", "1" * 500, "\x00139", "１３９０５７５０００１", "+86 139-0575-0001'; DROP", "😀"],
)
def test_garbage_never_fails(world: World, phone: str) -> None:
    browser = world.browser()
    token = csrf(browser.get("/track").text)
    for path in ("/track/code", "/track/verify"):
        r = browser.post(path, data={"csrf_token": token, "phone": phone, "code": phone})
        assert r.status_code in (200, 400, 429), (path, r.status_code)
    r = browser.post("/track/verify", content=b"\xff\xfe" * 100, headers={"content-type": "x/y"})
    assert r.status_code < 500
    assert browser.get("/track/code").status_code == 405
    r = browser.post("/track/code", content=b"a" * 10_000, headers={"content-length": "10000"})
    assert r.status_code == 413


def test_code_messages_visible_to_the_right_role_only(world: World) -> None:
    with world.api.engine.begin() as conn:
        for user in ("chen.cs", "li.sales"):
            set_password(conn, user, PASSWORD)
    ask(world.browser(), PHONE)
    with world.api.engine.connect() as conn:
        text = conn.execute(sa.select(jobs.JOBS.c.payload)).scalar_one()["text"]
    code = CODE_RE.search(text)
    assert code

    def runs_as(user: str | None) -> str:
        client = world.browser()
        if user:
            token = csrf(client.get("/login").text)
            form = {"csrf_token": token, "username": user, "password": PASSWORD, "next": "/"}
            assert client.post("/login", data=form, follow_redirects=False).status_code == 303
        return client.get("/runs").text

    with world.api.engine.begin() as conn:
        set_password(conn, "qian.it", PASSWORD)
    service = runs_as("chen.cs")
    assert code[1] in service
    assert "最近的运行" not in service  # customer service sees the codes, not the operators' lists
    assert code[1] not in runs_as("li.sales")
    assert code[1] not in runs_as(None)
    assert code[1] not in runs_as("qian.it")  # administrators: not unless listed in visible_to
    outbox = world.api.client("qian.it").get("/api/outbox")  # titles only, never the text
    assert outbox.status_code == 200 and code[1] not in outbox.text


# ---------------------------------------------------------------------------- order_suffix


def test_order_suffix_variant(suffix_world: World) -> None:
    world = suffix_world
    browser = world.browser()
    page = browser.get("/track")
    assert "订单号的后 4 位" in page.text and "/track/code" not in page.text
    token = csrf(page.text)
    number = world.numbers[world.mine[0]]
    theirs = world.numbers[world.theirs]

    def attempt(phone: str, suffix: str, client: TestClient = browser):
        return client.post(
            "/track/verify",
            data={"csrf_token": token, "phone": phone, "suffix": suffix},
            follow_redirects=False,
        )

    unknown = attempt("13800000000", number[-4:])
    wrong = attempt(PHONE, theirs[-4:] if theirs[-4:] != number[-4:] else "ZZZZ")
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.text.replace("13800000000", "N") == wrong.text.replace(PHONE, "N")
    assert (
        browser.post("/track/code", data={"csrf_token": token, "phone": PHONE}).status_code == 404
    )
    r = attempt(PHONE, number[-4:].lower())
    assert r.status_code == 303
    page = browser.get("/track/orders")
    assert number in page.text and theirs not in page.text
    statuses = [attempt(OTHER_PHONE, "0000").status_code for _ in range(6)]
    assert statuses == [400, 400, 400, 400, 429, 429]
    assert attempt(OTHER_PHONE, theirs[-4:]).status_code == 429


# ---------------------------------------------------------------------------- behind a proxy


@contextmanager
def _real_server(world: World, trusted: str) -> Iterator[str]:
    """The pages on uvicorn with the options of ``seamline serve --forwarded-allow-ips
    <trusted>``, on 127.0.0.1 and a port of its own (bound here, port 0)."""
    web = create_web_app(
        world.api.engine, Deployments(world.api.engine, world.api.live), page_routes()
    )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(web, lifespan="off", **server_options(trusted, "WARNING"))
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "no server"
                time.sleep(0.02)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def _asks(base: str, forwarded_for: str, phones: range) -> list[int]:
    """Codes asked for ``phones`` (unknown numbers: no per-phone limit is reached) by a client
    the proxy says is ``forwarded_for``."""
    headers = {"X-Forwarded-For": forwarded_for}
    with httpx.Client(base_url=base, headers=headers, timeout=20) as client:
        token = csrf(client.get("/track").text)
        return [
            client.post(
                "/track/code", data={"csrf_token": token, "phone": f"1380001{n:04d}"}
            ).status_code
            for n in phones
        ]


def _ip_keys(world: World) -> set[str]:
    with world.api.engine.connect() as conn:
        keys = conn.execute(sa.select(HITS.c.key).where(HITS.c.key.like("req-ip:%"))).scalars()
        return set(keys)


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(world: World) -> None:
    with _real_server(world, "127.0.0.1") as base:
        assert _asks(base, "198.51.100.1", range(21)) == [200] * 20 + [429]  # 20 per address
        assert _asks(base, "198.51.100.2", range(100, 103)) == [200] * 3  # a budget of its own
    assert _ip_keys(world) == {"req-ip:198.51.100.1", "req-ip:198.51.100.2"}


def test_forwarded_for_from_an_untrusted_peer_is_ignored(world: World) -> None:
    with _real_server(world, "10.9.9.9") as base:  # 127.0.0.1 is not the trusted proxy
        assert _asks(base, "198.51.100.1", range(20)) == [200] * 20
        assert _asks(base, "198.51.100.2", range(100, 102)) == [429, 429]  # the same budget
    assert _ip_keys(world) == {"req-ip:127.0.0.1"}


# ---------------------------------------------------------------------------- what customers read


def _signed_in(world: World) -> TestClient:
    browser = world.browser()
    ask(browser, PHONE)
    assert verify(browser, PHONE, world.code_sent()).status_code == 303
    return browser


def _set(world: World, order_id: int, **values: object) -> None:
    with world.api.engine.begin() as conn:
        table = world.api.live.records.table("order")
        conn.execute(sa.update(table).where(table.c.id == order_id).values(**values))


def test_rejected_and_shipped_orders_read_as_customer_stages(world: World) -> None:
    rejected, shipped = world.mine[0], world.mine[1]
    _set(world, rejected, state="approving")
    fire_transition(world.api.live.records, "order", rejected, "reject", SYSTEM_ACTOR)
    _set(world, shipped, state="shipped", tracking_no="SF1234567890")
    browser = _signed_in(world)
    page = browser.get("/track/orders")
    assert page.status_code == 200
    shown = text_of(page.text)
    assert "已取消" in shown and "已驳回" not in shown and "审批中" not in shown
    assert "已发货" in shown and "物流单号 SF1234567890" in " ".join(shown.split())
    articles = page.text.split('<article class="card track-record">')[1:]
    by_number = {n: a for a in articles for n in world.numbers.values() if n in a}
    assert "SF1234567890" in by_number[world.numbers[shipped]]
    assert "物流单号" not in by_number[world.numbers[rejected]]  # none yet: not shown at all
    # the progress line: a way out (已取消, grey) ends the line after the stages passed
    assert _steps(by_number[world.numbers[rejected]]) == [
        ("done", "blue", "已接单"),
        ("current", "grey", "已取消"),
    ]
    assert _steps(by_number[world.numbers[shipped]]) == [
        ("done", "blue", "已接单"),
        ("done", "blue", "备料中"),
        ("done", "blue", "生产中"),
        ("current", "green", "已发货"),
        ("todo", "green", "已送达"),
    ]
    assert (
        '<span class="badge green track-state">已发货</span>' in by_number[world.numbers[shipped]]
    )


def _steps(article: str) -> list[tuple[str, str, str]]:
    """(status, colour, stage) of each step on a record's progress line."""
    found = re.findall(
        r'class="track-step (\w+) (\w+)"[^>]*>.*?track-step-label">([^<]+)<', article
    )
    return [(status, color, label) for status, color, label in found]


# ---------------------------------------------------------------------------- links from messages


def test_a_link_fills_in_the_number_and_never_skips_the_proof(world: World) -> None:
    browser = world.browser()
    number, theirs = world.numbers[world.mine[0]], world.numbers[world.theirs]
    page = browser.get("/track", params={"no": number})
    assert page.status_code == 200
    assert f"查询订单 {number}：请先验证手机号" in text_of(page.text)
    assert f'<input type="hidden" name="no" value="{number}">' in page.text
    for secret in ("真皮座椅面套", "已接单", "139****0001", "张**"):  # nothing before the proof
        assert secret not in page.text, secret
    assert browser.get("/track/orders", params={"no": number}).status_code == 401
    # the code is asked for and typed with the number carried along
    token = csrf(page.text)
    asked = browser.post("/track/code", data={"csrf_token": token, "phone": PHONE, "no": number})
    assert f'<input type="hidden" name="no" value="{number}">' in asked.text
    r = browser.post(
        "/track/verify",
        data={"csrf_token": token, "phone": PHONE, "code": world.code_sent(), "no": number},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/track/orders?no={number}"
    shown = browser.get(r.headers["location"])
    assert "您查询的订单" in text_of(shown.text)
    focus = shown.text.split('class="card track-record track-focus"')[1].split("</article>")[0]
    assert number in focus and "真皮座椅面套" in focus
    assert shown.text.count(number) == 1  # shown first, not again in the list below
    # another customer's number and a number that does not exist read the same: nothing
    other = browser.get("/track/orders", params={"no": theirs})
    none = browser.get("/track/orders", params={"no": "SO-NOPE-00000"})
    assert other.status_code == none.status_code == 200
    assert "不在该手机号名下的订单中" in text_of(other.text)
    assert other.text.replace(theirs, "N") == none.text.replace("SO-NOPE-00000", "N")
    assert "宁波" not in other.text and "B 的备注" not in other.text
    # an open visit goes straight to the record
    again = browser.get("/track", params={"no": number}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == f"/track/orders?no={number}"


@pytest.mark.parametrize("bad", ["x" * 65, "SO-1\n2", "SO\x00"])
def test_a_bad_number_in_a_link_is_a_clear_400(world: World, bad: str) -> None:
    browser = world.browser()
    for path in ("/track", "/track/qr.svg", "/track/orders"):
        r = browser.get(path, params={"no": bad})
        assert r.status_code == 400, path
        assert "订单号格式不正确" in r.text, path


def test_suffix_links_fill_in_the_suffix_but_still_need_the_phone(suffix_world: World) -> None:
    world = suffix_world
    browser = world.browser()
    number = world.numbers[world.mine[0]]
    page = browser.get("/track", params={"no": number})
    assert f'value="{number[-4:]}"' in page.text  # the number's last characters, filled in
    token = csrf(page.text)
    data = {"csrf_token": token, "suffix": number[-4:], "no": number}
    wrong = browser.post("/track/verify", data={**data, "phone": OTHER_PHONE})
    assert wrong.status_code == 400 and "真皮座椅面套" not in wrong.text
    right = browser.post("/track/verify", data={**data, "phone": PHONE}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == f"/track/orders?no={number}"


def test_qr_code_of_the_public_address(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = world.browser()
    number = world.numbers[world.mine[0]]
    monkeypatch.delenv("SEAMLINE_PUBLIC_URL", raising=False)
    plain = browser.get("/track/qr.svg")
    assert plain.status_code == 200 and plain.headers["content-type"] == "image/svg+xml"
    assert plain.content == qr_svg("http://testserver/track")  # the address it was asked at
    monkeypatch.setenv("SEAMLINE_PUBLIC_URL", "https://track.example.com/")
    linked = browser.get("/track/qr.svg", params={"no": number})
    assert linked.content == qr_svg(f"https://track.example.com/track?no={number}")
    assert linked.content != plain.content and linked.content.startswith(b"<svg")


def test_more_than_a_page_says_how_many_more(world: World) -> None:
    records = world.api.live.records
    order = records.get("order", world.mine[0])
    made = []
    for _ in range(24):  # 1 + 24 past draft = 25 orders: 20 on the first page, 5 more
        new = records.create(
            "order",
            {k: order[k] for k in ("customer", "product", "quantity", "desired_date")}
            | {"order_type": "normal"},
            SYSTEM_ACTOR,
        )
        _set(world, new["id"], state="submitted")
        made.append(new["id"])
    with world.api.engine.connect() as conn:
        table = records.table("order")
        numbers = dict(conn.execute(sa.select(table.c.id, table.c.order_no)).all())
    browser = _signed_in(world)
    first = browser.get("/track/orders")
    shown = text_of(first.text)
    assert first.text.count('class="card track-record"') == 20
    assert "还有 5 单" in shown and 'href="/track/orders?page=2"' in first.text
    assert numbers[made[-1]] in first.text  # newest first
    second = browser.get("/track/orders?page=2")
    assert second.status_code == 200 and second.text.count('class="card track-record"') == 5
    assert "还有" not in text_of(second.text) and 'href="/track/orders"' in second.text
    assert numbers[world.mine[0]] in second.text and numbers[world.theirs] not in second.text
    assert numbers[world.mine[1]] not in first.text + second.text  # the draft stays hidden
    past = browser.get("/track/orders?page=3")
    assert past.status_code == 200 and "暂无可查询的订单" in past.text
    for bad in ("0", "-1", "abc", "2.5", "99999", "１", "1" * 40):
        assert browser.get("/track/orders", params={"page": bad}).status_code == 400, bad
    # without a visit, another page is no way in
    assert world.browser().get("/track/orders?page=2").status_code == 401


def _staff(world: World, user: str) -> TestClient:
    with world.api.engine.begin() as conn:
        set_password(conn, user, PASSWORD)
    client = world.browser()
    token = csrf(client.get("/login").text)
    form = {"csrf_token": token, "username": user, "password": PASSWORD, "next": "/"}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    return client


def test_staff_see_where_the_customer_tracks_a_record(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEAMLINE_PUBLIC_URL", raising=False)
    sales = _staff(world, "li.sales")
    number = world.numbers[world.mine[0]]
    page = sales.get(f"/forms/order/{world.mine[0]}")
    assert page.status_code == 200
    box = page.text.split('class="card track-box"')[1].split("</aside>")[0]
    assert "客户查询页" in box and f'href="/track?no={number}"' in box
    assert f'src="/track/qr.svg?no={number}"' in box
    assert "未设置 SEAMLINE_PUBLIC_URL" in box  # the address shown is this server's
    monkeypatch.setenv("SEAMLINE_PUBLIC_URL", "https://track.example.com")
    box = sales.get(f"/forms/order/{world.mine[0]}").text.split('class="card track-box"')[1]
    assert f"https://track.example.com/track?no={number}" in box.split("</aside>")[0]
    assert "未设置" not in box.split("</aside>")[0]
    # a draft is not on the customer's page, nor is a record of another form
    assert "track-box" not in sales.get(f"/forms/order/{world.mine[1]}").text
    customer = sales.get("/forms/customer/1")
    assert customer.status_code == 200 and "track-box" not in customer.text
