"""When a record first met an event: the index-backed event queries of duration KPIs.

A KPI's ``from``/``to`` (``state_entered: approving``, ``transition: approve``) is a key of
an event's JSON payload. Reading it per row (``json_extract`` on SQLite, ``->>`` on
PostgreSQL) over millions of events is what made dashboards slow, so every key a dashboard
uses gets two *expression indexes* on ``sl_events`` (added by plan/deploy, see
:func:`kpi_event_indexes`):

- ``(form, kind, key, at, record_id)`` — the events of one state in a time window;
- ``(form, kind, key, record_id, at)`` — one record's events of that state, in time order.

The queries here spell the key expression exactly as the index does (literal path, no bound
parameter), which is what lets both databases use them.

Kinds without a key (``field_changed: qty`` is a ``changed`` event whose ``changes`` hold
``qty``) get ``(form, kind, at, record_id)`` and ``(form, kind, record_id, at)``; the JSON
test then runs only on the rows those select.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from engine.dashboards.periods import Period
from engine.spec import App, EventSpec, KpiSpec

__all__ = [
    "event_key",
    "event_matches",
    "first_end",
    "first_start",
    "kpi_event_indexes",
    "kpi_event_specs",
    "payload_key",
    "record_event_count",
    "record_has_event",
]

# EventSpec kind → (sl_events.kind, payload key holding the name)
_KEYED = {
    "state_entered": ("transition", "to"),
    "transition": ("transition", "name"),
    "notified": ("notify_sent", "automation"),
}
# EventSpec kind → sl_events.kind, for kinds whose names are not one payload key
_PLAIN = {"field_changed": "changed"}


def payload_key(spec: EventSpec) -> tuple[str, str] | None:
    """(event kind, payload key) of an event spec; None for ``created`` (the record's own
    ``created_at`` is the time)."""
    return _KEYED.get(spec.kind)


class PayloadText(FunctionElement[str]):
    """``payload``'s ``key`` as text: ``json_extract(payload, '$.key')`` on SQLite,
    ``(CAST(payload AS JSONB) ->> 'key')`` on PostgreSQL. One construct for the index and the
    query, so both spell it the same; the key is a literal (an index never matches a bound
    parameter)."""

    name = "payload_text"
    type = sa.Text()
    inherit_cache = True


def _key_of(element: PayloadText) -> tuple[Any, str]:
    payload, key = element.clauses.clauses
    return payload, str(key.name).strip("'")


@compiles(PayloadText, "sqlite")
def _payload_text_sqlite(element: PayloadText, compiler: Any, **kw: Any) -> str:
    payload, key = _key_of(element)
    return f"json_extract({compiler.process(payload, **kw)}, '$.{key}')"


@compiles(PayloadText, "postgresql")
def _payload_text_postgresql(element: PayloadText, compiler: Any, **kw: Any) -> str:
    payload, key = _key_of(element)
    return f"(CAST({compiler.process(payload, **kw)} AS JSONB) ->> '{key}')"


def event_key(payload: Any, key: str) -> ColumnElement[str]:
    """The payload's ``key`` as text, spelled exactly as the KPI indexes spell it."""
    if not key.isidentifier():
        raise ValueError(f"not a payload key: {key!r}")
    return PayloadText(payload, sa.literal_column(f"'{key}'"))


class PayloadPath(FunctionElement[Any]):
    """``payload``'s ``outer.inner`` (JSON, NULL when absent): ``json_extract(payload,
    '$.outer.inner')`` on SQLite, ``(CAST(payload AS JSONB) -> 'outer' -> 'inner')`` on
    PostgreSQL; literal keys, as :class:`PayloadText`."""

    name = "payload_path"
    type = sa.Text()
    inherit_cache = True


def _path_of(element: PayloadPath) -> tuple[Any, str, str]:
    payload, outer, inner = element.clauses.clauses
    return payload, str(outer.name).strip("'"), str(inner.name).strip("'")


@compiles(PayloadPath, "sqlite")
def _payload_path_sqlite(element: PayloadPath, compiler: Any, **kw: Any) -> str:
    payload, outer, inner = _path_of(element)
    return f"json_extract({compiler.process(payload, **kw)}, '$.{outer}.{inner}')"


@compiles(PayloadPath, "postgresql")
def _payload_path_postgresql(element: PayloadPath, compiler: Any, **kw: Any) -> str:
    payload, outer, inner = _path_of(element)
    return f"(CAST({compiler.process(payload, **kw)} AS JSONB) -> '{outer}' -> '{inner}')"


def _changed(payload: Any, field: str) -> ColumnElement[bool]:
    """The ``changed`` event's ``changes`` hold ``field``."""
    if not field.isidentifier():
        raise ValueError(f"not a field name: {field!r}")
    key = sa.literal_column(f"'{field}'")
    return PayloadPath(payload, sa.literal_column("'changes'"), key).is_not(None)


