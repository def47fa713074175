"""Config tests (``tests/*.yaml``), judged without a database by the code the running app uses.

Each case goes through three stages:

1. **build** — the ``given`` values become a new record, checked by
   :meth:`RecordChecks.check_new` exactly as the records service checks a new record (values,
   defaults, required fields, child rows, computed fields, rules). A ref given as a mapping is
   the record it points at, built the same way (``customer: {tier: VIP}``). The given values
   are the record's values as the engine stores them, so field permissions (readonly,
   ``editable_by``, ``editable_in``) are not what a case tests; ``today`` fixes ``today()``.
2. **route** — the approval route, added steps and approvers, from
   :mod:`engine.flows.approvals.routing`; ``as_user`` is the person who filed and submitted
   the record (never asked), without it nobody is.
3. **judge** — every expectation is compared with what happened; a failed expectation is a
   :class:`Mismatch` with the expected and the actual value. A transition is judged by
   :func:`engine.flows.machine.check_transition` from ``state`` for ``as_role`` or
   ``as_user`` (a person of the org chart, with all their roles); without either, the engine
   acts (roles are not checked, ``by: system`` transitions may fire).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from engine.expressions import EvalEnv, EvaluationError
from engine.expressions.evaluate import pretend_now
from engine.flows.approvals.routing import (
    RoutePlan,
    approval_context,
    plan_route,
    step_candidates,
    step_slots,
)
from engine.flows.confirm import Confirmation, gate_status
from engine.flows.machine import check_transition
from engine.forms.records import SYSTEM_ACTOR, RecordChecks
from engine.forms.rows import plain
from engine.model.errors import FieldError
from engine.model.i18n import Lang, Text
from engine.model.permissions import Resource, allowed, refusal
from engine.model.spec import App, ApprovalSpec, ConfigTestSpec, FormSpec

__all__ = ["CaseResult", "Mismatch", "run_case", "run_config_tests"]

RECORD_WIDE = "(record)"  # how an error that names no field is listed

Loaded = dict[str, dict[str, Any] | None]


@dataclass(frozen=True)
class Mismatch:
    """One expectation that did not hold: what the case expected and what happened."""

    check: str  # valid, errors, values.F, route, added, steps, approvers.S, given, run, ...
    expected: Any
    actual: Any
    reasons: tuple[Text, ...] = ()  # why, when the engine says (a refusal, a refused value)

    def to_json(self, lang: Lang) -> dict[str, Any]:
        out = {"check": self.check, "expected": self.expected, "actual": self.actual}
        if self.reasons:
            out["reasons"] = [r(lang) for r in self.reasons]
        return out


@dataclass
class BuiltRecord:
    """The case's record as the records service judged it."""

    form: FormSpec
    state: str | None
    values: dict[str, Any]
    errors: list[FieldError]
    loaded: Loaded
    refused_given: list[FieldError] = field(default_factory=list)  # in referenced records
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # child rows given

    def context(self, checks: RecordChecks) -> dict[str, Any]:
        """The names expressions see, as at run time."""
        return checks.context(self.form, self.values, self.state, None, self.loaded)

    def error_fields(self) -> list[str]:
        return sorted({_field_root(e.field) for e in self.errors})

    def as_row(self, record_id: int) -> dict[str, Any]:
        """The record as the database row a ref loads (every column, blanks included)."""
        row: dict[str, Any] = {f.name: None for f in self.form.fields if f.type != "table"}
        row.update({k: v for k, v in self.values.items() if k in row})
        row.update(id=record_id, state=self.state)
        return row

    def given_refused(self, given: Mapping[str, Any]) -> list[FieldError]:
        """Errors about values the case gave (a referenced record may leave out the rest)."""
        return [e for e in self.errors if _field_root(e.field) in given]


@dataclass(frozen=True)
class RouteSeen:
    """The route the record takes and the people asked at each step."""

    plan: RoutePlan
    approvers: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.plan.route.name,
            "added": [r.name for r in self.plan.added],
            "steps": [s.name for s in self.plan.steps],
            "approvers": self.approvers,
        }


