"""Choose an approval route for a record and who is asked at each step.

Pure functions over a compiled ``ApprovalSpec``: the runtime, ``seamline test`` and the
routing benchmark all call these, so what a config test shows is what run time does.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.expressions import CompiledExpr, EvalEnv, EvaluationError
from engine.flows.people import managers_of, people_for
from engine.forms.records import SYSTEM_ACTOR
from engine.model.spec import App, ApprovalSpec, ApprovalStepSpec, RouteSpec, WhoSpec


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The route a record takes: the matching route, the rules that add steps, all steps."""

    route: RouteSpec
    added: tuple[RouteSpec, ...]
    steps: tuple[ApprovalStepSpec, ...]

    @property
    def label(self) -> str:
        return self.route.label or self.route.name


def matches(expr: CompiledExpr | None, context: Mapping[str, Any], env: EvalEnv) -> bool:
    """A condition that cannot be evaluated (a blank field compared to a number) is false."""
    if expr is None:
        return True
    try:
        return bool(expr(context, env))
    except EvaluationError:
        return False


def approval_context(
    approval: ApprovalSpec, record: Mapping[str, Any], submitter: str | None
) -> dict[str, Any]:
    """The names route conditions see: the record's fields, ``submitter`` and ``params``."""
    return {**record, "submitter": submitter, "params": dict(approval.params)}


def plan_route(approval: ApprovalSpec, context: Mapping[str, Any], env: EvalEnv) -> RoutePlan:
    """First matching route (the default one otherwise), then every matching add_steps rule.

    Plain loops rather than generator expressions: this runs for every submitted record."""
    chosen = approval.routes[-1]
    for route in approval.routes:
        when = route.when
        try:
            if route.default or when is None or when(context, env):
                chosen = route
                break
        except EvaluationError:  # cannot be evaluated: does not match (as ``matches``)
            pass
    if not approval.add_steps:
        return RoutePlan(chosen, (), chosen.steps)
    added = []
    steps = list(chosen.steps)
    for rule in approval.add_steps:
        if matches(rule.when, context, env):
            added.append(rule)
            steps.extend(rule.steps)
    return RoutePlan(chosen, tuple(added), tuple(steps))


def excluded_people(approval: ApprovalSpec, starter: str | None, creator: str | None) -> list[str]:
    """Who may never decide the record under the approval's ``self_approval``: whoever started
    the approval and (by default) whoever created the record. The system actor is nobody."""
    people: list[str | None] = []
    if approval.self_approval != "allow":
        people.append(starter)
    if approval.self_approval == "forbid_creator_and_starter":
        people.append(creator)
    return sorted({p for p in people if p and p != SYSTEM_ACTOR.username})


def candidates(
    app: App,
    approval: ApprovalSpec,
    who: WhoSpec,
    context: Mapping[str, Any],
    env: EvalEnv,
    *,
    submitter: str | None,
    excluded: Collection[str] | None = None,
) -> list[str]:
    """User names who may decide for one approver slot — never the ``excluded`` people
    (by default ``excluded_people``: the starter and the record's creator)."""
    if excluded is None:
        excluded = excluded_people(approval, submitter, context.get("created_by"))
    return [u for u in _everyone(app, who, context, env, submitter) if u not in excluded]


def _everyone(
    app: App, who: WhoSpec, context: Mapping[str, Any], env: EvalEnv, submitter: str | None
) -> list[str]:
    people = people_for(
        app, who, context, env, submitter=submitter, owner=context.get("created_by")
    )
    return [p.user for p in people]


def step_candidates(
    app: App,
    approval: ApprovalSpec,
    step: ApprovalStepSpec,
    context: Mapping[str, Any],
    env: EvalEnv,
    *,
    submitter: str | None,
    excluded: Collection[str] | None = None,
) -> list[list[str]]:
    """Candidates per slot of ``step`` (one slot per approver entry)."""
    return [
        candidates(app, approval, who, context, env, submitter=submitter, excluded=excluded)
        for who in step.approvers
    ]


def step_slots(
    app: App,
    approval: ApprovalSpec,
    step: ApprovalStepSpec,
    context: Mapping[str, Any],
    env: EvalEnv,
    *,
    submitter: str | None,
    excluded: Collection[str],
) -> list[list[str]]:
    """The people asked per slot of ``step`` at run time: the candidates, and for a slot only
    excluded people could fill, their managers instead (further up while those are excluded
    too); a slot nobody holds goes to the submitter's manager."""
    slots = []
    for who in step.approvers:
        everyone = _everyone(app, who, context, env, submitter)
        kept = [u for u in everyone if u not in excluded]
        if not kept:
            kept = stand_ins(app, [u for u in everyone if u in excluded] or [submitter], excluded)
        slots.append(kept)
    return slots


def stand_ins(app: App, users: Sequence[str | None], excluded: Collection[str]) -> list[str]:
    """The nearest managers of ``users`` above them who are not ``excluded``."""
    level = [u for u in users if u]
    seen = set(level)
    while level:
        above = [m for m in managers_of(app, level) if m not in seen]
        found = [m for m in above if m not in excluded]
        if found:
            return found
        seen.update(above)
        level = above
    return []
