"""Deploy: make the database match the App, in one transaction, and record the deployment.

The plan (:func:`~engine.deploy.plan.plan_schema`) is made inside the same transaction that
applies it. Destructive steps are refused unless allowed, and then nothing is changed.
Changes go through Alembic operations at run time; on SQLite, changes ALTER TABLE cannot do
use batch mode (the table is copied), with foreign keys switched off for the deploy so copying
a parent table never cascades into its child rows (they are checked again before commit).
Each deployment is a row of ``sl_deployments`` (with the source files as its bundle) and a
``deploy`` event in the hash-chained log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from engine.config.bundle import read_bundle
from engine.config.workspace import Workspace
from engine.deploy.plan import (
    NUMBERS,
    Plan,
    PlanStep,
    append_only_tables,
    at_risk,
    guard_names,
    index_name,
    literal,
    plan_schema,
    shape_of,
)
from engine.model.i18n import Text
from engine.model.logs import logger
from engine.model.spec import App
from engine.outbox.procrastinate_queue import install_schema
from engine.store.events import EventIn, append_events
from engine.store.search_index import (
    build_search_index,
    clear_stale_search_indexes,
    stale_search_indexes,
)
from engine.store.system_tables import add_system_tables
from engine.store.tables import build_metadata

__all__ = [
    "DeployError",
    "DeployResult",
    "DestructiveChange",
    "bundle_sources",
    "deploy",
    "latest_deployment",
]

log = logger(__name__)
_LOCK_KEY = 0x5EA1_1DE9  # pg_advisory_xact_lock key: one deploy at a time


class DeployError(Exception):
    """The deploy failed; nothing was changed. ``message`` is bilingual."""

    def __init__(self, message: Text) -> None:
        super().__init__(message.en)
        self.message = message


class DestructiveChange(DeployError):
    """Steps would lose data and were not allowed; nothing was changed."""

    def __init__(self, steps: Sequence[PlanStep]) -> None:
        self.steps = tuple(steps)
        lines = Text("", "")
        for step in self.steps:
            lines += Text(f"\n  {step.line('en')}", f"\n  {step.line('zh')}")
        super().__init__(
            Text(
                "Refused: these changes would lose data, so nothing was changed:",
                "已拒绝：以下变更会丢失数据，因此未做任何改动：",
            )
            + lines
            + Text(
                "\nCopy the data elsewhere first, or run deploy --allow-destructive to accept "
                "the loss.",
                "\n请先把数据另行保存，或使用 deploy --allow-destructive 接受数据丢失。",
            )
        )


@dataclass(frozen=True, slots=True)
class DeployResult:
    version: str
    content_hash: str
    steps: tuple[PlanStep, ...]
    changed: bool


def bundle_sources(workspace: Workspace) -> dict[str, str]:
    """What a deployment stores: the app folder's configuration files and templates, keyed by
    their path inside it (see :func:`engine.config.bundle.read_bundle`)."""
    people = workspace.app.data.get("people") if workspace.app is not None else None
    return read_bundle(Path(workspace.root), people if isinstance(people, str) else None)


def latest_deployment(conn: sa.Connection) -> sa.Row[Any] | None:
    """The newest row of ``sl_deployments`` (None before the first deploy)."""
    if not sa.inspect(conn).has_table("sl_deployments"):
        return None
    metadata = sa.MetaData()
    add_system_tables(metadata)
    table = metadata.tables["sl_deployments"]
    return conn.execute(sa.select(table).order_by(table.c.id.desc()).limit(1)).first()


@contextmanager
def _deploy_connection(engine: Engine) -> Iterator[sa.Connection]:
    """A connection for deploying; SQLite's foreign keys are off (only possible outside a
    transaction) so that batch mode's table copy does not cascade-delete child rows."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.dbapi_connection
        if sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            yield conn
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
                state = raw.execute("PRAGMA foreign_keys").fetchone()  # type: ignore[union-attr]
                if not state or not state[0]:
                    conn.invalidate()  # never hand a connection without foreign keys back


