"""The composition root: a compiled App and a database become the services that run it.

:meth:`LiveApp.of` is the one place they are assembled — the records service, the effects
flows and approvals share, the approvals, the automations, their order as listeners of the
records service, and the dashboards' periodic snapshot refresh. ``seamline serve``, ``seamline
worker``, the demo and the tests all build their runtime here.

The configuration a server runs is the newest deployment, switched without a restart:
``LiveApp`` holds one compiled App with its tables and services. ``Deployments``
polls ``sl_deployments``; when a newer content hash appears it compiles that bundle and
swaps the reference. A request takes the current ``LiveApp`` once at its start, so requests
in flight finish on the version they started with.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.compile.bundle import compile_bundle
from engine.dashboards.refresh import refresh_if_due
from engine.deploy.apply import latest_deployment
from engine.flows.approvals.service import ApprovalRuntime
from engine.flows.effects import Effects
from engine.flows.messages import message_environment
from engine.flows.runner import FlowRuntime
from engine.forms.records import RecordService
from engine.model import clock
from engine.model.i18n import Text, default_lang
from engine.model.logs import logger
from engine.model.spec import App
from engine.outbox.connectors import Connectors
from engine.store.storage import reader
from engine.store.tables import build_metadata

log = logger(__name__)


@dataclass(frozen=True)
class LiveApp:
    app: App
    metadata: sa.MetaData
    records: RecordService
    bundle: dict[str, str]
    flows: FlowRuntime

    @classmethod
    def of(cls, app: App, engine: Engine, bundle: dict[str, str]) -> LiveApp:
        """The records service with the app's gates, approvals and automations listening."""
        metadata = build_metadata(app)
        records = RecordService(app, engine, metadata)
        effects = Effects(app, records, Connectors(app.connectors), message_environment(bundle))
        approvals = ApprovalRuntime(effects)
        flows = FlowRuntime(effects, approvals)
        # Inside the transaction of every change, in this order: gates the change reopens,
        # approvals it starts, cancels or locks out, then the automations it starts.
        records.listeners.extend([flows.reopen_gates, approvals.on_record_event])
        records.listeners.append(flows.on_record_event)

        def refresh_snapshots() -> None:
            refresh_if_due(engine, app, metadata, clock.now())

        flows.every_round.append(refresh_snapshots)
        return cls(app, metadata, records, bundle, flows)

    @property
    def effects(self) -> Effects:
        return self.flows.effects


class Deployments:
    """Keeps ``current`` on the newest deployed configuration."""

    def __init__(self, engine: Engine, current: LiveApp, poll_seconds: float = 2.0) -> None:
        self.engine = engine
        self.current = current
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def newest(self) -> sa.Row[Any] | None:
        with reader(self.engine).connect() as conn:
            return latest_deployment(conn)

    def refresh(self) -> bool:
        """Switch to the newest deployment if it differs; True when switched."""
        row = self.newest()
        if row is None or row.content_hash == self.current.app.content_hash:
            return False
        newest, bundle = row.content_hash, row.bundle
        old = self.current.app
        result = compile_bundle(dict(bundle))
        if result.app is None:
            log.error(
                "deployment %s does not compile; staying on %s",
                newest,
                old.content_hash,
                extra={"hash": newest, "current_hash": old.content_hash},
            )
            return False
        self.current = LiveApp.of(result.app, self.engine, dict(bundle))
        log.info(
            "switched deployment: %s (%s) -> %s (%s)",
            old.version,
            old.content_hash[:12],
            result.app.version,
            newest[:12],
            extra={
                "old_version": old.version,
                "old_hash": old.content_hash,
                "version": result.app.version,
                "hash": newest,
            },
        )
        return True

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.refresh()
                except Exception:  # keep serving the current version whatever happens
                    log.exception("could not check for a new deployment")

        self._thread = threading.Thread(target=loop, name="seamline-deployments", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


NOTHING_DEPLOYED = Text(
    "nothing is deployed in this database yet: run `seamline deploy` first",
    "数据库中还没有部署：请先运行 `seamline deploy`",
)
DOES_NOT_COMPILE = Text("the deployed bundle does not compile", "已部署的配置无法编译")


class NotServable(RuntimeError):
    """No app to serve from this database; ``text`` says why in both languages."""

    def __init__(self, text: Text) -> None:
        super().__init__(text(default_lang()))
        self.text = text


def newest_live(engine: sa.Engine) -> LiveApp:
    """The newest deployment of ``engine``'s database as a LiveApp (what a server or worker
    runs; no app folder needed); :class:`NotServable` when there is none or it does not
    compile."""
    try:
        with engine.connect() as conn:
            row = latest_deployment(conn)
    except sa.exc.DBAPIError:
        row = None
    if row is None:
        raise NotServable(NOTHING_DEPLOYED)
    compiled = compile_bundle(dict(row.bundle))
    if compiled.app is None:
        raise NotServable(DOES_NOT_COMPILE)
    return LiveApp.of(compiled.app, engine, dict(row.bundle))
