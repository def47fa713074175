"""What waits for one person, in four sections, each with a count (``/tasks``, the home page
and the count in the menu). Pure reads: one query per kind of work, never one per record.

1. **Approvals** — open approval tasks of theirs or of people they stand in for (the
   approval inbox, :func:`engine.flows.approvals.inbox.inbox`).
2. **Confirmations** — records waiting at a transition's ``confirm:`` gate for a role the person
   holds: in one of the transition's ``from`` states, the gate's field filled, and that role's
   confirmation of the current value not standing (what :mod:`engine.flows.confirm` reads).
3. **To-dos** — open in-app to-dos for them or a role they hold (``notify`` with ``todo: true``,
   :mod:`engine.flows.todos`).
4. **Actions** — records in the ``from`` states of a transition whose ``roles:`` name a role the
   person holds. Which transitions count as work (the rule, also in the README):

   - fired by people: not ``by: system``, and with ``roles:`` (a transition open to everyone
     who may edit waits for no one in particular);
   - moving the record on: not into an editable state (sending back for changes, e.g. revise)
     and not from an editable state into a final one (giving up a record still being prepared,
     e.g. cancel) — those are reactions, nobody's pending work;
   - records in an editable state (a draft, a returned record) wait only for the person who
     created them;
   - with a gate: only records whose gate is complete, or whose gate field is still blank (it
     must be filled first) — the others wait in section 2.

   A transition whose guard or required fields would still refuse it is listed all the same:
   making it possible is the work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.flows.approvals.inbox import inbox
from engine.flows.approvals.service import (
    APPROVALS,
    ASSIGNEES,
    TASKS,
    delegators,
    record_label,
)
from engine.flows.confirm import gate_status, standing_many
from engine.flows.todos import TODOS, mine
from engine.forms.validate import is_blank
from engine.model.calendar import WorkCalendar
from engine.model.permissions import Actor, Resource, allowed
from engine.model.spec import App, FormSpec, StateMachineSpec, TransitionSpec
from engine.store.system_tables import system_metadata
from engine.store.tables import table_name

__all__ = [
    "ActionWork",
    "CountCache",
    "GateWork",
    "TodoItem",
    "WorkCounts",
    "WorkItem",
    "Worklist",
    "is_work",
    "work_counts",
    "worklist",
]

SHOWN = 20  # records listed per transition or gate (the rest behind "all N")
GATE_ROWS = 5000  # records read per gated form (newest first) to weigh their gates


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A record waiting: how people name it, its state, since when it has been there."""

    form: str
    record_id: int
    label: str
    state: str
    since: datetime | None


@dataclass(frozen=True, slots=True)
class ActionWork:
    """Records waiting for the person to fire ``transition``; ``by_state``: how many in each
    of its ``from`` states (the list page filters by one state)."""

    form: FormSpec
    transition: TransitionSpec
    count: int
    by_state: tuple[tuple[str, int], ...]
    items: tuple[WorkItem, ...]


@dataclass(frozen=True, slots=True)
class GateWork:
    """Records waiting at the gate of ``transition`` for ``role`` (one the person holds)."""

    form: FormSpec
    transition: TransitionSpec
    role: str
    count: int
    items: tuple[WorkItem, ...]


@dataclass(frozen=True, slots=True)
class TodoItem:
    id: int
    form: str
    record_id: int
    title: str
    user: str | None
    role: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WorkCounts:
    approvals: int = 0
    gates: int = 0
    todos: int = 0
    actions: int = 0

    @property
    def total(self) -> int:
        return self.approvals + self.gates + self.todos + self.actions


@dataclass
class Worklist:
    approvals: list[dict[str, Any]] = field(default_factory=list)
    gates: list[GateWork] = field(default_factory=list)
    todos: list[TodoItem] = field(default_factory=list)
    todo_count: int = 0
    actions: list[ActionWork] = field(default_factory=list)

    @property
    def counts(self) -> WorkCounts:
        return WorkCounts(
            len(self.approvals),
            sum(g.count for g in self.gates),
            self.todo_count,
            sum(a.count for a in self.actions),
        )


# ---------------------------------------------------------------------------- the rule