def deploy(
    engine: Engine,
    app: App,
    sources: Mapping[str, str],
    *,
    allow_destructive: bool = False,
    actor: str = "cli",
) -> DeployResult:
    """Plan and apply in one transaction; record the deployment unless nothing changed."""
    with _deploy_connection(engine) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            install_schema(conn)  # procrastinate's queue: how PostgreSQL workers share jobs
        plan = plan_schema(conn, app)
        if plan.up_to_date:
            log.info(
                "deploy: %s %s is deployed already",
                app.name,
                app.version,
                extra={"app": app.name, "version": app.version, "hash": app.content_hash},
            )
            return DeployResult(app.version, app.content_hash, (), False)
        if plan.destructive and not allow_destructive:
            log.warning(
                "deploy of %s %s refused: %d steps would lose data",
                app.name,
                app.version,
                len(plan.destructive),
                extra={"app": app.name, "version": app.version, "hash": app.content_hash},
            )
            raise DestructiveChange(plan.destructive)
        _Applier(conn, app).apply(plan)
        _record(conn, app, sources, plan, actor)
    log.info(
        "deployed %s %s (%d schema steps)",
        app.name,
        app.version,
        len(plan.steps),
        extra={
            "app": app.name,
            "version": app.version,
            "hash": app.content_hash,
            "steps": len(plan.steps),
            "actor": actor,
        },
    )
    return DeployResult(app.version, app.content_hash, plan.steps, True)


def _record(
    conn: sa.Connection, app: App, sources: Mapping[str, str], plan: Plan, actor: str
) -> None:
    metadata = build_metadata(app)
    steps = [step.to_json() for step in plan.steps]
    now = datetime.now(UTC)
    conn.execute(
        metadata.tables["sl_deployments"]
        .insert()
        .values(
            app=app.name,
            version=app.version,
            content_hash=app.content_hash,
            bundle=dict(sources),
            deployed_at=now,
            deployed_by=actor,
            steps=steps,
        )
    )
    payload = {"version": app.version, "content_hash": app.content_hash, "steps": steps}
    append_events(conn, metadata, [EventIn(actor, "_app", None, "deploy", payload)], at=now)


def _fresh(
    col: sa.Column[Any], *, unique: bool, keys: Sequence[sa.ForeignKey] | None = None
) -> sa.Column[Any]:
    """A new Column like ``col`` (with its foreign keys; indexes are separate steps)."""
    chosen = list(col.foreign_keys) if keys is None else keys
    return sa.Column(
        col.name,
        col.type,
        *(sa.ForeignKey(k.target_fullname, name=k.name, ondelete=k.ondelete) for k in chosen),
        primary_key=col.primary_key,
        nullable=col.nullable,
        autoincrement=col.autoincrement,
        unique=unique or None,
    )


