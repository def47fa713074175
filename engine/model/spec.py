"""The compiled App: one immutable object every run-time part reads.

Specs hold definitions only, never run state. Expressions are already parsed and checked
(:class:`~engine.expressions.CompiledExpr`); references are resolved to names that exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from engine.model.calendar import CalendarSpec

if TYPE_CHECKING:
    from engine.expressions import CompiledExpr


def frozen_map(items: dict[str, Any] | None = None) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True, slots=True)
class OptionSpec:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class CompareSpec:
    """Show a field next to another one (e.g. a promised date beside the date the system can
    promise), highlighted with ``message`` while ``highlight`` holds."""

    with_field: str
    highlight: CompiledExpr | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: str
    label: str
    help: str | None = None
    required: bool = False
    readonly: bool = False
    editable_by: tuple[str, ...] = ()
    editable_in: tuple[str, ...] = ()
    renamed_from: str | None = None
    options: tuple[OptionSpec, ...] = ()
    min: Any = None
    max: Any = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_message: str | None = None
    scale: int | None = None
    currency: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    default: Any = None
    default_expr: CompiledExpr | None = None
    ref_form: str | None = None
    accept: tuple[str, ...] = ()
    max_size_mb: float | None = None
    max_files: int | None = None
    expr: CompiledExpr | None = None
    result: str | None = None
    format: str | None = None
    children: tuple[FieldSpec, ...] = ()
    append_only: bool = False
    min_rows: int | None = None
    max_rows: int | None = None
    compare: CompareSpec | None = None

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)

    @property
    def value_type(self) -> str:
        """The type of the stored value (a computed field stores its result type)."""
        return self.result if self.type == "computed" and self.result else self.type


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    check: CompiledExpr
    message: str
    field: str | None = None
    when: CompiledExpr | None = None


@dataclass(frozen=True, slots=True)
class HintSpec:
    """A hint from history on the record page (``hints:`` on a form): among the last ``last``
    other records with the same values of ``match`` that entered ``state``, the days between
    ``date`` and the day each entered it; shown when all are early (or all late) by at least
    ``min_days``."""

    name: str
    match: tuple[str, ...]  # field names, or ref.field paths (one hop)
    state: str
    date: str
    last: int = 3
    min_days: int = 2


@dataclass(frozen=True, slots=True)
class FormSpec:
    name: str
    title: str
    fields: tuple[FieldSpec, ...]
    rules: tuple[RuleSpec, ...] = ()
    description: str | None = None
    title_field: str | None = None
    list_columns: tuple[str, ...] = ()
    permissions: MappingProxyType[str, tuple[str, ...]] = field(default_factory=frozen_map)

    by_name: MappingProxyType[str, FieldSpec] = field(default_factory=frozen_map)
    hints: tuple[HintSpec, ...] = ()

    def field(self, name: str) -> FieldSpec:
        return self.by_name[name]


@dataclass(frozen=True, slots=True)
class StateSpec:
    name: str
    label: str
    initial: bool = False
    final: bool = False
    editable: bool = False
    color: str = "grey"


@dataclass(frozen=True, slots=True)
class ConfirmSpec:
    """A confirmation gate on a transition: each role in ``by`` confirms the current value of
    ``field``; the transition fires only when all of them confirmed that same value. A change
    of ``field`` or of a ``reopen_on`` field re-opens the gate (the confirmations lapse)."""

    field: str
    by: tuple[str, ...]
    reopen_on: tuple[str, ...] = ()

    @property
    def watched(self) -> tuple[str, ...]:
        return (self.field, *self.reopen_on)


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    name: str
    label: str
    sources: tuple[str, ...]
    target: str
    roles: tuple[str, ...] = ()
    guard: CompiledExpr | None = None
    guard_message: str | None = None
    require: tuple[str, ...] = ()
    confirm: ConfirmSpec | None = None
    by_system: bool = False  # ``by: system``: only the engine fires it (approval outcomes, flows)
    sets: tuple[tuple[str, CompiledExpr], ...] = ()  # ``set:`` written with the transition


@dataclass(frozen=True, slots=True)
class StateMachineSpec:
    form: str
    states: tuple[StateSpec, ...]
    transitions: tuple[TransitionSpec, ...]
    initial: str

    def state(self, name: str) -> StateSpec:
        return next(s for s in self.states if s.name == name)


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


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    op: str
    value: float


@dataclass(frozen=True, slots=True)
class CountSpec:
    """What a ``per_record`` KPI counts for each record: its events of one kind (``event``),
    or its rows of a child table (``rows``) for which ``where`` holds."""

    event: EventSpec | None = None
    rows: str | None = None
    where: CompiledExpr | None = None


@dataclass(frozen=True, slots=True)
class KpiSpec:
    name: str
    title: str
    form: str
    measure: str
    where: CompiledExpr | None = None
    numerator: CompiledExpr | None = None
    field: str | None = None
    start: EventSpec | None = None
    end: EventSpec | None = None
    percentile: float | None = None
    window: str = "all"
    unit: str = ""
    green: ThresholdSpec | None = None
    amber: ThresholdSpec | None = None
    trend: str | None = None
    count: CountSpec | None = None
    within_hours: float | None = None
    target: float | None = None
    group_by: str | None = None
    top: int = 5
    drill: tuple[str, ...] = ()
    # the events ``entered(...)``/``fired(...)`` in ``where``/``numerator`` look up
    condition_events: tuple[EventSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    name: str
    title: str
    kpis: tuple[KpiSpec, ...]
    roles: tuple[str, ...] = ()
    description: str | None = None


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
class RoleSpec:
    name: str
    label: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PersonSpec:
    user: str
    name: str
    roles: tuple[str, ...]
    manager: str | None = None
    department: str | None = None
    phone: str | None = None
    email: str | None = None
    dingtalk_id: str | None = None
    wecom_id: str | None = None


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


@dataclass(frozen=True, slots=True)
class RateSpec:
    """At most ``count`` attempts in ``minutes``."""

    count: int
    minutes: float


@dataclass(frozen=True, slots=True)
class TrackingSpec:
    """The public tracking page (``/track``): who may see which records, and how they prove it.

    ``contact_form`` holds the people outside (found by ``phone_field``; a one-time code goes
    to ``channel_field`` through ``via``); ``record_form`` is what they track, linked by its
    ref ``contact_ref``. Only ``number_field``, the ``show`` fields and the state history are
    ever shown.
    """

    contact_form: str
    phone_field: str
    record_form: str
    contact_ref: str
    number_field: str
    show: tuple[str, ...]
    verify: Literal["code", "order_suffix"] = "code"
    channel_field: str | None = None
    name_field: str | None = None
    via: str | None = None
    template: str | None = None
    visible_to: tuple[str, ...] = ()
    code_length: int = 6
    code_minutes: float = 5.0
    suffix_length: int = 4
    session_minutes: float = 15.0
    max_attempts: int = 5
    max_attempts_ip: int = 20
    lockout_minutes: float = 15.0
    per_phone: RateSpec = RateSpec(3, 10.0)
    per_ip: RateSpec = RateSpec(20, 10.0)
    hide_states: tuple[str, ...] = ()
    limit: int = 20
    title: str | None = None


@dataclass(frozen=True, slots=True)
class InsightSpec:
    """A named insight report (``insights:`` in app.yaml): frequent combinations of a
    multiselect field as candidate standard templates."""

    name: str
    title: str
    form: str
    field: str
    min_support: int = 2
    top: int = 7
    roles: tuple[str, ...] = ()


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