def is_work(machine: StateMachineSpec, transition: TransitionSpec) -> bool:
    """Does ``transition`` wait for its roles when a record is in one of its sources?"""
    if transition.by_system or not transition.roles:
        return False
    states = {s.name: s for s in machine.states}
    target = states.get(transition.target)
    if target is None or target.editable:
        return False
    return not (target.final and any(states[s].editable for s in transition.sources))


def _forms(app: App, user: Actor) -> list[tuple[FormSpec, StateMachineSpec]]:
    return [
        (form, app.state_machines[name])
        for name, form in app.forms.items()
        if name in app.state_machines
        and allowed(app, user, "read", Resource(form), shown_only=True)
    ]


def _fires(
    app: App, user: Actor, form: FormSpec, machine: StateMachineSpec
) -> list[TransitionSpec]:
    """The transitions of ``form`` that are work for ``user`` (a role of theirs fires them)."""
    return [
        t
        for t in machine.transitions
        if is_work(machine, t)
        and set(t.roles) & user.roles
        and allowed(app, user, "transition", Resource(form, transition=t), shown_only=True)
    ]


def _my_gates(user: Actor, machine: StateMachineSpec) -> list[tuple[TransitionSpec, str]]:
    return [
        (t, role)
        for t in machine.transitions
        if t.confirm is not None
        for role in t.confirm.by
        if role in user.roles
    ]


def _editable(machine: StateMachineSpec) -> set[str]:
    return {s.name for s in machine.states if s.editable}


def _in_states(
    table: sa.Table, states: Sequence[str], editable: set[str], user: str
) -> sa.ColumnElement[bool]:
    """Records in ``states``; in an editable one, only those ``user`` created."""
    plain = [s for s in states if s not in editable]
    own = [s for s in states if s in editable]
    parts: list[sa.ColumnElement[bool]] = []
    if plain:
        parts.append(table.c.state.in_(plain))
    if own:
        parts.append(sa.and_(table.c.state.in_(own), table.c.created_by == user))
    return sa.or_(*parts) if parts else sa.false()


# ---------------------------------------------------------------------------- gates


@dataclass
class _GateResult:
    waiting: dict[tuple[str, str], list[Mapping[str, Any]]]  # (transition, role) -> rows
    ready: dict[str, list[Mapping[str, Any]]]  # transition -> rows it may fire on now


def _columns(table: sa.Table, form: FormSpec) -> list[sa.ColumnElement[Any]]:
    cols: list[Any] = [table.c.id, table.c.state, table.c.updated_at]
    name = form.title_field or next(iter(form.list_columns), None)
    if name and name in table.c and name not in ("id", "state", "updated_at"):
        cols.append(table.c[name])
    return cols


def _gates(
    conn: sa.Connection,
    metadata: sa.MetaData,
    user: Actor,
    form: FormSpec,
    machine: StateMachineSpec,
    firing: Sequence[TransitionSpec],
) -> _GateResult:
    """Weigh the gates of ``form`` that concern ``user`` (as a confirming role, or as one who
    fires the gated transition) for the records at them."""
    mine_ = _my_gates(user, machine)
    gated = {t.name: t for t, _ in mine_} | {t.name: t for t in firing if t.confirm}
    result = _GateResult({}, {})
    if not gated:
        return result
    table = metadata.tables[table_name(form.name)]
    fields = {t.confirm.field for t in gated.values() if t.confirm is not None}
    sources = sorted({s for t in gated.values() for s in t.sources})
    query = (
        sa.select(*_columns(table, form), *(table.c[f] for f in sorted(fields) if f in table.c))
        .where(_in_states(table, sources, _editable(machine), user.username))
        .order_by(table.c.updated_at.desc(), table.c.id.desc())
        .limit(GATE_ROWS)
    )
    rows = [dict(r._mapping) for r in conn.execute(query)]
    found = standing_many(conn, metadata, form.name, [r["id"] for r in rows])
    fires = {t.name for t in firing}
    for row in rows:
        for t in gated.values():
            if row["state"] not in t.sources or t.confirm is None:
                continue
            status = gate_status(t, row, found.get(row["id"], {}).get(t.name, []))
            blank = is_blank(status.value)
            for gate, role in mine_:
                if gate.name == t.name and role in status.missing and not blank:
                    result.waiting.setdefault((t.name, role), []).append(row)
            if t.name in fires and (blank or not status.missing):
                result.ready.setdefault(t.name, []).append(row)
    return result


