"""State machines at run time: which transitions a person may fire on a record, and firing
them with every check from the YAML — the state they leave from, the roles that may fire them,
the fields they require and their guard expression. A refusal always says why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.expressions import EvaluationError
from engine.flows.confirm import GateStatus, gate_refusal, gates_of
from engine.forms.records import Actor, RecordChecks, RecordService, check_version
from engine.forms.validate import is_blank
from engine.model.errors import Conflict, FieldError, Forbidden, Invalid, NotFound, ValidationFailed
from engine.model.i18n import Text
from engine.model.permissions import Resource, allowed, refusal
from engine.model.spec import FormSpec, StateMachineSpec, TransitionSpec
from engine.outbox import jobs

__all__ = ["Refusal", "available_transitions", "check_transition", "fire_transition"]


@dataclass(frozen=True)
class Refusal:
    """Why a transition may not fire now: the kind of refusal and field errors."""

    kind: type[ValidationFailed]
    errors: tuple[FieldError, ...]


def _machine(records: RecordChecks, form: FormSpec) -> StateMachineSpec:
    machine = records.app.state_machines.get(form.name)
    if machine is None:
        raise NotFound(f"{form.name} has no states")
    return machine


def _transition(machine: StateMachineSpec, name: str) -> TransitionSpec:
    for transition in machine.transitions:
        if transition.name == name:
            return transition
    raise NotFound(f"transition {name}")


def check_transition(
    records: RecordChecks,
    form: FormSpec,
    record: Mapping[str, Any],
    transition: TransitionSpec,
    actor: Actor,
    loaded: Mapping[str, Any],
    gate: GateStatus | None = None,
) -> Refusal | None:
    """None when ``actor`` may fire ``transition`` on ``record`` now, else the reasons.
    A transition with a confirmation gate needs ``gate`` (where the record stands at it);
    ``record`` holds the child rows its guard counts."""
    machine = _machine(records, form)
    state = record["state"]
    if not allowed(records.app, actor, "transition", Resource(form, transition=transition)):
        return Refusal(
            Forbidden,
            (
                FieldError(
                    None,
                    "forbidden",
                    refusal(records.app, "transition", Resource(form, transition=transition)),
                ),
            ),
        )
    if state not in transition.sources:
        labels = {s.name: s.label for s in machine.states}
        return Refusal(
            Conflict,
            (
                FieldError(
                    None,
                    "wrong_state",
                    Text(
                        f"'{transition.label}' is not possible while the record is "
                        f"'{labels.get(state, state)}'",
                        f"记录处于“{labels.get(state, state)}”状态，不能执行“{transition.label}”",
                    ),
                ),
            ),
        )
    missing = [
        form.by_name[f] for f in transition.require if f in form.by_name and is_blank(record.get(f))
    ]
    if missing:
        return Refusal(
            Invalid,
            tuple(
                FieldError(
                    f.name,
                    "required",
                    Text(
                        f"{f.label} must be filled before '{transition.label}'",
                        f"执行“{transition.label}”前必须填写{f.label}",
                    ),
                )
                for f in missing
            ),
        )
    if transition.guard is not None:
        context = records.context(form, record, state, record["id"], loaded)
        try:
            ok = bool(transition.guard(context, records.env()))
        except EvaluationError as exc:
            return Refusal(Invalid, (FieldError(None, "guard_error", exc.message),))
        if not ok:
            message = transition.guard_message or f"'{transition.label}' is not allowed now"
            return Refusal(Invalid, (FieldError(None, "guard", Text(message, message)),))
    unconfirmed = gate_refusal(records.app, form, transition, gate)
    if unconfirmed is not None:
        return Refusal(Invalid, (unconfirmed,))
    return None


def _judged(
    records: RecordService,
    conn: Any,
    form: FormSpec,
    record: Mapping[str, Any],
    transitions: Sequence[TransitionSpec],
) -> tuple[dict[str, Any], dict[str, GateStatus]]:
    """The record with the child rows the guards of ``transitions`` count, and the gates of
    those that have one (nothing is read for a transition without guard or gate)."""
    tables = {f.name for f in form.fields if f.type == "table"}
    counted = {n.split(".")[0] for t in transitions if t.guard is not None for n in t.guard.names}
    rows = records.child_rows(conn, form, record["id"], sorted(counted & tables))
    return {**record, **rows}, gates_of(records, conn, form, record, transitions)


def available_transitions(
    records: RecordService, form_name: str, record: Mapping[str, Any], actor: Actor
) -> list[tuple[TransitionSpec, Refusal | None]]:
    """The transitions leaving the record's state that ``actor`` may fire at all, each with its
    refusal now (None = allowed): pages show the allowed ones as buttons and the others with
    their reason. Transitions the actor may never fire (``by: system``, other roles) are left
    out: nobody sees a button they may not press."""
    form = records.form(form_name)
    machine = records.app.state_machines.get(form.name)
    if machine is None:
        return []
    offered = [
        t
        for t in machine.transitions
        if record["state"] in t.sources
        and allowed(records.app, actor, "transition", Resource(form, transition=t))
    ]
    with records.reads.connect() as conn:
        loaded = records.load_refs(conn, form, record)
        judged, gates = _judged(records, conn, form, record, offered)
    return [
        (t, check_transition(records, form, judged, t, actor, loaded, gates.get(t.name)))
        for t in offered
    ]


def fire_transition(
    records: RecordService,
    form_name: str,
    record_id: int,
    name: str,
    actor: Actor,
    expected_version: int | None = None,
    conn: Any = None,
    read_back: bool = True,
) -> dict[str, Any] | None:
    """Fire ``name`` on the record (all checks on the server); returns the record after
    (unless ``read_back`` is false). With ``conn`` it runs inside the caller's transaction."""
    form = records.form(form_name)
    transition = _transition(_machine(records, form), name)
    with records.transaction(conn) as conn, jobs.batched(conn):  # its listeners' jobs: one insert
        record = records.row(conn, form, record_id, lock=True)
        check_version(record, expected_version)
        loaded = records.load_refs(conn, form, record)
        judged, gates = _judged(records, conn, form, record, [transition])
        refusal = check_transition(
            records, form, judged, transition, actor, loaded, gates.get(transition.name)
        )
        if refusal is not None:
            raise refusal.kind(list(refusal.errors))
        values = None
        if transition.sets:  # computed fields may read any child table: load them all
            tables = [f.name for f in form.fields if f.type == "table"]
            whole = {**judged, **records.child_rows(conn, form, record_id, tables)}
            values = records.transition_values(form, whole, transition.sets, loaded)
        records.change_state(conn, form, record, transition.name, transition.target, actor, values)
        return records.read(conn, form, record_id) if read_back else None
