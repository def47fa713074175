"""Hints from history (a form's ``hints:``), for one record: among the last ``last`` other
records sharing its ``match`` values that entered ``state``, the days from ``date`` to the day
each entered it (in the app's time zone; negative: before). All early, or all late, by at least
``min_days`` → a hint with the evidence; anything else, or fewer such records → no hint.

One query per hint: the matching records (refs' fields through a join) with the time of their
latest transition into ``state`` (one seek each in the partial index deploy adds for it, see
:func:`engine.store.event_sql.kpi_event_indexes`), newest first, ``LIMIT last``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.model.spec import App, EventSpec, FormSpec, HintSpec
from engine.store.event_sql import last_event_at
from engine.store.tables import table_name

__all__ = ["Evidence", "Hint", "record_hints"]


@dataclass(frozen=True, slots=True)
class Evidence:
    record_id: int
    title: str
    day: date  # the record's date field
    entered: date
    days: int  # entered - day: negative when it came early


@dataclass(frozen=True, slots=True)
class Hint:
    spec: HintSpec
    early: bool
    days: int  # the smallest shift among the evidence, in days (positive)
    evidence: tuple[Evidence, ...]


def _ref_id(value: Any) -> Any:
    return value.get("id") if isinstance(value, Mapping) else value


def record_hints(
    engine: Engine, metadata: sa.MetaData, app: App, form: FormSpec, record: Mapping[str, Any]
) -> list[Hint]:
    found = []
    with engine.connect() as conn:
        for spec in form.hints:
            hint = _hint(conn, metadata, app, form, spec, record)
            if hint is not None:
                found.append(hint)
    return found


def _hint(
    conn: sa.Connection,
    metadata: sa.MetaData,
    app: App,
    form: FormSpec,
    spec: HintSpec,
    record: Mapping[str, Any],
) -> Hint | None:
    table = metadata.tables[table_name(form.name)]
    events = metadata.tables["sl_events"]
    source: sa.FromClause = table
    where: list[Any] = [table.c.state == spec.state, table.c.id != record["id"]]
    for path in spec.match:
        head, _, tail = path.partition(".")
        value = _ref_id(record.get(head))
        if value is None:
            return None
        if not tail:
            where.append(table.c[head] == value)
            continue
        ref_form = form.field(head).ref_form
        assert ref_form is not None
        target = metadata.tables[table_name(ref_form)]
        wanted = conn.execute(sa.select(target.c[tail]).where(target.c.id == value)).scalar()
        if wanted is None:
            return None
        alias = target.alias(f"m_{head}")
        source = source.join(alias, alias.c.id == table.c[head])
        where.append(alias.c[tail] == wanted)
    # driven from the matching records (their own indexes), each one's latest entry into the
    # state by one seek in the hint's partial index: joined to the events instead, SQLite read
    # every transition of the history (2 s a record page at 42 k orders)
    entered = last_event_at(
        events, form.name, EventSpec("state_entered", (spec.state,)), table.c.id
    )
    title = table.c[form.title_field] if form.title_field else table.c.id
    found = (
        sa.select(
            table.c.id,
            title.label("title"),
            table.c[spec.date].label("day"),
            entered.label("entered"),
        )
        .select_from(source)
        .where(*where, table.c[spec.date].is_not(None))
        .subquery("matching")
    )
    rows = conn.execute(
        sa.select(found)
        .where(found.c.entered.is_not(None))
        .order_by(found.c.entered.desc(), found.c.id.desc())
        .limit(spec.last)
    ).all()
    if len(rows) < spec.last:
        return None
    tz = ZoneInfo(app.timezone)
    evidence = tuple(
        _evidence(int(r.id), str(r.title), r[2], _local_day(r.entered, tz)) for r in rows
    )
    shifts = [e.days for e in evidence]
    if all(d <= -spec.min_days for d in shifts):
        return Hint(spec, True, min(-d for d in shifts), evidence)
    if all(d >= spec.min_days for d in shifts):
        return Hint(spec, False, min(shifts), evidence)
    return None


def _evidence(record_id: int, title: str, day: date, entered: date) -> Evidence:
    return Evidence(record_id, title, day, entered, (entered - day).days)


def _local_day(at: datetime, tz: ZoneInfo) -> date:
    if at.tzinfo is None:  # SQLite gives naive UTC
        at = at.replace(tzinfo=UTC)
    return at.astimezone(tz).date()
