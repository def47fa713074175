"""The compiled App (one immutable object every run-time part reads) and its config tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from types import MappingProxyType
from typing import Any

from engine.model.calendar import CalendarSpec
from engine.model.spec.approvals import ApprovalSpec
from engine.model.spec.base import frozen_map
from engine.model.spec.dashboards import DashboardSpec, InsightSpec
from engine.model.spec.flows import AutomationSpec, ConnectorSpec
from engine.model.spec.forms import FormSpec, StateMachineSpec
from engine.model.spec.people import PersonSpec, RoleSpec
from engine.model.spec.tracking import TrackingSpec


@dataclass(frozen=True, slots=True)
class ConfigTestSpec:
    name: str
    form: str
    given: MappingProxyType[str, Any]
    expect: MappingProxyType[str, Any]
    today: str | None = None
    state: str | None = None
    as_role: str | None = None
    source: str = ""
    line: int = 0
    confirmed_by: tuple[str, ...] = ()  # roles that confirmed the gate's current value
    as_user: str | None = None  # a person of the org chart acting (their roles)


@dataclass(frozen=True, slots=True)
class App:
    """The whole compiled configuration."""

    name: str
    title: str
    version: str
    locale: str
    timezone: str
    calendar: CalendarSpec
    business_hours: tuple[tuple[time, time], ...]
    roles: MappingProxyType[str, RoleSpec]
    people: MappingProxyType[str, PersonSpec]
    connectors: MappingProxyType[str, ConnectorSpec]
    forms: MappingProxyType[str, FormSpec]
    state_machines: MappingProxyType[str, StateMachineSpec]
    automations: tuple[AutomationSpec, ...]
    approvals: MappingProxyType[str, ApprovalSpec]
    dashboards: MappingProxyType[str, DashboardSpec]
    tests: tuple[ConfigTestSpec, ...]
    database: str | None
    root: str
    content_hash: str
    description: str | None = None
    tracking: TrackingSpec | None = None
    insights: MappingProxyType[str, InsightSpec] = field(default_factory=frozen_map)
    currency: str | None = None  # ISO code of money amounts without their own ``currency``
