"""What the tracking page shows a verified visitor: their records, whitelisted fields only,
and each record's chain of states in plain words (labels and times from the event log).

With ``stages``, each record also gets its stage's colour and a progress line: the stages in
their declared order, done / current / to come. A stage made only of final states (e.g.
已取消) is a way out, not a step: it is on the line only for a record that reached it.
A visit opened from a message's link (``?no=SO-…``) shows that record first when it is one of
the visitor's own; any other number shows nothing more than "not among your records".

Only records whose contact ref is one of the session's contact ids are read, and only while
those contacts still have the phone number that was verified. Personal data is masked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from engine.model.spec import FieldSpec, FormSpec, StateMachineSpec, TrackingSpec
from engine.store.storage import reader
from engine.tracking.limits import normalise_phone, phone_key
from engine.tracking.live import Live

__all__ = ["Step", "Tracked", "TrackedRecord", "mask_name", "mask_phone", "read_tracked"]

_CHAIN_KINDS = ("created", "transition")


@dataclass(frozen=True, slots=True)
class Step:
    """One stage on a record's progress line."""

    label: str
    color: str  # a badge colour (grey, blue, green, amber, red)
    status: str  # done | current | todo


@dataclass(frozen=True, slots=True)
class TrackedRecord:
    number: str
    state: str
    fields: tuple[tuple[str, str], ...]  # (label, value as shown)
    chain: tuple[tuple[str, str], ...]  # (state or stage label, when)
    color: str = "grey"  # the badge colour of ``state``
    progress: tuple[Step, ...] = ()  # with stages: the line of stages


@dataclass(frozen=True, slots=True)
class Tracked:
    phone: str  # masked
    name: str  # masked, or ""
    records: tuple[TrackedRecord, ...]
    page: int = 1
    more: int = 0  # records after this page
    focus: TrackedRecord | None = None  # the record the visit's link named (``?no=``)
    focus_missing: bool = False  # a number was named, and it is none of the visitor's records


def mask_phone(phone: str) -> str:
    """138****5678: the first three and last four digits."""
    if len(phone) <= 7:
        return phone[:1] + "*" * max(0, len(phone) - 1)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_name(name: str) -> str:
    """张** — the first character only."""
    name = name.strip()
    return name[:1] + "*" * min(max(len(name) - 1, 1), 4) if name else ""


class Shows(Protocol):
    """How values read to people (the web floor's ``Formatter``, in the page's language)."""

    def value(self, spec: FieldSpec | None, value: Any) -> str: ...

    def state_label(self, form: FormSpec, state: str | None) -> str: ...

    def state_color(self, form: FormSpec, state: str | None) -> str: ...

    def datetime(self, value: Any) -> str: ...


def read_tracked(
    live: Live,
    spec: TrackingSpec,
    contact_ids: Sequence[int],
    pkey: str,
    fmt: Shows,
    page: int = 1,
    number: str | None = None,
) -> Tracked | None:
    """The page's content (``spec.limit`` records a page, newest first, and the record
    ``number`` names when it is theirs), or None when none of the contacts still has the
    verified phone."""
    contacts_table = live.records.table(spec.contact_form)
    with reader(live.records.engine).connect() as conn:
        rows = conn.execute(
            sa.select(contacts_table).where(contacts_table.c.id.in_(list(contact_ids)))
        ).all()
        mine = [r for r in rows if _still_has_phone(r._mapping, spec, pkey)]
        if not mine:
            return None
        phone = normalise_phone(str(mine[0]._mapping[spec.phone_field])) or ""
        name = str(mine[0]._mapping.get(spec.name_field or "") or "")
        contacts = [r.id for r in mine]
        ids, total = _record_ids(conn, live, spec, contacts, page)
        focus_id = _focus_id(conn, live, spec, contacts, number) if number else None
        wanted = ids if focus_id is None or focus_id in ids else [*ids, focus_id]
        events = _chain_events(conn, live, spec, wanted)
    form = live.app.forms[spec.record_form]
    found = live.records.list_page(
        form.name, filters={"id__in": ",".join(map(str, wanted))}, limit=len(wanted) or 1
    ).items
    shown = {r["id"]: _shown(fmt, live, spec, form, r, events.get(r["id"], [])) for r in found}
    records = tuple(shown[i] for i in sorted(shown, reverse=True) if i in ids)
    more = max(0, total - (page - 1) * spec.limit - len(ids))
    return Tracked(
        mask_phone(phone),
        mask_name(name),
        records,
        page,
        more,
        focus=shown.get(focus_id) if focus_id is not None else None,
        focus_missing=bool(number) and focus_id is None,
    )


