"""What waits for whom: the approval inbox, a record's approvals, delegation periods."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.flows.approvals.plan import plan_of
from engine.flows.approvals.service import (
    APPROVALS,
    ASSIGNEES,
    DELEGATIONS,
    TASKS,
    delegators,
    sla_colour,
)
from engine.model.calendar import WorkCalendar
from engine.model.errors import BadRequest, Invalid, refused
from engine.model.spec import App


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _assignees(conn: sa.Connection, task_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {t: [] for t in task_ids}
    if task_ids:
        rows = conn.execute(
            sa.select(ASSIGNEES.c.task_id, ASSIGNEES.c.user)
            .where(ASSIGNEES.c.task_id.in_(task_ids))
            .order_by(ASSIGNEES.c.user)
        )
        for row in rows:
            out[row.task_id].append(row.user)
    return out


def inbox(
    conn: sa.Connection,
    app: App,
    calendar: WorkCalendar,
    user: str,
    now: datetime,
    forms: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Open tasks ``user`` may decide — their own and those of people they stand in for —
    oldest first, with how long each has waited and its SLA colour."""
    principals = [user, *delegators(conn, user, now)]
    mine = sa.select(ASSIGNEES.c.task_id).where(ASSIGNEES.c.user.in_(principals))
    query = (
        sa.select(
            TASKS,
            APPROVALS.c.form,
            APPROVALS.c.record_id,
            APPROVALS.c.plan,
            APPROVALS.c.approval,
            APPROVALS.c.submitter,
        )
        .join(APPROVALS, APPROVALS.c.id == TASKS.c.approval_id)
        .where(TASKS.c.status == "open", APPROVALS.c.status == "active", TASKS.c.id.in_(mine))
        .order_by(TASKS.c.created_at, TASKS.c.id)
        .limit(500)
    )
    rows = conn.execute(query).all()
    people = _assignees(conn, [r.id for r in rows])
    out = []
    for row in rows:
        if forms is not None and row.form not in forms:
            continue
        assigned = people[row.id]
        created, due = _utc(row.created_at) or now, _utc(row.due_at)
        plan = plan_of(row)
        step = plan.steps[row.step]
        out.append(
            {
                "id": row.id,
                "approval_id": row.approval_id,
                "form": row.form,
                "record_id": row.record_id,
                "record_label": plan.record_label,
                "route": plan.route,
                "route_label": plan.route_label,
                "step": step.name,
                "step_label": step.label,
                "assignees": assigned,
                "on_behalf_of": None
                if user in assigned
                else next((p for p in assigned if p in principals), None),
                "submitter": row.submitter,
                "created_at": created,
                "due_at": due,
                "escalations": row.escalations,
                "waited_hours": round((now - created).total_seconds() / 3600, 2),
                "waited_business_hours": round(calendar.business_hours_between(created, now), 2),
                "sla": sla_colour(due, _utc(row.remind_at), now, created),
                # filed or submitted it: deciding would be refused (403)
                "self_submitted": row.submitter == user or user in plan.excluded_for(row.submitter),
                "can_return": plan.can_return,
            }
        )
    return out


