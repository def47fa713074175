"""When a record met an event: the index-backed event queries of KPIs.

A KPI's events (``state_entered: approving``, ``transition: approve``, ``notified: x``,
``field_changed: qty``) are tests on an event's JSON payload. Reading the payload per row
(``json_extract`` on SQLite, ``->>`` on PostgreSQL) over millions of events is what made
dashboards slow, so every event a dashboard uses gets two *partial indexes* on
``sl_events`` (added by plan/deploy, see :func:`kpi_event_indexes`) holding only its rows:

- ``(record_id, at, id) WHERE <the event's test>`` — one record's such events in time order;
- ``(at, record_id, id) WHERE <the event's test>`` — such events in a time window.

The state a form's ``hints:`` look back on gets the first of them (:func:`last_event_at`).

Their keys are plain columns, so both databases answer from the index alone (PostgreSQL
cannot do that with an index on the JSON expression itself). A database uses a partial
index only when the query's conditions contain the index's test, so the queries here spell
the test exactly as the index does: literal values, never bound parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Alias, FromClause

from engine.model.periods import Period
from engine.model.spec import App, EventSpec, KpiSpec

__all__ = [
    "event_key",
    "event_matches",
    "first_end",
    "first_ends",
    "first_start",
    "kpi_event_indexes",
    "kpi_event_specs",
    "last_event_at",
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


@compiles(Alias, "sqlite")
def _alias_sqlite(element: Alias, compiler: Any, **kw: Any) -> str:
    """``sl_events AS e INDEXED BY <name>`` where a query names its index (SQLAlchemy's
    ``with_hint`` renders nothing on SQLite)."""
    text = compiler.visit_alias(element, **kw)
    index = getattr(element, "_sl_indexed_by", None)
    if index and kw.get("asfrom") and not kw.get("ashint"):
        text = f"{text} INDEXED BY {index}"
    return str(text)


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
    key: ColumnElement[Any] = sa.literal_column(f"'{field}'")
    return PayloadPath(payload, sa.literal_column("'changes'"), key).is_not(None)


def _literal(value: str) -> ColumnElement[str]:
    """A SQL string literal: a partial index matches only literal values."""
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.String)


def _one(spec: EventSpec) -> list[EventSpec]:
    """The specs that have their own indexes: one per name (``state_entered: [a, b]`` → a,
    b); a plain kind (``field_changed: [x, y]``) has one pair for its set of names."""
    if len(spec.names) <= 1 or spec.kind in _PLAIN:
        return [spec]
    return [EventSpec(spec.kind, (name,)) for name in spec.names]


def _indexed(e: sa.FromClause, form: str, spec: EventSpec) -> list[ColumnElement[bool]]:
    """The test an index of ``_one(spec)`` holds (its WHERE), on alias ``e``."""
    on = [e.c.form == _literal(form)]
    if spec.kind in _PLAIN:  # such events touching any of the names (one index for the set:
        # testing the JSON on each of a form's changed events cost 1.8 s at 1M orders)
        touched = [_changed(e.c.payload, name) for name in spec.names]
        return [*on, e.c.kind == _literal(_PLAIN[spec.kind]), sa.or_(*touched)]
    keyed = payload_key(spec)
    if keyed is None:
        return [*on, e.c.kind == _literal("created")]
    kind, key = keyed
    return [*on, e.c.kind == _literal(kind), event_key(e.c.payload, key) == _literal(spec.names[0])]


def event_matches(e: sa.FromClause, form: str, spec: EventSpec) -> list[ColumnElement[bool]]:
    """Conditions on the events alias ``e`` selecting ``spec``'s events of ``form``: the
    test of its partial indexes spelled as they spell it (several keyed names: their OR)."""
    tests = [_indexed(e, form, one) for one in _one(spec)]
    if len(tests) == 1:
        return tests[0]
    return [sa.or_(*(sa.and_(*test) for test in tests))]


def kpi_event_specs(kpi: KpiSpec) -> Iterator[EventSpec]:
    """Every event a KPI's queries look up: its end points, what it counts, and the events
    of ``entered(...)``/``fired(...)`` in its conditions."""
    yield from (s for s in (kpi.start, kpi.end) if s is not None)
    if kpi.count is not None and kpi.count.event is not None:
        yield kpi.count.event
    yield from kpi.condition_events


def _used(app: App) -> Iterator[tuple[str, EventSpec]]:
    """(form, one-name spec) of every event any dashboard's KPI looks up."""
    for dashboard in app.dashboards.values():
        for kpi in dashboard.kpis:
            for spec in kpi_event_specs(kpi):
                if spec.kind != "created":
                    yield from ((kpi.form, one) for one in _one(spec))


