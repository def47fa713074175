"""Choose an approval route for a record and who is asked at each step.

Pure functions over a compiled ``ApprovalSpec``: the runtime, ``seamline test`` and the
routing benchmark all call these, so what a config test shows is what run time does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.expressions import CompiledExpr, EvalEnv, EvaluationError
from engine.flows.people import people_for
from engine.spec import App, ApprovalSpec, ApprovalStepSpec, RouteSpec, WhoSpec


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


def candidates(
    app: App,
    approval: ApprovalSpec,
    who: WhoSpec,
    context: Mapping[str, Any],
    env: EvalEnv,
    *,
    submitter: str | None,
) -> list[str]:
    """User names who may decide for one approver slot — never the submitter themself
    (unless the approval allows self-approval)."""
    people = people_for(
        app, who, context, env, submitter=submitter, owner=context.get("created_by")
    )
    users = [p.user for p in people]
    if not approval.allow_self_approval:
        users = [u for u in users if u != submitter]
    return users


def step_candidates(
    app: App,
    approval: ApprovalSpec,
    step: ApprovalStepSpec,
    context: Mapping[str, Any],
    env: EvalEnv,
    *,
    submitter: str | None,
) -> list[list[str]]:
    """Candidates per slot of ``step`` (one slot per approver entry)."""
    return [
        candidates(app, approval, who, context, env, submitter=submitter) for who in step.approvers
    ]