def record_approvals(conn: sa.Connection, form: str, record_id: int) -> list[dict[str, Any]]:
    """Every approval of a record, newest first, with its tasks (for the record page)."""
    approvals = conn.execute(
        sa.select(APPROVALS)
        .where(APPROVALS.c.form == form, APPROVALS.c.record_id == record_id)
        .order_by(APPROVALS.c.id.desc())
    ).all()
    ids = [a.id for a in approvals]
    tasks = (
        conn.execute(
            sa.select(TASKS)
            .where(TASKS.c.approval_id.in_(ids))
            .order_by(TASKS.c.step, TASKS.c.slot)
        ).all()
        if ids
        else []
    )
    people = _assignees(conn, [t.id for t in tasks])
    out = []
    for a in approvals:
        plan = plan_of(a)
        steps = plan.steps
        out.append(
            {
                "id": a.id,
                "approval": a.approval,
                "route": a.route,
                "route_label": plan.route_label,
                "added": list(plan.added_labels),
                "status": a.status,
                "step": steps[a.step].label if a.step < len(steps) else None,
                "submitter": a.submitter,
                "excluded": plan.excluded_for(a.submitter),
                "started_at": _utc(a.started_at),
                "finished_at": _utc(a.finished_at),
                "record_file": a.record_file,
                "can_return": plan.can_return,
                "tasks": [
                    {
                        "id": t.id,
                        "step": steps[t.step].label,
                        "status": t.status,
                        "assignees": people[t.id],
                        "due_at": _utc(t.due_at),
                        "escalations": t.escalations,
                        "decided_by": t.decided_by,
                        "on_behalf_of": t.on_behalf_of,
                        "decided_at": _utc(t.decided_at),
                        "comment": t.comment,
                    }
                    for t in tasks
                    if t.approval_id == a.id
                ],
            }
        )
    return out


def _when(raw: Any, field: str) -> datetime:
    try:
        at = datetime.fromisoformat(str(raw))
    except ValueError:
        raise refused(
            Invalid,
            "bad_datetime",
            f"{field}: not a date-time (YYYY-MM-DDTHH:MM)",
            f"{field}：不是有效的日期时间（YYYY-MM-DDTHH:MM）",
            field,
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def add_delegation(
    conn: sa.Connection, app: App, user: str, data: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """``user`` names a delegate who may decide their tasks between ``starts`` and ``ends``."""
    if not isinstance(data, Mapping):
        raise refused(BadRequest, "bad_body", "send a JSON object", "请求体必须是 JSON 对象")
    delegate = data.get("delegate")
    if not isinstance(delegate, str) or delegate not in app.people:
        raise refused(
            Invalid,
            "unknown_person",
            "delegate: not a person in the org chart",
            "delegate：组织架构中没有此人",
            "delegate",
        )
    if delegate == user:
        raise refused(
            Invalid,
            "self_delegation",
            "delegate: you cannot delegate to yourself",
            "delegate：不能委托给自己",
            "delegate",
        )
    starts = _when(data.get("starts", now.isoformat()), "starts")
    ends = _when(data.get("ends"), "ends")
    if ends <= starts:
        raise refused(
            Invalid, "bad_range", "ends: must be after starts", "ends：必须晚于 starts", "ends"
        )
    reason = data.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise refused(
            Invalid,
            "bad_reason",
            "reason: text up to 500 characters",
            "reason：最多 500 字",
            "reason",
        )
    new_id = conn.execute(
        DELEGATIONS.insert().values(
            user=user,
            delegate=delegate,
            starts_at=starts,
            ends_at=ends,
            reason=reason,
            created_by=user,
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return {
        "id": new_id,
        "user": user,
        "delegate": delegate,
        "starts": starts,
        "ends": ends,
        "reason": reason,
    }


def list_delegations(conn: sa.Connection, user: str) -> list[dict[str, Any]]:
    """Delegations ``user`` gave or received, not revoked."""
    rows = conn.execute(
        sa.select(DELEGATIONS)
        .where(
            sa.or_(DELEGATIONS.c.user == user, DELEGATIONS.c.delegate == user),
            DELEGATIONS.c.revoked_at.is_(None),
        )
        .order_by(DELEGATIONS.c.starts_at)
    ).all()
    return [
        {
            "id": r.id,
            "user": r.user,
            "delegate": r.delegate,
            "starts": _utc(r.starts_at),
            "ends": _utc(r.ends_at),
            "reason": r.reason,
        }
        for r in rows
    ]


def revoke_delegation(conn: sa.Connection, delegation_id: int, user: str, now: datetime) -> bool:
    result = conn.execute(
        DELEGATIONS.update()
        .where(
            DELEGATIONS.c.id == delegation_id,
            DELEGATIONS.c.user == user,
            DELEGATIONS.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return result.rowcount > 0
