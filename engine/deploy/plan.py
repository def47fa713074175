"""Deploy plan: what must change in the live database so it matches the compiled App.

``plan_schema`` compares :func:`~engine.store.tables.build_metadata` with what the database
holds (reflection) and lists the steps in the order deploy applies them. Steps that would
lose data are *destructive*; the rows they put at risk are counted with SQL. Only tables named
``f_…`` (forms) and ``sl_…`` (engine) are looked at, and only ``f_…`` tables are ever altered
or dropped. Renames happen only through an explicit ``renamed_from:`` on a field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from engine.model.i18n import Lang, Text
from engine.model.spec import App, FieldSpec
from engine.store.event_sql import KPI_INDEX_PREFIX
from engine.store.search_index import fts_table, stale_search_indexes
from engine.store.tables import build_metadata, child_table_name, table_name

__all__ = [
    "Plan",
    "PlanStep",
    "Shape",
    "append_only_tables",
    "at_risk",
    "guard_names",
    "index_name",
    "live_guards",
    "plan_schema",
    "shape_of",
]

StepKind = Literal[
    "create_table",
    "rename_table",
    "drop_index",
    "rename_column",
    "add_column",
    "widen",
    "narrow",
    "change_type",
    "drop_column",
    "drop_table",
    "add_index",
    "append_only_guard",
    "drop_append_only_guard",
    "search_index",
]
PG_GUARDS = ("sl_append_only", "sl_append_only_truncate")
_NO_TEXT = Text("", "")


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One change. ``column`` is the column it is about (the *old* name for a rename);
    ``target`` is the new name of a renamed column or table, or the index name."""

    kind: StepKind
    table: str
    column: str | None = None
    detail: Text = _NO_TEXT
    destructive: bool = False
    rows_at_risk: int = 0
    target: str | None = None

    def line(self, lang: Lang = "en") -> str:
        if self.destructive:
            mark = "!"
        elif self.kind.startswith(("create", "add", "append")):
            mark = "+"
        elif self.kind.startswith("drop"):
            mark = "-"
        else:
            mark = "~"
        return f"{mark} {self.detail(lang)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "target": self.target,
            "detail": {"en": self.detail.en, "zh": self.detail.zh},
            "destructive": self.destructive,
            "rows_at_risk": self.rows_at_risk,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    app: str
    version: str
    content_hash: str
    steps: tuple[PlanStep, ...]
    last_hash: str | None = None

    @property
    def destructive(self) -> list[PlanStep]:
        return [s for s in self.steps if s.destructive]

    @property
    def up_to_date(self) -> bool:
        """Same content as the last deployment and nothing to change: nothing to do."""
        return not self.steps and self.last_hash == self.content_hash

    def render(self, lang: Lang = "en") -> str:
        name = f"{self.app} v{self.version} ({self.content_hash[:12]})"
        if self.up_to_date:
            return Text(
                f"Nothing to do: the database already runs {name}.",
                f"无需变更：数据库已是 {name}。",
            )(lang)
        if not self.steps:
            return Text(
                f"No schema changes; deploying records {name} (the configuration changed).",
                f"数据库结构无需变更；部署将记录 {name}（配置有变化）。",
            )(lang)
        head = Text(f"Plan for {name}:", f"{name} 的部署计划：")(lang)
        lines = [head, *(f"  {step.line(lang)}" for step in self.steps)]
        count, bad = len(self.steps), len(self.destructive)
        if not bad:
            tail = Text(f"{count} step(s), none loses data", f"共 {count} 步，均不丢失数据")
        else:
            tail = Text(
                f"{count} step(s), {bad} destructive: refused unless deploy --allow-destructive",
                f"共 {count} 步，其中 {bad} 步会丢失数据：除非使用 deploy --allow-destructive，"
                "否则拒绝执行",
            )
        lines.append(tail(lang))
        return "\n".join(lines)


# ------------------------------------------------------------------------- column types


@dataclass(frozen=True, slots=True)
class Shape:
    """What matters about a column type: its kind, length or precision, and scale."""

    kind: str
    size: int | None = None
    scale: int | None = None


def shape_of(kind: sa.types.TypeEngine[Any]) -> Shape:
    if isinstance(kind, sa.String):
        return Shape("string", kind.length)
    if isinstance(kind, sa.Float):
        return Shape("float")
    if isinstance(kind, sa.Numeric):
        return Shape("numeric", kind.precision, kind.scale)
    for base, name in (
        (sa.Boolean, "boolean"),
        (sa.Integer, "integer"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.JSON, "json"),
        (sa.LargeBinary, "binary"),
    ):
        if isinstance(kind, base):
            return Shape(name)
    return Shape(type(kind).__name__.lower())


