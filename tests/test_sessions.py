"""Server-side sessions (issue 12): a copied session cookie is refused after logout, a new
password or a deactivation ends every session of that user (and only theirs), idle and
absolute limits, API tokens unaffected, and the /track visit ends on the server when the
visitor leaves — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from types import MappingProxyType

import pytest
import sqlalchemy as sa
from apihelp import PACK, Api, start_api
from starlette.testclient import TestClient
from test_pages import PASSWORD, browser, csrf, sign_in
from test_track import PHONE, Clock, World, _world, ask, verify

from engine.accounts.auth import set_password, sync_org_chart
from engine.accounts.sessions import SESSIONS, TOUCH_SECONDS, ensure_session_tables
from engine.model import clock
from engine.tracking.visits import VISITS
from engine.web.security import SESSION_COOKIE
from engine.web.track import TRACK_COOKIE


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    api = start_api(db_url)
    with api.engine.begin() as conn:
        for user in ("li.sales", "huang.fin"):
            set_password(conn, user, PASSWORD)
    yield api
    api.engine.dispose()


@pytest.fixture
def moment() -> Iterator[Clock]:
    yield Clock()
    clock.set_clock(None)


def _cookie(client: TestClient) -> str:
    value = client.cookies.get(SESSION_COOKIE)
    assert value
    return value


def replay(api: Api, cookie: str) -> TestClient:
    """A fresh browser that carries only a copy of someone's session cookie."""
    client = browser(api)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client


def refused(client: TestClient) -> bool:
    page = client.get("/", follow_redirects=False)
    api = client.get("/api/forms")
    if page.status_code == 303:
        assert page.headers["location"].startswith("/login")
    return page.status_code == 303 and api.status_code == 401


def accepted(client: TestClient) -> bool:
    return (
        client.get("/", follow_redirects=False).status_code == 200
        and client.get("/api/forms").status_code == 200
    )


def sessions(api: Api) -> list[sa.Row]:
    with api.engine.connect() as conn:
        return list(conn.execute(sa.select(SESSIONS).order_by(SESSIONS.c.created_at)))


# ---------------------------------------------------------------------------- staff sessions


def test_the_cookie_holds_only_an_id_and_the_table_only_its_hash(api: Api) -> None:
    client = browser(api)
    sign_in(client)
    cookie = _cookie(client)
    assert "li.sales" not in cookie
    [row] = sessions(api)
    assert row.username == "li.sales" and row.revoked_at is None
    assert row.expires_at is not None and row.address and row.user_agent
    session_id = _session_id(cookie)
    assert len(row.id_hash) == 64 and session_id not in repr(tuple(row))


