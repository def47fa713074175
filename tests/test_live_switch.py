"""A running server switches to a newly deployed version without a restart, and every record
and its history survive a YAML change (add a field, change a label, add an option)."""

from __future__ import annotations

import threading
import time

from starlette.testclient import TestClient

from engine.accounts.auth import create_token, sync_org_chart
from engine.compile.bundle import compile_bundle
from engine.deploy.apply import bundle_sources, deploy, latest_deployment
from engine.runtime import Deployments, LiveApp
from engine.store.events import verify_chain
from engine.store.storage import create_db_engine
from engine.store.system_tables import system_metadata
from engine.web.server import create_web_app

APP = """\
name: shop
title: Shop
locale: en
roles:
  clerk: {label: Clerk}
"""
V1 = """\
title: Ticket
fields:
  subject: {type: text, label: Subject, required: true}
  level: {type: select, label: Level, options: [low, high]}
  log:
    type: table
    label: Log
    append_only: true
    fields:
      note: {type: text, label: Note}
"""
V2 = """\
title: Ticket
fields:
  subject: {type: text, label: Headline, required: true}
  level: {type: select, label: Level, options: [low, high, urgent]}
  owner: {type: text, label: Owner}
  log:
    type: table
    label: Log
    append_only: true
    fields:
      note: {type: text, label: Note}
"""


def _deploy(make_app, engine, form_text: str):
    result = make_app({"app.yaml": APP, "forms/ticket.yaml": form_text})
    assert result.app is not None, result.diagnostics.sorted()
    return deploy(engine, result.app, bundle_sources(result.workspace))


def _serve(engine) -> tuple[TestClient, Deployments]:
    with engine.connect() as conn:
        bundle = dict(latest_deployment(conn).bundle)
    app = compile_bundle(bundle).app
    assert app is not None
    deployments = Deployments(engine, LiveApp.of(app, engine, bundle), poll_seconds=0.05)
    with engine.begin() as conn:
        sync_org_chart(conn, app)
        conn.exec_driver_sql("DELETE FROM sl_users WHERE username = 'ann'")
    from engine.accounts.auth import create_user

    with engine.begin() as conn:
        create_user(conn, "ann", ["clerk"], app=app)
        token = create_token(conn, "ann")
    web = create_web_app(engine, deployments)
    return TestClient(web, headers={"Authorization": f"Bearer {token}"}), deployments


def test_redeploy_keeps_records_and_history_and_server_switches(make_app, db_url) -> None:
    engine = create_db_engine(db_url)
    _deploy(make_app, engine, V1)
    client, deployments = _serve(engine)
    ids = []
    for i in range(3):
        r = client.post(
            "/api/forms/ticket/records",
            json={"subject": f"t{i}", "level": "high", "log": [{"note": "n"}]},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
        assert (
            client.patch(f"/api/forms/ticket/records/{ids[-1]}", json={"level": "low"}).status_code
            == 200
        )
    assert (
        client.post(
            "/api/forms/ticket/records", json={"subject": "x", "level": "urgent"}
        ).status_code
        == 422
    )
    old_hash = deployments.current.app.content_hash

    _deploy(make_app, engine, V2)
    # the poller switches within a few polls; no restart
    deadline = time.monotonic() + 20
    deployments.start()
    while deployments.current.app.content_hash == old_hash and time.monotonic() < deadline:
        time.sleep(0.05)
    deployments.stop()
    assert deployments.current.app.content_hash != old_hash

    form = client.get("/api/forms/ticket").json()
    assert [f["label"] for f in form["fields"]][:1] == ["Headline"]
    assert any(f["name"] == "owner" for f in form["fields"])
    assert (
        client.post(
            "/api/forms/ticket/records", json={"subject": "y", "level": "urgent", "owner": "ann"}
        ).status_code
        == 201
    )
    for record_id in ids:
        record = client.get(f"/api/forms/ticket/records/{record_id}").json()
        assert record["level"] == "low" and record["owner"] is None
        assert len(record["log"]) == 1
        kinds = [
            e["kind"] for e in client.get(f"/api/forms/ticket/records/{record_id}/events").json()
        ]
        assert kinds == ["created", "child_added", "changed"]
    with engine.connect() as conn:
        report = verify_chain(conn, system_metadata())
    assert report.ok
    engine.dispose()


def test_request_in_flight_finishes_on_its_version(make_app, db_url) -> None:
    engine = create_db_engine(db_url)
    _deploy(make_app, engine, V1)
    client, deployments = _serve(engine)
    seen: list[str] = []
    started, release = threading.Event(), threading.Event()
    old = deployments.current

    from engine.web import api as api_module

    original = api_module.live

    def slow_live(request):
        current = original(request)
        started.set()
        release.wait(10)
        return current

    api_module.live = slow_live
    try:
        worker = threading.Thread(
            target=lambda: seen.append(client.get("/api/forms/ticket").json()["fields"][0]["label"])
        )
        worker.start()
        started.wait(10)
        api_module.live = original
        _deploy(make_app, engine, V2)
        assert deployments.refresh()
        release.set()
        worker.join(10)
    finally:
        api_module.live = original
    assert deployments.current is not old
    assert seen == ["Subject"]  # the request that started on v1 answered with v1
    assert client.get("/api/forms/ticket").json()["fields"][0]["label"] == "Headline"
    engine.dispose()
