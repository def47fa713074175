"""The compiled App: one immutable object every run-time part reads, split by kind.

Specs hold definitions only, never run state. Expressions are already parsed and checked
(:class:`~engine.expressions.CompiledExpr`); references are resolved to names that exist.
Import from here (``from engine.model.spec import FormSpec``); each kind lives in its module.
"""

from __future__ import annotations

from engine.model.spec.app import App, ConfigTestSpec
from engine.model.spec.approvals import (
    ApprovalSpec,
    ApprovalStepSpec,
    MessageSpec,
    RouteSpec,
    SlaSpec,
)
from engine.model.spec.base import frozen_map
from engine.model.spec.dashboards import (
    CountSpec,
    DashboardSpec,
    InsightSpec,
    KpiSpec,
    ThresholdSpec,
)
from engine.model.spec.flows import (
    AutomationSpec,
    ConnectorSpec,
    EventKind,
    EventSpec,
    OperationSpec,
    StepSpec,
    WhoSpec,
)
from engine.model.spec.forms import (
    CompareSpec,
    ConfirmSpec,
    FieldSpec,
    FormSpec,
    HintSpec,
    OptionSpec,
    RuleSpec,
    StateMachineSpec,
    StateSpec,
    TransitionSpec,
)
from engine.model.spec.people import PersonSpec, RoleSpec
from engine.model.spec.tracking import RateSpec, TrackingSpec

__all__ = [
    "App",
    "ApprovalSpec",
    "ApprovalStepSpec",
    "AutomationSpec",
    "CompareSpec",
    "ConfigTestSpec",
    "ConfirmSpec",
    "ConnectorSpec",
    "CountSpec",
    "DashboardSpec",
    "EventKind",
    "EventSpec",
    "FieldSpec",
    "FormSpec",
    "HintSpec",
    "InsightSpec",
    "KpiSpec",
    "MessageSpec",
    "OperationSpec",
    "OptionSpec",
    "PersonSpec",
    "RateSpec",
    "RoleSpec",
    "RouteSpec",
    "RuleSpec",
    "SlaSpec",
    "StateMachineSpec",
    "StateSpec",
    "StepSpec",
    "ThresholdSpec",
    "TrackingSpec",
    "TransitionSpec",
    "WhoSpec",
    "frozen_map",
]