class _Applier:
    """Runs plan steps with Alembic operations on one connection."""

    def __init__(self, conn: sa.Connection, app: App) -> None:
        self.conn = conn
        self.app = app
        self.metadata = build_metadata(app)
        self.sqlite = conn.dialect.name == "sqlite"
        self.op = Operations(MigrationContext.configure(conn))
        self.quote = conn.dialect.identifier_preparer.quote
        self.tables = set(sa.inspect(conn).get_table_names())
        self.later: list[tuple[str, str, sa.ForeignKey]] = []  # foreign keys within a cycle

    def apply(self, plan: Plan) -> None:
        clear_stale_search_indexes(self.conn, self.app)  # before columns change under them
        for step in plan.steps:
            action: Callable[[PlanStep], None] = getattr(self, f"_{step.kind}")
            try:
                action(step)
            except Exception as exc:  # rolled back by the caller's transaction
                orig = getattr(exc, "orig", None) or exc
                reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
                raise DeployError(
                    Text(
                        f"the database refused '{step.detail('en')}': {reason}; nothing changed",
                        f"数据库拒绝了“{step.detail('zh')}”：{reason}；未做任何改动",
                    )
                ) from exc
        self._add_later_foreign_keys()
        for form in stale_search_indexes(self.conn, self.app):  # batch copies drop triggers
            build_search_index(self.conn, self.app.forms[form])
        if self.sqlite:
            for table in append_only_tables(self.app):  # batch copies drop triggers
                self._append_only_guard(PlanStep("append_only_guard", table))
            problems = self.conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if problems:
                raise DeployError(
                    Text(
                        f"foreign keys would be broken ({problems[0][0]}); nothing was changed",
                        f"外键将被破坏（{problems[0][0]}）；未做任何改动",
                    )
                )

    def column(self, table: str, name: str) -> sa.Column[Any]:
        return self.metadata.tables[table].c[name]

    def _create_table(self, step: PlanStep) -> None:
        table = self.metadata.tables[step.table]
        indexes = [
            sa.Index(
                index_name(self.conn.dialect, i),
                *(c.name for c in i.columns),
                unique=bool(i.unique),
            )
            for i in table.indexes
            if not _has_expressions(i)
        ]
        columns = []
        for col in table.columns:
            ready = [k for k in col.foreign_keys if self._can_refer(step.table, k)]
            self.later += [(step.table, col.name, k) for k in col.foreign_keys if k not in ready]
            columns.append(_fresh(col, unique=bool(col.unique), keys=ready))
        self.op.create_table(step.table, *columns, *indexes)
        self.tables.add(step.table)
        for index in table.indexes:
            if _has_expressions(index):  # e.g. the KPI indexes on a JSON key of sl_events
                index.create(self.conn)

    def _can_refer(self, table: str, key: sa.ForeignKey) -> bool:
        """SQLite accepts a reference to a table not created yet; PostgreSQL does not."""
        return self.sqlite or key.column.table.name in (*self.tables, table)

    def _add_later_foreign_keys(self) -> None:
        for table, column, key in self.later:
            self.op.create_foreign_key(
                str(key.name) if key.name else None,
                table,
                key.column.table.name,
                [column],
                [key.column.name],
                ondelete=key.ondelete,
            )

    def _rename_table(self, step: PlanStep) -> None:
        assert step.target is not None
        self.op.rename_table(step.table, step.target)
        if self.sqlite:  # SQLite trigger names carry the table name: drop the old ones
            for name in guard_names("sqlite", step.table):
                self.conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {self.quote(name)}")

    def _rename_column(self, step: PlanStep) -> None:
        assert step.column is not None
        if self.sqlite:
            with self.op.batch_alter_table(step.table) as batch:
                batch.alter_column(step.column, new_column_name=step.target)
        else:
            self.op.alter_column(step.table, step.column, new_column_name=step.target)

    def _add_column(self, step: PlanStep) -> None:
        assert step.column is not None
        col = self.column(step.table, step.column)
        fresh = _fresh(col, unique=False)  # the unique constraint is added by name below
        name = f"{step.table}_{step.column}_key"  # what PostgreSQL names it in CREATE TABLE
        if self.sqlite:  # batch: plain ALTER, or a table copy when it brings a constraint
            with self.op.batch_alter_table(step.table) as batch:
                batch.add_column(fresh)
                if col.unique:
                    batch.create_unique_constraint(name, [step.column])
            return
        self.op.add_column(step.table, fresh)
        if col.unique:
            self.op.create_unique_constraint(name, step.table, [step.column])

    def _existing_type(self, step: PlanStep) -> Any:
        for info in sa.inspect(self.conn).get_columns(step.table):
            if info["name"] == step.column:
                return info["type"]
        raise KeyError(step.column)

    def _widen(self, step: PlanStep) -> None:
        assert step.column is not None
        old, new = self._existing_type(step), self.column(step.table, step.column).type
        if step.destructive:
            self._make_fit(step.table, step.column, old, new)
        if self.sqlite:
            with self.op.batch_alter_table(step.table) as batch:
                batch.alter_column(step.column, type_=new, existing_type=old)
            return
        using = None
        if shape_of(old).kind != shape_of(new).kind:
            target = new.compile(dialect=self.conn.dialect)
            using = f"CAST({self.quote(step.column)} AS {target})"
        self.op.alter_column(
            step.table, step.column, type_=new, existing_type=old, postgresql_using=using
        )

    _narrow = _widen
    _change_type = _widen

    def _make_fit(self, table: str, column: str, old: Any, new: Any) -> None:
        """The accepted loss: shorten too-long text, round numbers to the new scale, and
        clear values that cannot be converted, so that the type change itself succeeds."""
        before, after = shape_of(old), shape_of(new)
        where = at_risk(column, before, after)
        if where is None:
            return
        col: sa.ColumnClause[Any] = sa.column(column)
        update = sa.table(table, sa.column(column)).update()
        if before.kind == after.kind == "string":
            shorter = sa.func.substr(col, 1, after.size)
            self.conn.execute(update.where(where).values({column: shorter}))
        elif before.kind in NUMBERS and after.kind in ("integer", "numeric"):
            if after.kind == "numeric" and after.size is not None:
                limit = literal(10 ** (after.size - (after.scale or 0)))
                self.conn.execute(update.where(sa.func.abs(col) >= limit).values({column: None}))
            if self.sqlite:  # PostgreSQL rounds in the cast itself
                rounded = sa.func.round(col, literal(after.scale or 0))
                self.conn.execute(update.where(col != rounded).values({column: rounded}))
        else:
            self.conn.execute(update.where(where).values({column: None}))

    def _drop_column(self, step: PlanStep) -> None:
        assert step.column is not None
        if self.sqlite:
            with self.op.batch_alter_table(step.table) as batch:
                batch.drop_column(step.column)
        else:
            self.op.drop_column(step.table, step.column)

    def _drop_table(self, step: PlanStep) -> None:
        self.op.drop_table(step.table)

    def _add_index(self, step: PlanStep) -> None:
        assert step.target is not None
        indexes = self.metadata.tables[step.table].indexes
        index = next(i for i in indexes if index_name(self.conn.dialect, i) == step.target)
        if _has_expressions(index):
            index.create(self.conn)
            return
        self.op.create_index(
            step.target, step.table, [c.name for c in index.columns], unique=bool(index.unique)
        )

    def _search_index(self, step: PlanStep) -> None:
        build_search_index(self.conn, self.app.forms[step.table.removeprefix("f_")])

    def _drop_index(self, step: PlanStep) -> None:
        assert step.target is not None
        self.op.drop_index(step.target, table_name=step.table)

    def _append_only_guard(self, step: PlanStep) -> None:
        table = self.quote(step.table)
        if self.sqlite:
            for name, action in zip(
                guard_names("sqlite", step.table), ("UPDATE", "DELETE"), strict=True
            ):
                self.conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS {self.quote(name)} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'append-only table {step.table}: rows cannot "
                    f"be changed or deleted'); END"
                )
            return
        self.conn.exec_driver_sql(_PG_REFUSE)
        row, whole = guard_names("postgresql", step.table)
        self.conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {row} ON {table}")
        self.conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {whole} ON {table}")
        self.conn.exec_driver_sql(
            f"CREATE TRIGGER {row} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION sl_refuse_change()"
        )
        self.conn.exec_driver_sql(
            f"CREATE TRIGGER {whole} BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION sl_refuse_change()"
        )

    def _drop_append_only_guard(self, step: PlanStep) -> None:
        dialect = "sqlite" if self.sqlite else "postgresql"
        for name in guard_names(dialect, step.table):
            suffix = "" if self.sqlite else f" ON {self.quote(step.table)}"
            self.conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {self.quote(name)}{suffix}")


_PG_REFUSE = """\
CREATE OR REPLACE FUNCTION sl_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING
    MESSAGE = 'append-only table ' || TG_TABLE_NAME || ': rows cannot be changed or deleted',
    ERRCODE = 'restrict_violation';
END
$$"""


def _has_expressions(index: sa.Index) -> bool:
    """An index on an expression or a partial one (the KPI indexes on sl_events): created by
    SQLAlchemy's own DDL, which renders both."""
    partial = any(k.endswith("_where") for k in index.dialect_kwargs)
    return partial or any(not isinstance(e, sa.Column) for e in index.expressions)
