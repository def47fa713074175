"""Users, passwords, the org chart in sl_users, API tokens, sessions/CSRF and the CLI."""

from __future__ import annotations

import dataclasses
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import click
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from engine.accounts import auth, secret
from engine.accounts.auth import (
    AuthError,
    authenticate,
    create_token,
    create_user,
    get_user,
    hash_password,
    list_tokens,
    needs_rehash,
    revoke_token,
    revoke_token_id,
    set_password,
    sync_org_chart,
    user_for_token,
    verify_password,
)
from engine.cli.users import token as token_group
from engine.cli.users import user as user_group
from engine.compile import compile_app
from engine.model.spec import App
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata
from engine.web.security import (
    EXCEPTION_HANDLERS,
    LoginLimiter,
    csrf_token,
    current_user,
    login,
    logout,
    require_csrf,
    require_user,
    session_middleware,
)

APP_YAML = """\
name: t
title: Test app
locale: en
calendar: cn
people: people.csv
roles:
  clerk: {label: Clerk}
  boss: {label: Boss}
"""

PEOPLE = """\
user,name,roles,manager
ann,Ann,boss,
bob,Bob,clerk,ann
cat,Cat,clerk|boss,ann
"""

GOOD_PW = "correct horse battery"


def write_app(root: Path, people: str = PEOPLE) -> App:
    root.mkdir(parents=True, exist_ok=True)
    (root / "app.yaml").write_text(APP_YAML, encoding="utf-8")
    (root / "people.csv").write_text(textwrap.dedent(people), encoding="utf-8")
    result = compile_app(root)
    assert result.app is not None, [d.headline() for d in result.diagnostics.sorted()]
    return result.app


@pytest.fixture
def app(tmp_path: Path) -> App:
    return write_app(tmp_path / "app")


@pytest.fixture
def engine(db_url: str, app: App) -> Iterator[sa.Engine]:
    eng = create_db_engine(db_url)
    build_metadata(app).create_all(eng)
    with eng.begin() as conn:
        sync_org_chart(conn, app)
    yield eng
    eng.dispose()


def all_text(engine: sa.Engine) -> str:
    """Every value of every table, as one string."""
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in meta.sorted_tables for row in conn.execute(table.select())
        )


def auth_events(engine: sa.Engine) -> list[tuple[str, str]]:
    meta = sa.MetaData()
    events = sa.Table("sl_events", meta, autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.kind, events.c.payload)
            .where(events.c.form == "_auth")
            .order_by(events.c.id)
        )
        return [(row.kind, row.payload) for row in rows]


# ---------------------------------------------------------------------------- passwords


def test_hash_and_verify() -> None:
    hashed = hash_password(GOOD_PW)
    assert hashed.startswith("$argon2id$") and GOOD_PW not in hashed
    assert verify_password(hashed, GOOD_PW)
    assert not verify_password(hashed, GOOD_PW + "!")
    assert not verify_password("not a hash", GOOD_PW)
    assert not verify_password(None, GOOD_PW)
    assert not needs_rehash(hashed)


def test_short_password_is_refused_in_both_languages() -> None:
    with pytest.raises(AuthError) as caught:
        hash_password("short")
    assert caught.value.code == "password-too-short"
    assert "at least 8" in caught.value.message("en")
    assert "至少需要 8" in caught.value.message("zh")


def test_login_rehashes_a_weak_hash(engine: sa.Engine) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD_PW)
    assert needs_rehash(weak)
    users = build_metadata_tables(engine)["sl_users"]
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == "bob").values(password_hash=weak))
    with engine.begin() as conn:
        assert authenticate(conn, "bob", GOOD_PW) is not None
    with engine.connect() as conn:
        stored = conn.execute(sa.select(users.c.password_hash).where(users.c.username == "bob"))
        fresh = stored.scalar_one()
    assert fresh != weak and not needs_rehash(fresh) and verify_password(fresh, GOOD_PW)


def build_metadata_tables(engine: sa.Engine) -> dict[str, sa.Table]:
    meta = sa.MetaData()
    meta.reflect(engine, only=["sl_users", "sl_tokens"])
    return dict(meta.tables)


# ---------------------------------------------------------------------------- users


