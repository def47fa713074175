"""The records service: create, update, read and list records of any form, with every check
from the YAML, the change history written to the hash-chained event log in the same
transaction, and nothing form-specific in the code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.expressions import EvalEnv, EvaluationError
from engine.expressions.evaluate import AppRuntime
from engine.forms.listing import list_records
from engine.forms.rows import as_read, plain, utc
from engine.forms.validate import coerce_field, is_blank
from engine.model.errors import (
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    Locked,
    NotFound,
)
from engine.model.i18n import Lang, Text, lang_from_locale
from engine.model.permissions import Action, Resource, allowed, is_system, refusal, require
from engine.model.spec import App, FieldSpec, FormSpec
from engine.store.autonumber import next_number
from engine.store.events import EventIn, append_events
from engine.store.files import file_infos
from engine.store.storage import reader
from engine.store.tables import build_metadata, child_table_name, table_name

__all__ = ["SYSTEM_ACTOR", "Actor", "NotFound", "Page", "RecordChecks", "RecordService"]

SYSTEM_COLUMNS = ("id", "state", "version", "created_at", "updated_at", "created_by")


class Actor(Protocol):
    @property
    def username(self) -> str: ...
    @property
    def roles(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class _System:
    username: str = "system"
    roles: frozenset[str] = frozenset({"*"})


SYSTEM_ACTOR = _System()


@dataclass(frozen=True)
class RecordEvent:
    """What happened to a record, handed to listeners inside the same transaction (so what a
    listener writes — flow runs, outbox rows — commits or rolls back with the change)."""

    kind: str  # created | changed | children_changed (child rows only) | child_added | transition
    form: str
    record_id: int
    actor: str
    changes: Mapping[str, tuple[Any, Any]]
    transition: str | None = None
    from_state: str | None = None
    to_state: str | None = None


Listener = Callable[[sa.Connection, RecordEvent], None]
_Stmt = TypeVar("_Stmt", sa.Select[Any], sa.Update, sa.Insert)


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None = None


@dataclass
class _Draft:
    """Values being saved, with the errors found so far."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)