def _hinted(app: App) -> Iterator[tuple[str, EventSpec]]:
    """(form, spec) of the state a form's hints look back on (:func:`last_event_at`)."""
    for form in app.forms.values():
        for hint in form.hints:
            yield form.name, EventSpec("state_entered", (hint.state,))


def kpi_event_indexes(app: App, events: sa.Table) -> None:
    """Add the partial indexes the app's KPIs need to ``events`` (none without dashboards),
    and the record-ordered one of each state a form's ``hints:`` look back on."""
    seen: set[str] = set()
    c = events.c
    wanted = [
        *((form, spec, ("rec", "at")) for form, spec in sorted(set(_used(app)), key=_order)),
        *((form, spec, ("rec",)) for form, spec in sorted(set(_hinted(app)), key=_order)),
    ]
    for form, spec, suffixes in wanted:
        where = sa.and_(*_indexed(events, form, spec))
        for suffix in suffixes:
            name = _name(form, spec, suffix)
            columns = (c.record_id, c.at, c.id) if suffix == "rec" else (c.at, c.record_id, c.id)
            if name not in seen:
                seen.add(name)
                sa.Index(name, *columns, sqlite_where=where, postgresql_where=where)


def _order(used: tuple[str, EventSpec]) -> tuple[str, str, tuple[str, ...]]:
    return used[0], used[1].kind, used[1].names


KPI_INDEX_PREFIX = "ix_sl_events_kpi_"
_SHORT = {"state_entered": "in", "transition": "tr", "notified": "nt", "field_changed": "fc"}


def _name(form: str, spec: EventSpec, suffix: str) -> str:
    """``ix_sl_events_kpi_in_order_approved_rec``; a hash where that is too long or not plain."""
    what = "_".join((_PLAIN[spec.kind], *spec.names)) if spec.kind in _PLAIN else spec.names[0]
    readable = f"{KPI_INDEX_PREFIX}{_SHORT.get(spec.kind, spec.kind)}_{form}_{what}"
    if len(readable) + len(suffix) < 63 and readable.isascii() and readable.isidentifier():
        return f"{readable}_{suffix}"
    digest = hashlib.sha1(f"{form}|{spec.kind}|{what}".encode()).hexdigest()[:12]
    return f"{KPI_INDEX_PREFIX}{digest}_{suffix}"


_From = TypeVar("_From", bound=FromClause)


def _named(e: _From, form: str, spec: EventSpec, suffix: str) -> _From:
    """Make SQLite read ``e`` through the KPI index of (form, one-index ``spec``): without
    being told it picks (kind, at) for windows and (form, record_id) for one record's events
    — the latter tests the JSON of every event of the record (first-pass rate at 1M orders:
    3.4 s)."""
    e._sl_indexed_by = _name(form, spec, suffix)  # type: ignore[attr-defined]
    return e


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
    if len(_one(spec)) == 1:
        _named(before, form, spec, "rec")
    earlier = sa.exists().where(  # in time, then in the order recorded (the event id)
        *event_matches(before, form, spec),
        before.c.record_id == e.c.record_id,
        sa.tuple_(before.c.at, before.c.id) < sa.tuple_(e.c.at, e.c.id),
    )
    query = sa.select(e.c.record_id, e.c.at).where(
        *event_matches(e, form, spec), *period.clauses(e.c.at), ~earlier
    )
    if len(_one(spec)) == 1:  # SQLite prefers (kind, at) even with statistics: name ours
        _named(e, form, spec, "at")
    return query