def test_authenticate(engine: sa.Engine, app: App) -> None:
    with engine.begin() as conn:
        set_password(conn, "bob", GOOD_PW)
        create_user(conn, "robot", ["clerk"], app=app)  # token-only
    with engine.begin() as conn:
        bob = authenticate(conn, "bob", GOOD_PW)
        assert bob == auth.User("bob", "Bob", frozenset({"clerk"}), "ann", True)
        assert authenticate(conn, "bob", "wrong password") is None
        assert authenticate(conn, "nobody", GOOD_PW) is None
        assert authenticate(conn, "robot", GOOD_PW) is None
        assert authenticate(conn, "", GOOD_PW) is None
    users = build_metadata_tables(engine)["sl_users"]
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.username == "bob").values(active=False))
    with engine.begin() as conn:
        assert authenticate(conn, "bob", GOOD_PW) is None


def test_create_user_and_events_hold_no_secrets(engine: sa.Engine, app: App) -> None:
    with engine.begin() as conn:
        made = create_user(conn, "dan", ["boss", "clerk", "boss"], "Dan", GOOD_PW, app=app)
    assert made.roles == frozenset({"boss", "clerk"})
    with engine.connect() as conn:
        assert get_user(conn, "dan") == made
        assert get_user(conn, "nobody") is None
    with engine.begin() as conn, pytest.raises(AuthError) as caught:
        create_user(conn, "dan", ["boss"], app=app)
    assert caught.value.code == "user-exists"
    kinds = [kind for kind, _ in auth_events(engine)]
    assert "user_created" in kinds
    text = "".join(payload for _, payload in auth_events(engine))
    assert GOOD_PW not in text and "argon2" not in text


def test_unknown_role_suggests_the_closest(engine: sa.Engine, app: App) -> None:
    with engine.begin() as conn, pytest.raises(AuthError) as caught:
        create_user(conn, "eve", ["clerc"], app=app)
    assert caught.value.code == "unknown-role"
    assert "unknown role 'clerc'" in caught.value.message("en")
    assert "did you mean 'clerk'?" in caught.value.message("en")
    assert "您是不是想写 'clerk'" in caught.value.message("zh")
    with engine.connect() as conn:
        assert get_user(conn, "eve") is None


def test_bad_username_is_refused(engine: sa.Engine, app: App) -> None:
    for name in ("", "two words", "x" * 65):
        with engine.begin() as conn, pytest.raises(AuthError) as caught:
            create_user(conn, name, ["clerk"], app=app)
        assert caught.value.code == "bad-username"


def test_set_password_for_unknown_user(engine: sa.Engine) -> None:
    with engine.begin() as conn, pytest.raises(AuthError) as caught:
        set_password(conn, "nobody", GOOD_PW)
    assert caught.value.code == "unknown-user"


# ---------------------------------------------------------------------------- org chart


def with_people(app: App, keep: set[str], **changes: tuple[str, ...]) -> App:
    people = {
        user: dataclasses.replace(person, roles=changes.get(user, person.roles))
        for user, person in app.people.items()
        if user in keep
    }
    return dataclasses.replace(app, people=MappingProxyType(people))


def test_org_chart_sync(engine: sa.Engine, app: App) -> None:
    with engine.connect() as conn:
        cat = get_user(conn, "cat")
    assert cat == auth.User("cat", "Cat", frozenset({"clerk", "boss"}), "ann", True)
    with engine.begin() as conn:
        set_password(conn, "bob", GOOD_PW)
        create_user(conn, "robot", ["clerk"], app=app)
        again = sync_org_chart(conn, app)
    assert again == auth.SyncReport()  # nothing changed, nothing logged

    smaller = with_people(app, {"ann", "bob"}, bob=("boss",))
    with engine.begin() as conn:
        report = sync_org_chart(conn, smaller)
    assert report == auth.SyncReport((), ("bob",), ("cat",))
    with engine.begin() as conn:
        bob = authenticate(conn, "bob", GOOD_PW)  # password kept
        assert bob is not None and bob.roles == frozenset({"boss"})
        gone = get_user(conn, "cat")
        assert gone is not None and not gone.active  # deactivated, not deleted
        robot = get_user(conn, "robot")
        assert robot is not None and robot.active  # hand-made users are left alone

    with engine.begin() as conn:
        back = sync_org_chart(conn, app)
    assert back.updated == ("bob", "cat")
    with engine.connect() as conn:
        cat = get_user(conn, "cat")
        assert cat is not None and cat.active
    kinds = [kind for kind, _ in auth_events(engine)]
    assert kinds.count("user_deactivated") == 1


# ---------------------------------------------------------------------------- tokens