def _item(form: FormSpec, row: Mapping[str, Any]) -> WorkItem:
    since = row.get("updated_at")
    if isinstance(since, datetime) and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return WorkItem(form.name, int(row["id"]), record_label(form, row), row["state"], since)


# ---------------------------------------------------------------------------- actions


def _state_counts(
    conn: sa.Connection,
    metadata: sa.MetaData,
    user: Actor,
    form: FormSpec,
    machine: StateMachineSpec,
    transitions: Sequence[TransitionSpec],
    cap: int | None = None,
) -> dict[str, int]:
    """Records per source state of ``transitions`` (one grouped count); with ``cap``, counted
    among the first ``cap`` records only (a bound on the work, whatever the table's size)."""
    states = sorted({s for t in transitions for s in t.sources})
    if not states:
        return {}
    table = metadata.tables[table_name(form.name)]
    where = _in_states(table, states, _editable(machine), user.username)
    if cap is None:
        query = sa.select(table.c.state, sa.func.count()).where(where).group_by(table.c.state)
    else:
        inner = sa.select(table.c.state).where(where).limit(cap).subquery()
        query = sa.select(inner.c.state, sa.func.count()).group_by(inner.c.state)
    return {state: int(n) for state, n in conn.execute(query)}


def _newest(
    conn: sa.Connection,
    metadata: sa.MetaData,
    user: Actor,
    form: FormSpec,
    machine: StateMachineSpec,
    transition: TransitionSpec,
    limit: int,
) -> list[WorkItem]:
    table = metadata.tables[table_name(form.name)]
    query = (
        sa.select(*_columns(table, form))
        .where(_in_states(table, transition.sources, _editable(machine), user.username))
        .order_by(table.c.updated_at.desc(), table.c.id.desc())
        .limit(limit)
    )
    return [_item(form, dict(r._mapping)) for r in conn.execute(query)]


# ---------------------------------------------------------------------------- the worklist


def _approval_count(conn: sa.Connection, app: App, user: str, now: datetime) -> int:
    principals = [user, *delegators(conn, user, now)]
    assigned = sa.select(ASSIGNEES.c.task_id).where(ASSIGNEES.c.user.in_(principals))
    query = (
        sa.select(sa.func.count())
        .select_from(TASKS.join(APPROVALS, APPROVALS.c.id == TASKS.c.approval_id))
        .where(
            TASKS.c.status == "open",
            APPROVALS.c.status == "active",
            TASKS.c.id.in_(assigned),
            APPROVALS.c.form.in_(list(app.forms)),
        )
    )
    return int(conn.execute(query).scalar_one())


def _todo_query(app: App, user: Actor) -> sa.Select[Any]:
    return sa.select(TODOS).where(mine(user), TODOS.c.form.in_(list(app.forms)))


def work_counts(
    conn: sa.Connection,
    app: App,
    metadata: sa.MetaData,
    user: Actor,
    now: datetime,
    cap: int | None = None,
) -> WorkCounts:
    """How much waits for ``user`` in each section: counts only (the menu asks on every page).
    With ``cap``, records waiting in a form's states are counted up to ``cap`` (the menu shows
    "999+" past that): the count then costs the same at any table size."""
    gates = actions = 0
    for form, machine in _forms(app, user):
        firing = _fires(app, user, form, machine)
        weighed = _gates(conn, metadata, user, form, machine, firing)
        gates += sum(len(rows) for rows in weighed.waiting.values())
        plain = [t for t in firing if t.confirm is None]
        counts = _state_counts(conn, metadata, user, form, machine, plain, cap)
        actions += sum(counts.get(s, 0) for t in plain for s in t.sources)
        actions += sum(len(rows) for rows in weighed.ready.values())
    todos = conn.execute(
        sa.select(sa.func.count()).select_from(_todo_query(app, user).subquery())
    ).scalar_one()
    return WorkCounts(_approval_count(conn, app, user.username, now), gates, int(todos), actions)


HEAD = system_metadata().tables["sl_chain_head"]


