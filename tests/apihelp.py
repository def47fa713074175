"""Build a running API (TestClient) over a compiled app on a test database."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from engine.accounts.auth import create_token, create_user, sync_org_chart
from engine.compile import compile_app
from engine.deploy.apply import bundle_sources
from engine.model.spec import App
from engine.runtime import Deployments, LiveApp
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata
from engine.web.server import create_web_app

BROWSER_PASSWORD = "order-centre-2026"
PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"


@dataclass
class Api:
    app: App
    engine: Engine
    live: LiveApp

    def client(self, username: str) -> TestClient:
        with self.engine.begin() as conn:
            token = create_token(conn, username)
        web = create_web_app(self.engine, Deployments(self.engine, self.live))
        return TestClient(
            web, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False
        )

    def browser(self, username: str) -> tuple[TestClient, str]:
        """A signed-in page session (cookie, as a browser has) and its CSRF token."""
        import re

        from engine.accounts.auth import set_password
        from engine.web.routes import page_routes

        with self.engine.begin() as conn:
            set_password(conn, username, BROWSER_PASSWORD)
        web = create_web_app(self.engine, Deployments(self.engine, self.live), page_routes())
        client = TestClient(web, raise_server_exceptions=False)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        signed = client.post(
            "/login",
            data={"csrf_token": token[1], "username": username, "password": BROWSER_PASSWORD},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
        assert found is not None
        return client, found[1]

    def add_user(self, username: str, *roles: str) -> None:
        with self.engine.begin() as conn:
            create_user(conn, username, roles, app=self.app)


def start_api(db_url: str, root: Path = PACK) -> Api:
    result = compile_app(root)
    assert result.app is not None, result.diagnostics.sorted()
    engine = create_db_engine(db_url)
    build_metadata(result.app).create_all(engine)
    with engine.begin() as conn:
        sync_org_chart(conn, result.app)
    bundle = bundle_sources(result.workspace)
    return Api(result.app, engine, LiveApp.of(result.app, engine, bundle))