def test_tokens_are_stored_hashed_and_can_be_revoked(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        plain = create_token(conn, "bob", "ERP sync")
        other = create_token(conn, "ann")
    assert plain.startswith("sl_") and len(plain) > 40 and plain != other
    everything = all_text(engine)
    assert plain not in everything and plain[3:] not in everything
    with engine.connect() as conn:
        bob = user_for_token(conn, plain)
        assert bob is not None and bob.username == "bob"
        assert user_for_token(conn, "sl_" + "x" * 43) is None
        assert user_for_token(conn, plain[3:]) is None
        assert [t.label for t in list_tokens(conn, "bob")] == ["ERP sync"]
    with engine.begin() as conn:
        assert revoke_token(conn, plain)
        assert not revoke_token(conn, plain)
    with engine.connect() as conn:
        assert user_for_token(conn, plain) is None
        ann_id = list_tokens(conn, "ann")[0].id
        assert user_for_token(conn, other) is not None
    with engine.begin() as conn:
        assert revoke_token_id(conn, ann_id)
    with engine.connect() as conn:
        assert user_for_token(conn, other) is None
    kinds = [kind for kind, _ in auth_events(engine)]
    assert kinds.count("token_created") == 2 and kinds.count("token_revoked") == 2


def test_tokens_of_inactive_users_are_refused(engine: sa.Engine, app: App) -> None:
    with engine.begin() as conn:
        plain = create_token(conn, "cat")
        sync_org_chart(conn, with_people(app, {"ann", "bob"}))
    with engine.connect() as conn:
        assert user_for_token(conn, plain) is None
    with engine.begin() as conn, pytest.raises(AuthError) as caught:
        create_token(conn, "cat")
    assert caught.value.code == "inactive-user"
    with engine.begin() as conn, pytest.raises(AuthError):
        create_token(conn, "nobody")


# ---------------------------------------------------------------------------- web


async def _login_view(request: Request) -> JSONResponse:
    await require_csrf(request)
    form = await request.form()
    user = await login(request, str(form.get("username", "")), str(form.get("password", "")))
    if user is None:
        return JSONResponse({"errors": [{"field": None, "code": "login", "message": "no"}]}, 401)
    return JSONResponse({"user": user.username})


async def _csrf_view(request: Request) -> JSONResponse:
    return JSONResponse({"csrf": csrf_token(request)})


async def _me_view(request: Request) -> JSONResponse:
    user = await require_user(request)
    return JSONResponse({"user": user.username, "roles": sorted(user.roles)})


async def _act_view(request: Request) -> JSONResponse:
    user = await require_user(request)
    await require_csrf(request)
    form = await request.form()  # still readable after require_csrf parsed it
    return JSONResponse({"user": user.username, "note": form.get("note")})


async def _logout_view(request: Request) -> JSONResponse:
    await require_csrf(request)
    logout(request)
    return JSONResponse({"ok": True})


async def _whoami_view(request: Request) -> JSONResponse:
    user = await current_user(request)
    return JSONResponse({"user": user.username if user else None})


@pytest.fixture
def client(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SEAMLINE_SECRET_KEY", "test-secret-" + "k" * 40)
    with engine.begin() as conn:
        set_password(conn, "bob", GOOD_PW)
    web = Starlette(
        routes=[
            Route("/login", _login_view, methods=["POST"]),
            Route("/csrf", _csrf_view),
            Route("/me", _me_view),
            Route("/whoami", _whoami_view),
            Route("/act", _act_view, methods=["POST"]),
            Route("/logout", _logout_view, methods=["POST"]),
        ],
        middleware=[session_middleware()],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    web.state.db = engine
    web.state.metadata = sa.MetaData()
    web.state.login_limiter = LoginLimiter(max_failures=3, window=600)
    with TestClient(web) as test_client:
        yield test_client


def _csrf(client: TestClient) -> str:
    return client.get("/csrf").json()["csrf"]


def _sign_in(client: TestClient, password: str = GOOD_PW, username: str = "bob") -> Any:
    data = {"username": username, "password": password, "csrf_token": _csrf(client)}
    return client.post("/login", data=data)


def test_login_sets_a_session_and_csrf_guards_posts(client: TestClient) -> None:
    assert client.get("/me").status_code == 401
    before = _csrf(client)
    answer = _sign_in(client)
    assert answer.status_code == 200 and answer.json() == {"user": "bob"}
    cookie = answer.headers["set-cookie"].lower()
    assert "seamline_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/me").json() == {"user": "bob", "roles": ["clerk"]}

    refused = client.post("/act", data={"note": "x"})
    assert refused.status_code == 403
    assert refused.json()["errors"] == [
        {"field": None, "code": "csrf", "message": refused.json()["errors"][0]["message"]}
    ]
    stale = client.post("/act", data={"note": "x", "csrf_token": before})
    assert stale.status_code == 403  # login rotated the token

    token = _csrf(client)
    assert token != before
    by_form = client.post("/act", data={"note": "x", "csrf_token": token})
    assert by_form.status_code == 200 and by_form.json() == {"user": "bob", "note": "x"}
    by_header = client.post("/act", data={"note": "y"}, headers={"X-CSRF-Token": token})
    assert by_header.status_code == 200
    wrong = client.post("/act", data={"note": "y"}, headers={"X-CSRF-Token": token + "x"})
    assert wrong.status_code == 403

    assert client.post("/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert client.get("/me").status_code == 401


def test_login_needs_csrf_and_the_right_password(client: TestClient) -> None:
    no_csrf = client.post("/login", data={"username": "bob", "password": GOOD_PW})
    assert no_csrf.status_code == 403 and no_csrf.json()["errors"][0]["code"] == "csrf"
    assert _sign_in(client, "wrong password").status_code == 401
    assert client.get("/whoami").json() == {"user": None}
    zh = client.post("/act", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert zh.status_code == 401 and "请先登录" in zh.json()["errors"][0]["message"]


def test_bearer_tokens(client: TestClient, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        plain = create_token(conn, "ann")
    good = {"Authorization": f"Bearer {plain}"}
    answer = client.post("/act", data={"note": "api"}, headers=good)  # no CSRF needed
    assert answer.status_code == 200 and answer.json()["user"] == "ann"
    bad = client.post("/act", data={"note": "api"}, headers={"Authorization": "Bearer sl_nope"})
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == "Bearer"
    assert bad.json()["errors"][0]["code"] == "unauthenticated"
    assert bad.json()["errors"][0]["field"] is None
    # a signed-in browser sending a bad token is not quietly let in by its cookie
    assert _sign_in(client).status_code == 200
    assert client.get("/me", headers={"Authorization": "Bearer sl_nope"}).status_code == 401
    assert client.get("/me", headers={"Authorization": "Basic Ym9iOng="}).status_code == 401


def test_login_rate_limit(client: TestClient) -> None:
    for _ in range(3):
        assert _sign_in(client, "wrong password").status_code == 401
    limited = _sign_in(client)  # even the right password waits
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert limited.json()["errors"][0]["code"] == "too-many-attempts"
    assert _sign_in(client, username="ann").status_code == 401  # other names are not blocked


def test_password_change_ends_sessions(client: TestClient, engine: sa.Engine) -> None:
    assert _sign_in(client).status_code == 200
    assert client.get("/me").status_code == 200
    with engine.begin() as conn:
        set_password(conn, "bob", GOOD_PW + " new")
    assert client.get("/me").status_code == 401


def test_deactivated_user_loses_session(client: TestClient, engine: sa.Engine, app: App) -> None:
    assert _sign_in(client).status_code == 200
    with engine.begin() as conn:
        sync_org_chart(conn, with_people(app, {"ann", "cat"}))
    assert client.get("/me").status_code == 401


def test_limiter_window() -> None:
    now = [1000.0]
    limiter = LoginLimiter(max_failures=2, window=60, clock=lambda: now[0])
    key = ("bob", "1.2.3.4")
    assert limiter.hit(key) == 0 and limiter.hit(key) == 0
    assert limiter.hit(key) == 61
    now[0] += 61
    assert limiter.hit(key) == 0
    limiter.reset(key)
    assert limiter.hit(key) == 0


def test_missing_secret_key_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SEAMLINE_SECRET_KEY", raising=False)
    monkeypatch.setattr(secret, "_generated_secret", None)
    with caplog.at_level(logging.WARNING, logger="seamline.accounts.secret"):
        first = secret.session_secret()
        assert secret.session_secret() == first
    assert len(first) >= 32
    assert sum("SEAMLINE_SECRET_KEY is not set" in r.message for r in caplog.records) == 1


def test_secure_cookies_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAMLINE_SECURE_COOKIES", "1")
    assert session_middleware().kwargs["https_only"] is True
    monkeypatch.delenv("SEAMLINE_SECURE_COOKIES")
    assert session_middleware().kwargs["https_only"] is False


# ---------------------------------------------------------------------------- CLI


def make_cli(app_dir: Path, db_url: str) -> click.Group:
    @click.group()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.ensure_object(dict)
        ctx.obj.update(app_dir=app_dir, lang="en", db_url=db_url)

    cli.add_command(user_group)
    cli.add_command(token_group)
    return cli


@pytest.fixture
def deployed(db_url: str, app: App) -> Iterator[tuple[click.Group, sa.Engine]]:
    eng = create_db_engine(db_url)
    build_metadata(app).create_all(eng)
    yield make_cli(Path(app.root), db_url), eng
    eng.dispose()


def test_cli_refuses_an_undeployed_database(db_url: str, app: App, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    for url in (missing, db_url):  # no file / a database without the tables
        result = runner.invoke(make_cli(Path(app.root), url), ["token", "create", "bob"])
        assert result.exit_code == 1, result.output
        assert "run seamline deploy first" in result.output
    assert not (tmp_path / "nothing.db").exists()


def test_cli_reports_app_errors(db_url: str, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "app.yaml").write_text("name: t\ntitle: x\nroles: 5\n", encoding="utf-8")
    result = CliRunner().invoke(make_cli(root, db_url), ["token", "create", "bob"])
    assert result.exit_code == 1
    assert "app.yaml" in result.output and "seamline validate" in result.output


def test_cli_user_create_and_set_password(deployed: tuple[click.Group, sa.Engine]) -> None:
    cli, eng = deployed
    runner = CliRunner()
    made = runner.invoke(
        cli,
        [
            "user",
            "create",
            "erp",
            "--role",
            "clerk",
            "--role",
            "boss",
            "--name",
            "ERP",
            "--password-stdin",
        ],
        input=GOOD_PW + "\n",
    )
    assert made.exit_code == 0, made.output
    with eng.begin() as conn:
        erp = authenticate(conn, "erp", GOOD_PW)
        assert erp is not None and erp.roles == frozenset({"clerk", "boss"}) and erp.name == "ERP"
        assert get_user(conn, "ann") is not None  # the org chart was synced first

    again = runner.invoke(cli, ["user", "create", "erp", "--role", "clerk", "--no-password"])
    assert again.exit_code == 1 and "already exists" in again.output

    typo = runner.invoke(cli, ["user", "create", "x", "--role", "bos", "--no-password"])
    assert typo.exit_code == 1 and "did you mean 'boss'?" in typo.output

    short = runner.invoke(cli, ["user", "create", "y", "--role", "boss", "--password", "abc"])
    assert short.exit_code == 1 and "at least 8" in short.output

    no_tty = runner.invoke(cli, ["user", "create", "z", "--role", "boss"])
    assert no_tty.exit_code == 1 and "--password-stdin" in no_tty.output

    robot = runner.invoke(cli, ["user", "create", "robot", "--role", "clerk", "--no-password"])
    assert robot.exit_code == 0, robot.output

    changed = runner.invoke(cli, ["user", "set-password", "ann", "--password", GOOD_PW])
    assert changed.exit_code == 0, changed.output
    unknown = runner.invoke(cli, ["user", "set-password", "nobody", "--password", GOOD_PW])
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
    with eng.begin() as conn:
        assert authenticate(conn, "ann", GOOD_PW) is not None
        robot_user = get_user(conn, "robot")
        assert robot_user is not None and authenticate(conn, "robot", GOOD_PW) is None
        for name in ("x", "y", "z"):
            assert get_user(conn, name) is None


def test_cli_tokens(deployed: tuple[click.Group, sa.Engine]) -> None:
    cli, eng = deployed
    runner = CliRunner()
    made = runner.invoke(cli, ["token", "create", "bob", "--label", "ERP sync"])
    assert made.exit_code == 0, made.output
    plain = made.stdout.strip()
    assert made.stdout == plain + "\n" and plain.startswith("sl_")
    with eng.connect() as conn:
        bob = user_for_token(conn, plain)
        assert bob is not None and bob.username == "bob"
    listed = runner.invoke(cli, ["token", "list", "bob"])
    assert listed.exit_code == 0 and "ERP sync" in listed.stdout and plain not in listed.stdout
    token_id = listed.stdout.split("\t")[0]
    assert runner.invoke(cli, ["token", "revoke", token_id]).exit_code == 0
    assert runner.invoke(cli, ["token", "revoke", token_id]).exit_code == 1
    with eng.connect() as conn:
        assert user_for_token(conn, plain) is None
    unknown = runner.invoke(cli, ["token", "create", "nobody"])
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.output
