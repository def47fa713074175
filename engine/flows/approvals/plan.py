"""The plan of one approval: its route, steps, the people asked and its policies, fixed when it
starts and kept as JSON in ``sl_approvals.plan`` so a redeployment does not touch approvals in
flight.

The JSON keeps the shape plans have always had (readable by SQL and by older rows) plus
``"version"``. Plans stored before the version existed are version 1; so are plans stored
before ``self_approval`` replaced ``allow_self_approval`` (``excluded`` is then absent, see
:meth:`ApprovalPlan.excluded_for`). A version this engine does not know is refused, never
guessed at.

Reading is as lenient as the dict reads it replaces: keys every reader indexed (``route``,
``route_label``, ``steps``, ``start_states``; a step's ``name``, ``label``, ``needed``,
``slots``; an SLA's ``business_hours``) are required, the others fall back to what those
readers assumed when missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.model.spec import SlaSpec

PLAN_VERSION = 1


class PlanError(ValueError):
    """A stored approval plan that cannot be read."""


class PlanVersionError(PlanError):
    """A stored approval plan of a version this engine does not know (written by a newer one)."""


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except KeyError:
        raise PlanError(f"{where}: missing {key!r}") from None


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise PlanError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def _strings(values: Sequence[Any] | None) -> tuple[str, ...]:
    return tuple(values or ())


@dataclass(frozen=True, slots=True)
class PlannedSla:
    """How long a step may take, in business hours, and what happens then."""

    business_hours: float
    escalate_to: str | None  # "manager" escalates up the org chart; anything else does not
    max_escalations: int
    remind_before_hours: float | None

    @classmethod
    def from_spec(cls, sla: SlaSpec) -> PlannedSla:
        return cls(
            business_hours=sla.business_hours,
            escalate_to=sla.escalate_to,
            max_escalations=sla.max_escalations,
            remind_before_hours=sla.remind_before_hours,
        )

    @property
    def remind_after_hours(self) -> float | None:
        """Business hours from the start of the task to its reminder; None without one (or
        when the reminder would come at or before the start)."""
        before = self.remind_before_hours
        if before and before < self.business_hours:
            return self.business_hours - before
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "business_hours": self.business_hours,
            "escalate_to": self.escalate_to,
            "max_escalations": self.max_escalations,
            "remind_before_hours": self.remind_before_hours,
        }

    @classmethod
    def from_json(cls, data: Any) -> PlannedSla:
        data = _object(data, "approval plan SLA")
        return cls(
            business_hours=_need(data, "business_hours", "approval plan SLA"),
            escalate_to=data.get("escalate_to"),
            max_escalations=data.get("max_escalations", 0),
            remind_before_hours=data.get("remind_before_hours"),
        )


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step as it runs: who is asked per slot, how many approvals complete it."""

    name: str
    label: str
    kind: str  # approver | any_of | all_of | n_of
    needed: int  # approvals that complete the step (every slot for all_of)
    slots: tuple[tuple[str, ...], ...]  # the people asked, per task
    sla: PlannedSla | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            "needed": self.needed,
            "slots": [list(users) for users in self.slots],
            "sla": self.sla.to_json() if self.sla is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> PlannedStep:
        data = _object(data, "approval plan step")
        where = f"approval plan step {data.get('name')!r}"
        sla = data.get("sla")
        return cls(
            name=_need(data, "name", where),
            label=_need(data, "label", where),
            kind=data.get("kind", ""),
            needed=_need(data, "needed", where),
            slots=tuple(_strings(users) for users in _need(data, "slots", where)),
            sla=PlannedSla.from_json(sla) if sla else None,
        )


