"""What the record page shows beside the record, and the open-task count of the navigation:
the approvals panel, the fields shown beside the field they are compared with, where each gate
stands, and the hints from history. Plain functions of the configuration and the database
(blocking: callers run them in the thread pool); the pages that act on them (deciding a task,
confirming a gate) build on :mod:`engine.web.pages_records`, which builds on this module."""

from __future__ import annotations

from typing import Any

from engine.accounts.auth import User
from engine.expressions import EvaluationError
from engine.flows.approvals.inbox import record_approvals
from engine.flows.approvals.service import delegators
from engine.flows.confirm import gates_of
from engine.flows.worklist import SHOWN, CountCache, Worklist, worklist
from engine.insights.hints import record_hints
from engine.model import clock
from engine.model.permissions import Resource, allowed
from engine.model.spec import FormSpec
from engine.runtime import LiveApp
from engine.web.templating import Formatter

__all__ = ["approval_panel", "compare_panel", "gate_panel", "hint_panel", "open_task_count"]


# ---------------------------------------------------------------------------- approvals


MENU_CAP = 1000  # the menu says "999+" from here on (templates/base.html)
MENU_COUNTS = CountCache()  # kept while the event log stands still (see CountCache)


def open_task_count(current: LiveApp, user: User) -> int:
    """How much waits for ``user`` (every section of their worklist: approval tasks, gates,
    to-dos, records their roles move on): counts only, for the menu of every page; records in
    a form's states are counted up to :data:`MENU_CAP`; kept per person while the event log
    stands still (:class:`~engine.flows.worklist.CountCache`)."""
    with current.records.reads.connect() as conn:
        return MENU_COUNTS.total(conn, current.app, current.metadata, user, clock.now(), MENU_CAP)


def my_work(current: LiveApp, user: User, shown: int = SHOWN) -> Worklist:
    """Everything waiting for ``user`` (:func:`~engine.flows.worklist.worklist`), at most
    ``shown`` records per group: the home page's cards and the /tasks page."""
    with current.records.reads.connect() as conn:
        return worklist(
            conn,
            current.app,
            current.records.runtime.calendar,
            current.metadata,
            user,
            clock.now(),
            shown=shown,
        )


def approval_panel(current: LiveApp, form: str, record_id: int, user: User) -> list[dict[str, Any]]:
    """The record's approvals, each task marked ``may_decide`` when the viewer is one of its
    assignees or stands in for one (the server still checks everything on the decision)."""
    with current.records.reads.connect() as conn:
        approvals = record_approvals(conn, form, record_id)
        principals = {user.username, *delegators(conn, user.username, clock.now())}
    for approval in approvals:
        for task in approval["tasks"]:
            task["may_decide"] = (
                approval["status"] == "active"
                and task["status"] == "open"
                and bool(principals & set(task["assignees"]))
                and approval["submitter"] != user.username  # never one's own submission
                and user.username not in (approval.get("excluded") or ())  # nor its creator
            )
    return approvals


# ---------------------------------------------------------------------------- confirmation


def compare_panel(
    current: LiveApp, form: FormSpec, record: dict[str, Any], fmt: Formatter
) -> dict[str, dict[str, Any]]:
    """For each field with ``compare:``, the field beside it and whether to highlight them."""
    specs = [f for f in form.fields if f.compare is not None]
    if not specs:
        return {}
    records = current.records
    with records.reads.connect() as conn:
        loaded = records.load_refs(conn, form, record)
    context = records.context(form, record, record.get("state"), record.get("id"), loaded)
    out = {}
    for spec in specs:
        compare = spec.compare
        assert compare is not None
        other = form.by_name[compare.with_field]
        try:
            lit = compare.highlight is not None and bool(compare.highlight(context, records.env()))
        except EvaluationError:
            lit = False
        out[spec.name] = {
            "with": other,
            "shown": fmt.value(other, record.get(other.name)),
            "highlight": lit,
            "message": compare.message if lit else None,
        }
    return out


def gate_panel(
    current: LiveApp, form: FormSpec, record: dict[str, Any], user: User, fmt: Formatter
) -> list[dict[str, Any]]:
    """The gates of transitions that leave the record's state, as the page shows them."""
    machine = current.app.state_machines.get(form.name)
    if machine is None or not any(t.confirm for t in machine.transitions):
        return []
    with current.records.reads.connect() as conn:
        gates = gates_of(current.records, conn, form, record)
    out = []
    for transition in machine.transitions:
        gate = gates.get(transition.name)
        if gate is None or transition.confirm is None or record["state"] not in transition.sources:
            continue
        spec = form.by_name[gate.field]
        may_confirm = allowed(
            current.app, user, "confirm", Resource(form, transition=transition), shown_only=True
        )
        roles = []
        for role in transition.confirm.by:
            done = gate.confirmed.get(role)
            roles.append(
                {
                    "role": role,
                    "label": fmt.role(role),
                    "user": fmt.person(done.user) if done else None,
                    "at": fmt.datetime(done.at) if done else None,
                    "can": may_confirm
                    and done is None
                    and (role in user.roles or "*" in user.roles),
                }
            )
        out.append(
            {
                "transition": transition,
                "field_label": spec.label,
                "value": gate.value,
                "shown": fmt.value(spec, gate.value),
                "blank": gate.value in (None, ""),
                "roles": roles,
                "missing": [fmt.role(r) for r in gate.missing],
            }
        )
    return out


# ---------------------------------------------------------------------------- hints


def hint_panel(
    current: LiveApp, form: FormSpec, record: dict[str, Any], lang: str
) -> list[dict[str, Any]]:
    """The form's hints from history that hold for this record, as text and evidence rows."""
    if not form.hints:
        return []
    found = record_hints(current.records.engine, current.metadata, current.app, form, record)
    out = []
    for hint in found:
        state = current.app.state_machines[form.name].state(hint.spec.state).label
        label = form.field(hint.spec.date).label
        labels = [_match_label(current, form, p) for p in hint.spec.match]
        n = len(hint.evidence)
        if lang == "zh":
            side = "早" if hint.early else "晚"
            text = (
                f"与本记录{'、'.join(labels)}相同的最近 {n} 条{form.title}，"
                f"进入“{state}”都比{label}{side}至少 {hint.days} 天；建议预留缓冲。"
            )
        else:
            side = "before" if hint.early else "after"
            text = (
                f"The last {n} {form.title} records with the same {', '.join(labels)} all reached "
                f"“{state}” at least {hint.days} days {side} their {label}; consider a buffer."
            )
        out.append(
            {
                "name": hint.spec.name,
                "text": text,
                "label": label,
                "state": state,
                "evidence": hint.evidence,
            }
        )
    return out


def _match_label(current: LiveApp, form: FormSpec, path: str) -> str:
    head, _, tail = path.partition(".")
    field = form.field(head)
    if not tail or field.ref_form is None:
        return field.label
    return f"{field.label}·{current.app.forms[field.ref_form].field(tail).label}"