def event_matches(e: sa.FromClause, form: str, spec: EventSpec) -> list[ColumnElement[bool]]:
    """Conditions on the events alias ``e`` selecting ``spec``'s events of ``form``."""
    if spec.kind in _PLAIN:
        touched = [_changed(e.c.payload, name) for name in spec.names]
        return [e.c.form == form, e.c.kind == _PLAIN[spec.kind], sa.or_(*touched)]
    keyed = payload_key(spec)
    if keyed is None:
        return [e.c.form == form, e.c.kind == "created"]
    kind, key = keyed
    value = event_key(e.c.payload, key)
    names = list(spec.names)
    named = value == names[0] if len(names) == 1 else value.in_(names)
    return [e.c.form == form, e.c.kind == kind, named]


def kpi_event_specs(kpi: KpiSpec) -> Iterator[EventSpec]:
    """Every event a KPI's queries look up: its end points, what it counts, and the events
    of ``entered(...)``/``fired(...)`` in its conditions."""
    yield from (s for s in (kpi.start, kpi.end) if s is not None)
    if kpi.count is not None and kpi.count.event is not None:
        yield kpi.count.event
    yield from kpi.condition_events


def _used_keys(app: App) -> Iterator[tuple[str, str]]:
    for dashboard in app.dashboards.values():
        for kpi in dashboard.kpis:
            for spec in kpi_event_specs(kpi):
                keyed = payload_key(spec)
                if keyed is not None:
                    yield keyed


def _used_plain_kinds(app: App) -> Iterator[str]:
    for dashboard in app.dashboards.values():
        for kpi in dashboard.kpis:
            for spec in kpi_event_specs(kpi):
                if spec.kind in _PLAIN:
                    yield _PLAIN[spec.kind]


def kpi_event_indexes(app: App, events: sa.Table) -> None:
    """Add the indexes the app's KPIs need to ``events`` (none without dashboards)."""
    for kind, key in sorted(set(_used_keys(app))):
        value = event_key(events.c.payload, key)
        by_time = (events.c.form, events.c.kind, value, events.c.at, events.c.record_id)
        by_record = (events.c.form, events.c.kind, value, events.c.record_id, events.c.at)
        for suffix, columns in (("at", by_time), ("rec", by_record)):
            sa.Index(_name(kind, key, suffix), *columns)
    for kind in sorted(set(_used_plain_kinds(app))):
        by_time = (events.c.form, events.c.kind, events.c.at, events.c.record_id)
        by_record = (events.c.form, events.c.kind, events.c.record_id, events.c.at)
        for suffix, columns in (("at", by_time), ("rec", by_record)):
            sa.Index(_name(kind, "kind", suffix), *columns)


def _name(kind: str, key: str, suffix: str) -> str:
    name = f"ix_sl_events_kpi_{kind}_{key}_{suffix}"
    if len(name) <= 60:
        return name
    return f"ix_sl_events_kpi_{hashlib.sha1(name.encode()).hexdigest()[:12]}_{suffix}"


def first_start(events: sa.Table, form: str, spec: EventSpec, period: Period) -> sa.Select[Any]:
    """(record_id, at) of each record whose FIRST ``spec`` event falls in ``period``.

    The period's events come from the time-ordered index; an earlier event of the same
    record (record-ordered index) drops the row."""
    e = events.alias("e_from")
    if period.start is None:  # every record's first event
        return (
            sa.select(e.c.record_id, sa.func.min(e.c.at).label("at"))
            .where(*event_matches(e, form, spec), *period.clauses(e.c.at))
            .group_by(e.c.record_id)
        )
    before = events.alias("e_before")
    earlier = sa.exists().where(  # in time, then in the order recorded (the event id)
        *event_matches(before, form, spec),
        before.c.record_id == e.c.record_id,
        sa.tuple_(before.c.at, before.c.id) < sa.tuple_(e.c.at, e.c.id),
    )
    return sa.select(e.c.record_id, e.c.at).where(
        *event_matches(e, form, spec), *period.clauses(e.c.at), ~earlier
    )


def first_end(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any, start_at: Any
) -> ColumnElement[Any]:
    """A scalar subquery: the first ``spec`` event of ``record_id`` at or after ``start_at``
    (one seek in the record-ordered index per start)."""
    e = events.alias("e_to")
    return (
        sa.select(sa.func.min(e.c.at))
        .where(
            *event_matches(e, form, spec),
            e.c.record_id == record_id,
            e.c.at >= start_at,
        )
        .scalar_subquery()
    )


def record_has_event(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any
) -> ColumnElement[bool]:
    """``EXISTS`` a ``spec`` event of ``record_id`` (one seek in the record-ordered index)."""
    e = events.alias("e_has")
    return sa.exists().where(*event_matches(e, form, spec), e.c.record_id == record_id)


def record_event_count(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any, before: Any = None
) -> ColumnElement[int]:
    """A scalar subquery: how many ``spec`` events ``record_id`` has (up to ``before``)."""
    e = events.alias("e_count")
    clauses = [*event_matches(e, form, spec), e.c.record_id == record_id]
    if before is not None:
        clauses.append(e.c.at <= before)
    return sa.select(sa.func.count()).where(*clauses).scalar_subquery()