@dataclass(frozen=True, slots=True)
class ApprovalPlan:
    """An approval's route, steps, people and policies as fixed when it started."""

    approval: str
    route: str
    route_label: str
    steps: tuple[PlannedStep, ...]
    start_states: tuple[str, ...]  # leaving these cancels the approval
    added: tuple[str, ...] = ()  # add_steps rules that matched
    added_labels: tuple[str, ...] = ()
    on_approved: str | None = None  # transitions fired on each outcome
    on_rejected: str | None = None
    on_returned: str | None = None  # None: the approval cannot return records
    if_record_changes: str | None = None  # lock | restart | (anything else) ignore
    self_approval: str | None = None  # None in plans stored before the setting existed
    excluded: tuple[str, ...] | None = None  # never asked, never act; None in older plans
    record_label: str | None = None  # how people name the record, at the start
    allow_self_approval: bool | None = None  # only in plans stored before ``self_approval``
    version: int = PLAN_VERSION

    def outcome_transition(self, outcome: str) -> str | None:
        """The transition an outcome (approved | rejected | returned) fires, if any."""
        return {
            "approved": self.on_approved,
            "rejected": self.on_rejected,
            "returned": self.on_returned,
        }.get(outcome)

    @property
    def can_return(self) -> bool:
        return bool(self.on_returned)

    def excluded_for(self, submitter: str | None) -> list[str]:
        """The people who never decide; plans stored before ``self_approval`` existed exclude
        the submitter unless they allowed self-approval."""
        if self.excluded is not None:
            return list(self.excluded)
        if self.allow_self_approval or not submitter:
            return []
        return [submitter]

    def to_json(self) -> dict[str, Any]:
        """The JSON stored in ``sl_approvals.plan``: the shape plans always had, plus
        ``version``."""
        out: dict[str, Any] = {
            "version": self.version,
            "approval": self.approval,
            "route": self.route,
            "route_label": self.route_label,
            "added": list(self.added),
            "added_labels": list(self.added_labels),
            "steps": [step.to_json() for step in self.steps],
            "on_approved": self.on_approved,
            "on_rejected": self.on_rejected,
            "on_returned": self.on_returned,
            "if_record_changes": self.if_record_changes,
        }
        if self.allow_self_approval is not None:
            out["allow_self_approval"] = self.allow_self_approval
        if self.self_approval is not None:
            out["self_approval"] = self.self_approval
        if self.excluded is not None:
            out["excluded"] = list(self.excluded)
        out["start_states"] = list(self.start_states)
        out["record_label"] = self.record_label
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> ApprovalPlan:
        """Read a stored plan (a dict, or JSON text); a missing ``version`` is 1."""
        if isinstance(data, str | bytes | bytearray):
            data = json.loads(data)
        data = _object(data, "approval plan")
        version = data.get("version", PLAN_VERSION)
        if type(version) is not int or version != PLAN_VERSION:
            if type(version) is int and version > PLAN_VERSION:
                why = "written by a newer Seamline; upgrade the engine to read it"
            else:
                why = "not a version any Seamline writes"
            raise PlanVersionError(
                f"approval plan version {version!r} is not supported (this engine reads "
                f"version {PLAN_VERSION}): {why}"
            )
        excluded = data.get("excluded")
        return cls(
            approval=data.get("approval", ""),
            route=_need(data, "route", "approval plan"),
            route_label=_need(data, "route_label", "approval plan"),
            steps=tuple(PlannedStep.from_json(s) for s in _need(data, "steps", "approval plan")),
            start_states=_strings(_need(data, "start_states", "approval plan")),
            added=_strings(data.get("added")),
            added_labels=_strings(data.get("added_labels")),
            on_approved=data.get("on_approved"),
            on_rejected=data.get("on_rejected"),
            on_returned=data.get("on_returned"),
            if_record_changes=data.get("if_record_changes"),
            self_approval=data.get("self_approval"),
            excluded=_strings(excluded) if excluded is not None else None,
            record_label=data.get("record_label"),
            allow_self_approval=data.get("allow_self_approval"),
            version=version,
        )


def plan_of(approval: Any) -> ApprovalPlan:
    """The plan of an approval (a row with a ``plan`` column: ``sl_approvals`` or a join)."""
    return ApprovalPlan.from_json(approval.plan)
