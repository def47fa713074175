"""What is still going on for one record, for its page to show and to poll while it lasts.

A record is *pending* while an automation run of it is running (a step, a call to a connector
and its retries), while an approval of it is open, or while it sits in a state that only the
engine leaves (a ``by: system`` transition). The record page then polls
``/forms/F/ID/live`` (:mod:`engine.web.pages_records`); nothing pending, no polling.

The status line says in plain words what the engine is doing: "asking <connector title>:
<operation description>…", or why the record waits ("<connector> does not answer; retry 3 at
14:05") — from the run's step and its job's attempts and next time, never the raw error.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.flows.runner import step_at
from engine.model import clock
from engine.model.i18n import Lang, Text
from engine.model.spec import App, FormSpec, StepSpec
from engine.outbox.jobs import JOBS, RUNS
from engine.runtime import LiveApp
from engine.web.templating import Formatter

__all__ = ["FAST", "SLOW", "LiveStatus", "live_mark", "live_status"]

FAST = 2  # seconds between polls while the engine works on the record
SLOW = 10  # … while it waits for people (an open approval) or for the engine to pick it up
_APPROVALS = "sl_approvals"

WORDS = {
    "calling": Text("Asking {connector}: {operation}…", "正在向{connector}{operation}…"),
    "working": Text("The system is working on it…", "系统正在处理…"),
    "retry": Text(
        "{connector} does not answer; retry {n} at {at}.",
        "{connector}无响应，第 {n} 次重试将在 {at} 进行。",
    ),
    "gave_up": Text(
        "{connector} did not answer after {n} tries; automatic retries stopped. An operator "
        "can retry it.",
        "{connector}连续 {n} 次无响应，已停止自动重试，请联系管理员处理。",
    ),
    "failed": Text(
        "An automatic step could not finish; an operator has been told.",
        "自动处理未能完成，已转交管理员处理。",
    ),
    "approval": Text("Waiting for the approval.", "等待审批。"),
    "system": Text("Waiting for the system.", "等待系统处理。"),
}


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """What the page says about work in progress, and how often to look again (None: don't)."""

    poll: int | None = None
    line: str = ""
    tone: str = ""  # busy | waiting | failed


def live_mark(record: dict[str, Any], last_event: int, status: LiveStatus) -> str:
    """What the page shows, in a few characters: the record's version, its last event and the
    status line. The poll sends it back; a different one means the page is out of date."""
    line = zlib.crc32(status.line.encode()) if status.line else 0
    return f"{record.get('version') or 0}-{last_event}-{line:x}"


def last_event_id(current: LiveApp, form: FormSpec, record_id: int) -> int:
    events = current.records.metadata.tables["sl_events"]
    query = sa.select(sa.func.max(events.c.id)).where(
        events.c.form == form.name, events.c.record_id == record_id
    )
    with current.records.reads.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def _step_of(app: App, run: Any) -> StepSpec | None:
    automation = next((a for a in app.automations if a.name == run.automation), None)
    return step_at(automation.steps, list(run.position)) if automation else None


def _connector(app: App, step: StepSpec) -> tuple[str, str]:
    spec = app.connectors.get(step.connector or "")
    if spec is None:
        return step.connector or "", step.operation or ""
    operation = spec.operations.get(step.operation or "")
    described = (operation.description or operation.name) if operation else step.operation
    return spec.title or spec.name, described or ""


def _waiting_states(app: App, form: FormSpec) -> set[str]:
    """States a ``call`` step parks its record in while the connector fails."""
    out: set[str] = set()

    def walk(steps: tuple[StepSpec, ...]) -> None:
        for step in steps:
            if step.pending_state:
                out.add(step.pending_state)
            walk(step.then)
            walk(step.otherwise)

    for automation in app.automations:
        if automation.form == form.name:
            walk(automation.steps)
    return out


def live_status(
    current: LiveApp, form: FormSpec, record: dict[str, Any], fmt: Formatter
) -> LiveStatus:
    """What is pending for ``record`` now (a few indexed reads: runs by record, their due
    jobs by status, open approvals by record)."""
    app, lang = current.app, fmt.lang
    with current.records.reads.connect() as conn:
        runs = conn.execute(
            sa.select(RUNS.c.id, RUNS.c.automation, RUNS.c.position, RUNS.c.status)
            .where(RUNS.c.form == form.name, RUNS.c.record_id == record["id"])
            .where(RUNS.c.status.in_(("running", "failed")))
            .order_by(RUNS.c.id.desc())
            .limit(10)
        ).all()
        running = [r for r in runs if r.status == "running"]
        jobs = (
            conn.execute(
                sa.select(
                    JOBS.c.run_id, JOBS.c.status, JOBS.c.attempts, JOBS.c.due_at, JOBS.c.last_error
                )
                .where(JOBS.c.status.in_(("ready", "running", "dead")))
                .where(JOBS.c.run_id.in_([r.id for r in runs]))
                .order_by(JOBS.c.id.desc())
            ).all()
            if runs
            else []
        )
        approvals = current.records.metadata.tables.get(_APPROVALS)
        approving = (
            approvals is not None
            and conn.execute(
                sa.select(approvals.c.id)
                .where(approvals.c.form == form.name, approvals.c.record_id == record["id"])
                .where(approvals.c.status == "active")
                .limit(1)
            ).first()
            is not None
        )
    for run in running:
        job = next((j for j in jobs if j.run_id == run.id), None)
        step = _step_of(app, run)
        if job is None or job.status == "dead":
            continue
        if step is not None and step.action == "call":
            connector, operation = _connector(app, step)
            if job.status == "ready" and job.attempts > 0 and job.last_error:
                at = _local_time(fmt, job.due_at)
                line = WORDS["retry"].format(connector=connector, n=job.attempts, at=at)(lang)
                return LiveStatus(FAST, line, "waiting")
            line = WORDS["calling"].format(connector=connector, operation=operation)(lang)
            return LiveStatus(FAST, line, "busy")
        return LiveStatus(FAST, WORDS["working"](lang), "busy")
    stuck = _stuck(app, form, record, runs, jobs, lang)
    if stuck is not None:
        return stuck
    if approving:
        return LiveStatus(SLOW, "", "")
    machine = app.state_machines.get(form.name)
    state = record.get("state")
    if (
        machine is not None
        and any(t.by_system for t in machine.transitions if state in t.sources)
        and not any(not t.by_system for t in machine.transitions if state in t.sources)
    ):
        return LiveStatus(SLOW, WORDS["system"](lang), "waiting")
    return LiveStatus()


def _stuck(
    app: App, form: FormSpec, record: dict[str, Any], runs: Any, jobs: Any, lang: Lang
) -> LiveStatus | None:
    """A record parked in a waiting state whose run gave up: say so (nothing to poll for)."""
    if record.get("state") not in _waiting_states(app, form):
        return None
    for run in runs:
        job = next((j for j in jobs if j.run_id == run.id), None)
        step = _step_of(app, run)
        if run.status == "running" and not (job is not None and job.status == "dead"):
            continue
        if step is not None and step.action == "call" and job is not None:
            connector, _ = _connector(app, step)
            return LiveStatus(
                None, WORDS["gave_up"].format(connector=connector, n=job.attempts)(lang), "failed"
            )
        return LiveStatus(None, WORDS["failed"](lang), "failed")
    return None


def _local_time(fmt: Formatter, at: datetime) -> str:
    """A retry's time as people read it: hh:mm today, else the date and time."""
    shown = fmt.datetime(at)
    return shown[11:] if shown[:10] == fmt.datetime(clock.now())[:10] else shown