def compare_shapes(old: Shape, new: Shape) -> StepKind | None:
    """widen / narrow within a kind, change_type across kinds, None when nothing to do."""
    if old == new:
        return None
    if old.kind == new.kind == "string":
        grows = new.size is None or (old.size is not None and new.size > old.size)
        return "widen" if grows else "narrow"
    if old.kind == new.kind == "numeric":
        if None in (old.size, old.scale, new.size, new.scale):
            return None
        assert old.size is not None and old.scale is not None
        assert new.size is not None and new.scale is not None
        fits = new.size - new.scale >= old.size - old.scale and new.scale >= old.scale
        return "widen" if fits else "narrow"
    if old.kind == new.kind:
        return None  # e.g. INTEGER vs BIGINT, timestamp with/without zone: left alone
    return "change_type"


def _count(conn: sa.Connection, table: str, where: sa.ColumnElement[bool] | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(sa.table(table))
    if where is not None:
        query = query.where(where)
    return int(conn.execute(query).scalar_one())


def literal(value: int) -> sa.ColumnElement[Any]:
    return sa.literal_column(str(int(value)))


NUMBERS = ("integer", "numeric", "float")
_INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"
_DECIMAL_TEXT = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*$"


def at_risk(column: str, old: Shape, new: Shape) -> sa.ColumnElement[bool] | None:
    """SQL condition true for values of ``column`` that would not fit ``new`` (None: all fit).
    ``regexp_match`` is ``~`` on PostgreSQL and SQLAlchemy's REGEXP function on SQLite."""
    col: sa.ColumnClause[Any] = sa.column(column)
    if new.kind == "string":
        if new.size is None:
            return None
        text = col if old.kind == "string" else sa.cast(col, sa.Text)
        return sa.func.length(text) > new.size
    if new.kind in ("integer", "numeric") and old.kind == "string":
        pattern = _INTEGER_TEXT if new.kind == "integer" else _DECIMAL_TEXT
        return sa.not_(sa.func.trim(col).regexp_match(pattern))
    if new.kind == "numeric" and old.kind in NUMBERS and new.size is not None:
        scale = new.scale or 0
        cond = sa.func.abs(col) >= literal(10 ** (new.size - scale))
        if old.kind != "integer" and (old.scale is None or old.scale > scale):
            cond = sa.or_(cond, col != sa.func.round(col, literal(scale)))
        return cond
    if new.kind == "integer" and old.kind in ("numeric", "float"):
        return col != sa.func.round(col)
    if new.kind == "float" and old.kind in NUMBERS:
        return None
    return col.is_not(None)


# ------------------------------------------------------------------------- append-only


def append_only_tables(app: App) -> list[str]:
    return [
        child_table_name(form.name, field.name)
        for form in app.forms.values()
        for field in form.fields
        if field.type == "table" and field.append_only
    ]


def guard_names(dialect: str, table: str) -> tuple[str, ...]:
    """Trigger names that make ``table`` append-only (SQLite names are schema-wide)."""
    if dialect == "sqlite":
        return (f"{table}_no_update", f"{table}_no_delete")
    return PG_GUARDS


def live_guards(conn: sa.Connection, table: str) -> set[str]:
    if conn.dialect.name == "sqlite":
        query = sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t")
    else:
        query = sa.text(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = :t AND NOT t.tgisinternal AND pg_table_is_visible(c.oid)"
        )
    return {str(name) for name in conn.execute(query, {"t": table}).scalars()}


# ------------------------------------------------------------------------- the diff


def _step(kind: StepKind, table: str, en: str, zh: str, **kw: Any) -> PlanStep:
    return PlanStep(kind, table, detail=Text(en, zh), **kw)


def _held(count: int, en: str, zh: str) -> Text:
    if not count:
        return Text(" (empty)", "（无数据）")
    rows = "1 row holds" if count == 1 else f"{count} rows hold"
    return Text(f" ({rows} {en})", f"（{count} 行{zh}）")


def _managed(name: str) -> bool:
    return name.startswith(("f_", "sl_"))


_ALTER_WORDS = {
    "widen": ("widen", "加宽"),
    "narrow": ("narrow", "收窄"),
    "change_type": ("change type of", "更改类型"),
}


class _Differ:
    """Compares the App's metadata with the live database, one kind of step at a time."""

    def __init__(self, conn: sa.Connection, app: App) -> None:
        self.conn, self.app = conn, app
        self.metadata = build_metadata(app)
        self.inspector = sa.inspect(conn)
        self.live = {t for t in self.inspector.get_table_names() if _managed(t)}
        self.live_name: dict[str, str] = {t: t for t in self.metadata.tables if t in self.live}
        self.new_tables: set[str] = set()

    def typename(self, kind: Any) -> str:
        return str(kind.compile(dialect=self.conn.dialect))

    def child_fields(self) -> Iterator[tuple[str, FieldSpec]]:
        for form in self.app.forms.values():
            for field in form.fields:
                if field.type == "table":
                    yield form.name, field

    def column_renames(self) -> dict[str, dict[str, str]]:
        """table → {new column: old column}, from ``renamed_from``."""
        out = {
            table_name(form.name): {
                f.name: f.renamed_from for f in form.fields if f.renamed_from and f.type != "table"
            }
            for form in self.app.forms.values()
        }
        for form, field in self.child_fields():
            out[child_table_name(form, field.name)] = {
                c.name: c.renamed_from for c in field.children if c.renamed_from
            }
        return out

    def table_renames(self) -> Iterator[PlanStep]:
        for form, field in self.child_fields():
            new = child_table_name(form, field.name)
            old = child_table_name(form, field.renamed_from or field.name)
            if field.renamed_from and new not in self.live and old in self.live:
                self.live_name[new] = old
                yield _step(
                    "rename_table",
                    old,
                    f"rename table {old} → {new}",
                    f"重命名表 {old} → {new}",
                    target=new,
                )

    def creates(self) -> Iterator[PlanStep]:
        for table in creation_order(self.metadata):
            if table.name not in self.live_name:
                self.new_tables.add(table.name)
                t, n = table.name, len(table.columns)
                yield _step(
                    "create_table", t, f"create table {t} ({n} columns)", f"新建表 {t}（{n} 列）"
                )

    def existing(self) -> list[sa.Table]:
        return [t for t in creation_order(self.metadata) if t.name not in self.new_tables]

    def column_steps(self) -> Iterator[PlanStep]:
        renames = self.column_renames()
        later: list[PlanStep] = []
        for table in self.existing():
            t = table.name
            live = {c["name"]: c for c in self.inspector.get_columns(self.live_name[t])}
            moved = {
                new: old
                for new, old in renames.get(t, {}).items()
                if new not in live and old in live and new in table.c
            }
            for new, old in moved.items():
                yield _step(
                    "rename_column",
                    t,
                    f"rename {t}.{old} → {new}",
                    f"重命名 {t}.{old} → {new}",
                    column=old,
                    target=new,
                )
            for col in table.columns:
                was = moved.get(col.name, col.name)
                if was not in live:
                    kind = self.typename(col.type)
                    yield _step(
                        "add_column",
                        t,
                        f"add column {t}.{col.name} {kind}",
                        f"新增列 {t}.{col.name} {kind}",
                        column=col.name,
                    )
                elif t.startswith("f_"):
                    later.extend(self.alter(table, col.name, was, live[was]["type"]))
            if t.startswith("f_"):
                gone = set(live) - set(table.c.keys()) - set(moved.values())
                later.extend(self.drop_column(t, name) for name in sorted(gone))
        yield from sorted(later, key=lambda s: s.kind == "drop_column")

    def alter(self, table: sa.Table, column: str, was: str, old_type: Any) -> list[PlanStep]:
        new_type = table.c[column].type
        old, new = shape_of(old_type), shape_of(new_type)
        kind = compare_shapes(old, new)
        if kind is None:
            return []
        where = None if kind == "widen" else at_risk(was, old, new)
        risk = 0 if where is None else _count(self.conn, self.live_name[table.name], where)
        en, zh = _ALTER_WORDS[kind]
        change = f"{table.name}.{column} {self.typename(old_type)} → {self.typename(new_type)}"
        detail = Text(f"{en} {change}", f"{zh} {change}")
        if risk:
            detail += _held(risk, "values that would not fit", "的值放不下")
        return [PlanStep(kind, table.name, column, detail, risk > 0, risk)]

    def drop_column(self, table: str, column: str) -> PlanStep:
        risk = _count(self.conn, self.live_name[table], sa.column(column).is_not(None))
        detail = Text(f"drop column {table}.{column}", f"删除列 {table}.{column}")
        detail += _held(risk, "data", "有数据")
        return PlanStep("drop_column", table, column, detail, risk > 0, risk)

    def drop_tables(self) -> Iterator[PlanStep]:
        kept = set(self.live_name.values())
        gone = [t for t in self.live if t.startswith("f_") and t not in kept]
        for name in sorted(gone, key=lambda t: ("__" not in t, t)):  # child tables first
            risk = _count(self.conn, name)
            detail = Text(f"drop table {name}", f"删除表 {name}") + _held(risk, "data", "有数据")
            yield PlanStep(
                "drop_table", name, detail=detail, destructive=risk > 0, rows_at_risk=risk
            )

    def index_steps(self) -> tuple[list[PlanStep], list[PlanStep]]:
        adds: list[PlanStep] = []
        drops: list[PlanStep] = []
        for table in self.existing():
            t = table.name
            live = live_index_names(self.conn, self.live_name[t])
            wanted = {index_name(self.conn.dialect, i): i for i in table.indexes}
            for name in sorted(set(wanted) - live):
                cols = ", ".join(c.name for c in wanted[name].columns)
                adds.append(
                    _step(
                        "add_index",
                        t,
                        f"add index {name} on {t} ({cols})",
                        f"新增索引 {name}，表 {t}（{cols}）",
                        target=name,
                    )
                )
            if t.startswith("f_"):
                ours = {n for n in live if n and n.startswith("ix_")}
            else:  # the engine's tables: only the indexes dashboards asked for come and go
                ours = {n for n in live if n and n.startswith(KPI_INDEX_PREFIX)}
            for name in sorted(ours - set(wanted)):
                drops.append(
                    _step(
                        "drop_index",
                        t,
                        f"drop index {name} on {t}",
                        f"删除索引 {name}，表 {t}",
                        target=name,
                    )
                )
        return adds, drops

    def guard_steps(self) -> Iterator[PlanStep]:
        wanted = set(append_only_tables(self.app))
        for form, field in self.child_fields():
            t = child_table_name(form, field.name)
            names = set(guard_names(self.conn.dialect.name, t))
            have = live_guards(self.conn, self.live_name[t]) if t in self.live_name else set()
            if t in wanted and not names <= have:
                yield _step(
                    "append_only_guard",
                    t,
                    f"make {t} append-only (the database refuses UPDATE and DELETE)",
                    f"将 {t} 设为只增表（数据库拒绝 UPDATE 和 DELETE）",
                )
            elif t not in wanted and names & have:
                yield _step(
                    "drop_append_only_guard",
                    t,
                    f"allow UPDATE and DELETE on {t} again (no longer append-only)",
                    f"重新允许修改和删除 {t} 的行（不再是只增表）",
                )


def live_index_names(conn: sa.Connection, table: str) -> set[str]:
    """The names of ``table``'s indexes, read from the catalogue: SQLAlchemy's reflection
    skips (with a warning) the expression indexes SQLite holds."""
    if conn.dialect.name == "sqlite":
        query = sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"
            " AND sql IS NOT NULL"
        )
    else:
        query = sa.text(
            "SELECT indexname FROM pg_indexes WHERE tablename = :t"
            " AND schemaname = current_schema()"
        )
    return {str(name) for name in conn.execute(query, {"t": table}).scalars()}