def _session_id(cookie: str) -> str:
    payload = cookie.split(".")[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(data) == {"sid"}
    return str(data["sid"])


def test_a_copied_cookie_is_refused_after_logout(api: Api) -> None:
    client = browser(api)
    token = sign_in(client)
    copy = _cookie(client)
    assert accepted(replay(api, copy))
    out = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert refused(client)
    thief = replay(api, copy)
    assert refused(thief)
    # the CSRF token derived from the dead session lets nothing through either
    posted = thief.post("/api/forms/customer/records", json={}, headers={"X-CSRF-Token": token})
    assert posted.status_code == 401
    [row] = sessions(api)
    assert row.revoked_at is not None and row.revoked_reason == "logout"
    # signing in again works and makes a new session
    sign_in(client)
    assert accepted(client) and refused(replay(api, copy))


def test_a_new_password_ends_every_session_of_that_user_only(api: Api) -> None:
    phone, desk = browser(api), browser(api)
    sign_in(phone)
    sign_in(desk)
    other = browser(api)
    sign_in(other, "huang.fin")
    copies = [_cookie(phone), _cookie(desk)]
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", PASSWORD + "-new")
    for client in (phone, desk, *(replay(api, c) for c in copies)):
        assert refused(client)
    assert accepted(other)
    reasons = {(r.username, r.revoked_reason) for r in sessions(api)}
    assert reasons == {("li.sales", "password"), ("huang.fin", None)}


def test_cli_set_password_ends_sessions(api: Api) -> None:
    from click.testing import CliRunner

    from engine.cli.main import main

    client = browser(api)
    sign_in(client)
    url = api.engine.url.render_as_string(hide_password=False)
    answer = CliRunner().invoke(
        main,
        ["--app", str(PACK), "--db", url, "user", "set-password", "li.sales", "--password-stdin"],
        input="another-password-1\n",
    )
    assert answer.exit_code == 0, answer.output
    assert refused(client)


def test_a_deactivated_user_loses_their_sessions(api: Api) -> None:
    client = browser(api)
    sign_in(client)
    other = browser(api)
    sign_in(other, "huang.fin")
    app = api.app
    people = {k: v for k, v in app.people.items() if k != "li.sales"}
    with api.engine.begin() as conn:
        sync_org_chart(conn, dataclasses.replace(app, people=MappingProxyType(people)))
    assert refused(client) and accepted(other)
    assert {r.username: r.revoked_reason for r in sessions(api)}["li.sales"] == "deactivated"


def test_idle_and_absolute_limits(api: Api, moment: Clock, monkeypatch) -> None:
    client = browser(api)
    sign_in(client)
    assert accepted(client)
    moment.forward(119)  # idle limit: 120 minutes
    assert accepted(client)  # ...and this use is noted (last seen > 5 minutes ago)
    moment.forward(119)
    assert accepted(client)
    moment.forward(121)
    assert refused(client)

    sign_in(client)
    copy = _cookie(client)
    for _ in range(7):  # busy all day: still ends after 12 hours
        moment.forward(100)
        assert accepted(client)
    moment.forward(21)
    assert refused(client) and refused(replay(api, copy))

    monkeypatch.setenv("SEAMLINE_SESSION_IDLE_MINUTES", "10")
    sign_in(client)
    moment.forward(9)
    assert accepted(client)
    moment.forward(11)
    assert refused(client)


def test_last_seen_is_written_at_most_every_few_minutes(api: Api, moment: Clock) -> None:
    client = browser(api)
    sign_in(client)
    [first] = sessions(api)
    for _ in range(3):
        moment.forward(1)
        assert accepted(client)
    [row] = sessions(api)
    assert row.last_seen_at == first.last_seen_at
    moment.forward(TOUCH_SECONDS / 60)
    assert accepted(client)
    [row] = sessions(api)
    assert row.last_seen_at > first.last_seen_at


def test_signing_in_again_ends_the_browsers_previous_session(api: Api) -> None:
    client = browser(api)
    sign_in(client)
    before = _cookie(client)
    sign_in(client, "huang.fin")
    assert refused(replay(api, before))
    assert accepted(client)
    assert [r.revoked_reason for r in sessions(api)] == ["signed-in-again", None]


def test_csrf_token_is_tied_to_the_session(api: Api) -> None:
    client = browser(api)
    token = sign_in(client)
    other = browser(api)
    other_token = sign_in(other, "huang.fin")
    assert token != other_token
    stolen = client.post("/logout", data={"csrf_token": other_token}, follow_redirects=False)
    assert stolen.status_code == 403 and accepted(client)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 200
    assert csrf(client.get("/login").text) != token


def test_api_tokens_keep_working(api: Api) -> None:
    bearer = api.client("li.sales")
    assert bearer.get("/api/forms").status_code == 200
    with api.engine.begin() as conn:
        set_password(conn, "li.sales", PASSWORD + "-new")
    assert bearer.get("/api/forms").status_code == 200


def test_serve_creates_the_tables_an_older_database_lacks(api: Api) -> None:
    with api.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE sl_sessions"))
        conn.execute(sa.text("DROP TABLE sl_track_visits"))
        # a database from before: a new password needs no session table to revoke from
        set_password(conn, "li.sales", PASSWORD)
    assert sorted(ensure_session_tables(api.engine)) == ["sl_sessions", "sl_track_visits"]
    assert ensure_session_tables(api.engine) == []
    client = browser(api)
    sign_in(client)
    assert accepted(client)


# ---------------------------------------------------------------------------- /track


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch, moment: Clock) -> Iterator[World]:
    yield from _world(db_url, PACK, monkeypatch)


def _track_copy(world: World, cookie: str) -> TestClient:
    client = world.browser()
    client.cookies.set(TRACK_COOKIE, cookie, path="/track")
    return client


def test_a_replayed_track_cookie_is_refused_after_leaving(world: World) -> None:
    visitor = world.browser()
    ask(visitor, PHONE)
    assert verify(visitor, PHONE, world.code_sent()).status_code == 303
    mine = world.numbers[world.mine[0]]
    cookie = visitor.cookies.get(TRACK_COOKIE, path="/track")
    assert cookie
    assert mine in _track_copy(world, cookie).get("/track/orders").text
    token = csrf(visitor.get("/track/orders").text)
    left = visitor.post("/track/logout", data={"csrf_token": token}, follow_redirects=False)
    assert left.status_code == 303 and left.headers["location"] == "/track"
    copy = _track_copy(world, cookie)
    page = copy.get("/track/orders")
    assert page.status_code == 401 and mine not in page.text
    assert copy.get("/track", follow_redirects=False).status_code == 200  # not sent on
    with world.api.engine.connect() as conn:
        [row] = conn.execute(sa.select(VISITS)).all()
    assert row.ended_at is not None and cookie not in repr(tuple(row))


def test_a_track_visit_ends_on_the_server_when_it_times_out(world: World, moment: Clock) -> None:
    visitor = world.browser()
    ask(visitor, PHONE)
    assert verify(visitor, PHONE, world.code_sent()).status_code == 303
    cookie = visitor.cookies.get(TRACK_COOKIE, path="/track")
    assert cookie
    moment.forward(14)
    assert world.numbers[world.mine[0]] in _track_copy(world, cookie).get("/track/orders").text
    moment.forward(2)
    assert _track_copy(world, cookie).get("/track/orders").status_code == 401


def test_track_visit_does_not_sign_anyone_in(world: World) -> None:
    visitor = world.browser()
    ask(visitor, PHONE)
    assert verify(visitor, PHONE, world.code_sent()).status_code == 303
    assert visitor.get("/", follow_redirects=False).status_code == 303
    assert visitor.get("/api/forms").status_code == 401


def test_old_rows_are_pruned(api: Api, moment: Clock) -> None:
    sign_in(browser(api))
    moment.forward(60 * 24 * 2)
    sign_in(browser(api), "huang.fin")
    [row] = sessions(api)
    assert row.username == "huang.fin"
    assert row.expires_at - row.created_at == timedelta(hours=12)