def first_end(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any, start_at: Any
) -> ColumnElement[Any]:
    """A scalar subquery: the first ``spec`` event of ``record_id`` at or after ``start_at``
    (one seek in the record-ordered index per start)."""
    e = events.alias("e_to")
    if len(_one(spec)) == 1:
        _named(e, form, spec, "rec")
    return (
        sa.select(sa.func.min(e.c.at))
        .where(
            *event_matches(e, form, spec),
            e.c.record_id == record_id,
            e.c.at >= start_at,
        )
        .scalar_subquery()
    )


def first_ends(
    events: sa.Table, form: str, spec: EventSpec, begin: Any, since: Any = None
) -> sa.Subquery:
    """(record_id, at): per record of ``begin`` (record_id, at), its first ``spec`` event at
    or after its start — set-based: the window's such events (time-ordered index) joined to
    the starts; ``since`` (the window's start) prunes the older ones. PostgreSQL's way;
    :func:`first_end` is SQLite's."""
    e = events.alias("e_to")
    query = (
        sa.select(e.c.record_id, sa.func.min(e.c.at).label("at"))
        .select_from(
            e.join(begin, sa.and_(begin.c.record_id == e.c.record_id, e.c.at >= begin.c.at))
        )
        .where(*event_matches(e, form, spec))
        .group_by(e.c.record_id)
    )
    if since is not None:
        query = query.where(e.c.at >= since)
    return query.subquery("first_to")


def last_event_at(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any
) -> ColumnElement[Any]:
    """A scalar subquery: the time of ``record_id``'s latest event of a one-name ``spec``
    (NULL without one) — one seek in its record-ordered index (a KPI's or a hint's)."""
    e = _named(events.alias("e_last"), form, spec, "rec")
    return (
        sa.select(sa.func.max(e.c.at))
        .where(*event_matches(e, form, spec), e.c.record_id == record_id)
        .scalar_subquery()
    )


def record_has_event(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any, dialect: str = ""
) -> ColumnElement[bool]:
    """``EXISTS`` a ``spec`` event of ``record_id``: one seek in the record-ordered index per
    name (several names: an OR of one EXISTS each — as one EXISTS over an OR, PostgreSQL
    hashed every such event in the history instead, 9 s at 1M orders).

    On PostgreSQL ``SELECT 1 … OFFSET 0``: it turns a plain EXISTS it cannot make a semi-join
    (one under an OR, or in a CASE) into a *hashed* subplan — all of the history's such events
    read into a hash, 884,170 of them at 1M orders, once per EXISTS, even to count the current
    week's thousand orders (first-pass rate: 0.9–1.1 s). An OFFSET keeps it a per-row seek
    (18 ms for that week, 240 ms for 30 days); ``1`` keeps the seek inside the index. SQLite
    seeks per row anyway and keeps the plain EXISTS."""
    tests = []
    for one in _one(spec):
        e = _named(events.alias("e_has"), form, one, "rec")
        seek: sa.Select[Any] = sa.select(sa.literal_column("1")).where(
            *event_matches(e, form, one), e.c.record_id == record_id
        )
        if dialect == "postgresql":
            seek = seek.offset(0)
        tests.append(sa.exists(seek))
    return tests[0] if len(tests) == 1 else sa.or_(*tests)


def record_event_count(
    events: sa.Table, form: str, spec: EventSpec, record_id: Any, before: Any = None
) -> ColumnElement[int]:
    """How many ``spec`` events ``record_id`` has (up to ``before``): a scalar subquery per
    name, added up (each one index seek)."""
    counts = []
    for one in _one(spec):
        e = _named(events.alias("e_count"), form, one, "rec")
        clauses = [*event_matches(e, form, one), e.c.record_id == record_id]
        if before is not None:
            clauses.append(e.c.at <= before)
        counts.append(sa.select(sa.func.count()).where(*clauses).scalar_subquery())
    total: ColumnElement[int] = counts[0]
    for more in counts[1:]:
        total = total + more
    return total
