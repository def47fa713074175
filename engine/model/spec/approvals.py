"""Approvals: routes, steps, SLAs and their messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from engine.model.spec.base import frozen_map
from engine.model.spec.flows import EventSpec, WhoSpec

if TYPE_CHECKING:
    from engine.expressions import CompiledExpr


@dataclass(frozen=True, slots=True)
class SlaSpec:
    business_hours: float
    escalate_to: str = "manager"
    max_escalations: int = 3
    remind_before_hours: float | None = None


@dataclass(frozen=True, slots=True)
class ApprovalStepSpec:
    name: str
    kind: Literal["approver", "any_of", "all_of", "n_of"]
    approvers: tuple[WhoSpec, ...]
    needed: int
    label: str | None = None
    sla: SlaSpec | None = None


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    steps: tuple[ApprovalStepSpec, ...]
    when: CompiledExpr | None = None
    default: bool = False
    label: str | None = None


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """How people hear about something: a connector and a template."""

    via: str
    template: str
    todo: bool = False


@dataclass(frozen=True, slots=True)
class ApprovalSpec:
    name: str
    form: str
    start: EventSpec
    on_approved: str
    on_rejected: str
    routes: tuple[RouteSpec, ...]
    on_returned: str | None = None
    sla: SlaSpec | None = None
    if_record_changes: str = "lock"
    # who may never decide the record: forbid_creator_and_starter (the record's creator and
    # whoever started the approval) | forbid_starter | allow
    self_approval: str = "forbid_creator_and_starter"
    add_steps: tuple[RouteSpec, ...] = ()  # rules that append steps after the route's own
    params: MappingProxyType[str, Any] = field(default_factory=frozen_map)
    notify: MessageSpec | None = None
    description: str | None = None
