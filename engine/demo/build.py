"""``seamline demo``: everything a newcomer needs, kept in one folder.

The demo folder (``--dir``, default ``./.seamline-demo``) holds the SQLite database, the
session key and the chat messages; nothing is written to the current directory. A second
run reuses it (no data is loaded twice); :func:`reset_folder` empties it.

Around the app it starts, on free loopback ports in background threads: the app's mock
warehouse system (``mock_wms.py`` next to app.yaml) and a chat sink (:mod:`engine.demo.chat`)
that stands in for every DingTalk and WeCom robot whose webhook variable is unset — so no
message is dropped and each one can be read on the sink's page.

Sample data: an app that ships ``data/make_history.py`` gets its master data and ``--orders``
orders of history from it; otherwise its ``data/<form>s.csv`` files are imported.
"""

from __future__ import annotations

import csv
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from engine.assets import pack_dir
from engine.demo.chat import ChatSink, create_chat_app
from engine.demo.modules import load_module
from engine.model.i18n import Text
from engine.model.spec import App

DEMO_PASSWORD = "seamline-demo"
PACK = pack_dir("manufacturing")
DEFAULT_DIR = Path(".seamline-demo")
DB_FILE = "seamline-demo.db"
MESSAGES_FILE = "messages.jsonl"
SECRET_FILE = "secret_key"
MARKER = ".seamline-demo"  # names a folder the demo made, so --reset never empties another
LOADING_FILE = "loading"  # names the database the sample data is being loaded into, until done
START_TIMEOUT = 15.0

Say = Callable[[Text], None]


class DemoError(Exception):
    """A demo that cannot go on; the message says why and what to do."""

    def __init__(self, message: Text) -> None:
        super().__init__(message.en)
        self.text = message


# ---------------------------------------------------------------------------- the folder


@dataclass(frozen=True)
class DemoFolder:
    path: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{(self.path / DB_FILE).resolve()}"

    @property
    def messages(self) -> Path:
        return self.path / MESSAGES_FILE

    @property
    def loading(self) -> Path:
        return self.path / LOADING_FILE

    def create(self) -> None:
        if self.path.exists() and not (self.path / MARKER).exists() and any(self.path.iterdir()):
            raise DemoError(
                Text(
                    "{dir} exists and was not made by `seamline demo`: choose another --dir",
                    "{dir} 已存在且不是 `seamline demo` 创建的：请换一个 --dir",
                ).format(dir=str(self.path))
            )
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / MARKER).write_text("seamline demo folder\n", encoding="utf-8")

    def session_secret(self) -> str:
        """The session key, kept in the folder so sign-ins survive a restart of the demo."""
        file = self.path / SECRET_FILE
        if not file.is_file():
            file.write_text(secrets.token_urlsafe(48), encoding="utf-8")
            file.chmod(0o600)
        return file.read_text(encoding="utf-8").strip()


def reset_folder(folder: DemoFolder) -> list[Path]:
    """Delete what the demo folder holds (only a folder the demo made); return what went."""
    if not folder.path.exists():
        return []
    if not (folder.path / MARKER).exists():
        raise DemoError(
            Text(
                "{dir} was not made by `seamline demo` (no {marker} in it): not deleting anything",
                "{dir} 不是 `seamline demo` 创建的（其中没有 {marker}）：不删除任何内容",
            ).format(dir=str(folder.path), marker=MARKER)
        )
    removed = sorted(folder.path.iterdir())
    for item in removed:
        if item.is_dir() and not item.is_symlink():
            _remove_tree(item)
        else:
            item.unlink()
    return removed


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


# ---------------------------------------------------------------------------- servers


@dataclass
class Background:
    """An ASGI app served by uvicorn in a daemon thread on 127.0.0.1."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_in_thread(app: Any, name: str, port: int | None = None) -> Background:
    """Serve ``app`` on 127.0.0.1 (a free port unless given); return once it listens."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise DemoError(
                Text("{name} did not start on port {port}", "{name} 未能在端口 {port} 启动").format(
                    name=name, port=str(port)
                )
            )
        time.sleep(0.02)
    return Background(f"http://127.0.0.1:{port}", server, thread)


def start_mock_warehouse(app_dir: Path) -> Background | None:
    """The app's ``mock_wms.py`` on a free port, with ``WMS_URL`` pointing at it — unless
    ``WMS_URL`` is set already (then the real or given warehouse is used)."""
    source = app_dir / "mock_wms.py"
    if os.environ.get("WMS_URL") or not source.is_file():
        return None
    module = load_module("mock_wms", source)
    if module is None:
        return None
    os.environ.setdefault("WMS_TOKEN", secrets.token_urlsafe(16))
    served = serve_in_thread(module.create_app(), "mock-wms")
    os.environ["WMS_URL"] = served.url
    return served


