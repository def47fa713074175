"""Dashboards and insights: KPIs, thresholds, counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.model.spec.flows import EventSpec

if TYPE_CHECKING:
    from engine.expressions import CompiledExpr


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
