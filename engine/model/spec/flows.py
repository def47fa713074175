"""Automations: the events that start them, their steps, who they address, connectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from engine.model.spec.base import frozen_map

if TYPE_CHECKING:
    from engine.expressions import CompiledExpr


EventKind = Literal[
    "created",
    "updated",
    "field_changed",
    "state_entered",
    "transition",
    "schedule",
    "notified",  # dashboards: a notification of these automations was delivered
    "field",  # dashboards: a duration's end point is this date/datetime field's value
]


@dataclass(frozen=True, slots=True)
class EventSpec:
    kind: EventKind
    names: tuple[str, ...] = ()
    cron: str | None = None


@dataclass(frozen=True, slots=True)
class WhoSpec:
    kind: Literal["role", "person", "manager_of", "field", "expr"]
    value: str  # role name, user name, owner|submitter, field name, or the expression's text
    expr: CompiledExpr | None = None  # kind "expr": gives a user name or a list of them


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One automation step. ``action`` says which of the optional parts is set."""

    action: Literal["call", "if", "set", "create", "notify", "transition", "wait"]
    id: str | None = None
    when: CompiledExpr | None = None
    connector: str | None = None
    operation: str | None = None
    with_values: MappingProxyType[str, CompiledExpr] = field(default_factory=frozen_map)
    keep: MappingProxyType[str, str] = field(default_factory=frozen_map)
    pending_state: str | None = None
    condition: CompiledExpr | None = None
    then: tuple[StepSpec, ...] = ()
    otherwise: tuple[StepSpec, ...] = ()
    values: MappingProxyType[str, CompiledExpr] = field(default_factory=frozen_map)
    form: str | None = None
    via: str | None = None
    to: tuple[WhoSpec, ...] = ()
    template: str | None = None
    todo: bool = False
    transition: str | None = None
    wait_unit: str | None = None
    wait_amount: float | None = None


@dataclass(frozen=True, slots=True)
class AutomationSpec:
    name: str
    form: str
    on: EventSpec
    steps: tuple[StepSpec, ...]
    when: CompiledExpr | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class OperationSpec:
    name: str
    method: str
    path: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    name: str
    type: str
    title: str | None = None
    base_url_env: str | None = None
    base_url_default: str | None = None
    url_env: str | None = None
    token_env: str | None = None
    smtp_url_env: str | None = None
    sender: str | None = None
    timeout: float = 10.0
    retries: int = 5
    operations: MappingProxyType[str, OperationSpec] = field(default_factory=frozen_map)