@dataclass(frozen=True)
class CaseResult:
    spec: ConfigTestSpec
    mismatches: tuple[Mismatch, ...]
    errors: tuple[FieldError, ...]
    values: dict[str, Any]  # computed values and the values the case expects, shown
    route: RouteSeen | None
    warnings: tuple[Text, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_json(self, lang: Lang) -> dict[str, Any]:
        return {
            "file": self.spec.source,
            "line": self.spec.line,
            "case": self.spec.name,
            "form": self.spec.form,
            "passed": self.passed,
            "failures": [m.to_json(lang) for m in self.mismatches],
            "errors": [e.to_json(lang) for e in self.errors],
            "values": self.values,
            "route": self.route.to_json() if self.route else None,
            "warnings": [w(lang) for w in self.warnings],
        }


# ---------------------------------------------------------------------- running


def run_config_tests(app: App) -> list[CaseResult]:
    return [_run_or_explain(app, spec) for spec in app.tests]


def _run_or_explain(app: App, spec: ConfigTestSpec) -> CaseResult:
    """A case the engine cannot evaluate (a default expression failing) fails with the reason."""
    try:
        return run_case(app, spec)
    except EvaluationError as exc:
        return CaseResult(spec, (Mismatch("run", None, None, (exc.message,)),), (), {}, None)


def run_case(app: App, spec: ConfigTestSpec) -> CaseResult:
    today = _today_text(spec.today)
    now = pretend_now(today, app.timezone) if today else None
    checks = RecordChecks(app, now=(lambda: now) if now else None)
    record = build_record(checks, app.forms[spec.form], spec.given, _state_of(app, spec))
    env = checks.env()
    route = route_of(checks, record, _approval_for(app, spec), env, spec.as_user)
    mismatches = [
        *judge_given(record),
        *judge_validity(record, spec.expect),
        *judge_values(record, spec.expect, app.timezone),
        *judge_route(route, spec.expect),
        *judge_transitions(checks, record, spec),
        *judge_edits(checks, record, spec),
    ]
    return CaseResult(
        spec,
        tuple(mismatches),
        tuple(record.errors),
        _values_shown(record, spec.expect),
        route,
        tuple(dict.fromkeys(checks.runtime.warnings)),
    )


def _today_text(today: Any) -> str | None:
    if isinstance(today, date):
        return today.isoformat()
    return str(today) if today else None


def _state_of(app: App, spec: ConfigTestSpec) -> str | None:
    if spec.state:
        return spec.state
    machine = app.state_machines.get(spec.form)
    return machine.initial if machine else None


# ---------------------------------------------------------------------- build


def build_record(
    checks: RecordChecks,
    form: FormSpec,
    given: Mapping[str, Any],
    state: str | None,
    ids: Iterator[int] | None = None,
) -> BuiltRecord:
    """Judge ``given`` as a new record of ``form``; refs given as mappings become the records
    they point at (each gets a stand-in id)."""
    ids = ids if ids is not None else count(1)
    data = dict(given)
    rows: dict[str, dict[str, Any]] = {}
    refused: list[FieldError] = []
    for spec in form.fields:
        value = given.get(spec.name)
        if spec.type != "ref" or not isinstance(value, Mapping) or spec.ref_form is None:
            continue
        target = checks.app.forms[spec.ref_form]
        ref_id = next(ids)
        data[spec.name] = ref_id
        referenced = build_record(checks, target, value, checks.initial_state(target.name), ids)
        rows[spec.name] = referenced.as_row(ref_id)
        refused += [_prefixed(spec.name, e) for e in referenced.given_refused(value)]
        refused += [_prefixed(spec.name, e) for e in referenced.refused_given]
    draft, children, loaded = checks.check_new(
        form,
        data,
        SYSTEM_ACTOR,
        state,
        lambda values: _loaded_refs(checks.app, form, values, rows),
        lambda _values, _rows, _errors: None,  # uploads live in a database: not checked
    )
    return BuiltRecord(form, state, draft.values, draft.errors, loaded, refused, children)


def _loaded_refs(
    app: App, form: FormSpec, values: Mapping[str, Any], rows: Mapping[str, dict[str, Any]]
) -> Loaded:
    """What ``load_refs`` finds: the records built from the case, or — for a ref the case
    gave as a bare id — a row of blanks with that id."""
    loaded: Loaded = {}
    for spec in form.fields:
        ref_id = values.get(spec.name)
        if spec.type != "ref" or ref_id is None or spec.ref_form is None:
            continue
        blank = {f.name: None for f in app.forms[spec.ref_form].fields if f.type != "table"}
        loaded[spec.name] = rows.get(spec.name) or {**blank, "id": ref_id, "state": None}
    return loaded


def _prefixed(name: str, error: FieldError) -> FieldError:
    return FieldError(f"{name}.{error.field}", error.code, error.message)


def _field_root(name: str | None) -> str:
    return name.split(".")[0] if name else RECORD_WIDE


# ---------------------------------------------------------------------- route


def _approval_for(app: App, spec: ConfigTestSpec) -> ApprovalSpec | None:
    """The form's approval (the one holding the expected route when the form has several)."""
    mine = [a for a in app.approvals.values() if a.form == spec.form]
    wanted = spec.expect.get("route")
    return next((a for a in mine if any(r.name == wanted for r in a.routes)), None) or (
        mine[0] if mine else None
    )


def route_of(
    checks: RecordChecks,
    record: BuiltRecord,
    approval: ApprovalSpec | None,
    env: EvalEnv,
    as_user: str | None = None,
) -> RouteSeen | None:
    """The route and the people asked; ``as_user`` files and submits the record, so (as at
    run time) they are never asked: a slot only they could fill goes to their manager."""
    if approval is None:
        return None
    context = approval_context(approval, record.context(checks), as_user)
    plan = plan_route(approval, context, env)
    approvers: dict[str, list[str]] = {}
    for step in plan.steps:
        if step.name in approvers:
            continue
        if as_user:  # as at run time: the people asked, the filer never among them
            excluded = set() if approval.self_approval == "allow" else {as_user}
            slots = step_slots(
                checks.app, approval, step, context, env, submitter=as_user, excluded=excluded
            )
        else:
            slots = step_candidates(checks.app, approval, step, context, env, submitter=None)
        approvers[step.name] = list(dict.fromkeys(user for slot in slots for user in slot))
    return RouteSeen(plan, approvers)


# ---------------------------------------------------------------------- judge


def judge_given(record: BuiltRecord) -> list[Mismatch]:
    """A referenced record that refuses a given value cannot exist: the case is wrong."""
    if not record.refused_given:
        return []
    return [
        Mismatch(
            "given",
            None,
            sorted({e.field or "" for e in record.refused_given}),
            tuple(e.message for e in record.refused_given),
        )
    ]


def judge_validity(record: BuiltRecord, expect: Mapping[str, Any]) -> list[Mismatch]:
    found = record.error_fields()
    reasons = tuple(e.message for e in record.errors)
    out = []
    if "valid" in expect and bool(expect["valid"]) != (not found):
        out.append(Mismatch("valid", bool(expect["valid"]), not found, reasons))
    if "errors" in expect:
        wanted = sorted(set(expect["errors"] or ()))
        if wanted != found:
            out.append(Mismatch("errors", wanted, found, reasons))
    return out


def judge_values(record: BuiltRecord, expect: Mapping[str, Any], tz: str) -> list[Mismatch]:
    out = []
    for name, wanted in (expect.get("values") or {}).items():
        actual = record.values.get(name)
        if not same_value(wanted, actual, tz):
            out.append(Mismatch(f"values.{name}", _shown(wanted), _shown(actual)))
    return out


def judge_route(route: RouteSeen | None, expect: Mapping[str, Any]) -> list[Mismatch]:
    keys = ("route", "added", "steps", "approvers")
    if not any(k in expect for k in keys):
        return []
    if route is None:
        return [Mismatch(k, expect[k], None) for k in keys if k in expect]
    seen = route.to_json()
    out = []
    if "route" in expect and expect["route"] != seen["route"]:
        out.append(Mismatch("route", expect["route"], seen["route"]))
    if "added" in expect and sorted(expect["added"] or ()) != sorted(seen["added"]):
        out.append(Mismatch("added", list(expect["added"] or ()), seen["added"]))
    if "steps" in expect and list(expect["steps"] or ()) != seen["steps"]:
        out.append(Mismatch("steps", list(expect["steps"] or ()), seen["steps"]))
    for step, people in (expect.get("approvers") or {}).items():
        actual = route.approvers.get(step)
        if actual is None or sorted(set(people or ())) != sorted(actual):
            out.append(Mismatch(f"approvers.{step}", sorted(set(people or ())), actual))
    return out


def judge_transitions(
    checks: RecordChecks, record: BuiltRecord, spec: ConfigTestSpec
) -> list[Mismatch]:
    out = []
    for key, expected in (("transition", True), ("refused_transition", False)):
        name = spec.expect.get(key)
        if name is None:
            continue
        refused = transition_refusal(
            checks, record, name, spec.as_role, spec.confirmed_by, spec.as_user
        )
        if refused is None and not expected:
            out.append(Mismatch(key, "refused", "allowed"))
        elif refused is not None and expected:
            out.append(Mismatch(key, "allowed", "refused", refused))
    return out


def judge_edits(checks: RecordChecks, record: BuiltRecord, spec: ConfigTestSpec) -> list[Mismatch]:
    """``editable`` / ``refused_edit``: may the person acting change these fields on such a
    record now — the same answer the records service gives (update permission, the field's
    ``editable_by``/``readonly``, the state)."""
    out = []
    actor = _actor(checks, spec.as_role, spec.as_user)
    form = record.form
    for key, wanted in (("editable", True), ("refused_edit", False)):
        for name in spec.expect.get(key) or ():
            field = form.by_name[name]
            refused: Any = None
            if not allowed(checks.app, actor, "update", Resource(form)):
                refused = refusal(checks.app, "update", Resource(form))
            else:
                found = checks.edit_refusal(field, actor, record.state, form)
                refused = found.message if found is not None else None
            if wanted and refused is not None:
                out.append(Mismatch(f"{key}.{name}", "allowed", "refused", (refused,)))
            elif not wanted and refused is None:
                out.append(Mismatch(f"{key}.{name}", "refused", "allowed"))
    return out


def _actor(checks: RecordChecks, as_role: str | None, as_user: str | None) -> Any:
    """The person a case acts as: a person of the org chart, a role, or the engine."""
    person = checks.app.people.get(as_user) if as_user else None
    if person is not None:
        return _RoleActor(frozenset(person.roles), person.user)
    return _RoleActor(frozenset({as_role})) if as_role else SYSTEM_ACTOR


def transition_refusal(
    checks: RecordChecks,
    record: BuiltRecord,
    name: str,
    as_role: str | None,
    confirmed_by: tuple[str, ...] = (),
    as_user: str | None = None,
) -> tuple[Text, ...] | None:
    """None when ``name`` may fire on the record now, else the reasons it is refused. The
    roles in ``confirmed_by`` confirmed the current value at the transition's gate."""
    machine = checks.app.state_machines.get(record.form.name)
    transition = next((t for t in machine.transitions if t.name == name), None) if machine else None
    if transition is None:
        return (Text(f"there is no transition '{name}'", f"没有流转 '{name}'"),)
    actor = _actor(checks, as_role, as_user)
    row = {**record.values, **record.children, "id": None, "state": record.state}
    gate = None
    if transition.confirm is not None:
        value = plain(row.get(transition.confirm.field))
        given = [Confirmation(role, "seamline-test", value) for role in confirmed_by]
        gate = gate_status(transition, row, given)
    refusal = check_transition(checks, record.form, row, transition, actor, record.loaded, gate)
    return None if refusal is None else tuple(e.message for e in refusal.errors)


@dataclass(frozen=True)
class _RoleActor:
    roles: frozenset[str]
    username: str = "seamline-test"


# ---------------------------------------------------------------------- values


def same_value(wanted: Any, actual: Any, tz: str) -> bool:
    """Numbers compare numerically (12000 == 12000.00), dates and times by their value."""
    if wanted is None or actual is None:
        return wanted is None and actual is None
    if _is_number(actual) and (_is_number(wanted) or isinstance(wanted, str)):
        number = _decimal(wanted)
        return number is not None and number == _decimal(actual)
    if isinstance(actual, datetime):
        moment = _moment(wanted, tz)
        return moment is not None and moment == actual
    if isinstance(actual, date):
        return _shown(wanted) == actual.isoformat()
    return bool(wanted == actual)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def _moment(value: Any, tz: str) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))


def _shown(value: Any) -> Any:
    """JSON-ready: decimals and dates as text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    return value


def _values_shown(record: BuiltRecord, expect: Mapping[str, Any]) -> dict[str, Any]:
    names = [f.name for f in record.form.fields if f.type == "computed"]
    names += [n for n in expect.get("values") or {} if n not in names]
    return {n: _shown(record.values.get(n)) for n in names}
