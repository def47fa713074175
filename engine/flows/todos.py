"""In-app to-dos: what a ``notify`` step with ``todo: true`` leaves besides its chat message.

One to-do per person the step names, or one per role it names (whoever holds the role may
mark it done, and then it is done for all of them). Each is linked to the record and keyed on
the run, the step and the recipient, so a retried step never leaves two. Marking one done
records who and when, and leaves a ``todo_done`` event on the record's timeline.

Approval notifications (``notify: {todo: true}`` of an approval) leave no to-do here: the
approval task itself is the to-do, in the same worklist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from engine.expressions import EvalEnv
from engine.flows.people import people_for
from engine.model.errors import Conflict, Forbidden, NotFound, refused
from engine.model.permissions import Actor
from engine.model.spec import App, WhoSpec
from engine.store.events import EventIn, append_events
from engine.store.system_tables import system_metadata

__all__ = ["DONE", "TODOS", "Assignee", "add_todos", "assignees", "mark_done", "mine"]

TODOS = system_metadata().tables["sl_todos"]
DONE = "todo_done"


@dataclass(frozen=True, slots=True)
class Assignee:
    """A person (``user``) or everyone holding ``role``."""

    user: str | None = None
    role: str | None = None

    @property
    def key(self) -> str:
        return self.user if self.user is not None else f"@{self.role}"


def assignees(
    app: App,
    to: Sequence[WhoSpec],
    context: Mapping[str, Any],
    env: EvalEnv,
    owner: str | None = None,
) -> list[Assignee]:
    """Who gets the to-do: each role named stays a role; everything else names people of the
    org chart (a field holding a customer, who does not sign in, names no one)."""
    out: list[Assignee] = []
    for who in to:
        if who.kind == "role":
            found = [Assignee(role=who.value)]
        elif who.kind == "field" and isinstance(context.get(who.value), Mapping):
            found = []
        else:
            found = [Assignee(user=p.user) for p in people_for(app, who, context, env, owner=owner)]
        out.extend(a for a in found if a not in out)
    return out


def add_todos(
    conn: sa.Connection,
    key: str,
    form: str,
    record_id: int,
    to: Iterable[Assignee],
    title: str,
    source: str,
    now: datetime,
) -> None:
    """One open to-do per assignee, unless one with the same key (``key`` + recipient) exists."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for who in to:
        conn.execute(
            insert(TODOS)
            .values(
                key=f"{key}:{who.key}"[:200],
                form=form,
                record_id=record_id,
                user=who.user,
                role=who.role,
                title=title[:500],
                source=source[:64],
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[TODOS.c.key])
        )


def mine(user: Actor) -> sa.ColumnElement[bool]:
    """Open to-dos for ``user``: named to them or to a role they hold."""
    return sa.and_(
        TODOS.c.done_at.is_(None),
        sa.or_(TODOS.c.user == user.username, TODOS.c.role.in_(sorted(user.roles))),
    )


def mark_done(
    conn: sa.Connection, metadata: sa.MetaData, todo_id: int, user: Actor, now: datetime
) -> dict[str, Any]:
    """``user`` marks the to-do done (404 unknown, 403 not theirs, 409 done already)."""
    row = conn.execute(sa.select(TODOS).where(TODOS.c.id == todo_id).with_for_update()).first()
    if row is None:
        raise NotFound("todo", None)
    if row.user != user.username and row.role not in user.roles:
        raise refused(
            Forbidden,
            "forbidden",
            "this to-do is for someone else",
            "这条待办不是给您的",
        )
    if row.done_at is not None:
        raise refused(
            Conflict,
            "done_already",
            f"this to-do was marked done already (by {row.done_by})",
            f"这条待办已完成（{row.done_by}）",
        )
    conn.execute(
        TODOS.update().where(TODOS.c.id == todo_id).values(done_at=now, done_by=user.username)
    )
    payload = {"todo_id": todo_id, "title": row.title, "user": row.user, "role": row.role}
    append_events(
        conn, metadata, [EventIn(user.username, row.form, row.record_id, DONE, payload)], now
    )
    return {"id": todo_id, "form": row.form, "record_id": row.record_id, "title": row.title}