class CountCache:
    """The menu's count per person, kept while nothing happened: every change that can move a
    count (a record changed or moved on, a gate confirmed, an approval decided, a to-do added
    or marked done) appends to the event log in its transaction, so the count stays valid while
    the chain head (one row read by its key: the last event's id and hash, which also tells one
    database from another) has not moved — for at most ``ttl`` seconds, which
    bounds what moves without an event (a delegation's period starting or ending). Keyed on the
    deployed app's content hash: a new deployment counts anew. One per process (each web
    process keeps its own; the head check keeps them all right)."""

    def __init__(self, ttl: float = 30.0, size: int = 5000) -> None:
        self.ttl, self.size = ttl, size
        self._kept: dict[
            tuple[str, str, str, frozenset[str], int | None],
            tuple[tuple[int, str] | None, float, int],
        ] = {}
        self._lock = threading.Lock()

    def total(
        self,
        conn: sa.Connection,
        app: App,
        metadata: sa.MetaData,
        user: Actor,
        now: datetime,
        cap: int | None = None,
    ) -> int:
        """:func:`work_counts` ``.total``, from the cache while the event log stands still."""
        row = conn.execute(
            sa.select(HEAD.c.last_id, HEAD.c.last_hash).where(HEAD.c.id == 1)
        ).first()
        head = None if row is None else (int(row.last_id), str(row.last_hash))
        # the database too: two fresh databases share an empty event log's head
        key = (str(conn.engine.url), app.content_hash, user.username, frozenset(user.roles), cap)
        moment = time.monotonic()
        with self._lock:
            found = self._kept.get(key)
        if found is not None and found[0] == head and moment - found[1] < self.ttl:
            return found[2]
        total = work_counts(conn, app, metadata, user, now, cap).total  # read after the head
        with self._lock:
            if len(self._kept) >= self.size:
                self._kept.clear()
            self._kept[key] = (head, moment, total)
        return total


def worklist(
    conn: sa.Connection,
    app: App,
    calendar: WorkCalendar,
    metadata: sa.MetaData,
    user: Actor,
    now: datetime,
    shown: int = SHOWN,
) -> Worklist:
    """Everything waiting for ``user``, by section; each list newest first (approvals oldest
    first, as the inbox orders them), at most ``shown`` records per transition or gate."""
    out = Worklist(approvals=inbox(conn, app, calendar, user.username, now))
    for form, machine in _forms(app, user):
        firing = _fires(app, user, form, machine)
        weighed = _gates(conn, metadata, user, form, machine, firing)
        for t, role in _my_gates(user, machine):
            rows = weighed.waiting.get((t.name, role), [])
            if rows:
                items = tuple(_item(form, r) for r in rows[:shown])
                out.gates.append(GateWork(form, t, role, len(rows), items))
        plain = [t for t in firing if t.confirm is None]
        counts = _state_counts(conn, metadata, user, form, machine, plain)
        for t in firing:
            if t.confirm is not None:
                rows = weighed.ready.get(t.name, [])
                by_state: dict[str, int] = {}
                for r in rows:
                    by_state[r["state"]] = by_state.get(r["state"], 0) + 1
                items = tuple(_item(form, r) for r in rows[:shown])
                count = len(rows)
            else:
                by_state = {s: counts[s] for s in t.sources if counts.get(s)}
                count = sum(by_state.values())
                items = (
                    tuple(_newest(conn, metadata, user, form, machine, t, shown)) if count else ()
                )
            if count:
                out.actions.append(ActionWork(form, t, count, tuple(by_state.items()), items))
    todos = conn.execute(
        _todo_query(app, user).order_by(TODOS.c.created_at.desc(), TODOS.c.id.desc()).limit(200)
    ).all()
    out.todos = [
        TodoItem(
            r.id,
            r.form,
            r.record_id,
            r.title,
            r.user,
            r.role,
            r.created_at if r.created_at.tzinfo else r.created_at.replace(tzinfo=UTC),
        )
        for r in todos
    ]
    out.todo_count = (
        len(out.todos)
        if len(out.todos) < 200
        else int(
            conn.execute(
                sa.select(sa.func.count()).select_from(_todo_query(app, user).subquery())
            ).scalar_one()
        )
    )
    return out