def creation_order(metadata: sa.MetaData) -> list[sa.Table]:
    """Tables, referenced ones first; forms that refer to each other do not stop it (the
    foreign keys of such a cycle are added after the tables, see deploy)."""
    pairs = sa.schema.sort_tables_and_constraints(metadata.tables.values())
    return [table for table, _ in pairs if table is not None]


def index_name(dialect: sa.Dialect, index: sa.Index) -> str:
    """The index's name as the database holds it (long names are shortened with a hash)."""
    return str(dialect.identifier_preparer.format_index(index)).strip('"')


def last_deployed_hash(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("sl_deployments"):
        return None
    query = sa.text("SELECT content_hash FROM sl_deployments ORDER BY id DESC LIMIT 1")
    value = conn.execute(query).scalar()
    return None if value is None else str(value)


def plan_schema(conn: sa.Connection, app: App) -> Plan:
    """Compare the App's tables with the live database; the steps are in applying order."""
    diff = _Differ(conn, app)
    steps = [*diff.table_renames(), *diff.creates()]
    add_indexes, drop_indexes = diff.index_steps()
    steps += [*drop_indexes, *diff.column_steps(), *diff.drop_tables(), *add_indexes]
    steps += diff.guard_steps()
    steps += [
        _step(
            "search_index",
            table_name(form),
            f"build the search index of {table_name(form)}",
            f"建立 {table_name(form)} 的搜索索引",
            target=fts_table(form),
        )
        for form in stale_search_indexes(conn, app)
    ]
    return Plan(app.name, app.version, app.content_hash, tuple(steps), last_deployed_hash(conn))
