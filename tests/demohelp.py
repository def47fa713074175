"""The demo as ``seamline demo`` builds it, in-process, for browser stories: the pack deployed
into a test database, its generated history, the demo passwords, its mock warehouse and chat
sink (engine/demo/build.py's own functions), served on a free port, with a worker the test runs
between clicks. And what every page a person sees must pass: a look at 1280 px and 375 px (a
screenshot kept in a folder), the visible text in the app's language, no sideways scrolling on a
phone."""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from browserhelp import serve

from engine.demo import build as demo
from engine.model.spec import App
from engine.outbox.worker import Worker
from engine.runtime import Deployments, LiveApp

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = [
    "DemoTemplates",
    "DemoWorld",
    "Person",
    "Shots",
    "demo_world",
    "language_faults",
    "load_demo",
]

# what the demo's servers read; the demo sets them for its mock warehouse and chat sink
DEMO_ENV = (
    "WMS_URL",
    "WMS_TOKEN",
    "DINGTALK_WEBHOOK",
    "DINGTALK_SECRET",
    "WECOM_WEBHOOK",
    "SEAMLINE_SECRET_KEY",
    "SEAMLINE_DB",
)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@dataclass(frozen=True)
class Person:
    """Someone acting through the records service (what a click would do), for set-up."""

    username: str
    roles: frozenset[str]


@dataclass
class DemoWorld:
    base: str
    app: App
    engine: sa.Engine
    live: LiveApp
    worker: Worker
    chat_url: str | None

    def work(self) -> int:
        """What the worker process does between clicks: flows, connector calls, messages."""
        return self.worker.run_until_idle()

    def person(self, username: str) -> Person:
        return Person(username, frozenset(self.app.people[username].roles))

    def record(self, form: str, record_id: int) -> dict[str, Any]:
        return self.live.records.get(form, record_id)

    def chat(self) -> list[dict[str, Any]]:
        """Every message the demo's chat sink received (DingTalk and WeCom), oldest first."""
        assert self.chat_url is not None, "the demo's chat sink is not running"
        with urllib.request.urlopen(f"{self.chat_url}/messages", timeout=10) as answer:
            return list(json.load(answer)["messages"])


def load_demo(db_url: str, orders: int) -> None:
    """What ``seamline demo`` puts in its database: the pack deployed, everyone in the org
    chart with the demo password, the generated history."""
    from engine.compile import compile_app
    from engine.deploy.apply import bundle_sources, deploy
    from engine.runtime import newest_live
    from engine.store.storage import create_db_engine

    compiled = compile_app(demo.PACK)
    assert compiled.app is not None, compiled.diagnostics.sorted()
    engine = create_db_engine(db_url)
    try:
        deploy(engine, compiled.app, bundle_sources(compiled.workspace), actor="demo")
        live = newest_live(engine)
        demo.give_demo_passwords(engine, live.app)
        demo.load_sample_data(engine, live, demo.PACK, orders, lambda text: None)
        live.flows.connectors.close()
    finally:
        engine.dispose()


class DemoTemplates:
    """The demo's database built once per test process and database kind, then copied for each
    test (a SQLite file copied; a PostgreSQL database created from it as a template): hashing
    every demo password and writing the history take half a minute, a copy a moment."""

    def __init__(self, folder: Path, orders: int = 300) -> None:
        self.folder = folder
        self.orders = orders
        self.sqlite: Path | None = None
        self.postgres: str | None = None  # the template database's name
        self.admin: sa.Engine | None = None

    def fill(self, db_url: str) -> None:
        """Make the (new, empty) database at ``db_url`` a copy of the demo's."""
        target = sa.engine.make_url(db_url)
        if target.get_backend_name() == "sqlite":
            if self.sqlite is None:
                built = self.folder / "demo-template.db"
                load_demo(f"sqlite:///{built}", self.orders)
                self.sqlite = built
            assert target.database is not None
            shutil.copyfile(self.sqlite, target.database)
            return
        admin = self._admin()
        if self.postgres is None:
            name = f"sl_demo_{WORKER}_{uuid.uuid4().hex[:10]}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            self.postgres = name
            load_demo(target.set(database=name).render_as_string(hide_password=False), self.orders)
        with admin.connect() as conn:  # db_url's database exists, empty: made again from ours
            conn.exec_driver_sql(f'DROP DATABASE "{target.database}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}" TEMPLATE "{self.postgres}"')

    def _admin(self) -> sa.Engine:
        if self.admin is None:
            url = os.environ["SEAMLINE_TEST_PG_URL"]
            self.admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        return self.admin

    def drop(self) -> None:
        if self.admin is None:
            return
        if self.postgres is not None:
            with self.admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.postgres}" WITH (FORCE)')
        self.admin.dispose()