class RecordChecks:
    """Every check the records service makes that needs no database: field values, defaults,
    required fields, child rows, computed fields and rules. ``seamline test`` judges a record
    with these, so a config test says what the running app says."""

    def __init__(self, app: App, now: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.runtime = AppRuntime.of(app)
        self.lang: Lang = lang_from_locale(app.locale)
        self._now = now or (lambda: datetime.now(UTC))

    def check_new(
        self,
        form: FormSpec,
        data: Mapping[str, Any],
        actor: Actor,
        state: str | None,
        load_refs: Callable[[Mapping[str, Any]], dict[str, dict[str, Any] | None]],
        check_files: Callable[
            [Mapping[str, Any], Mapping[str, list[dict[str, Any]]], list[FieldError]], None
        ],
    ) -> tuple[_Draft, dict[str, list[dict[str, Any]]], dict[str, dict[str, Any] | None]]:
        """The checks of a new record, in order: values, defaults, required fields, child rows,
        refs (``load_refs`` finds the records they point at), files (``check_files``), then
        computed fields and rules. Returns the draft (values and errors), the child rows and
        the loaded refs."""
        draft = self._coerce(form, data, actor, state, creating=True)
        self._defaults(form, draft)
        self._required(form, draft, creating=True)
        children = self._children_input(form, data, draft, actor, creating=True)
        loaded = load_refs(draft.values)
        self._refs(form, draft, loaded)
        check_files(draft.values, children, draft.errors)
        self._finish(form, draft, state, None, loaded)
        return draft, children, loaded

    def form(self, name: str) -> FormSpec:
        spec = self.app.forms.get(name)
        if spec is None:
            raise NotFound(name)
        return spec

    def env(self) -> EvalEnv:
        return EvalEnv(calendar=self.runtime.calendar, now=self._now, timezone=self.app.timezone)

    def initial_state(self, form: str) -> str | None:
        machine = self.app.state_machines.get(form)
        return machine.initial if machine else None

    def _child_values(
        self, spec: FieldSpec, data: Any, actor: Actor, form: FormSpec
    ) -> tuple[dict[str, Any], list[FieldError]]:
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        if not isinstance(data, Mapping):
            return {}, [
                FieldError(
                    spec.name,
                    "type",
                    Text(
                        f"{spec.label}: each row must be an object",
                        f"{spec.label}：每一行必须是对象",
                    ),
                )
            ]
        known = {c.name: c for c in spec.children}
        for key in data:
            if key not in known:
                errors.append(
                    FieldError(
                        f"{spec.name}.{key}",
                        "unknown_field",
                        Text(f"unknown column '{key}'", f"未知的列 '{key}'"),
                    )
                )
        for child in spec.children:
            if not is_blank(data.get(child.name)):  # a column's readonly and editable_by
                refused = self.edit_refusal(child, actor, None, form)
                if refused is not None:
                    errors.append(
                        FieldError(f"{spec.name}.{child.name}", refused.code, refused.message)
                    )
                    continue
            value, error = coerce_field(child, data.get(child.name), self.app.timezone)
            if error:
                errors.append(FieldError(f"{spec.name}.{child.name}", error.code, error.message))
                continue
            if value is None and child.default_expr is not None:
                value = child.default_expr({}, self.env())
            if value is None and child.default is not None:
                value = child.default
            if value is None and child.required:
                errors.append(
                    FieldError(
                        f"{spec.name}.{child.name}",
                        "required",
                        Text(f"{child.label} is required", f"{child.label}为必填项"),
                    )
                )
            values[child.name] = value
        return values, errors

    def _coerce(
        self,
        form: FormSpec,
        data: Mapping[str, Any],
        actor: Actor,
        state: str | None,
        creating: bool,
    ) -> _Draft:
        draft = _Draft()
        if not isinstance(data, Mapping):
            draft.errors.append(
                FieldError(
                    None,
                    "type",
                    Text(
                        "the body must be a JSON object of field values",
                        "请求体必须是字段值组成的 JSON 对象",
                    ),
                )
            )
            return draft
        for key in data:
            if key in SYSTEM_COLUMNS or key.startswith("_"):
                continue
            if key not in form.by_name:
                draft.errors.append(
                    FieldError(
                        key,
                        "unknown_field",
                        Text(
                            f"'{key}' is not a field of {form.title}",
                            f"'{key}' 不是{form.title}的字段",
                        ),
                    )
                )
        for spec in form.fields:
            if spec.name not in data or spec.type == "table":
                continue
            raw = data[spec.name]
            refused = self.edit_refusal(spec, actor, state, form)
            if refused is not None:
                if not (spec.readonly and creating and is_blank(raw)):
                    draft.errors.append(refused)
                continue
            value, error = coerce_field(spec, raw, self.app.timezone)
            if error:
                draft.errors.append(error)
            else:
                draft.values[spec.name] = value
        return draft

    def edit_refusal(
        self, spec: FieldSpec, actor: Actor, state: str | None, form: FormSpec
    ) -> FieldError | None:
        """Why ``actor`` may not set ``spec`` in ``state`` (None when they may). The system
        (flows, imports: role ``*``) may set readonly fields such as an ATP date, but never
        computed fields or autonumbers."""
        system = is_system(actor)
        if spec.type in ("computed", "autonumber") or (spec.readonly and not system):
            return FieldError(
                spec.name,
                "readonly",
                Text(f"{spec.label} is filled in by the system", f"{spec.label}由系统自动填写"),
            )
        if system:
            return None
        if spec.editable_by and not allowed(
            self.app, actor, "field_edit", Resource(form, field=spec)
        ):
            return FieldError(
                spec.name,
                "forbidden",
                refusal(self.app, "field_edit", Resource(form, field=spec)),
            )
        if state is not None:
            if spec.editable_in:
                if state not in spec.editable_in:
                    return FieldError(
                        spec.name,
                        "locked",
                        Text(
                            f"{spec.label} cannot be changed in this state",
                            f"当前状态下不能修改{spec.label}",
                        ),
                    )
            elif not self._state_editable(state, form):
                return FieldError(
                    spec.name,
                    "locked",
                    Text(
                        f"the record is locked in state '{state}'", f"记录在“{state}”状态下已锁定"
                    ),
                )
        return None

    def _state_editable(self, state: str, form: FormSpec) -> bool:
        """Whether ``form``'s records in ``state`` may be edited (its own state machine: two
        forms may both have a state called 'review')."""
        machine = self.app.state_machines.get(form.name)
        if machine is None:
            return True
        return next((s.editable for s in machine.states if s.name == state), True)

    def _defaults(self, form: FormSpec, draft: _Draft) -> None:
        for spec in form.fields:
            if spec.name in draft.values or spec.type in ("table", "computed", "autonumber"):
                continue
            if spec.default_expr is not None:
                draft.values[spec.name] = spec.default_expr({}, self.env())
            elif spec.default is not None:
                draft.values[spec.name] = coerce_field(spec, spec.default, self.app.timezone)[0]
            elif spec.type in ("multiselect", "files"):
                draft.values[spec.name] = []

    def _required(self, form: FormSpec, draft: _Draft, creating: bool) -> None:
        failed = {e.field for e in draft.errors}
        for spec in form.fields:
            if (
                spec.required
                and spec.type not in ("table", "computed", "autonumber")
                and spec.name not in failed
                and is_blank(draft.values.get(spec.name))
            ):
                draft.errors.append(
                    FieldError(
                        spec.name,
                        "required",
                        Text(f"{spec.label} is required", f"{spec.label}为必填项"),
                    )
                )

    def _children_input(
        self,
        form: FormSpec,
        data: Mapping[str, Any],
        draft: _Draft,
        actor: Actor,
        creating: bool,
        state: str | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        if not isinstance(data, Mapping):
            return out
        for spec in form.fields:
            if spec.type != "table" or spec.name not in data:
                continue
            rows = data[spec.name]
            # Rows given on create obey the table's editable_by; replacing them later is an
            # edit like any other: who may (update + editable_by) and in which state.
            action: Action = "field_edit" if creating else "child_edit"
            if not (creating and spec.append_only) and not allowed(
                self.app, actor, action, Resource(form, field=spec)
            ):
                draft.errors.append(
                    FieldError(
                        spec.name,
                        "forbidden",
                        refusal(self.app, action, Resource(form, field=spec)),
                    )
                )
                continue
            if not creating and not spec.append_only:
                locked = self.edit_refusal(spec, actor, state, form)
                if locked is not None:
                    draft.errors.append(locked)
                    continue
            if spec.append_only and not creating:
                draft.errors.append(
                    FieldError(
                        spec.name,
                        "append_only",
                        Text(
                            f"{spec.label} rows can only be added, never edited or removed",
                            f"{spec.label}只能追加，不能修改或删除",
                        ),
                    )
                )
                continue
            if not isinstance(rows, list):
                draft.errors.append(
                    FieldError(
                        spec.name,
                        "type",
                        Text(f"{spec.label} must be a list of rows", f"{spec.label}必须是行的列表"),
                    )
                )
                continue
            if spec.max_rows is not None and len(rows) > spec.max_rows:
                draft.errors.append(_too_many_rows(spec))
                continue
            parsed = []
            for row in rows:
                values, errors = self._child_values(spec, row, actor, form)
                draft.errors.extend(errors)
                parsed.append(values)
            out[spec.name] = parsed
        for spec in form.fields:
            if (
                spec.type == "table"
                and spec.min_rows
                and len(out.get(spec.name, ())) < spec.min_rows
                and creating
            ):
                draft.errors.append(
                    FieldError(
                        spec.name,
                        "min_rows",
                        Text(
                            f"{spec.label}: at least {spec.min_rows} rows",
                            f"{spec.label}：至少 {spec.min_rows} 行",
                        ),
                    )
                )
        return out

    def _refs(
        self, form: FormSpec, draft: _Draft, loaded: Mapping[str, dict[str, Any] | None]
    ) -> None:
        for name, row in loaded.items():
            if row is not None:
                continue
            spec = form.by_name[name]
            target = self.form(spec.ref_form or "")
            draft.errors.append(
                FieldError(
                    spec.name,
                    "not_found",
                    Text(
                        f"{spec.label}: there is no {target.title} with id {draft.values[name]}",
                        f"{spec.label}：不存在编号为 {draft.values[name]} 的{target.title}",
                    ),
                )
            )

    def context(
        self,
        form: FormSpec,
        values: Mapping[str, Any],
        state: str | None,
        record_id: int | None,
        loaded: Mapping[str, dict[str, Any] | None],
    ) -> dict[str, Any]:
        """The names an expression sees: the values, refs loaded one level deep, system fields."""
        ctx = dict(values)
        ctx.update(state=state, id=record_id)
        ctx.update(loaded)
        return ctx

    def _finish(
        self,
        form: FormSpec,
        draft: _Draft,
        state: str | None,
        record_id: int | None,
        loaded: Mapping[str, dict[str, Any] | None],
    ) -> None:
        """Computed fields, then the form's rules."""
        ctx = self.context(form, draft.values, state, record_id, loaded)
        env = self.env()
        self._compute(form, ctx, draft.values)
        failed = {e.field for e in draft.errors}
        for rule in form.rules:
            used = {n.split(".")[0] for n in rule.check.names}
            if rule.field in failed or used & failed:
                continue
            try:
                if rule.when is not None and not rule.when(ctx, env):
                    continue
                ok = rule.check(ctx, env)
            except EvaluationError as exc:
                if any(ctx.get(n) is None for n in used):
                    continue  # a blank value: 'required' speaks for it
                draft.errors.append(FieldError(rule.field, "rule_error", exc.message))
                continue
            if not ok:
                draft.errors.append(
                    FieldError(rule.field, "rule", Text(rule.message, rule.message))
                )

    def _compute(self, form: FormSpec, ctx: dict[str, Any], into: dict[str, Any]) -> None:
        """Fill the computed fields into ``into`` (and ``ctx``) from the values in ``ctx``."""
        env = self.env()
        computed = [f for f in form.fields if f.type == "computed" and f.expr is not None]
        for _ in range(2):  # a computed field may use one defined after it
            for spec in computed:
                try:
                    value = spec.expr(ctx, env)  # type: ignore[misc]
                except EvaluationError:
                    value = None
                value = _as_result(spec, value)
                into[spec.name] = value
                ctx[spec.name] = value

    def transition_values(
        self,
        form: FormSpec,
        record: Mapping[str, Any],
        sets: Sequence[tuple[str, Any]],
        loaded: Mapping[str, dict[str, Any] | None],
    ) -> dict[str, Any]:
        """The values a transition's ``set:`` writes with it (e.g. the price an order was
        submitted with), and the computed fields that follow from them. An expression that
        cannot be evaluated raises :class:`ValidationFailed` (422): the transition does not
        fire half-done."""
        ctx = self.context(form, record, record.get("state"), record.get("id"), loaded)
        values: dict[str, Any] = {}
        for name, expr in sets:
            try:
                raw = expr(ctx, self.env())
            except EvaluationError as exc:
                raise Invalid([FieldError(name, "set_error", exc.message)]) from exc
            spec = form.by_name[name]
            value, error = coerce_field(spec, plain(raw), self.app.timezone)
            if error is not None:  # e.g. a text where a date belongs, an unknown option
                raise Invalid([FieldError(name, "set_error", error.message)])
            values[name] = value
            ctx[name] = value
        self._compute(form, ctx, values)
        return values


class RecordService(RecordChecks):
    """All record operations for one compiled App on one database."""

    def __init__(
        self,
        app: App,
        engine: Engine,
        metadata: sa.MetaData | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(app, now)
        self.engine = engine
        self.metadata = metadata if metadata is not None else build_metadata(app)
        self._built: dict[tuple[str, ...], Any] = {}
        self.reads = reader(engine)
        self.listeners: list[Listener] = []

    # ------------------------------------------------------------------ helpers
    def table(self, form: str) -> sa.Table:
        return self.metadata.tables[table_name(form)]

    def child_table(self, form: str, child: str) -> sa.Table:
        return self.metadata.tables[child_table_name(form, child)]

    def check_access(self, form: FormSpec, action: Action, actor: Actor | None) -> None:
        """Refuse (403) when the form's permissions do not let ``actor`` do ``action``.
        ``actor=None`` is the engine itself reading (flows, exports)."""
        if actor is not None:
            require(self.app, actor, action, Resource(form))

    # ------------------------------------------------------------------ create
    def transaction(self, conn: sa.Connection | None = None) -> Any:
        """A new transaction, or the caller's ``conn`` (so a flow step and the run's progress
        commit together)."""
        return nullcontext(conn) if conn is not None else self.engine.begin()

    def create(
        self,
        form_name: str,
        data: Mapping[str, Any],
        actor: Actor,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        form = self.form(form_name)
        self.check_access(form, "create", actor)
        state = self.initial_state(form_name)
        with self.transaction(conn) as conn:
            draft, children, loaded = self.check_new(
                form,
                data,
                actor,
                state,
                lambda values: self.load_refs(conn, form, values),
                lambda values, rows, errors: self._files(conn, form, values, rows, errors, actor),
            )
            if draft.errors:
                raise Invalid(draft.errors)
            now = self._now()
            for f in form.fields:
                if f.type == "autonumber" and f.format:
                    draft.values[f.name] = next_number(
                        conn, self.metadata, form.name, f, now, self.app.timezone
                    )
            row = {k: _store(v) for k, v in draft.values.items() if form.by_name[k].type != "table"}
            row.update(
                state=state, version=1, created_at=now, updated_at=now, created_by=actor.username
            )
            inserted = conn.execute(self._insert_into(form.name), row).inserted_primary_key
            assert inserted is not None  # a single-row insert always has one
            record_id = inserted[0]
            events = [
                EventIn(
                    actor.username,
                    form.name,
                    record_id,
                    "created",
                    {
                        "values": plain(
                            {
                                k: v
                                for k, v in row.items()
                                if v is not None
                                and k not in ("version", "created_at", "updated_at", "created_by")
                            }
                        )
                    },
                )
            ]
            record: dict[str, Any] = {
                "id": record_id,
                **{f.name: None for f in form.fields if f.type != "table"},
                **row,
            }
            for child, rows in children.items():
                record[child] = []
                for row_values in rows:
                    event, child_row = self._insert_child(
                        conn, form, record_id, child, row_values, actor, now
                    )
                    events.append(event)
                    record[child].append(child_row)
            for spec in form.fields:
                if spec.type == "table":
                    record.setdefault(spec.name, [])
            append_events(conn, self.metadata, events, now)
            record["_titles"] = self._titles_from(form, loaded)
            self.publish(
                conn,
                RecordEvent(
                    "created",
                    form.name,
                    record_id,
                    actor.username,
                    {k: (None, v) for k, v in row.items() if v is not None},
                    None,
                    None,
                    state,
                ),
            )
            return record

    def publish(self, conn: sa.Connection, event: RecordEvent) -> None:
        for listener in self.listeners:
            listener(conn, event)

    def change_state(
        self,
        conn: sa.Connection,
        form: FormSpec,
        current: Mapping[str, Any],
        transition: str,
        target: str,
        actor: Actor,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Move a (locked) record to ``target`` inside the caller's transaction: the state
        column, the version, a "transition" event, and the listeners."""
        now = self._now()
        record_id = current["id"]
        changes = {k: v for k, v in (values or {}).items() if _differs(current.get(k), v)}
        self._set(
            conn,
            form.name,
            record_id,
            {
                **{k: _store(v) for k, v in changes.items()},
                "state": target,
                "version": current["version"] + 1,
                "updated_at": now,
            },
        )
        payload: dict[str, Any] = {"name": transition, "from": current["state"], "to": target}
        if changes:
            payload["changes"] = plain({k: [current.get(k), v] for k, v in changes.items()})
        append_events(
            conn,
            self.metadata,
            [EventIn(actor.username, form.name, record_id, "transition", payload)],
            now,
        )
        self.publish(
            conn,
            RecordEvent(
                "transition",
                form.name,
                record_id,
                actor.username,
                {k: (current.get(k), v) for k, v in changes.items()},
                transition,
                current["state"],
                target,
            ),
        )

    def _titles_from(
        self, form: FormSpec, loaded: Mapping[str, dict[str, Any] | None]
    ) -> dict[str, str]:
        out = {}
        for name, row in loaded.items():
            target = self.form(form.by_name[name].ref_form or "")
            if row is not None:
                out[name] = str(row[target.title_field] if target.title_field else row["id"])
        return out

    # ------------------------------------------------------------------ update
    def update(
        self,
        form_name: str,
        record_id: int,
        data: Mapping[str, Any],
        actor: Actor,
        expected_version: int | None = None,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        form = self.form(form_name)
        self.check_access(form, "update", actor)
        with self.transaction(conn) as conn:
            current = self.row(conn, form, record_id, lock=True)
            check_version(current, expected_version)
            draft = self._coerce(form, data, actor, current["state"], creating=False)
            for f in form.fields:
                if f.name not in draft.values and f.type != "table":
                    draft.values[f.name] = current[f.name]
            self._required(form, draft, creating=False)
            children = self._children_input(
                form, data, draft, actor, creating=False, state=current["state"]
            )
            loaded = self.load_refs(conn, form, draft.values)
            self._refs(form, draft, loaded)
            held = self._held_files(conn, form, current)
            self._files(conn, form, draft.values, children, draft.errors, actor, held)
            self._finish(form, draft, current["state"], record_id, loaded)
            if draft.errors:
                raise Invalid(draft.errors)
            changes = {
                name: [current[name], value]
                for name, value in draft.values.items()
                if form.by_name[name].type != "table" and _differs(current[name], value)
            }
            now = self._now()
            events: list[EventIn] = []
            if changes:
                self._set(
                    conn,
                    form.name,
                    record_id,
                    {
                        **{k: _store(v[1]) for k, v in changes.items()},
                        "version": current["version"] + 1,
                        "updated_at": now,
                    },
                )
                events.append(
                    EventIn(
                        actor.username,
                        form.name,
                        record_id,
                        "changed",
                        {"changes": plain(changes)},
                    )
                )
            replaced: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
            for child, rows in children.items():
                table = self.child_table(form.name, child)
                old = conn.execute(
                    sa.select(table)
                    .where(table.c.parent_id == record_id)
                    .order_by(table.c.position)
                ).all()
                replaced[child] = ([_child_fields(as_read(g._mapping)) for g in old], rows)
                for gone in old:
                    events.append(
                        EventIn(
                            actor.username,
                            form.name,
                            record_id,
                            "child_removed",
                            {
                                "child": child,
                                "row_id": gone.id,
                                "values": plain(_child_fields(gone._mapping)),
                            },
                        )
                    )
                conn.execute(table.delete().where(table.c.parent_id == record_id))
                for row_values in rows:
                    events.append(
                        self._insert_child(conn, form, record_id, child, row_values, actor, now)[0]
                    )
            append_events(conn, self.metadata, events, now)
            if changes:
                self.publish(
                    conn,
                    RecordEvent(
                        "changed",
                        form.name,
                        record_id,
                        actor.username,
                        {k: (v[0], v[1]) for k, v in changes.items()},
                        None,
                        current["state"],
                        current["state"],
                    ),
                )
            elif moved := _rows_changed(replaced):
                # only child rows changed: listeners (approvals' lock and restart) still hear
                # of it, under its own kind so "updated"/"field_changed" automations do not
                self.publish(
                    conn,
                    RecordEvent(
                        "children_changed",
                        form.name,
                        record_id,
                        actor.username,
                        moved,
                        None,
                        current["state"],
                        current["state"],
                    ),
                )
            return self._read(conn, form, record_id)

    # ------------------------------------------------------------------ child rows
    def add_child_row(
        self, form_name: str, record_id: int, child: str, data: Mapping[str, Any], actor: Actor
    ) -> dict[str, Any]:
        form = self.form(form_name)
        spec = form.by_name.get(child)
        if spec is None or spec.type != "table":
            raise NotFound(f"{form_name}.{child}")
        require(self.app, actor, "child_append", Resource(form, field=spec), field=child)
        with self.engine.begin() as conn:
            current = self.row(conn, form, record_id, lock=True)
            if not spec.append_only:
                # An append-only log is open in every state; any other table is edited like a
                # field: its state rules and its row limit hold for one added row too.
                locked = self.edit_refusal(spec, actor, current["state"], form)
                if locked is not None:
                    raise (Locked if locked.code == "locked" else Forbidden)([locked])
                self._check_row_limit(conn, form, record_id, spec)
            values, errors = self._child_values(spec, data, actor, form)
            self._files(conn, form, {}, {child: [values]}, errors, actor)
            if errors:
                raise Invalid(errors)
            now = self._now()
            event, row = self._insert_child(conn, form, record_id, child, values, actor, now)
            append_events(conn, self.metadata, [event], now)
            self.publish(
                conn,
                RecordEvent(
                    "child_added", form.name, record_id, actor.username, {child: (None, row)}
                ),
            )
            return row

    def _check_row_limit(
        self, conn: sa.Connection, form: FormSpec, record_id: int, spec: FieldSpec
    ) -> None:
        if spec.max_rows is None:
            return
        table = self.child_table(form.name, spec.name)
        count = conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.parent_id == record_id)
        ).scalar_one()
        if count >= spec.max_rows:
            raise Invalid([_too_many_rows(spec)])

    def _insert_child(
        self,
        conn: sa.Connection,
        form: FormSpec,
        record_id: int,
        child: str,
        values: Mapping[str, Any],
        actor: Actor,
        now: datetime,
    ) -> tuple[EventIn, dict[str, Any]]:
        """Insert one child row; its event and the row as stored."""
        table = self.child_table(form.name, child)
        position = (
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(table.c.position), 0)).where(
                    table.c.parent_id == record_id
                )
            ).scalar_one()
            + 1
        )
        row = {
            **{k: _store(v) for k, v in values.items()},
            "parent_id": record_id,
            "position": position,
            "created_at": utc(now),
            "created_by": actor.username,
        }
        inserted = conn.execute(table.insert().values(row)).inserted_primary_key
        assert inserted is not None  # a single-row insert always has one
        row_id = inserted[0]
        event = EventIn(
            actor.username,
            form.name,
            record_id,
            "child_added",
            {"child": child, "row_id": row_id, "values": plain(dict(values))},
        )
        return event, {"id": row_id, **row}

    # ------------------------------------------------------------------ reading
    def get(self, form_name: str, record_id: int, actor: Actor | None = None) -> dict[str, Any]:
        form = self.form(form_name)
        self.check_access(form, "read", actor)
        with self.reads.connect() as conn:
            return self._read(conn, form, record_id)

    def row(
        self, conn: sa.Connection, form: FormSpec, record_id: int, lock: bool = False
    ) -> dict[str, Any]:
        query = self.by_id(form.name)
        if lock and conn.dialect.name == "postgresql":
            query = self._statement(("by_id_locked", form.name), query.with_for_update)
        row = conn.execute(query, {"rid": record_id}).first()
        if row is None:
            raise NotFound(form.name, record_id)
        return as_read(row._mapping)

    def read(self, conn: sa.Connection, form: FormSpec, record_id: int) -> dict[str, Any]:
        """The record with its child rows and ref titles, on ``conn``."""
        return self._read(conn, form, record_id)

    def _read(self, conn: sa.Connection, form: FormSpec, record_id: int) -> dict[str, Any]:
        record = self.row(conn, form, record_id)
        record.update(
            self.child_rows(
                conn, form, record_id, [f.name for f in form.fields if f.type == "table"]
            )
        )
        record["_titles"] = self._titles(conn, form, [record]).get(record_id, {})
        return record

    def child_rows(
        self, conn: sa.Connection, form: FormSpec, record_id: int, children: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The rows of the named child tables of one record, in their order."""
        out = {}
        for name in children:
            rows = conn.execute(self._rows_of(form.name, name), {"pid": record_id}).all()
            out[name] = [_row_json(r._mapping) for r in rows]
        return out

    def _titles(
        self, conn: sa.Connection, form: FormSpec, records: Sequence[Mapping[str, Any]]
    ) -> dict[int, dict[str, str]]:
        """For each record, the title of each record its refs point at."""
        out: dict[int, dict[str, str]] = {r["id"]: {} for r in records}
        for spec in form.fields:
            if spec.type != "ref" or spec.ref_form is None:
                continue
            target = self.form(spec.ref_form)
            ids = {r[spec.name] for r in records if r.get(spec.name) is not None}
            if not ids:
                continue
            rows = conn.execute(self._titles_of(target), {"ids": list(ids)})
            titles = {row[0]: str(row[1]) for row in rows}
            for r in records:
                if r.get(spec.name) in titles:
                    out[r["id"]][spec.name] = titles[r[spec.name]]
        return out

    def list_page(
        self,
        form_name: str,
        *,
        filters: Mapping[str, Any] | None = None,
        sort: str = "-id",
        limit: int = 50,
        cursor: str | None = None,
        q: str | None = None,
        actor: Actor | None = None,
    ) -> Page:
        form = self.form(form_name)
        self.check_access(form, "read", actor)
        with self.reads.connect() as conn:
            rows, next_cursor = list_records(
                conn,
                self.table(form.name),
                self.app.timezone,
                form,
                filters or {},
                sort,
                limit,
                cursor,
                q,
                self.app.forms,
                self._unreadable(actor) if q else (),
            )
            titles = self._titles(conn, form, rows)
            for row in rows:
                row["_titles"] = titles.get(row["id"], {})
            return Page(rows, next_cursor)

    def _unreadable(self, actor: Actor | None) -> frozenset[str]:
        """The forms ``actor`` may not read (none for the engine itself)."""
        if actor is None:
            return frozenset()
        return frozenset(
            name
            for name, form in self.app.forms.items()
            if not allowed(self.app, actor, "read", Resource(form))
        )

    def events(
        self, form_name: str, record_id: int, actor: Actor | None = None
    ) -> list[dict[str, Any]]:
        form = self.form(form_name)
        self.check_access(form, "read", actor)
        table = self.metadata.tables["sl_events"]
        with self.reads.connect() as conn:
            self.row(conn, form, record_id)
            rows = conn.execute(
                sa.select(table)
                .where(table.c.form == form.name, table.c.record_id == record_id)
                .order_by(table.c.id)
            )
            return [
                {
                    "id": r.id,
                    "at": r.at,
                    "actor": r.actor,
                    "kind": r.kind,
                    "payload": json.loads(r.payload),
                    "hash": r.hash,
                }
                for r in rows
            ]

    # ------------------------------------------------------------------ checks
    def _statement(self, key: tuple[str, ...], build: Callable[[], _Stmt]) -> _Stmt:
        """A statement with bound parameters, built once per key: a statement built per call
        costs its construction and its cache key on every execution."""
        stmt = self._built.get(key)
        if stmt is None:
            stmt = self._built[key] = build()
        return cast(_Stmt, stmt)

    def _rows_of(self, form: str, child: str) -> sa.Select[Any]:
        """A child table's rows of the parent ``:pid``, in their order."""
        table = self.child_table(form, child)
        return self._statement(
            ("child_rows", form, child),
            lambda: (
                sa.select(table)
                .where(table.c.parent_id == sa.bindparam("pid"))
                .order_by(table.c.position)
            ),
        )

    def _titles_of(self, target: FormSpec) -> sa.Select[Any]:
        """(id, title) of the ``target`` records whose ids are in ``:ids``."""
        table = self.table(target.name)
        title = table.c[target.title_field] if target.title_field else table.c.id
        return self._statement(
            ("titles", target.name),
            lambda: sa.select(table.c.id, title).where(
                table.c.id.in_(sa.bindparam("ids", expanding=True))
            ),
        )

    def _insert_into(self, form: str) -> sa.Insert:
        """``INSERT INTO f_<form>``: the columns are the parameters' keys."""
        return self._statement(("insert", form), self.table(form).insert)

    def _set(
        self, conn: sa.Connection, form: str, record_id: int, values: Mapping[str, Any]
    ) -> None:
        """``UPDATE f_<form> SET <values> WHERE id = :_rid``, the statement built once per form:
        the columns set are the values' keys (field names never start with ``_``). A key that
        is no column is refused, as ``.values()`` refuses it (SQLAlchemy would skip it)."""
        table = self.table(form)
        unknown = [k for k in values if k not in table.c]
        if unknown:
            raise sa.exc.ArgumentError(f"no such columns in {table.name}: {unknown}")
        statement = self._statement(
            ("set_by_id", form), lambda: table.update().where(table.c.id == sa.bindparam("_rid"))
        )
        conn.execute(statement, {**values, "_rid": record_id})

    def by_id(self, form: str) -> sa.Select[Any]:
        """``SELECT * FROM f_<form> WHERE id = :rid``, built once per form."""
        table = self.table(form)
        return self._statement(
            ("by_id", form), lambda: sa.select(table).where(table.c.id == sa.bindparam("rid"))
        )

    def load_refs(
        self, conn: sa.Connection, form: FormSpec, values: Mapping[str, Any]
    ) -> dict[str, dict[str, Any] | None]:
        """The records the ref fields point at (None where the id does not exist)."""
        loaded: dict[str, dict[str, Any] | None] = {}
        for spec in form.fields:
            ref_id = values.get(spec.name)
            if spec.type == "ref" and ref_id is not None and spec.ref_form is not None:
                row = conn.execute(self.by_id(spec.ref_form), {"rid": ref_id}).first()
                loaded[spec.name] = as_read(row._mapping) if row is not None else None
        return loaded

    def _held_files(
        self, conn: sa.Connection, form: FormSpec, current: Mapping[str, Any]
    ) -> frozenset[str]:
        """The file ids the record holds now (its files fields and child rows' files)."""
        held = {i for f in form.fields if f.type == "files" for i in _file_ids(current.get(f.name))}
        for table in form.fields:
            columns = [c.name for c in table.children if c.type == "files"]
            if table.type != "table" or not columns:
                continue
            rows = self.child_table(form.name, table.name)
            for row in conn.execute(
                sa.select(*(rows.c[c] for c in columns)).where(rows.c.parent_id == current["id"])
            ):
                held.update(i for value in row for i in _file_ids(value))
        return frozenset(held)

    def _files(
        self,
        conn: sa.Connection,
        form: FormSpec,
        values: Mapping[str, Any],
        children: Mapping[str, list[dict[str, Any]]],
        errors: list[FieldError],
        actor: Actor | None = None,
        held: frozenset[str] = frozenset(),
    ) -> None:
        """Every id in a files field (or a files column of a child table) must be uploaded —
        by ``actor`` themselves unless the record already ``held`` it: nobody gains a file
        (its download right follows the records holding it) by naming someone else's id."""
        foreign_ok = actor is None or is_system(actor)
        for spec in form.fields:
            found = [(spec.name, spec.label, values.get(spec.name))] if spec.type == "files" else []
            found += [
                (f"{spec.name}.{c.name}", c.label, row.get(c.name))
                for c in spec.children
                if c.type == "files"
                for row in children.get(spec.name, ())
            ]
            for name, label, ids in found:
                infos = file_infos(conn, ids or [])
                missing = [i for i in ids or [] if i not in infos]
                if not missing and not foreign_ok:
                    missing = [
                        i
                        for i in ids or []
                        if i not in held and infos[i].uploaded_by != actor.username  # type: ignore[union-attr]
                    ]
                if missing:
                    errors.append(
                        FieldError(
                            name,
                            "not_found",
                            Text(
                                f"{label}: no uploaded file with id {missing[0]}",
                                f"{label}：不存在编号为 {missing[0]} 的已上传文件",
                            ),
                        )
                    )


def _too_many_rows(spec: FieldSpec) -> FieldError:
    return FieldError(
        spec.name,
        "max_rows",
        Text(
            f"{spec.label}: at most {spec.max_rows} rows", f"{spec.label}：最多 {spec.max_rows} 行"
        ),
    )


def _file_ids(values: Any) -> list[str]:
    return [i for i in values or () if isinstance(i, str)]


def check_version(record: Mapping[str, Any], expected: int | None) -> None:
    """Optimistic locking: refuse (409) when the record moved on since it was read."""
    if expected is not None and expected != record["version"]:
        raise Conflict(
            [
                FieldError(
                    "version",
                    "conflict",
                    Text(
                        "the record was changed by someone else; reload it and try again",
                        "记录已被他人修改，请刷新后重试",
                    ),
                )
            ],
        )


def _as_result(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    try:
        if spec.result in ("money", "decimal"):
            quant = Decimal(1).scaleb(-(spec.scale if spec.scale is not None else 2))
            return Decimal(str(value)).quantize(quant)
        if spec.result == "integer":
            return int(value)
        if spec.result == "text":
            return str(value)
        if spec.result == "boolean":
            return bool(value)
    except (ArithmeticError, ValueError, TypeError):
        return None
    return value


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        try:
            return (
                Decimal(str(old)) != Decimal(str(new))
                if old is not None and new is not None
                else old is not new
            )
        except ArithmeticError:
            return True
    if isinstance(old, datetime) and isinstance(new, datetime):
        return utc(old) != utc(new)
    return bool(old != new)


def _store(value: Any) -> Any:
    """Datetimes are stored in UTC (SQLite keeps no zone; PostgreSQL timestamptz does)."""
    return utc(value) if isinstance(value, datetime) else value


def _rows_changed(
    replaced: Mapping[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]],
) -> dict[str, tuple[Any, Any]]:
    """The child tables whose rows an update replaced with different ones: {name: (old, new)}
    (the same values in the same order are no change)."""
    out: dict[str, tuple[Any, Any]] = {}
    for child, (old, new) in replaced.items():
        if len(old) != len(new) or any(
            _differs(a.get(k), b.get(k)) for a, b in zip(old, new, strict=True) for k in {*a, *b}
        ):
            out[child] = (old, new)
    return out


def _child_fields(row: Mapping[Any, Any]) -> dict[str, Any]:
    skip = ("id", "parent_id", "position", "created_at", "created_by")
    return {k: v for k, v in row.items() if k not in skip}


def _row_json(row: Mapping[Any, Any]) -> dict[str, Any]:
    return as_read(row)
