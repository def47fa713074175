"""What goes into an approval's PDF record, read from the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from engine.flows.approvals.pdf import ApprovalDocument, DecisionLine
from engine.flows.approvals.plan import plan_of
from engine.forms.records import RecordService
from engine.model.display import value_text
from engine.model.i18n import Lang
from engine.model.spec import App
from engine.store.system_tables import system_metadata

_META = system_metadata()
TASKS = _META.tables["sl_approval_tasks"]
ASSIGNEES = _META.tables["sl_task_assignees"]
EVENTS = _META.tables["sl_events"]
KEY_TYPES = (
    "text",
    "integer",
    "decimal",
    "money",
    "date",
    "datetime",
    "select",
    "ref",
    "autonumber",
    "computed",
    "phone",
    "email",
    "boolean",
)


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def approval_document(
    records: RecordService, conn: sa.Connection, approval: Any
) -> ApprovalDocument:
    app = records.app
    form = records.form(approval.form)
    record = records.read(conn, form, approval.record_id)
    lang: Lang = "en" if app.locale.startswith("en") else "zh"
    zone = ZoneInfo(app.timezone)
    titles = record.get("_titles") or {}
    fields = []
    for spec in form.fields:
        if spec.type not in KEY_TYPES or spec.name == form.title_field:
            continue  # the title field names the record in the heading already
        value = record.get(spec.name)
        if isinstance(value, dict):
            value = value.get("id")
        # as the record page reads it: refs by their title, money with separators and currency
        shown = value_text(app, spec, value, lang, zone, titles.get(spec.name))
        fields.append((spec.label, shown))
    plan = plan_of(approval)
    tasks = conn.execute(
        sa.select(TASKS)
        .where(TASKS.c.approval_id == approval.id)
        .order_by(TASKS.c.step, TASKS.c.slot)
    ).all()
    lines = []
    for task in tasks:
        step = plan.steps[task.step]
        if task.decided_by:
            who = task.decided_by
        else:
            who = "、".join(
                conn.execute(
                    sa.select(ASSIGNEES.c.user).where(ASSIGNEES.c.task_id == task.id)
                ).scalars()
            )
        lines.append(
            DecisionLine(
                step=step.label,
                approver=_person(app, who),
                decision=task.status,
                at=_utc(task.decided_at),
                comment=task.comment or "",
                on_behalf_of=_person(app, task.on_behalf_of) if task.on_behalf_of else None,
            )
        )
    escalations = conn.execute(
        sa.select(EVENTS.c.at, EVENTS.c.payload).where(
            EVENTS.c.form == approval.form,
            EVENTS.c.record_id == approval.record_id,
            EVENTS.c.kind == "approval_escalated",
        )
    ).all()
    for row in escalations:
        payload = json.loads(row.payload)
        if payload.get("approval_id") != approval.id:
            continue
        lines.append(
            DecisionLine(
                step=payload.get("step", ""),
                approver=" → ".join(
                    [
                        "、".join(_person(app, u) for u in payload.get("from", [])),
                        "、".join(_person(app, u) for u in payload.get("to", [])),
                    ]
                ),
                decision="escalated",
                at=_utc(row.at),
                comment="",
            )
        )
    lines.sort(key=lambda line: line.at or datetime.max.replace(tzinfo=UTC))
    route = plan.route_label
    if plan.added_labels:
        route += " + " + " + ".join(plan.added_labels)
    return ApprovalDocument(
        app_title=app.title,
        form_title=form.title,
        record_label=plan.record_label or f"{form.title} #{approval.record_id}",
        fields=tuple(fields),
        route=route,
        outcome=approval.status,
        submitter=_person(app, approval.submitter or ""),
        started_at=_utc(approval.started_at) or datetime.now(UTC),
        finished_at=_utc(approval.finished_at) or _utc(approval.started_at) or datetime.now(UTC),
        lines=tuple(lines),
        chain_hash=approval.outcome_hash or "",
        timezone=app.timezone,
        lang=lang,
    )


def _person(app: App, user: str) -> str:
    person = app.people.get(user)
    return f"{person.name} ({user})" if person is not None else user