def start_chat_sink(app: App, folder: DemoFolder) -> tuple[Background | None, list[str]]:
    """Point every chat-robot connector whose webhook variable is unset at the demo's chat
    sink; return the sink (None when every robot is configured) and the connectors moved."""
    unset = [
        c
        for c in app.connectors.values()
        if c.type in ("dingtalk", "wecom") and c.url_env and not os.environ.get(c.url_env)
    ]
    if not unset:
        return None, []
    served = serve_in_thread(create_chat_app(ChatSink(folder.messages), app.timezone), "demo-chat")
    for connector in unset:
        assert connector.url_env is not None
        os.environ[connector.url_env] = f"{served.url}/{connector.type}/{connector.name}"
        if connector.token_env and not os.environ.get(connector.token_env):
            os.environ[connector.token_env] = secrets.token_urlsafe(16)
    return served, [c.name for c in unset]


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Loaded:
    """What the demo database holds after loading (counts per form)."""

    counts: dict[str, int]
    loaded_now: bool


def form_counts(engine: sa.Engine, app: App) -> dict[str, int]:
    counts = {}
    with engine.connect() as conn:
        for name in app.forms:
            counts[name] = int(conn.execute(sa.text(f"SELECT count(*) FROM f_{name}")).scalar_one())
    return counts


def load_sample_data(
    engine: sa.Engine, live: Any, app_dir: Path, orders: int, say: Say, loading: Path | None = None
) -> Loaded:
    """Load the app's sample data once: its history generator or its CSV files. ``loading``
    names the database while it loads: a later run that finds it (the load was interrupted —
    Ctrl-C, a kill, a full disk) refuses the half-loaded data rather than serve it."""
    where = engine.url.render_as_string(hide_password=True)
    counts = form_counts(engine, live.app)
    if any(counts.values()):
        if loading is not None and _names(loading, where):
            raise DemoError(
                Text(
                    "the sample data an earlier run was loading into {db} stopped half-way: "
                    "start again with `seamline demo --reset` (with --db, on an empty database)",
                    "上次运行向 {db} 载入示例数据时中途停止：请用 `seamline demo --reset` "
                    "重新开始（使用 --db 时请换一个空数据库）",
                ).format(db=where)
            )
        return Loaded(counts, False)
    if loading is not None:
        loading.write_text(where + "\n", encoding="utf-8")
    generator = app_dir / "data" / "make_history.py"
    if generator.is_file():
        module = load_module("make_history", generator)
        assert module is not None
        say(
            Text(
                "writing {n} orders of history (about a year) …",
                "正在生成 {n} 张历史订单（约一年）…",
            ).format(n=f"{orders:,}")
        )
        result = module.generate(engine.url.render_as_string(hide_password=False), orders)
        started = start_waiting_approvals(live)
        fired = fire_pending(live, getattr(result, "pending", ()))
        say(
            Text(
                "history: {orders} orders, {events} events in {s} s",
                "历史数据：{orders} 张订单，{events} 条事件，用时 {s} 秒",
            ).format(
                orders=f"{result.orders:,}",
                events=f"{result.events:,}",
                s=f"{result.seconds:.1f}",
            )
        )
        if started:
            say(
                Text(
                    "{n} orders waiting in approval: their approvals started",
                    "{n} 张审批中的订单：已发起审批",
                ).format(n=str(started))
            )
        if fired:
            say(
                Text(
                    "done through the app, as the people of the history: {what} — the automations "
                    "this starts run in the background once the demo serves",
                    "已按历史数据中的人员经由应用执行：{what}——由此启动的自动化流程在演示服务启动后"
                    "由后台执行",
                ).format(what="; ".join(f"{step} × {n}" for step, n in fired.items()))
            )
    else:
        _import_csvs(live, app_dir, say)
    if loading is not None:
        loading.unlink(missing_ok=True)
    return Loaded(form_counts(engine, live.app), True)


def _names(loading: Path, where: str) -> bool:
    return loading.is_file() and loading.read_text(encoding="utf-8").strip() == where


def start_waiting_approvals(live: Any) -> int:
    """Start, through the approvals service, the approval of every record a generated history
    left in an approval's start state without one (the history writes no approvals), so the
    inboxes hold what the records say waits. The submitter is whoever moved the record there."""
    from engine.store.tables import table_name

    runtime = live.flows.approvals
    events = live.metadata.tables["sl_events"]
    approvals = live.metadata.tables["sl_approvals"]
    started = 0
    for spec in live.app.approvals.values():
        machine = live.app.state_machines.get(spec.form)
        if spec.start.kind == "state_entered":
            states = list(spec.start.names)
        elif spec.start.kind == "transition" and machine is not None:
            states = [t.target for t in machine.transitions if t.name in spec.start.names]
        else:
            continue
        table = live.metadata.tables[table_name(spec.form)]
        active = sa.select(approvals.c.record_id).where(
            approvals.c.form == spec.form, approvals.c.status == "active"
        )
        with live.records.engine.begin() as conn:
            ids = (
                conn.execute(
                    sa.select(table.c.id)
                    .where(table.c.state.in_(states), table.c.id.not_in(active))
                    .order_by(table.c.id)
                )
                .scalars()
                .all()
            )
            for record_id in ids:
                mover = conn.execute(
                    sa.select(events.c.actor)
                    .where(
                        events.c.form == spec.form,
                        events.c.record_id == record_id,
                        events.c.kind == "transition",
                    )
                    .order_by(events.c.id.desc())
                    .limit(1)
                ).scalar()
                runtime.start(conn, spec, spec.form, record_id, mover)
                started += 1
    return started


