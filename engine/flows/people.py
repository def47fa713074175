"""Who a ``WhoSpec`` names, from the org chart: roles, people, managers, fields, expressions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.expressions import EvalEnv, EvaluationError
from engine.model.spec import App, PersonSpec, WhoSpec


def people_for(
    app: App,
    who: WhoSpec,
    context: Mapping[str, Any],
    env: EvalEnv,
    *,
    submitter: str | None = None,
    owner: str | None = None,
) -> list[PersonSpec]:
    """The people ``who`` names for this record, in org-chart order, without repeats.

    A field or expression naming nobody in the org chart names no one (the caller decides
    what an empty answer means)."""
    people = app.people
    if who.kind == "role":
        return [p for p in people.values() if who.value in p.roles]
    if who.kind == "manager_of":
        subject = people.get((submitter if who.value == "submitter" else owner) or "")
        manager = people.get(subject.manager or "") if subject is not None else None
        return [manager] if manager is not None else []
    if who.kind == "person":
        names: Iterable[Any] = [who.value]
    elif who.kind == "field":
        names = [context.get(who.value)]
    elif who.kind == "expr" and who.expr is not None:
        try:
            value = who.expr(context, env)
        except EvaluationError:
            return []
        names = value if isinstance(value, list | tuple) else [value]
    else:
        return []
    out: list[PersonSpec] = []
    for name in names:
        person = people.get(name) if isinstance(name, str) else None
        if person is not None and person not in out:
            out.append(person)
    return out


def managers_of(app: App, users: Iterable[str]) -> list[str]:
    """The managers of ``users`` who are not among them (escalation goes one level up)."""
    group = list(users)
    out: list[str] = []
    for user in group:
        person = app.people.get(user)
        manager = person.manager if person is not None else None
        if manager and manager in app.people and manager not in group and manager not in out:
            out.append(manager)
    return out
