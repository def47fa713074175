"""Forms: fields, rules, hints, states and transitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.model.spec.base import frozen_map

if TYPE_CHECKING:
    from engine.expressions import CompiledExpr


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
    index: bool = False  # ``index: true``: the column gets an index of its own

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(o.value for o in self.options)

    @property
    def value_type(self) -> str:
        """The type of the stored value (a computed field stores its result type)."""
        return self.result if self.type == "computed" and self.result else self.type

    @property
    def indexed(self) -> bool:
        """The column has an index of its own: declared (``index: true``) or one the engine
        always makes (refs, dates and times; an autonumber's unique constraint is one)."""
        return (
            self.index
            or self.type in ("ref", "autonumber")
            or self.value_type in ("date", "datetime")
        )


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
    picker_code: str | None = None  # shown after the title in ref pickers (`picker: code:`)
    picker_show: tuple[str, ...] = ()  # shown after the code (`picker: show:`)
    permissions: MappingProxyType[str, tuple[str, ...]] = field(default_factory=frozen_map)

    by_name: MappingProxyType[str, FieldSpec] = field(default_factory=frozen_map)
    hints: tuple[HintSpec, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()  # ``indexes:``: composite indexes, columns in order

    def field(self, name: str) -> FieldSpec:
        return self.by_name[name]

    def leads_index(self, name: str) -> bool:
        """Whether an index of the form's table starts with column ``name`` (so a comparison
        on it can be answered from the index)."""
        spec = self.by_name.get(name)
        return (spec is not None and spec.indexed) or any(i[0] == name for i in self.indexes)


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
