"""Approvals at run time: start on the configured event, tasks per approver slot, decisions,
countersign, SLA escalation up the org chart, reminders, delegation and the sealed PDF record.

An approval's route, steps and the people asked are fixed when it starts and kept in
``sl_approvals.plan``: a redeployment with edited routes does not touch approvals in flight —
they finish on the plan they started with; the next submission takes the new routes.

Everything that changes an approval happens in one transaction with its events (hash-chained)
and the jobs it causes (timers, messages, the PDF record), like every other change.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.flows.approvals.plan import ApprovalPlan, PlannedSla, PlannedStep, plan_of
from engine.flows.approvals.routing import (
    approval_context,
    excluded_people,
    plan_route,
    step_slots,
)
from engine.flows.effects import Effects, matches, recipient_of
from engine.flows.machine import fire_transition
from engine.flows.people import managers_of
from engine.forms.records import SYSTEM_ACTOR, Actor, RecordEvent
from engine.model import clock
from engine.model.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    Locked,
    Missing,
    ValidationFailed,
    refused,
)
from engine.model.extras import require
from engine.model.i18n import Text
from engine.model.logs import logger
from engine.model.spec import ApprovalSpec, FormSpec
from engine.outbox import jobs
from engine.outbox.connectors import ConnectorError
from engine.store.events import EventIn, append_events, event_hash_of
from engine.store.files import store_bytes
from engine.store.system_tables import system_metadata

log = logger(__name__)
_META = system_metadata()
APPROVALS = _META.tables["sl_approvals"]
TASKS = _META.tables["sl_approval_tasks"]
ASSIGNEES = _META.tables["sl_task_assignees"]
DELEGATIONS = _META.tables["sl_delegations"]
# reads built once (a statement built per call pays its construction and cache key each time);
# the locked forms for PostgreSQL, where two decisions may race
_ACTIVE = sa.select(APPROVALS).where(
    APPROVALS.c.form == sa.bindparam("form"),
    APPROVALS.c.record_id == sa.bindparam("rid"),
    APPROVALS.c.status == "active",
)
_ACTIVE_LOCKED = _ACTIVE.with_for_update()
_APPROVED_IN_STEP = (
    sa.select(sa.func.count())
    .select_from(TASKS)
    .where(
        TASKS.c.approval_id == sa.bindparam("approval_id"),
        TASKS.c.step == sa.bindparam("step"),
        TASKS.c.status == "approved",
    )
)
_BY_ID: dict[tuple[str, bool], sa.Select[Any]] = {}
for _table in (APPROVALS, TASKS):
    _BY_ID[_table.name, False] = sa.select(_table).where(_table.c.id == sa.bindparam("rid"))
    _BY_ID[_table.name, True] = _BY_ID[_table.name, False].with_for_update()
# the tasks of a step, each id with its slot (one multi-row INSERT: asking for the rows' order
# instead would make SQLite insert them one by one)
_INSERT_TASKS = TASKS.insert().returning(TASKS.c.id, TASKS.c.slot)
_SET_TASK = TASKS.update().where(TASKS.c.id == sa.bindparam("_task_id"))  # SET from the keys
_ASSIGNEES_OF = sa.select(ASSIGNEES.c.user).where(ASSIGNEES.c.task_id == sa.bindparam("task_id"))
DECISIONS = {"approve": "approved", "reject": "rejected", "return": "returned"}
# record events that change a record under approval (lock refuses them, restart re-routes);
# "children_changed" is an update that replaced child rows only
CHANGES = ("changed", "children_changed", "child_added", "child_removed")
TIMER_ATTEMPTS = 1000  # timers re-arm themselves when they fire early; they never go dead


def locked() -> ValidationFailed:
    return Locked(
        [
            FieldError(
                None,
                "locked-approving",
                Text(
                    "the record is being approved and cannot be changed; ask an approver to "
                    "return it for changes",
                    "单据正在审批中，不能修改；如需修改请让审批人退回",
                ),
            )
        ],
    )


@dataclass(frozen=True)
class Acting:
    """The actor of an outcome transition: the person whose decision completed the approval
    (the approval itself is the permission, so the transition's role list does not apply)."""

    username: str
    roles: frozenset[str] = frozenset({"*"})


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


class ApprovalRuntime:
    """Approvals of one compiled App (one per deployment, beside the FlowRuntime)."""

    def __init__(self, effects: Effects) -> None:
        self.effects = effects
        self.app = effects.app
        self.records = effects.records
        self.by_form: dict[str, list[ApprovalSpec]] = {}
        self._pending: weakref.WeakKeyDictionary[sa.Connection, list[tuple[EventIn, datetime]]]
        self._pending = weakref.WeakKeyDictionary()
        for spec in self.app.approvals.values():
            self.by_form.setdefault(spec.form, []).append(spec)

    @property
    def engine(self) -> sa.Engine:
        return self.records.engine

    # ------------------------------------------------------------------ starting
    def on_record_event(self, conn: sa.Connection, event: RecordEvent) -> None:
        if event.form in self.by_form:
            self._on_record_event(conn, event, self.by_form[event.form])
            self._flush(conn)

    def _on_record_event(
        self, conn: sa.Connection, event: RecordEvent, specs: list[ApprovalSpec]
    ) -> None:
        # a record just created has no approval yet: no need to look (one query per create)
        created = event.kind == "created"
        active = None if created else self._active(conn, event.form, event.record_id)
        if active is not None:
            plan = plan_of(active)
            if event.kind == "transition" and event.to_state not in plan.start_states:
                self._close(conn, active, "cancelled", event.actor)
                active = None
            elif event.kind in CHANGES:
                if self._appended_to_log(event):
                    return  # an append-only table (a log) stays open while approving
                if plan.if_record_changes == "lock" and event.actor != SYSTEM_ACTOR.username:
                    raise locked()  # rolls the edit back: listeners run inside its transaction
                if plan.if_record_changes == "restart":
                    self._close(conn, active, "restarted", event.actor)
                    spec = self.app.approvals.get(active.approval)
                    if spec is not None:
                        self.start(conn, spec, event.form, event.record_id, active.submitter)
                return
        machine = self.app.state_machines.get(event.form)
        initial = machine.initial if machine else None
        for spec in specs:
            if matches(spec.start, event, initial):
                if active is not None:
                    self._close(conn, active, "cancelled", event.actor)
                    active = None
                self.start(conn, spec, event.form, event.record_id, event.actor)

    def _appended_to_log(self, event: RecordEvent) -> bool:
        """A row added to append-only child tables only (``add_child_row``)."""
        if event.kind != "child_added":
            return False
        form = self.records.form(event.form)
        tables = [form.by_name.get(name) for name in event.changes]
        return bool(tables) and all(t is not None and t.append_only for t in tables)

    def start(
        self,
        conn: sa.Connection,
        spec: ApprovalSpec,
        form_name: str,
        record_id: int,
        submitter: str | None,
    ) -> int:
        now = clock.now()
        form = self.records.form(form_name)
        context = self._record_context(conn, form, record_id)
        scope = approval_context(spec, context, submitter)
        env = self.records.env()
        route = plan_route(spec, scope, env)
        excluded = excluded_people(spec, submitter, context.get("created_by"))
        steps = []
        for step in route.steps:
            # a slot only excluded people could fill goes to their manager instead
            slots = step_slots(
                self.app, spec, step, scope, env, submitter=submitter, excluded=excluded
            )
            needed = len(slots) if step.kind == "all_of" else step.needed
            sla = step.sla or spec.sla
            steps.append(
                PlannedStep(
                    name=step.name,
                    label=step.label or step.name,
                    kind=step.kind,
                    needed=needed,
                    slots=tuple(tuple(users) for users in slots),
                    sla=PlannedSla.from_spec(sla) if sla is not None else None,
                )
            )
        machine = self.app.state_machines.get(form_name)
        start_states = list(spec.start.names) if spec.start.kind == "state_entered" else []
        if not start_states and machine is not None:
            start_states = [t.target for t in machine.transitions if t.name in spec.start.names]
        plan = ApprovalPlan(
            approval=spec.name,
            route=route.route.name,
            route_label=route.label,
            added=tuple(r.name for r in route.added),
            added_labels=tuple(r.label or r.name for r in route.added),
            steps=tuple(steps),
            on_approved=spec.on_approved,
            on_rejected=spec.on_rejected,
            on_returned=spec.on_returned,
            if_record_changes=spec.if_record_changes,
            self_approval=spec.self_approval,
            excluded=tuple(excluded),  # never asked, never act (nor as a delegate)
            start_states=tuple(start_states),
            record_label=record_label(form, context),
        )
        row = conn.execute(
            APPROVALS.insert()
            .values(
                approval=spec.name,
                form=form_name,
                record_id=record_id,
                route=plan.route,
                status="active",
                step=0,
                plan=plan.to_json(),
                submitter=submitter,
                config_hash=self.app.content_hash,
                started_at=now,
            )
            .returning(*APPROVALS.c)  # the row _open_step reads, without reading it back
        ).one()
        approval_id = int(row.id)
        self._event(
            conn,
            "approval",
            form_name,
            record_id,
            "approval_started",
            {
                "approval_id": approval_id,
                "approval": spec.name,
                "route": plan.route,
                "route_label": plan.route_label,
                "added": list(plan.added),
                "steps": [s.name for s in plan.steps],
            },
            now,
        )
        self._open_step(conn, row, 0, now, context)
        self._flush(conn)
        return approval_id

    def _open_step(
        self,
        conn: sa.Connection,
        approval: Any,
        index: int,
        now: datetime,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        step = plan_of(approval).steps[index]
        sla = step.sla
        calendar = self.records.runtime.calendar
        due = remind = None
        if sla is not None:
            due = self._business_later(calendar, now, sla.business_hours)
            if sla.remind_after_hours is not None:
                remind = self._business_later(calendar, now, sla.remind_after_hours)
        if approval.step != index:  # an approval just started is at step 0 already
            conn.execute(APPROVALS.update().where(APPROVALS.c.id == approval.id).values(step=index))
        if context is None:
            context = self._record_context(
                conn, self.records.form(approval.form), approval.record_id
            )
        # the step's tasks, their assignees, and their timers and messages: one statement each
        rows = [
            {
                "approval_id": approval.id,
                "step": index,
                "slot": slot,
                "status": "open",
                "created_at": now,
                "due_at": due,
                "remind_at": remind,
                "escalations": 0,
            }
            for slot in range(len(step.slots))
        ]
        slot_ids = {r.slot: r.id for r in conn.execute(_INSERT_TASKS, rows)} if rows else {}
        task_ids = [slot_ids[slot] for slot in range(len(rows))]
        assignees = [
            {"task_id": task_id, "user": user}
            for task_id, users in zip(task_ids, step.slots, strict=True)
            for user in users
        ]
        if assignees:
            conn.execute(ASSIGNEES.insert(), assignees)
        with jobs.batched(conn):
            for task_id, users in zip(task_ids, step.slots, strict=True):
                self._arm_timers(conn, approval, task_id, 0, due, remind)
                self._message(conn, approval, task_id, 0, step, users, "new", context, due)
        self._event(
            conn,
            "approval",
            approval.form,
            approval.record_id,
            "approval_step_opened",
            {
                "approval_id": approval.id,
                "step": step.name,
                "label": step.label,
                "slots": [list(users) for users in step.slots],
                "due_at": due.isoformat() if due else None,
            },
            now,
        )

    @staticmethod
    def _business_later(calendar: Any, start: datetime, hours: float) -> datetime:
        """``hours`` business hours after ``start``, in UTC (how times are stored)."""
        return calendar.add_business_hours(start, hours).astimezone(UTC)

    def _assign(self, conn: sa.Connection, task_id: int, users: Sequence[str]) -> None:
        """Make ``users`` the task's assignees."""
        conn.execute(ASSIGNEES.delete().where(ASSIGNEES.c.task_id == task_id))
        if users:
            conn.execute(ASSIGNEES.insert(), [{"task_id": task_id, "user": u} for u in users])

    def _arm_timers(
        self,
        conn: sa.Connection,
        approval: Any,
        task_id: int,
        level: int,
        due: datetime | None,
        remind: datetime | None,
    ) -> None:
        for action, at in (("escalate", due), ("remind", remind)):
            if at is None:
                continue
            jobs.enqueue(
                conn,
                "approval",
                f"approval-task:{task_id}:{action}:{level}",
                {"task_id": task_id, "action": action, "level": level},
                form=approval.form,
                record_id=approval.record_id,
                due_at=at,
                max_attempts=TIMER_ATTEMPTS,
            )

    # ------------------------------------------------------------------ deciding
    def decide(
        self, task_id: int, actor: Actor, decision: str, comment: str | None
    ) -> dict[str, Any]:
        """Approve, reject or return the task for ``actor`` (its assignee or their delegate)."""
        if decision not in DECISIONS:
            raise refused(
                BadRequest, "bad-decision", "unknown decision", "未知的审批操作", "decision"
            )
        comment = (comment or "").strip()
        if len(comment) > 4000:
            raise refused(
                Invalid,
                "too-long",
                "the comment is too long (4,000 at most)",
                "意见过长（最多 4000 字）",
                "comment",
            )
        if decision != "approve" and not comment:
            raise refused(
                Invalid, "required", "say why in a comment", "驳回或退回时请填写意见", "comment"
            )
        now = clock.now()
        with self.engine.begin() as conn:
            task = self._lock(conn, TASKS, task_id)
            if task is None:
                raise refused(Missing, "not-found", "no such task", "没有这个审批任务")
            approval = self._lock(conn, APPROVALS, task.approval_id)
            on_behalf_of = self._may_act(conn, task, approval, actor, now)
            if task.status != "open" or approval.status != "active":
                raise refused(
                    Conflict,
                    "already-decided",
                    "this task has already been decided",
                    "该审批任务已处理",
                )
            plan = plan_of(approval)
            if decision == "return" and not plan.can_return:
                raise refused(
                    BadRequest,
                    "cannot-return",
                    "this approval cannot return records for changes",
                    "该审批不支持退回修改",
                    "decision",
                )
            status = DECISIONS[decision]
            conn.execute(
                _SET_TASK,
                {
                    "status": status,
                    "decided_at": now,
                    "decided_by": actor.username,
                    "on_behalf_of": on_behalf_of,
                    "comment": comment or None,
                    "_task_id": task_id,
                },
            )
            step = plan.steps[task.step]
            self._event(
                conn,
                actor.username,
                approval.form,
                approval.record_id,
                "approval_decided",
                {
                    "approval_id": approval.id,
                    "task_id": task_id,
                    "step": step.name,
                    "label": step.label,
                    "decision": status,
                    "comment": comment,
                    "on_behalf_of": on_behalf_of,
                },
                now,
            )
            outcome = self._after_decision(conn, approval, task, status, actor.username, now)
            self._flush(conn)
        return {"task_id": task_id, "decision": status, "approval_status": outcome}

    def _after_decision(
        self,
        conn: sa.Connection,
        approval: Any,
        task: Any,
        status: str,
        actor: str,
        now: datetime,
    ) -> str:
        plan = plan_of(approval)
        if status != "approved":
            self._skip_open(conn, approval.id)
            self._finish(conn, approval, status, actor, now)
            return status
        step = plan.steps[task.step]
        approved = conn.execute(
            _APPROVED_IN_STEP, {"approval_id": approval.id, "step": task.step}
        ).scalar_one()
        if approved < step.needed:
            return "active"
        self._skip_open(conn, approval.id)
        if task.step + 1 < len(plan.steps):
            self._open_step(conn, approval, task.step + 1, now)
            return "active"
        self._finish(conn, approval, "approved", actor, now)
        return "approved"

    def _skip_open(self, conn: sa.Connection, approval_id: int) -> None:
        conn.execute(
            TASKS.update()
            .where(TASKS.c.approval_id == approval_id, TASKS.c.status == "open")
            .values(status="skipped")
        )

    def _finish(
        self, conn: sa.Connection, approval: Any, outcome: str, actor: str, now: datetime
    ) -> None:
        self._event(
            conn,
            actor,
            approval.form,
            approval.record_id,
            "approval_finished",
            {"approval_id": approval.id, "outcome": outcome, "route": approval.route},
            now,
        )
        event_id = self._flush(conn)[-1]
        digest = event_hash_of(conn, self.records.metadata, event_id)
        conn.execute(
            APPROVALS.update()
            .where(APPROVALS.c.id == approval.id)
            .values(status=outcome, finished_at=now, outcome_hash=digest)
        )
        transition = plan_of(approval).outcome_transition(outcome)
        with jobs.batched(conn):  # the outcome's automations and the PDF record: one insert
            if transition:
                fire_transition(
                    self.records,
                    approval.form,
                    approval.record_id,
                    transition,
                    Acting(actor),
                    conn=conn,
                    read_back=False,
                )
            jobs.enqueue(
                conn,
                "approval",
                f"approval:{approval.id}:record",
                {"approval_id": approval.id, "action": "record"},
                form=approval.form,
                record_id=approval.record_id,
            )

    def _close(self, conn: sa.Connection, approval: Any, why: str, actor: str) -> None:
        """End an approval that no decision finished: the record left the approving state
        (``cancelled``) or changed under the restart policy (``restarted``)."""
        now = clock.now()
        self._skip_open(conn, approval.id)
        conn.execute(
            APPROVALS.update()
            .where(APPROVALS.c.id == approval.id)
            .values(status=why, finished_at=now)
        )
        self._event(
            conn,
            actor,
            approval.form,
            approval.record_id,
            f"approval_{why}",
            {"approval_id": approval.id, "route": approval.route},
            now,
        )

    def _may_act(
        self, conn: sa.Connection, task: Any, approval: Any, actor: Actor, now: datetime
    ) -> str | None:
        """None when ``actor`` is an assignee, the absent assignee's name when ``actor`` is
        their delegate; refuses (403) anyone else, and the people the approval excludes (the
        submitter and the record's creator by default) even as a delegate."""
        excluded = excluded_of(approval)
        if actor.username in excluded:  # the clearer reason, assignee or not
            raise refused(
                Forbidden,
                "self-approval",
                "you cannot decide a record you created or submitted for approval",
                "不能审批自己创建或提交审批的单据",
            )
        assignees = set(conn.execute(_ASSIGNEES_OF, {"task_id": task.id}).scalars())
        on_behalf_of = None
        if actor.username not in assignees:
            principals = sorted(set(delegators(conn, actor.username, now)) & assignees)
            if not principals:
                raise refused(
                    Forbidden,
                    "not-assignee",
                    "this task is not yours to decide",
                    "该审批任务不是分配给您的，您无权处理",
                )
            on_behalf_of = principals[0]
        if on_behalf_of in excluded:
            raise refused(
                Forbidden,
                "self-approval",
                f"you cannot decide for {on_behalf_of}: they created or submitted this record",
                f"不能代 {on_behalf_of} 审批：该单据由其创建或提交审批",
            )
        return on_behalf_of

    # ------------------------------------------------------------------ timers and records
    def on_job(self, job: jobs.Job) -> str:
        action = job.payload.get("action")
        if action == "record":
            return self._seal(job)
        now = clock.now()
        with self.engine.begin() as conn:
            task = self._lock(conn, TASKS, int(job.payload["task_id"]))
            approval = self._lock(conn, APPROVALS, task.approval_id) if task is not None else None
            if (
                task is None
                or approval is None
                or task.status != "open"
                or approval.status != "active"
                or task.escalations != job.payload.get("level", 0)
            ):
                jobs.finish(conn, job)
                return "done"
            at = _aware(task.due_at if action == "escalate" else task.remind_at)
            if at is not None and now < at - jobs.CLOCK_SKEW:
                early = True
            else:
                early = False
                if action == "escalate":
                    self._escalate(conn, approval, task, now)
                else:
                    self._remind(conn, approval, task, now)
                self._flush(conn)
                jobs.finish(conn, job)
        if early and at is not None:  # fired before its time (clocks differ): wait again
            wait = (at - now).total_seconds()
            jobs.retry_later(self.engine, job, "not due yet", delay=wait, failed=False)
            return "ready"
        return "done"

    def _users(self, conn: sa.Connection, task_id: int) -> list[str]:
        return list(
            conn.execute(
                sa.select(ASSIGNEES.c.user)
                .where(ASSIGNEES.c.task_id == task_id)
                .order_by(ASSIGNEES.c.user)
            ).scalars()
        )

    def _escalate(self, conn: sa.Connection, approval: Any, task: Any, now: datetime) -> None:
        step = plan_of(approval).steps[task.step]
        sla = step.sla
        current = self._users(conn, task.id)
        escalates = sla is not None and sla.escalate_to == "manager"
        targets = managers_of(self.app, current) if escalates else []
        excluded = excluded_of(approval)
        targets = [t for t in targets if t not in excluded]
        payload = {"approval_id": approval.id, "task_id": task.id, "step": step.name}
        if sla is None or task.escalations >= sla.max_escalations or not targets:
            reason = "max" if targets else "no-manager"
            self._event(
                conn,
                "approval",
                approval.form,
                approval.record_id,
                "approval_overdue",
                {**payload, "level": task.escalations, "assignees": current, "reason": reason},
                now,
            )
            return
        level = task.escalations + 1
        calendar = self.records.runtime.calendar
        due = self._business_later(calendar, now, sla.business_hours)
        after = sla.remind_after_hours
        remind = self._business_later(calendar, now, after) if after is not None else None
        conn.execute(
            TASKS.update()
            .where(TASKS.c.id == task.id)
            .values(escalations=level, due_at=due, remind_at=remind)
        )
        self._assign(conn, task.id, targets)
        self._arm_timers(conn, approval, task.id, level, due, remind)
        self._event(
            conn,
            "approval",
            approval.form,
            approval.record_id,
            "approval_escalated",
            {**payload, "level": level, "from": current, "to": targets, "due_at": due.isoformat()},
            now,
        )
        self._message(
            conn, approval, task.id, level, step, targets, "escalated", None, due, current
        )

    def _remind(self, conn: sa.Connection, approval: Any, task: Any, now: datetime) -> None:
        step = plan_of(approval).steps[task.step]
        users = self._users(conn, task.id)
        self._event(
            conn,
            "approval",
            approval.form,
            approval.record_id,
            "approval_reminded",
            {"approval_id": approval.id, "task_id": task.id, "step": step.name, "to": users},
            now,
        )
        self._message(
            conn,
            approval,
            task.id,
            task.escalations,
            step,
            users,
            "reminder",
            None,
            _aware(task.due_at),
        )

    def _message(
        self,
        conn: sa.Connection,
        approval: Any,
        task_id: int,
        attempt: int,
        step: PlannedStep,
        users: Sequence[str],
        event: str,
        context: Mapping[str, Any] | None,
        due: datetime | None,
        escalated_from: Sequence[str] = (),
    ) -> None:
        """Tell ``users`` about the task through the approval's ``notify`` connector;
        ``attempt``: the task's escalation level (one message per level and event)."""
        spec = self.app.approvals.get(approval.approval)
        notify = spec.notify if spec is not None else None
        people = [self.app.people[u] for u in users if u in self.app.people]
        if notify is None or not people:
            return
        if context is None:
            context = self._record_context(
                conn, self.records.form(approval.form), approval.record_id
            )
        plan = plan_of(approval)
        names = [self.app.people[u].name if u in self.app.people else u for u in escalated_from]
        try:
            payload = self.effects.message_payload(
                notify.via,
                notify.template,
                notify.todo,
                [recipient_of(p) for p in people],
                {
                    "record": context,
                    "event": event,
                    "app": {"title": self.app.title},
                    "approval": {
                        "route_label": plan.route_label,
                        "sla_hours": step.sla.business_hours if step.sla is not None else None,
                        "record_label": plan.record_label,
                    },
                    "task": {
                        "id": task_id,
                        "step_label": step.label,
                        "due_local": self._local(due),
                        "escalated_from": "、".join(names),
                    },
                },
            )
        except ConnectorError as exc:  # a broken template must not block the approval
            log.error("approval message not rendered: %s", exc)
            return
        jobs.enqueue(
            conn,
            "effect",
            f"approval-message:{task_id}:{event}:{attempt}",
            payload,
            form=approval.form,
            record_id=approval.record_id,
            max_attempts=self.effects.attempts(notify.via),
        )

    def _local(self, at: datetime | None) -> str:
        if at is None:
            return ""
        from zoneinfo import ZoneInfo

        return at.astimezone(ZoneInfo(self.app.timezone)).strftime("%Y-%m-%d %H:%M")

    def _seal(self, job: jobs.Job) -> str:
        """Render the PDF record of a finished approval, store it, seal its SHA-256 (without
        the ``pdf`` extra the job fails saying so, and runs again once it is installed)."""
        require("pdf", purpose=Text("the sealed approval record PDF", "审批记录 PDF "))
        from engine.flows.approvals.document import approval_document
        from engine.flows.approvals.pdf import render_approval_pdf

        approval_id = int(job.payload["approval_id"])
        with self.records.reads.connect() as conn:
            approval = conn.execute(
                sa.select(APPROVALS).where(APPROVALS.c.id == approval_id)
            ).first()
            if approval is None or approval.record_file is not None:
                document = None
            else:
                document = approval_document(self.records, conn, approval)
        if document is None or approval is None:
            with self.engine.begin() as conn:
                jobs.finish(conn, job)
            return "done"
        data = render_approval_pdf(document)
        digest = hashlib.sha256(data).hexdigest()
        now = clock.now()
        with self.engine.begin() as conn:
            current = self._lock(conn, APPROVALS, approval_id)
            if current is not None and current.record_file is None:
                label = plan_of(approval).record_label or approval.form
                name = f"{label}-审批记录-{approval_id}.pdf"
                stored = store_bytes(conn, name, "application/pdf", data, "approval", now)
                conn.execute(
                    APPROVALS.update()
                    .where(APPROVALS.c.id == approval_id)
                    .values(record_file=stored.id)
                )
                self._event(
                    conn,
                    "approval",
                    approval.form,
                    approval.record_id,
                    "approval_record",
                    {
                        "approval_id": approval_id,
                        "file_id": stored.id,
                        "sha256": digest,
                        "outcome_hash": approval.outcome_hash,
                        "name": stored.name,
                    },
                    now,
                )
                self._flush(conn)
            jobs.finish(conn, job)
        return "done"

    # ------------------------------------------------------------------ reads
    def _active(self, conn: sa.Connection, form: str, record_id: int) -> Any:
        locked = conn.dialect.name == "postgresql"
        query = _ACTIVE_LOCKED if locked else _ACTIVE
        return conn.execute(query, {"form": form, "rid": record_id}).first()

    @staticmethod
    def _lock(conn: sa.Connection, table: sa.Table, row_id: int) -> Any:
        locked = conn.dialect.name == "postgresql"
        return conn.execute(_BY_ID[table.name, locked], {"rid": row_id}).first()

    def _record_context(
        self, conn: sa.Connection, form: FormSpec, record_id: int
    ) -> dict[str, Any]:
        row = self.records.row(conn, form, record_id)
        return self.effects.context(conn, form.name, row)

    def _event(
        self,
        conn: sa.Connection,
        actor: str,
        form: str,
        record_id: int,
        kind: str,
        payload: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """Queue an event; ``_flush`` appends the queued ones together, so one change takes
        the chain head once, late in its transaction."""
        pending = self._pending.setdefault(conn, [])
        pending.append((EventIn(actor, form, record_id, kind, dict(payload)), at))

    def _flush(self, conn: sa.Connection) -> list[int]:
        pending = self._pending.pop(conn, [])
        if not pending:
            return []
        return append_events(conn, self.records.metadata, [e for e, _ in pending], pending[0][1])


def excluded_of(approval: Any) -> list[str]:
    """The people an approval (a ``sl_approvals`` row) never lets decide, as stored in its plan
    when it started (see :meth:`ApprovalPlan.excluded_for`)."""
    return plan_of(approval).excluded_for(approval.submitter)


def delegators(conn: sa.Connection, delegate: str, at: datetime) -> list[str]:
    """People who have ``delegate`` acting for them at ``at``."""
    return list(
        conn.execute(
            sa.select(DELEGATIONS.c.user).where(
                DELEGATIONS.c.delegate == delegate,
                DELEGATIONS.c.starts_at <= at,
                DELEGATIONS.c.ends_at > at,
                DELEGATIONS.c.revoked_at.is_(None),
            )
        ).scalars()
    )


def record_label(form: FormSpec, record: Mapping[str, Any]) -> str:
    """How people name the record: its title field (or first column), else its id."""
    name = form.title_field or next(iter(form.list_columns), None)
    value = record.get(name) if name else None
    if isinstance(value, Mapping):
        value = value.get("name") or value.get("id")
    return f"{form.title} {value}" if value not in (None, "") else f"{form.title} #{record['id']}"


def sla_colour(
    due: datetime | None, remind: datetime | None, now: datetime, created: datetime
) -> str:
    """red past the deadline; amber from the reminder on (without one: after three quarters
    of the time)."""
    if due is None:
        return "none"
    if now >= due:
        return "red"
    if remind is not None:
        return "amber" if now >= remind else "green"
    return "amber" if due > created and (now - created) >= (due - created) * 0.75 else "green"
