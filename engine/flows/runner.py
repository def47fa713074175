"""Automations at run time: start runs on record events, advance them step by step.

A run starts inside the transaction of the change that triggered it (a listener of the records
service) and is advanced by workers through ``sl_jobs``. Local steps (``set``, ``create``,
``transition``, ``if``) and the position of the run are written together; ``call`` reads an
outside system with a timeout and, while it fails, parks the record in the step's
``pending_state`` and tries again later; ``notify`` writes an outbox job in the same transaction
that advances the run (so a message is never lost and never queued twice); ``wait`` is a job
due later (a durable timer). Every step leaves an event on the record's timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.expressions import EvaluationError
from engine.flows.approvals.service import ApprovalRuntime
from engine.flows.confirm import agreed_values, reopen_gates
from engine.flows.effects import Effects, matches, recipient_of
from engine.flows.links import track_names
from engine.flows.machine import fire_transition
from engine.flows.people import people_for
from engine.flows.todos import add_todos, assignees
from engine.forms.records import SYSTEM_ACTOR, RecordEvent, RecordService
from engine.forms.rows import plain
from engine.model import clock
from engine.model.errors import ValidationFailed
from engine.model.logs import logger
from engine.model.spec import App, AutomationSpec, StepSpec
from engine.outbox import jobs
from engine.outbox.connectors import ConnectorError, Connectors, Message, Recipient, keep_values
from engine.store.events import EventIn, append_events

log = logger(__name__)
RUNS, JOBS = jobs.RUNS, jobs.JOBS
Path = list[Any]  # e.g. [1, "then", 0]


def _now() -> datetime:
    return clock.now()


class FlowRuntime:
    """Automations of one compiled App, and the jobs a worker runs for it.

    Built by :mod:`engine.runtime`, which also makes :meth:`reopen_gates`, the approvals and
    :meth:`on_record_event` listeners of the records service (in that order) and adds the
    dashboards' snapshot refresh to :attr:`every_round`.
    """

    def __init__(self, effects: Effects, approvals: ApprovalRuntime) -> None:
        self.effects = effects
        self.approvals = approvals
        self.app: App = effects.app
        self.records: RecordService = effects.records
        self.connectors: Connectors = effects.connectors
        self.by_name = {a.name: a for a in self.app.automations}
        self.every_round: list[Callable[[], None]] = []  # more periodic work (dashboards)

    # ------------------------------------------------------------------ what a worker runs
    def run_job(self, job: jobs.Job, delivered: list[jobs.Job] | None = None) -> None:
        """Run one claimed job of any kind (the worker records a failure on the job).

        ``delivered``: a worker's batch — webhook deliveries are added there to be marked
        done together by :meth:`finish_delivered` (one commit for the batch)."""
        if job.kind == "effect":
            self.deliver(job, delivered)
        elif job.kind == "approval":
            self.approvals.on_job(job)
        else:
            self.advance(job)

    def periodic(self) -> None:
        """The worker's periodic round: cron automations, then whatever else was added."""
        try:
            self.fire_schedules()
        except sa.exc.DBAPIError:  # another worker holds the row; next round
            log.warning("schedules not checked this round", exc_info=True)
        for work in self.every_round:
            try:
                work()
            except Exception:  # a KPI that cannot be computed must not stop the jobs
                log.exception("periodic work %r failed this round", work)

    def reopen_gates(self, conn: sa.Connection, event: RecordEvent) -> None:
        reopen_gates(self.records, conn, event)

    # ------------------------------------------------------------------ starting runs
    def on_record_event(self, conn: sa.Connection, event: RecordEvent) -> None:
        machine = self.app.state_machines.get(event.form)
        initial = machine.initial if machine else None
        candidates = [
            a
            for a in self.app.automations
            if a.form == event.form and matches(a.on, event, initial)
        ]
        if not candidates:
            return
        form = self.records.form(event.form)
        context: dict[str, Any] | None = None  # read only for a ``when`` (most have none)
        for automation in candidates:
            if automation.when is not None:
                if context is None:
                    row = self.records.row(conn, form, event.record_id)
                    context = self.effects.context(conn, form.name, row)
                if not self._truthy(automation.when, context):
                    continue
            self.start(conn, automation, event)

    def start(self, conn: sa.Connection, automation: AutomationSpec, event: RecordEvent) -> int:
        now = _now()
        trigger = {
            "kind": event.kind,
            "transition": event.transition,
            "from": event.from_state,
            "to": event.to_state,
            "actor": event.actor,
            "changes": {
                k: [plain(a), plain(b)]
                for k, (a, b) in event.changes.items()
                if not isinstance(b, dict)
            },
        }
        inserted = conn.execute(
            RUNS.insert(),
            {
                "automation": automation.name,
                "form": event.form,
                "record_id": event.record_id,
                "status": "running",
                "position": [0],
                "results": {},
                "trigger": trigger,
                "error": None,
                "config_hash": self.app.content_hash,
                "started_at": now,
                "updated_at": now,
            },
        ).inserted_primary_key
        assert inserted is not None
        run_id = inserted[0]
        jobs.enqueue(
            conn,
            "flow",
            f"flow:{run_id}:start",
            {"run_id": run_id},
            run_id=run_id,
            form=event.form,
            record_id=event.record_id,
        )
        append_events(
            conn,
            self.records.metadata,
            [
                EventIn(
                    "flow",
                    event.form,
                    event.record_id,
                    "flow_started",
                    {"automation": automation.name, "run_id": run_id},
                )
            ],
            now,
        )
        return run_id

    # ------------------------------------------------------------------ schedules
    def fire_schedules(self, now: datetime | None = None, limit: int = 1000) -> int:
        """Start the runs of ``schedule:`` automations whose time has come; returns how many.

        The last slot fired is kept per automation in ``sl_counters``; a worker claims a slot
        by moving that value with a conditional UPDATE, so with many workers each slot fires
        once. After downtime only the most recent missed slot fires (no storm of catch-ups).
        A scheduled automation runs once per record of its form for which ``when`` holds."""
        from cronsim import CronSim

        counters = self.records.metadata.tables["sl_counters"]
        moment = (now or _now()).astimezone(ZoneInfo(self.app.timezone))
        started = 0
        for automation in self.app.automations:
            if automation.on.kind != "schedule" or not automation.on.cron:
                continue
            series = f"schedule:{self.app.name}:{automation.name}"
            with self.records.engine.begin() as conn:
                last = conn.execute(
                    sa.select(counters.c.value).where(counters.c.series == series)
                ).scalar()
                if last is None:  # first sight: count from now, do not fire the past
                    conn.execute(
                        counters.insert().values(series=series, value=int(moment.timestamp()))
                    )
                    continue
                due = None
                for slot in CronSim(
                    automation.on.cron, datetime.fromtimestamp(last, moment.tzinfo)
                ):
                    if slot > moment:
                        break
                    due = slot
                if due is None:
                    continue
                claimed = conn.execute(
                    counters.update()
                    .where(counters.c.series == series, counters.c.value == last)
                    .values(value=int(due.timestamp()))
                ).rowcount
                if claimed == 1:
                    started += self._start_scheduled(conn, automation, limit)
        return started

    def _start_scheduled(self, conn: sa.Connection, automation: AutomationSpec, limit: int) -> int:
        form = self.records.form(automation.form)
        table = self.records.table(form.name)
        started = 0
        rows = conn.execute(sa.select(table).order_by(table.c.id).limit(limit)).all()
        for row in rows:
            record = dict(row._mapping)
            if automation.when is not None and not self._truthy(
                automation.when, self.effects.context(conn, form.name, record)
            ):
                continue
            self.start(
                conn, automation, RecordEvent("schedule", form.name, record["id"], "schedule", {})
            )
            started += 1
        return started

    # ------------------------------------------------------------------ advancing runs
    def advance(self, job: jobs.Job) -> str:
        """Run steps of the job's run until it ends, waits or must retry. Returns what
        happened: done, waiting, retry, failed."""
        engine = self.records.engine
        with self.records.reads.connect() as conn:
            run = conn.execute(sa.select(RUNS).where(RUNS.c.id == job.run_id)).first()
        if run is None or run.status in ("done", "failed"):
            with engine.begin() as conn:
                jobs.finish(conn, job)
            return "done"
        automation = self.by_name.get(run.automation)
        if automation is None:
            return self._fail(job, run, f"automation '{run.automation}' is no longer deployed")
        position: Path = list(run.position)
        results: dict[str, Any] = dict(run.results)
        moved = False  # the position moved past an ``if`` or a skipped step, not saved yet
        for _ in range(200):  # bounded: a run never spins forever inside one job
            step = step_at(automation.steps, position)
            if step is None:
                after = _next_after_block(automation.steps, position)
                if after is None:
                    return self._finish_run(job, run, results)
                position = after
                continue
            outcome = self._do(job, run, automation, step, position, results, moved)
            moved = outcome == "moved"
            if outcome not in ("next", "moved"):
                return outcome
        self._save(run, position, results)  # the next job goes on from here
        return "retry"

    def _do(
        self,
        job: jobs.Job,
        run: Any,
        automation: AutomationSpec,
        step: StepSpec,
        position: Path,
        results: dict[str, Any],
        moved: bool = False,
    ) -> str:
        """Do one step. "next": done and saved; "moved": only the position moved (an ``if``,
        a step its ``when`` skips), to be saved with the next step; else what ``advance``
        returns. ``moved``: the position has moved since the last save."""
        form = self.records.form(run.form)
        with self.records.reads.connect() as conn:
            row = self.records.row(conn, form, run.record_id)
            context = self.effects.context(conn, form.name, row, results)
        where = ".".join(str(p) for p in position)
        # a step skipped by its ``when`` and an ``if`` only move the position: it is saved
        # with the next step that does something (a worker that dies before that evaluates
        # them again, as if it had died before them — they have no effect to repeat)
        if step.when is not None and not self._truthy(step.when, context):
            position[:] = _next(position)
            return "moved"
        if step.action == "if":
            branch = "then" if self._truthy(step.condition, context) else "else"
            position[:] = (
                [*position, branch, 0]
                if (step.then if branch == "then" else step.otherwise)
                else _next(position)
            )
            return "moved"
        if step.action == "call":
            if moved:
                # the branch taken is saved before a call to the outside: the call's retries
                # carry the same idempotency key (its position) whatever changes meanwhile
                self._save(run, position, results)
            return self._call(job, run, step, position, results, context, row)
        if step.action == "notify":
            return self._notify(job, run, step, position, results, context, row)
        if step.action == "wait":
            return self._wait(job, run, step, position, results)
        # set / create / transition: the change and the run's progress commit together, so a
        # worker that dies half-way neither loses the step nor does it twice
        env = self.records.env()
        try:
            with self.records.engine.begin() as conn:
                if step.action == "set":
                    values = {name: expr(context, env) for name, expr in step.values.items()}
                    self.records.update(form.name, run.record_id, values, SYSTEM_ACTOR, conn=conn)
                elif step.action == "create":
                    values = {name: expr(context, env) for name, expr in step.values.items()}
                    created = self.records.create(step.form or "", values, SYSTEM_ACTOR, conn=conn)
                    if step.id:
                        results[step.id] = {"id": created["id"]}
                elif step.action == "transition":
                    transition = step.transition or ""
                    if row["state"] != _target(self.app, form.name, transition):
                        fire_transition(
                            self.records,
                            form.name,
                            run.record_id,
                            transition,
                            SYSTEM_ACTOR,
                            conn=conn,
                        )
                self._save(
                    run,
                    _next(position),
                    results,
                    event=(
                        "flow_step",
                        {"automation": run.automation, "step": where, "action": step.action},
                    ),
                    conn=conn,
                )
        except ValidationFailed as failed:
            return self._fail(job, run, f"step {where} {step.action}: {failed}")
        position[:] = _next(position)
        return "next"

    def _call(
        self,
        job: jobs.Job,
        run: Any,
        step: StepSpec,
        position: Path,
        results: dict[str, Any],
        context: Mapping[str, Any],
        row: Mapping[str, Any],
    ) -> str:
        where = ".".join(str(p) for p in position)
        env = self.records.env()
        values = {name: expr(context, env) for name, expr in step.with_values.items()}
        try:
            answer = self.connectors.call(
                step.connector or "",
                step.operation or "",
                plain(values),
                idempotency_key=f"run:{run.id}:{where}",
            )
            kept = keep_values(answer.data, step.keep) if step.keep else answer.data
        except ConnectorError as failure:
            if failure.transient:
                self._park(run, step, row, str(failure))
                status = jobs.retry_later(
                    self.records.engine, job, str(failure), delay=failure.retry_after
                )
                if status == "dead":
                    self._mark(run, "failed", str(failure))
                    return "failed"
                return "retry"
            return self._fail(job, run, f"step {where} call: {failure}")
        if step.id:
            results[step.id] = kept
        self._save(
            run,
            _next(position),
            results,
            event=(
                "flow_step",
                {
                    "automation": run.automation,
                    "step": where,
                    "action": "call",
                    "connector": step.connector,
                    "operation": step.operation,
                    "elapsed_ms": round(answer.elapsed_ms, 1),
                    "kept": plain(kept),
                },
            ),
        )
        position[:] = _next(position)
        return "next"

    def _park(self, run: Any, step: StepSpec, row: Mapping[str, Any], error: str) -> None:
        """While the outside system fails, show the record waiting in ``pending_state``."""
        if not step.pending_state or row["state"] == step.pending_state:
            return
        machine = self.app.state_machines.get(run.form)
        for t in machine.transitions if machine else ():
            if t.target == step.pending_state and row["state"] in t.sources:
                try:
                    fire_transition(self.records, run.form, run.record_id, t.name, SYSTEM_ACTOR)
                except ValidationFailed:
                    log.warning(
                        "could not park %s %s in %s", run.form, run.record_id, step.pending_state
                    )
                return

    def _notify(
        self,
        job: jobs.Job,
        run: Any,
        step: StepSpec,
        position: Path,
        results: dict[str, Any],
        context: Mapping[str, Any],
        row: Mapping[str, Any],
    ) -> str:
        where = ".".join(str(p) for p in position)
        recipients = self._recipients(step, context)
        machine = self.app.state_machines.get(run.form)
        labels = {s.name: s.label for s in machine.states} if machine else {}
        agreed: dict[str, Any] = {}
        if machine is not None and any(t.confirm for t in machine.transitions):
            with self.records.reads.connect() as conn:
                agreed = agreed_values(self.records, conn, self.records.form(run.form), row)
        payload = self.effects.message_payload(
            step.via or "",
            step.template or "",
            step.todo,
            recipients,
            {
                "record": context,
                "steps": results,
                "state_label": labels.get(row["state"], ""),
                "trigger": dict(run.trigger or {}),  # e.g. trigger.to: the state entered
                # values confirmed at a passed gate (customer messages state only these)
                "agreed": agreed,
                "app": {"title": self.app.title},
                **track_names(self.app, run.form, row),  # track_url: the /track link
            },
        )
        payload["automation"] = run.automation  # kept in notify_sent (dashboards: notified)
        todos: Callable[[sa.Connection], None] | None = None
        if step.todo:  # an in-app to-do too, keyed on the run and step (a retry adds none)
            owner = context.get("created_by")
            todos = partial(
                add_todos,
                key=f"todo:{run.id}:{where}",
                form=run.form,
                record_id=run.record_id,
                to=assignees(self.app, step.to, context, self.records.env(), owner=owner),
                title=payload["title"] or "",
                source=run.automation,
                now=_now(),
            )
        self._save(
            run,
            _next(position),
            results,
            event=(
                "notify_queued",
                {
                    "automation": run.automation,
                    "step": where,
                    "via": step.via,
                    "title": payload["title"],
                },
            ),
            effect=(f"effect:{run.id}:{where}", payload, self.effects.attempts(step.via)),
            also=todos,
        )
        position[:] = _next(position)
        return "next"

    def _recipients(self, step: StepSpec, context: Mapping[str, Any]) -> list[Recipient]:
        out: list[Recipient] = []
        for who in step.to:
            value = context.get(who.value) if who.kind == "field" else None
            if isinstance(value, Mapping):  # a ref, e.g. the customer
                out.append(
                    Recipient(
                        user=str(value.get("id")),
                        name=value.get("name"),
                        email=value.get("email"),
                        wecom_id=value.get("wecom_id"),
                        phone=value.get("phone"),
                    )
                )
                continue
            owner = context.get("created_by")
            chosen = people_for(self.app, who, context, self.records.env(), owner=owner)
            out.extend(recipient_of(p) for p in chosen)
        return out

    def _wait(
        self, job: jobs.Job, run: Any, step: StepSpec, position: Path, results: dict[str, Any]
    ) -> str:
        amount = float(step.wait_amount or 0)
        now = _now()
        calendar = self.records.runtime.calendar
        if step.wait_unit == "business_hours":
            due = calendar.add_business_hours(now, amount)
        elif step.wait_unit == "workdays":
            local = now.astimezone(ZoneInfo(self.app.timezone))
            day = calendar.add_workdays(local.date(), int(amount))
            due = local.replace(year=day.year, month=day.month, day=day.day)
        else:
            seconds = {"minutes": 60, "hours": 3600, "days": 86400}[step.wait_unit or "minutes"]
            due = now + timedelta(seconds=amount * seconds)
        where = ".".join(str(p) for p in position)
        target = _next(position)
        with self.records.engine.begin() as conn:
            conn.execute(
                RUNS.update()
                .where(RUNS.c.id == run.id)
                .values(position=target, results=plain(results), status="waiting", updated_at=now)
            )
            jobs.enqueue(
                conn,
                "flow",
                f"flow:{run.id}:{where}:wake",
                {"run_id": run.id},
                run_id=run.id,
                form=run.form,
                record_id=run.record_id,
                due_at=due,
            )
            jobs.finish(conn, job)
            append_events(
                conn,
                self.records.metadata,
                [
                    EventIn(
                        "flow",
                        run.form,
                        run.record_id,
                        "flow_waiting",
                        {"automation": run.automation, "until": due.isoformat()},
                    )
                ],
                now,
            )
        return "waiting"

    # ------------------------------------------------------------------ bookkeeping
    def _save(
        self,
        run: Any,
        position: Path,
        results: Mapping[str, Any],
        event: tuple[str, dict[str, Any]] | None = None,
        effect: tuple[str, dict[str, Any], int] | None = None,
        conn: sa.Connection | None = None,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        now = _now()
        with self.records.transaction(conn) as conn:
            conn.execute(
                RUNS.update()
                .where(RUNS.c.id == run.id)
                .values(
                    position=position,
                    results=plain(dict(results)),
                    status="running",
                    updated_at=now,
                )
            )
            if effect is not None:
                key, payload, attempts = effect
                jobs.enqueue(
                    conn,
                    "effect",
                    key,
                    payload,
                    run_id=run.id,
                    form=run.form,
                    record_id=run.record_id,
                    max_attempts=attempts,
                )
            if also is not None:  # more rows written with the step (a notify's to-dos)
                also(conn)
            if event is not None:
                append_events(
                    conn,
                    self.records.metadata,
                    [EventIn("flow", run.form, run.record_id, event[0], event[1])],
                    now,
                )

    def _finish_run(self, job: jobs.Job, run: Any, results: Mapping[str, Any]) -> str:
        now = _now()
        with self.records.engine.begin() as conn:
            conn.execute(
                RUNS.update()
                .where(RUNS.c.id == run.id)
                .values(status="done", results=plain(dict(results)), updated_at=now)
            )
            jobs.finish(conn, job)
            append_events(
                conn,
                self.records.metadata,
                [
                    EventIn(
                        "flow",
                        run.form,
                        run.record_id,
                        "flow_done",
                        {"automation": run.automation, "run_id": run.id},
                    )
                ],
                now,
            )
        return "done"

    def _mark(self, run: Any, status: str, error: str) -> None:
        with self.records.engine.begin() as conn:
            conn.execute(
                RUNS.update()
                .where(RUNS.c.id == run.id)
                .values(status=status, error=error[:2000], updated_at=_now())
            )

    def _fail(self, job: jobs.Job, run: Any, error: str) -> str:
        now = _now()
        jobs.retry_later(self.records.engine, job, error, permanent=True)
        with self.records.engine.begin() as conn:
            conn.execute(
                RUNS.update()
                .where(RUNS.c.id == run.id)
                .values(status="failed", error=error[:2000], updated_at=now)
            )
            append_events(
                conn,
                self.records.metadata,
                [
                    EventIn(
                        "flow",
                        run.form,
                        run.record_id,
                        "flow_failed",
                        {"automation": run.automation, "error": error[:500]},
                    )
                ],
                now,
            )
        return "failed"

    # ------------------------------------------------------------------ effects
    def deliver(self, job: jobs.Job, delivered: list[jobs.Job] | None = None) -> str:
        """Send one outbox message; done, retry or dead (``delivered``: see :meth:`run_job`)."""
        payload = job.payload
        message = Message(
            title=payload["title"],
            text=payload["text"],
            todo=bool(payload.get("todo")),
            to=tuple(Recipient(**r) for r in payload.get("to") or ()),
        )
        try:
            self.connectors.send(payload["connector"], message, idempotency_key=job.key)
        except ConnectorError as failure:
            status = jobs.retry_later(
                self.records.engine,
                job,
                str(failure),
                permanent=not failure.transient,
                delay=failure.retry_after,
            )
            if status == "dead" and job.form and job.record_id:
                with self.records.engine.begin() as conn:
                    append_events(
                        conn,
                        self.records.metadata,
                        [
                            EventIn(
                                "flow",
                                job.form,
                                job.record_id,
                                "notify_dead",
                                {"job": job.id, "error": str(failure)[:500]},
                            )
                        ],
                        _now(),
                    )
            return "dead" if status == "dead" else "retry"
        if delivered is not None and self.connectors.deduplicated(payload["connector"]):
            delivered.append(job)  # the receiver de-duplicates: done with the batch's commit
        else:
            self.finish_delivered([job])  # a robot: marked sent right after its answer
        return "done"

    def finish_delivered(self, done: Sequence[jobs.Job]) -> None:
        """Mark delivered effects done, with their ``notify_sent`` events, in one commit."""
        if not done:
            return
        sent = [
            EventIn(
                "flow",
                job.form,
                job.record_id,
                "notify_sent",
                {
                    "via": job.payload["connector"],
                    "title": job.payload["title"],
                    "attempts": job.attempts,
                    **_automation_of(job.payload),
                },
            )
            for job in done
            if job.form and job.record_id
        ]
        with self.records.engine.begin() as conn:
            jobs.finish(conn, *done)
            if sent:
                # the engine's clock: when the messages were delivered
                append_events(conn, self.records.metadata, sent, _now())

    # ------------------------------------------------------------------ helpers
    def _truthy(self, expr: Any, context: Mapping[str, Any]) -> bool:
        try:
            return bool(expr(context, self.records.env()))
        except EvaluationError:
            return False


def _target(app: App, form: str, transition: str) -> str | None:
    machine = app.state_machines.get(form)
    for t in machine.transitions if machine else ():
        if t.name == transition:
            return t.target
    return None


def step_at(steps: Sequence[StepSpec], path: Path) -> StepSpec | None:
    """The step at ``path`` ([i] or [i, "then"|"else", j, …]); None past the end of a block."""
    block: Sequence[StepSpec] = steps
    step: StepSpec | None = None
    for i in range(0, len(path), 2):
        index = path[i]
        if index >= len(block):
            return None
        step = block[index]
        if i + 1 < len(path):
            block = step.then if path[i + 1] == "then" else step.otherwise
    return step


def _next(path: Path) -> Path:
    return [*path[:-1], path[-1] + 1]


def _next_after_block(steps: Sequence[StepSpec], path: Path) -> Path | None:
    """Past the end of a then/else block: continue after its if-step; None at the very end."""
    if len(path) == 1:
        return None
    return _next(path[:-2])


def _automation_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """The automation that sent a message (none for approval notices)."""
    name = payload.get("automation")
    return {"automation": name} if isinstance(name, str) else {}
