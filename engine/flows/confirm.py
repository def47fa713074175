"""Confirmation gates at run time: the people of each role named by a transition's ``confirm:``
confirm the current value of a field; the transition fires only when every role confirmed that
same value; any change of the field (or of a ``reopen_on`` field) re-opens the gate.

Nothing is stored but events on the record's timeline, so the gate is as tamper-evident as the
rest of the history: ``confirmed`` (who, as which role, which value) and ``confirm_reopened``
(which change made the standing confirmations lapse). The confirmations standing for a gate are
those after its last re-opening and after the transition last fired (leaving the gate uses
them up), and only those of the field's current value count.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from engine.forms.records import Actor, RecordEvent, RecordService
from engine.forms.rows import plain
from engine.forms.validate import is_blank
from engine.model.errors import (
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
    ValidationFailed,
    refused,
)
from engine.model.i18n import Text
from engine.model.permissions import Resource, require
from engine.model.spec import App, ConfirmSpec, FormSpec, TransitionSpec
from engine.store.events import EventIn, append_events

__all__ = [
    "CONFIRMED",
    "REOPENED",
    "Confirmation",
    "GateStatus",
    "agreed_values",
    "confirm_gate",
    "gate_refusal",
    "gate_status",
    "gates_of",
    "reopen_gates",
    "standing_many",
]

CONFIRMED = "confirmed"
REOPENED = "confirm_reopened"


@dataclass(frozen=True)
class Confirmation:
    role: str
    user: str
    value: Any  # as stored in the event (dates as ISO text)
    at: datetime | None = None


@dataclass(frozen=True)
class GateStatus:
    """Where a record stands at one gate: the value now, who confirmed it, who has not."""

    transition: str
    field: str
    value: Any
    confirmed: Mapping[str, Confirmation]
    missing: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "transition": self.transition,
            "field": self.field,
            "value": self.value,
            "confirmed": [
                {"role": c.role, "user": c.user, "value": c.value, "at": plain(c.at)}
                for c in self.confirmed.values()
            ],
            "missing": list(self.missing),
            "open": bool(self.missing),
        }


def standing(
    conn: sa.Connection, metadata: sa.MetaData, form: str, record_id: int
) -> dict[str, list[Confirmation]]:
    """Per gated transition, the confirmations that have not lapsed, oldest first."""
    return standing_many(conn, metadata, form, [record_id]).get(record_id, {})


@functools.lru_cache(maxsize=8)
def _gate_events(events: sa.Table) -> sa.Select[Any]:
    """The events that open and close gates, of the records ``:ids`` of ``:form``; built
    once per events table (a statement built per call pays its cache key each time)."""
    return (
        sa.select(events.c.record_id, events.c.at, events.c.actor, events.c.kind, events.c.payload)
        .where(
            events.c.form == sa.bindparam("form"),
            events.c.record_id.in_(sa.bindparam("ids", expanding=True)),
            events.c.kind.in_((CONFIRMED, REOPENED, "transition")),
        )
        .order_by(events.c.record_id, events.c.id)
    )


def standing_many(
    conn: sa.Connection, metadata: sa.MetaData, form: str, record_ids: Sequence[int]
) -> dict[int, dict[str, list[Confirmation]]]:
    """:func:`standing` for several records of ``form`` in one query (the worklist)."""
    if not record_ids:
        return {}
    rows = conn.execute(
        _gate_events(metadata.tables["sl_events"]), {"form": form, "ids": list(record_ids)}
    ).all()
    found: dict[int, dict[str, list[Confirmation]]] = {}
    for row in rows:
        out = found.setdefault(row.record_id, {})
        payload = json.loads(row.payload)
        if row.kind == "transition":
            out.pop(payload.get("name"), None)  # the gate was passed: its confirmations used
        elif row.kind == REOPENED:
            out.pop(payload.get("transition"), None)
        else:
            out.setdefault(payload["transition"], []).append(
                Confirmation(payload["role"], row.actor, payload["value"], row.at)
            )
    return found


def agreed_values(
    records: RecordService, conn: sa.Connection, form: FormSpec, record: Mapping[str, Any]
) -> dict[str, Any]:
    """The values people agreed at a gate, by field: ``{field: value}`` for each gate the
    record passed with every role of its ``confirm.by`` confirming that value (what the
    ``confirmed`` events before the gated transition say), as long as the field still holds it
    and the record has not come back to wait at the gate (a source state of the transition)
    since, nor the gate re-opened. What customer messages may state as agreed (``agreed``)."""
    machine = records.app.state_machines.get(form.name)
    gated = {t.name: t for t in (machine.transitions if machine else ()) if t.confirm}
    if not gated or record.get("id") is None:
        return {}
    events = records.metadata.tables["sl_events"]
    rows = conn.execute(
        sa.select(events.c.kind, events.c.payload)
        .where(
            events.c.form == form.name,
            events.c.record_id == record["id"],
            events.c.kind.in_((CONFIRMED, REOPENED, "transition")),
        )
        .order_by(events.c.id)
    ).all()
    waiting: dict[str, dict[str, Any]] = {}  # transition -> role -> value confirmed last
    passed: dict[str, Any] = {}  # transition -> the value agreed when it fired
    for row in rows:
        payload = json.loads(row.payload)
        if row.kind == CONFIRMED:
            waiting.setdefault(payload.get("transition"), {})[payload.get("role")] = payload.get(
                "value"
            )
            continue
        if row.kind == REOPENED:
            waiting.pop(payload.get("transition"), None)
            passed.pop(payload.get("transition"), None)
            continue
        name = payload.get("name")
        for gate in gated.values():
            if gate.name == name:
                values = {waiting.get(name, {}).get(role, None) for role in _spec(gate).by}
                value = values.pop() if len(values) == 1 else None
                if is_blank(value):
                    passed.pop(name, None)
                else:
                    passed[name] = value
            elif payload.get("to") in gate.sources:
                passed.pop(gate.name, None)  # back at the gate: to be agreed again
        waiting.pop(name, None)
    out: dict[str, Any] = {}
    for name, value in passed.items():
        field = _spec(gated[name]).field
        if plain(record.get(field)) == value:
            out[field] = value
    return out


def gate_status(
    transition: TransitionSpec, record: Mapping[str, Any], confirmations: list[Confirmation]
) -> GateStatus:
    """The gate of ``transition`` for ``record``, given the confirmations standing for it."""
    spec = _spec(transition)
    value = plain(record.get(spec.field))
    confirmed = {c.role: c for c in confirmations if c.value == value and not is_blank(value)}
    return GateStatus(
        transition.name,
        spec.field,
        value,
        {r: confirmed[r] for r in spec.by if r in confirmed},
        tuple(r for r in spec.by if r not in confirmed),
    )


def gates_of(
    records: RecordService,
    conn: sa.Connection,
    form: FormSpec,
    record: Mapping[str, Any],
    transitions: Sequence[TransitionSpec] | None = None,
) -> dict[str, GateStatus]:
    """The gates of the record's form, by transition name: every gate, or those among
    ``transitions`` (empty when there is none, and then nothing is read)."""
    if transitions is None:
        machine = records.app.state_machines.get(form.name)
        transitions = machine.transitions if machine else ()
    gated = [t for t in transitions if t.confirm]
    if not gated:
        return {}
    found = standing(conn, records.metadata, form.name, record["id"])
    return {t.name: gate_status(t, record, found.get(t.name, [])) for t in gated}


def gate_refusal(
    app: App, form: FormSpec, transition: TransitionSpec, gate: GateStatus | None
) -> FieldError | None:
    """Why ``transition`` may not fire yet because of its gate (None: nothing missing)."""
    if transition.confirm is None or (gate is not None and not gate.missing):
        return None
    missing = gate.missing if gate is not None else transition.confirm.by
    names = [app.roles[r].label if r in app.roles else r for r in missing]
    label = form.by_name[transition.confirm.field].label
    return FieldError(
        transition.confirm.field,
        "unconfirmed",
        Text(
            f"{label} must be confirmed by {', '.join(names)} before '{transition.label}'",
            f"执行“{transition.label}”前，{'、'.join(names)}须确认{label}",
        ),
    )


def confirm_gate(
    records: RecordService,
    form_name: str,
    record_id: int,
    transition_name: str,
    actor: Actor,
    role: str | None = None,
    value: Any = None,
) -> GateStatus:
    """``actor`` confirms the current value at the gate of ``transition_name`` (as ``role``,
    or as the first role of the gate they hold that has not confirmed yet). With ``value`` (the
    value the person saw) the confirmation is refused when the record holds another one."""
    form = records.form(form_name)
    machine = records.app.state_machines.get(form.name)
    transition = (
        next(
            (t for t in machine.transitions if t.name == transition_name and t.confirm),
            None,
        )
        if machine
        else None
    )
    if transition is None:
        raise NotFound(f"{form.name} gate", None)
    require(records.app, actor, "confirm", Resource(form, transition=transition))
    spec = _spec(transition)
    with records.engine.begin() as conn:
        record = records.row(conn, form, record_id, lock=True)
        gate = gates_of(records, conn, form, record)[transition.name]
        _check_state(records.app, form, transition, record["state"])
        chosen = _role(records.app, transition, actor, role, gate)
        label = form.by_name[spec.field].label
        if is_blank(gate.value):
            raise _refused(
                Invalid,
                spec.field,
                "required",
                f"{label} must be filled before it can be confirmed",
                f"请先填写{label}再确认",
            )
        if value is not None and plain(value) != gate.value:
            raise _refused(
                Conflict,
                spec.field,
                "changed",
                f"{label} is now {gate.value}, not {plain(value)}: reload and confirm again",
                f"{label}已变为 {gate.value}（不是 {plain(value)}），请刷新后重新确认",
            )
        if chosen in gate.confirmed:
            return gate
        payload = {
            "transition": transition.name,
            "field": spec.field,
            "role": chosen,
            "value": gate.value,
        }
        now = records.env().now()
        append_events(
            conn,
            records.metadata,
            [EventIn(actor.username, form.name, record_id, CONFIRMED, payload)],
            now,
        )
        return gates_of(records, conn, form, record)[transition.name]


def reopen_gates(records: RecordService, conn: sa.Connection, event: RecordEvent) -> None:
    """A listener of the records service: a change of a gate's field (or of its ``reopen_on``
    fields) re-opens the gate; when confirmations were standing, say so on the timeline."""
    if event.kind not in ("changed", "transition") or not event.changes:
        return
    machine = records.app.state_machines.get(event.form)
    gated = [
        t
        for t in (machine.transitions if machine else ())
        if t.confirm and set(t.confirm.watched) & set(event.changes)
    ]
    if not gated:
        return
    found = standing(conn, records.metadata, event.form, event.record_id)
    reopened = [
        EventIn(
            event.actor,
            event.form,
            event.record_id,
            REOPENED,
            {
                "transition": t.name,
                "field": _spec(t).field,
                "changed": sorted(set(_spec(t).watched) & set(event.changes)),
                "lapsed": [
                    {"role": c.role, "user": c.user, "value": c.value} for c in found[t.name]
                ],
            },
        )
        for t in gated
        if found.get(t.name)
    ]
    if reopened:
        append_events(conn, records.metadata, reopened, records.env().now())


# ---------------------------------------------------------------------- checks


def _spec(transition: TransitionSpec) -> ConfirmSpec:
    assert transition.confirm is not None
    return transition.confirm


def _check_state(app: App, form: FormSpec, transition: TransitionSpec, state: str) -> None:
    if state in transition.sources:
        return
    machine = app.state_machines[form.name]
    labels = {s.name: s.label for s in machine.states}
    raise _refused(
        Conflict,
        None,
        "wrong_state",
        f"'{transition.label}' cannot be confirmed while the record is "
        f"'{labels.get(state, state)}'",
        f"记录处于“{labels.get(state, state)}”状态，不能确认“{transition.label}”",
    )


def _role(
    app: App, transition: TransitionSpec, actor: Actor, asked: str | None, gate: GateStatus
) -> str:
    """The role ``actor`` confirms as; 403 when they hold none of the gate's roles."""
    by = _spec(transition).by
    held = [r for r in by if r in actor.roles or "*" in actor.roles]
    if asked is not None:
        held = [r for r in held if r == asked]
    if not held:
        names = [app.roles[r].label if r in app.roles else r for r in by]
        raise _refused(
            Forbidden,
            None,
            "forbidden",
            f"only {', '.join(names)} may confirm at '{transition.label}'",
            f"只有{'、'.join(names)}可以确认“{transition.label}”",
        )
    return next((r for r in held if r not in gate.confirmed), held[0])


def _refused(
    kind: type[ValidationFailed], field: str | None, code: str, en: str, zh: str
) -> ValidationFailed:
    return refused(kind, code, en, zh, field)
