"""Substring-search indexes over a form's text columns, so list search does not scan the table.

* SQLite: an FTS5 table with the ``trigram`` tokenizer (SQLite >= 3.34) over the form table
  (external content: the text is not stored twice), kept in step by three triggers. A term of
  three characters or more is looked up in it (case-insensitive substring match).
* PostgreSQL: a ``pg_trgm`` GIN index per text column, which the planner uses for
  ``ILIKE '%term%'`` (terms of three characters or more).

Both are optional: without FTS5/trigram or without the ``pg_trgm`` extension (or the right
to create it) nothing is created and search falls back to scanning. ``seamline deploy`` plans
them (:func:`stale_search_indexes`) and builds them (:func:`build_search_index`), also on a
database deployed before they existed. Their names start with ``sx_`` so the form-table
housekeeping of the planner (``f_*`` tables, ``ix_*`` indexes) leaves them alone.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from engine.model.spec import App, FieldSpec, FormSpec

__all__ = [
    "SEARCHABLE",
    "build_search_index",
    "clear_stale_search_indexes",
    "fts_table",
    "has_fts",
    "searchable_fields",
    "stale_search_indexes",
]

SEARCHABLE = ("text", "long_text", "autonumber", "phone", "email", "select")
_PREFIX = "sx_"


def searchable_fields(form: FormSpec) -> list[FieldSpec]:
    """The form's own columns that list search matches a term against."""
    return [f for f in form.fields if f.value_type in SEARCHABLE and f.type != "table"]


def fts_table(form: str) -> str:
    return f"{_PREFIX}{form}"


def _pg_index(form: str, column: str) -> str:
    name = f"{_PREFIX}{form}_{column}"
    if len(name) <= 63:
        return name
    return f"{name[:50]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _sqlite_ddl(form: FormSpec) -> dict[str, str]:
    """The FTS table and its triggers, by name, as ``sqlite_master.sql`` will hold them."""
    fts, base = fts_table(form.name), f"f_{form.name}"
    cols = [f'"{f.name}"' for f in searchable_fields(form)]
    names = ", ".join(cols)
    new = ", ".join(f"new.{c}" for c in cols)
    old = ", ".join(f"old.{c}" for c in cols)
    delete = f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old});"
    insert = f"INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new});"
    return {
        fts: f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, content='{base}', "
        "content_rowid='id', tokenize='trigram')",
        f"{fts}_ai": f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {base} BEGIN {insert} END",
        f"{fts}_ad": f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {base} BEGIN {delete} END",
        f"{fts}_au": f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {names} ON {base} "
        f"BEGIN {delete} {insert} END",
    }


def _sqlite_trigram(conn: sa.Connection) -> bool:
    raw = str(conn.exec_driver_sql("SELECT sqlite_version()").scalar_one())
    version = tuple(int(p) for p in raw.split("."))
    options = set(conn.exec_driver_sql("PRAGMA compile_options").scalars())
    return version >= (3, 34) and "ENABLE_FTS5" in options


def _pg_trigram(conn: sa.Connection) -> bool:
    """pg_trgm is installed, or this user may install it (superuser, or trusted + CREATE)."""
    query = (
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')"
        " OR EXISTS (SELECT 1 FROM pg_available_extension_versions WHERE name = 'pg_trgm'"
        " AND ((trusted AND has_database_privilege(current_database(), 'CREATE'))"
        " OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)))"
    )
    return bool(conn.exec_driver_sql(query).scalar())


def _live_sqlite(conn: sa.Connection) -> dict[str, str]:
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE substr(name, 1, 3) = 'sx_'"
        " AND (type = 'trigger' OR substr(sql, 1, 20) = 'CREATE VIRTUAL TABLE')"
    )
    return {str(name): str(sql) for name, sql in rows}


def _live_pg(conn: sa.Connection) -> dict[str, set[str]]:
    """The ``sx_`` indexes, by table."""
    rows = conn.exec_driver_sql(
        "SELECT tablename, indexname FROM pg_indexes WHERE left(indexname, 3) = 'sx_'"
        " AND schemaname = current_schema()"
    )
    out: dict[str, set[str]] = {}
    for table, name in rows:
        out.setdefault(str(table), set()).add(str(name))
    return out


def _wanted_pg(form: FormSpec) -> dict[str, str]:
    return {
        _pg_index(form.name, f.name): (
            f'CREATE INDEX IF NOT EXISTS {_pg_index(form.name, f.name)} ON "f_{form.name}" '
            f'USING gin ("{f.name}" gin_trgm_ops)'
        )
        for f in searchable_fields(form)
    }


def stale_search_indexes(conn: sa.Connection, app: App) -> list[str]:
    """The forms whose search index is missing or out of date (in name order); ``[]`` when
    the database offers no trigram index."""
    dialect = conn.dialect.name
    if dialect == "sqlite" and _sqlite_trigram(conn):
        live = _live_sqlite(conn)
        return sorted(
            form.name
            for form in app.forms.values()
            if searchable_fields(form)
            and any(live.get(name) != sql for name, sql in _sqlite_ddl(form).items())
        )
    if dialect == "postgresql" and _pg_trigram(conn):
        live_pg = _live_pg(conn)
        return sorted(
            form.name
            for form in app.forms.values()
            if set(_wanted_pg(form)) != live_pg.get(f"f_{form.name}", set())
        )
    return []


def clear_stale_search_indexes(conn: sa.Connection, app: App) -> None:
    """Before a deploy changes columns: drop what would stand in its way — PostgreSQL trigram
    indexes no longer wanted (a column that stops being text cannot keep one), SQLite triggers
    of stale indexes (they name columns). :func:`build_search_index` makes them again."""
    if conn.dialect.name == "sqlite":
        stale = set(stale_search_indexes(conn, app))
        for name in _live_sqlite(conn):
            form = app.forms.get(name.removeprefix(_PREFIX).rsplit("_", 1)[0])
            if name.endswith(("_ai", "_ad", "_au")) and (form is None or form.name in stale):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        return
    if conn.dialect.name != "postgresql":
        return
    wanted = {n for form in app.forms.values() for n in _wanted_pg(form)}
    for names in _live_pg(conn).values():
        for name in sorted(names - wanted):
            conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{name}"')


def build_search_index(conn: sa.Connection, form: FormSpec) -> bool:
    """(Re)build one form's search index; False when the database cannot have one."""
    if conn.dialect.name == "sqlite":
        wanted = _sqlite_ddl(form)
        fts = fts_table(form.name)
        for name in reversed(wanted):
            kind = "TABLE" if name == fts else "TRIGGER"
            conn.exec_driver_sql(f"DROP {kind} IF EXISTS {name}")
        for sql in wanted.values():
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
        return True
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        return False  # no right to create it: search scans instead
    for sql in _wanted_pg(form).values():
        conn.exec_driver_sql(sql)
    return True


def has_fts(conn: sa.Connection, form: str) -> bool:
    """Whether the SQLite FTS table of ``form`` exists (a database deployed before it did
    not have it)."""
    found = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (fts_table(form),)
    )
    return found.first() is not None