def fire_pending(live: Any, pending: Iterable[Any]) -> dict[str, int]:
    """Fire, through the records service, each transition a generated history leaves to the
    real flow (items with ``form``, ``record_id``, ``transition`` and ``actor``, e.g. its newest
    drafts to submit), as the person it names, with every check: the automations they start are
    queued for the worker, which runs them against the app's connectors (the mock warehouse).
    Returns how many of each "form · transition" were fired."""
    from engine.accounts.auth import get_user
    from engine.flows.machine import fire_transition
    from engine.model.errors import ValidationFailed

    fired: dict[str, int] = {}
    for step in pending:
        with live.records.engine.connect() as conn:
            actor = get_user(conn, step.actor)
        if actor is None:
            raise DemoError(
                Text(
                    "the history names {user}, who is not in the org chart",
                    "历史数据中的 {user} 不在组织架构中",
                ).format(user=step.actor)
            )
        try:
            fire_transition(live.records, step.form, step.record_id, step.transition, actor)
        except ValidationFailed as refused:
            raise DemoError(
                Text(
                    "{form} {id}: {transition} refused: {why}",
                    "{form} {id}：{transition} 被拒绝：{why}",
                ).format(
                    form=step.form,
                    id=str(step.record_id),
                    transition=step.transition,
                    why=str(refused),
                )
            ) from refused
        form = live.app.forms[step.form]
        machine = live.app.state_machines[step.form]
        label = next(t.label for t in machine.transitions if t.name == step.transition)
        key = f"{form.title} · {label}"
        fired[key] = fired.get(key, 0) + 1
    return fired


def _import_csvs(live: Any, app_dir: Path, say: Say) -> None:
    from rich.progress import Progress

    from engine.forms.transfer import count_rows, import_csv

    for form in live.app.forms:
        file = app_dir / "data" / f"{form}s.csv"
        if not file.is_file():
            continue
        text = file.read_text(encoding="utf-8-sig")
        with Progress(transient=True) as progress:
            task = progress.add_task(form, total=count_rows(text))
            report = import_csv(
                live.records, form, text, _Loader(), partial(progress.advance, task)
            )
        say(
            Text("loaded {n} sample {form} records", "已载入 {n} 条示例{title}").format(
                n=str(report.created), form=form, title=live.app.forms[form].title
            )
        )


class _Loader:
    username = "demo"
    roles = frozenset({"*"})


def give_demo_passwords(engine: sa.Engine, app: App) -> int:
    """Sync the org chart; everyone without a password gets the demo password."""
    from engine.accounts.auth import set_password, sync_org_chart

    with engine.begin() as conn:
        sync_org_chart(conn, app)
        users = conn.execute(
            sa.text("SELECT username FROM sl_users WHERE active AND password_hash IS NULL")
        ).all()
        for user in users:
            set_password(conn, user.username, DEMO_PASSWORD, actor="demo")
    return len(users)


# ---------------------------------------------------------------------------- logins


@dataclass(frozen=True)
class Login:
    role: str
    role_label: str
    user: str
    name: str
    try_this: Text | None


def demo_logins(app: App, app_dir: Path) -> list[Login]:
    """One login per role: the person and what to try, from ``data/demo_tour.csv`` (columns
    role, user, try_en, try_zh) when the app has one, else the first person with the role."""
    tour: dict[str, dict[str, str]] = {}
    file = app_dir / "data" / "demo_tour.csv"
    if file.is_file():
        with file.open(encoding="utf-8", newline="") as handle:
            tour = {row["role"]: row for row in csv.DictReader(handle)}
    logins = []
    for role, spec in app.roles.items():
        row = tour.get(role, {})
        holders = [p for p in app.people.values() if role in p.roles]
        person = next((p for p in holders if p.user == row.get("user")), None) or next(
            iter(holders), None
        )
        if person is None:
            continue
        hint = Text(row["try_en"], row["try_zh"]) if row.get("try_en") else None
        logins.append(Login(role, spec.label, person.user, person.name, hint))
    return logins
