"""The route table test (issue 12): every HTTP route of the web app asks the one permission
model (``engine.model.permissions.allowed``) before it answers, about the resource the route names
— except the public ones listed in ``engine.web.server.PUBLIC_ROUTES``. A new route that
forgets its check fails here, whatever it does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from apihelp import BROWSER_PASSWORD, Api, start_api
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from test_permissions import _approving

from engine.accounts.auth import set_password
from engine.flows.approvals.service import APPROVALS, TASKS
from engine.model import clock
from engine.model.permissions import checked_actions
from engine.outbox.jobs import JOBS
from engine.runtime import Deployments
from engine.store.files import store_bytes
from engine.web.routes import page_routes
from engine.web.server import PUBLIC_ROUTES, create_web_app


class Recorder:
    """ASGI wrapper: the actions ``allowed`` was asked about while serving the last request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        with checked_actions() as log:
            await self.app(scope, receive, send)
        self.last = list(log)


@pytest.fixture
def world(db_url: str) -> Iterator[tuple[Api, dict[str, str]]]:
    api = start_api(db_url)
    order = _approving(api)
    with api.engine.begin() as conn:
        approval = conn.execute(sa.select(APPROVALS.c.id)).scalar_one()
        task = conn.execute(sa.select(TASKS.c.id).where(TASKS.c.status == "open")).scalars().first()
        job = conn.execute(sa.select(JOBS.c.id)).scalars().first()
        stored = store_bytes(conn, "a.pdf", "application/pdf", b"%PDF-1.4\n", "li.sales")
    dashboard = next(iter(api.app.dashboards.values()))
    params = {
        "form": "order",
        "record_id": str(order),
        "child": "communication_log",
        "transition": "confirm_promise",
        "task_id": str(task),
        "decision": "approve",
        "approval_id": str(approval),
        "delegation_id": "1",
        "job_id": str(job or 1),
        "todo_id": "1",
        "file_id": stored.id,
        "name": dashboard.name,
        "kpi": dashboard.kpis[0].name,
        "field": "customer",
        "kpi_form": dashboard.kpis[0].form,
    }
    if api.app.insights:
        params["insight"] = next(iter(api.app.insights))
    yield api, params
    clock.set_clock(None)
    api.live.flows.connectors.close()
    api.engine.dispose()


def _routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        if isinstance(route, Mount):
            yield prefix + route.path, "GET"
        elif isinstance(route, Route):
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    yield prefix + route.path, method


def _url(path: str, params: dict[str, str]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if path.startswith("/insights") and name == "name":
            return params.get("insight", "none").replace("_", "-")
        return params[name]

    return re.sub(r"\{([a-z_]+)(?::[a-z]+)?\}", fill, path)


# (method, path pattern) → what the route must ask, about which resource ("action:name"); the
# first matching rule applies. Routes of one's own work ("use") and the public ones are below.
RULES: list[tuple[str, str, tuple[str, ...]]] = [
    ("POST", r".*/actions/\{transition\}$", ("transition:{form}",)),
    ("POST", r".*/confirm(ations)?/\{transition\}$", ("confirm:{form}",)),
    ("POST", r".*/children/\{child\}$", ("child_append:{form}",)),
    ("PATCH", r"/api/forms/\{form\}/records/\{record_id\}$", ("update:{form}",)),
    ("POST", r"/api/forms/\{form\}/records$", ("create:{form}",)),
    ("*", r"/forms/\{form\}/new$", ("create:{form}",)),
    ("*", r"/forms/\{form\}/\{record_id:int\}/edit$", ("update:{form}",)),
    ("GET", r"/forms/\{form\}/pick/\{field\}$", ("read:{form}", "read:customer")),
    ("GET", r".*\{form\}.*", ("read:{form}",)),
    ("*", r".*/dashboards/\{name\}/kpis/.*", ("dashboard:{name}", "read:{kpi_form}")),
    ("*", r".*/dashboards/\{name\}.*", ("dashboard:{name}",)),
    ("*", r"/insights/\{name\}.*", ("insight:{insight}",)),
    ("*", r"/(api/)?(runs|outbox).*", ("operate",)),
    ("*", r"/api/approvals/\{approval_id\}/record.pdf$", ("read:{form}",)),
    ("POST", r"/api/files$", ("create:{form}",)),
]


def _expected(method: str, path: str, params: dict[str, str]) -> tuple[str, ...]:
    for want_method, pattern, wanted in RULES:
        if want_method in ("*", method) and re.fullmatch(pattern, path):
            return tuple(w.format(**params) for w in wanted)
    return ("use",)  # one's own inbox, delegations, the home page, an own upload


def test_every_route_asks_the_permission_model(world: tuple[Api, dict[str, str]]) -> None:
    api, params = world
    # Someone holding every role: every check passes, so each route runs its whole chain of
    # checks (a refusal would stop at the first) and each must be seen.
    api.add_user("everyone", *api.app.roles)
    with api.engine.begin() as conn:
        set_password(conn, "everyone", BROWSER_PASSWORD)
    web = create_web_app(api.engine, Deployments(api.engine, api.live), page_routes())
    recorder = Recorder(web)
    client = TestClient(recorder, raise_server_exceptions=False)  # type: ignore[arg-type]
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
    signed = client.post(
        "/login",
        data={"csrf_token": token, "username": "everyone", "password": BROWSER_PASSWORD},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)[1]  # type: ignore[index]

    unchecked, wrong, seen = [], [], set()
    routes = sorted(_routes(web.routes), key=lambda r: r[0] == "/logout")  # signs out: last
    for path, method in routes:
        if path.startswith("/insights") and "insight" not in params:
            continue
        url = _url(path, params)
        if path.startswith("/api/files") and method == "POST":
            url += "?form=order&field=attachments"
        answer = client.request(
            method,
            url,
            headers={"x-csrf-token": csrf},
            data={"csrf_token": csrf} if method == "POST" and not path.startswith("/api") else None,
            follow_redirects=False,
        )
        assert answer.status_code < 500, (method, url, answer.text[:300])
        seen.add(path)
        if path in PUBLIC_ROUTES:
            continue
        if not recorder.last:
            unchecked.append(f"{method} {path} → {answer.status_code}")
            continue
        missing = [w for w in _expected(method, path, params) if w not in recorder.last]
        if missing:
            wrong.append(f"{method} {path}: asked {recorder.last}, not {missing}")
    assert not unchecked, "routes answered without asking allowed(): " + "; ".join(unchecked)
    assert not wrong, "; ".join(wrong)
    assert seen >= PUBLIC_ROUTES, PUBLIC_ROUTES - seen  # the public list names real routes
    assert len(seen) > 50
