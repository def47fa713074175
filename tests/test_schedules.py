"""`on: {schedule: cron}` automations: fired by the worker's clock, once per slot; and an
event automation's `when`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apihelp import start_api
from conftest import codes

from engine.forms.records import SYSTEM_ACTOR
from engine.outbox.worker import Worker

APP = "name: s\ntitle: S\nlocale: en\nroles:\n  clerk: {label: Clerk}\n"
FORM = """\
title: Task
fields:
  title: {type: text, label: Title}
  reminders: {type: integer, label: Reminders, default: 0}
"""
FLOW = """\
form: task
states:
  open: {label: Open, initial: true, editable: true}
  closed: {label: Closed, final: true}
transitions:
  close: {label: Close, from: open, to: closed}
automations:
  remind:
    on: {schedule: "0 9 * * 1-5"}
    when: "state == 'open'"
    steps:
      - set: {reminders: "reminders + 1"}
"""


def test_bad_cron_is_a_diagnostic(make_app) -> None:
    result = make_app(
        {
            "app.yaml": APP,
            "forms/task.yaml": FORM,
            "flows/task.yaml": FLOW.replace("0 9 * * 1-5", "0 25 * * *"),
        }
    )
    assert [c[3] for c in codes(result)] == ["bad-cron"]


@pytest.fixture
def api(make_app, db_url):
    result = make_app({"app.yaml": APP, "forms/task.yaml": FORM, "flows/task.yaml": FLOW})
    assert result.app is not None, result.diagnostics.sorted()
    api = start_api(db_url, result.workspace.root)
    yield api
    api.live.flows.connectors.close()
    api.engine.dispose()


def test_schedule_fires_once_per_slot_for_matching_records(api) -> None:
    records, flows = api.live.records, api.live.flows
    a = records.create("task", {"title": "a"}, SYSTEM_ACTOR)
    b = records.create("task", {"title": "b"}, SYSTEM_ACTOR)
    from engine.flows.machine import fire_transition

    fire_transition(records, "task", b["id"], "close", SYSTEM_ACTOR)
    monday_8 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert flows.fire_schedules(monday_8) == 0  # first sight: starts counting
    assert flows.fire_schedules(monday_8 + timedelta(minutes=30)) == 0  # before 09:00
    assert flows.fire_schedules(monday_8 + timedelta(hours=1, minutes=1)) == 1  # 09:01: only a
    assert flows.fire_schedules(monday_8 + timedelta(hours=1, minutes=2)) == 0  # same slot
    Worker(api.engine, lambda: flows, schedules=False).run_until_idle()
    assert records.get("task", a["id"])["reminders"] == 1
    assert records.get("task", b["id"])["reminders"] == 0
    # after three days without a worker, only the latest missed slot fires
    assert flows.fire_schedules(monday_8 + timedelta(days=3, hours=2)) == 1
    Worker(api.engine, lambda: flows, schedules=False).run_until_idle()
    assert records.get("task", a["id"])["reminders"] == 2


BUMP = (
    FLOW
    + """\
  bump:
    on: {created: true}
    steps:
      - set: {reminders: "reminders + 1"}
"""
)


def test_a_step_and_the_run_progress_commit_together(make_app, db_url, monkeypatch) -> None:
    """If saving the run's progress fails after the step's change, the change rolls back too:
    the retried job applies the step once (an increment shows a double application)."""
    from engine.flows.runner import FlowRuntime
    from engine.outbox import jobs

    result = make_app({"app.yaml": APP, "forms/task.yaml": FORM, "flows/task.yaml": BUMP})
    api = start_api(db_url, result.workspace.root)
    try:
        task = api.live.records.create("task", {"title": "t"}, SYSTEM_ACTOR)
        real_save = FlowRuntime._save
        calls = {"n": 0}

        def crashing_save(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1 and kwargs.get("conn") is not None:
                raise RuntimeError("worker died here")
            return real_save(self, *args, **kwargs)

        monkeypatch.setattr(FlowRuntime, "_save", crashing_save)
        # the retry waits until the test makes it due (a 0.4 s backoff ran it early on a
        # loaded machine, inside the first drain)
        monkeypatch.setattr(jobs, "backoff", lambda attempts: 3600.0)
        worker = Worker(api.engine, lambda: api.live.flows, schedules=False)
        worker.run_until_idle()
        assert api.live.records.get("task", task["id"])["reminders"] == 0  # rolled back
        with api.engine.begin() as conn:
            conn.execute(jobs.JOBS.update().values(due_at=datetime.now(UTC)))
        worker.run_until_idle()
        assert api.live.records.get("task", task["id"])["reminders"] == 1
    finally:
        api.live.flows.connectors.close()
        api.engine.dispose()


WHEN = (
    FLOW
    + """\
  on_close:
    on: {transition: close}
    steps:
      - set: {title: "title + ' closed'"}
  on_close_reminded:
    on: {transition: close}
    when: "reminders > 0"
    steps:
      - set: {reminders: "reminders + 10"}
"""
)


def test_an_event_automation_starts_only_where_its_when_holds(make_app, db_url) -> None:
    """Automations on the same event: the one without ``when`` always starts, the one with it
    only where it holds (read from the record as the event left it)."""
    from engine.flows.machine import fire_transition

    result = make_app({"app.yaml": APP, "forms/task.yaml": FORM, "flows/task.yaml": WHEN})
    api = start_api(db_url, result.workspace.root)
    try:
        records = api.live.records
        quiet = records.create("task", {"title": "q"}, SYSTEM_ACTOR)
        reminded = records.create("task", {"title": "r", "reminders": 2}, SYSTEM_ACTOR)
        for task in (quiet, reminded):
            fire_transition(records, "task", task["id"], "close", SYSTEM_ACTOR)
        Worker(api.engine, lambda: api.live.flows, schedules=False).run_until_idle()
        assert records.get("task", quiet["id"])["title"] == "q closed"
        assert records.get("task", quiet["id"])["reminders"] == 0
        assert records.get("task", reminded["id"])["title"] == "r closed"
        assert records.get("task", reminded["id"])["reminders"] == 12
    finally:
        api.live.flows.connectors.close()
        api.engine.dispose()