def _focus_id(
    conn: sa.Connection, live: Live, spec: TrackingSpec, contacts: list[int], number: str
) -> int | None:
    """The id of the visitor's record numbered ``number`` (None when it is not theirs,
    hidden, or does not exist: the same answer)."""
    table = live.records.table(spec.record_form)
    where = [table.c[spec.contact_ref].in_(contacts), table.c[spec.number_field] == number]
    if spec.hide_states and "state" in table.c:
        where.append(table.c.state.not_in(spec.hide_states))
    found = conn.execute(sa.select(table.c.id).where(*where).order_by(table.c.id.desc()).limit(1))
    return found.scalar()


def _still_has_phone(row: Any, spec: TrackingSpec, pkey: str) -> bool:
    phone = normalise_phone(str(row.get(spec.phone_field) or ""))
    return phone is not None and phone_key(phone) == pkey


def _record_ids(
    conn: sa.Connection, live: Live, spec: TrackingSpec, contacts: list[int], page: int
) -> tuple[list[int], int]:
    """The ids on ``page`` and how many records there are in all."""
    table = live.records.table(spec.record_form)
    where = [table.c[spec.contact_ref].in_(contacts)]
    if spec.hide_states and "state" in table.c:
        where.append(table.c.state.not_in(spec.hide_states))
    query = sa.select(table.c.id).where(*where).order_by(table.c.id.desc())
    ids = [r.id for r in conn.execute(query.offset((page - 1) * spec.limit).limit(spec.limit))]
    if page == 1 and len(ids) < spec.limit:
        return ids, len(ids)
    total = conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()
    return ids, int(total or 0)


def _chain_events(
    conn: sa.Connection, live: Live, spec: TrackingSpec, ids: list[int]
) -> dict[int, list[Any]]:
    if not ids:
        return {}
    events = live.records.metadata.tables["sl_events"]
    rows = conn.execute(
        sa.select(events.c.record_id, events.c.at, events.c.kind, events.c.payload)
        .where(
            events.c.form == spec.record_form,
            events.c.record_id.in_(ids),
            events.c.kind.in_(_CHAIN_KINDS),
        )
        .order_by(events.c.id)
    )
    out: dict[int, list[Any]] = {}
    for row in rows:
        out.setdefault(row.record_id, []).append(row)
    return out


def _shown(
    fmt: Shows,
    live: Live,
    spec: TrackingSpec,
    form: FormSpec,
    record: dict[str, Any],
    events: list[Any],
) -> TrackedRecord:
    fields = []
    for name in spec.show:
        field = form.by_name[name]
        value = record.get(name)
        if value is None or value == "":
            continue  # e.g. the courier's number before the order ships
        if field.value_type == "ref":
            shown = record.get("_titles", {}).get(name) or "—"
        else:
            shown = fmt.value(field, value)
        fields.append((field.label, shown))
    machine = live.app.state_machines.get(form.name)
    chain: list[tuple[str, str]] = []
    for event in events:
        if event.kind == "created":
            state = machine.initial if machine else None
        else:
            state = json.loads(event.payload).get("to")
        if state in spec.hide_states:
            continue
        label = _label(fmt, spec, form, state)
        if spec.stages and chain and chain[-1][0] == label:
            continue  # one line per stage: the steps inside it are the company's business
        chain.append((label, fmt.datetime(event.at)))
    state = record.get("state")
    if spec.stages:
        color = spec.color_of(spec.stage_of(state))
    else:
        color = fmt.state_color(form, state) if machine else "grey"
    return TrackedRecord(
        number=str(record.get(spec.number_field) or f"#{record['id']}"),
        state=_label(fmt, spec, form, state) if machine else "",
        fields=tuple(fields),
        chain=tuple(chain),
        color=color,
        progress=_progress(spec, machine, state, {label for label, _at in chain}),
    )


def _progress(
    spec: TrackingSpec, machine: StateMachineSpec | None, state: str | None, passed: set[str]
) -> tuple[Step, ...]:
    """The stages in order, done / current / to come; a stage of final states only (a way
    out, e.g. 已取消) is on the line only when the record is in it, after the stages it passed."""
    if not spec.stages or machine is None:
        return ()
    final = {s.name for s in machine.states if s.final}
    main = [name for name, states in spec.stages if not set(states) <= final]
    current = spec.stage_of(state)
    if current in main:
        at = main.index(current)
        line = [(name, "done") for name in main[:at]] + [(current, "current")]
        line += [(name, "todo") for name in main[at + 1 :]]
    else:
        reached = [i for i, name in enumerate(main) if name in passed]
        line = [(name, "done") for name in main[: max(reached) + 1 if reached else 0]]
        if current is not None:
            line.append((current, "current"))
    return tuple(Step(name, spec.color_of(name), status) for name, status in line)


def _label(fmt: Shows, spec: TrackingSpec, form: FormSpec, state: str | None) -> str:
    """The stage people see (with ``stages``), else the state's label."""
    if spec.stages:
        return spec.stage_of(state) or ""
    return fmt.state_label(form, state) if state else ""