@contextmanager
def demo_world(
    db_url: str, folder: Path, monkeypatch: pytest.MonkeyPatch, templates: DemoTemplates
) -> Iterator[DemoWorld]:
    """``seamline demo`` on ``db_url`` (filled from ``templates``), served with its mock
    warehouse and chat sink; the worker runs only when the test asks."""
    from engine.runtime import newest_live
    from engine.store.storage import create_db_engine
    from engine.web.asgi import prepare_database
    from engine.web.routes import page_routes
    from engine.web.server import create_web_app

    for name in DEMO_ENV:  # the demo sets them in os.environ; monkeypatch restores them after
        monkeypatch.delenv(name, raising=False)
    place = demo.DemoFolder(folder)
    place.create()
    os.environ["SEAMLINE_SECRET_KEY"] = place.session_secret()
    templates.fill(db_url)
    engine = create_db_engine(db_url)
    backgrounds: list[demo.Background] = []
    live: LiveApp | None = None
    try:
        warehouse = demo.start_mock_warehouse(demo.PACK)
        assert warehouse is not None, "the pack's mock warehouse did not start"
        backgrounds.append(warehouse)
        live = newest_live(engine)
        chat, _moved = demo.start_chat_sink(live.app, place)
        if chat is not None:
            backgrounds.append(chat)
        prepare_database(engine, live)
        flows = live.flows
        worker = Worker(engine, lambda: flows, name="story-worker", schedules=False)
        web = create_web_app(engine, Deployments(engine, live), page_routes())
        with serve(web) as base:
            yield DemoWorld(base, live.app, engine, live, worker, chat.url if chat else None)
    finally:
        for background in backgrounds:
            background.stop()
        if live is not None:
            live.flows.connectors.close()
        engine.dispose()


# ---------------------------------------------------------------------------- the look


PY_REPRS = (r"\bNone\b", r"\bTrue\b", r"\bFalse\b", r"\{'", r"'\}", r"\bDecimal\(", r"datetime\.")
LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def _fragments(text: str) -> list[str]:
    """The fixed parts of an English message (placeholders cut out) worth looking for."""
    parts = re.split(r"\{[^}]*\}", text)
    return [p.strip(" .:,;'\"()—-→…") for p in parts if LATIN_WORD.search(p)]


def _english_ui() -> list[re.Pattern[str]]:
    from engine.web.templating import CATALOG

    found = set()
    for text in CATALOG.values():
        for part in _fragments(text.en):
            if part and part != text.zh and part not in text.zh:
                found.add(part)
    return [re.compile(rf"(?<![A-Za-z]){re.escape(p)}(?![A-Za-z])") for p in sorted(found)]


def _internal_names(app: App) -> list[re.Pattern[str]]:
    """Names only the YAML and the engine use: states, transitions, event kinds, fields with
    an underscore, automations — none of them belongs on a page a person reads."""
    from engine.web.templating import CATALOG

    names = {key[3:] for key in CATALOG if key.startswith("ev_")} - {"other"}
    names.update({"approval_step_opened", "approval_decided", "confirm_reopened"})
    for machine in app.state_machines.values():
        names.update(s.name for s in machine.states)
        names.update(t.name for t in machine.transitions)
    for form in app.forms.values():
        names.update(f.name for f in form.fields if "_" in f.name)
    names.update(a.name for a in app.automations)
    return [re.compile(rf"(?<![\w.@/-]){re.escape(n)}(?![\w.@/-])") for n in sorted(names)]


def language_faults(text: str, app: App) -> list[str]:
    """What in ``text`` (a page's visible text) is not in the app's language: the engine's
    English messages, internal names (states, events, fields), Python reprs."""
    faults = []
    for pattern in (*_english_ui(), *_internal_names(app)):
        hit = pattern.search(text)
        if hit:
            faults.append(hit.group(0))
    for raw in PY_REPRS:
        hit = re.search(raw, text)
        if hit:
            faults.append(hit.group(0))
    return faults


OVERFLOW_JS = """() => {
  const wide = document.scrollingElement.scrollWidth;
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= window.innerWidth + 1) continue;
    let p = el.parentElement, held = false;
    while (p) {  // inside a container that scrolls sideways: fine
      const s = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden'].includes(s.overflowX)) { held = true; break; }
      p = p.parentElement;
    }
    if (!held) out.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
  }
  return {wide, inner: window.innerWidth, out: out.slice(0, 5)};
}"""


@dataclass
class Shots:
    """Looks at pages as their users do: at 1280 px and 375 px, screenshots into ``folder``
    (and into ``$SEAMLINE_SHOTS`` when set, for people to look at), checking the text and the
    width each time."""

    folder: Path
    app: App
    taken: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        extra = os.environ.get("SEAMLINE_SHOTS")
        self.also = Path(extra) if extra else None
        if self.also is not None:
            self.also.mkdir(parents=True, exist_ok=True)

    def look(self, page: Page, name: str) -> str:
        """Screenshot ``page`` at both widths, assert its language and width; its text."""
        page.wait_for_load_state("networkidle")
        before = page.viewport_size
        text = ""
        try:
            for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
                page.set_viewport_size(size)
                self._save(page, f"{name}-{label}.png")
                text = page.evaluate("document.body.innerText")
                assert "Internal Server Error" not in text, f"{name}: the server failed (500)"
                faults = language_faults(text, self.app)
                assert not faults, f"{name} ({label}): not in the app's language: {faults}"
                if label == "phone":
                    seen = page.evaluate(OVERFLOW_JS)
                    assert seen["wide"] <= seen["inner"] and not seen["out"], (
                        f"{name} scrolls sideways at 375 px: {seen}"
                    )
        finally:
            if before is not None:
                page.set_viewport_size(before)
        return str(text)

    def _save(self, page: Page, file: str) -> None:
        target = self.folder / file
        page.screenshot(path=str(target), full_page=True)
        self.taken.append(target)
        if self.also is not None:
            (self.also / file).write_bytes(target.read_bytes())
