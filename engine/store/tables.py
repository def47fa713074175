"""Form specs → tables: one table per form with real typed columns, child tables, indexes.

Column types follow the field types so dashboards can aggregate in SQL. Multiselect and files
are JSON (JSONB on PostgreSQL) so they can be queried; refs are foreign keys with an index.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import SchemaItem
from sqlalchemy.sql.elements import conv

from engine.model.spec import App, FieldSpec, FormSpec
from engine.store.event_sql import kpi_event_indexes
from engine.store.system_tables import JSON, TS, add_system_tables

__all__ = ["build_metadata", "child_table_name", "column_type", "composite_index", "table_name"]

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def table_name(form: str) -> str:
    return f"f_{form}"


def child_table_name(form: str, child: str) -> str:
    return f"f_{form}__{child}"


def column_type(field: FieldSpec) -> sa.types.TypeEngine[Any]:
    kind = field.value_type
    if kind == "text":
        return sa.String(max(field.max_length or 255, 1))
    if kind == "long_text":
        return sa.Text()
    if kind == "integer":
        return sa.BigInteger()
    if kind == "decimal":
        return sa.Numeric(20, field.scale if field.scale is not None else 4)
    if kind == "money":
        return sa.Numeric(18, field.scale if field.scale is not None else 2)
    if kind == "boolean":
        return sa.Boolean()
    if kind == "date":
        return sa.Date()
    if kind == "datetime":
        return TS
    if kind == "select":
        return sa.String(max([64, *(len(o.value) for o in field.options)]))
    if kind in ("multiselect", "files"):
        return JSON
    if kind == "phone":
        return sa.String(32)
    if kind == "email":
        return sa.String(254)
    if kind == "autonumber":
        return sa.String(64)
    if kind == "ref":
        return _ID
    return sa.Text()


def _field_columns(
    form: FormSpec | None, fields: tuple[FieldSpec, ...], table: str
) -> list[SchemaItem]:
    items: list[SchemaItem] = []
    for field in fields:
        if field.type == "table":
            continue
        if field.type == "ref":
            assert field.ref_form is not None
            items.append(
                sa.Column(
                    field.name,
                    _ID,
                    sa.ForeignKey(
                        f"{table_name(field.ref_form)}.id", name=f"fk_{table}_{field.name}"
                    ),
                    nullable=True,
                    index=True,
                )
            )
        elif field.type == "autonumber":
            items.append(sa.Column(field.name, column_type(field), nullable=True, unique=True))
        else:
            index = field.indexed  # dates and times always; other types with ``index: true``
            items.append(sa.Column(field.name, column_type(field), nullable=True, index=index))
    return items


def composite_index(table: str, columns: tuple[str, ...]) -> sa.Index:
    """``ix_<table>_<col1>_<col2>…`` on ``columns`` in order. The name is marked as made by
    the engine (``conv``), so where it is too long for the database (PostgreSQL: 63
    characters) it is shortened with a hash the way SQLAlchemy shortens ``index=True``
    names (see ``engine.deploy.plan.index_name``)."""
    return sa.Index(conv(f"ix_{table}_{'_'.join(columns)}"), *columns)


def build_metadata(app: App) -> sa.MetaData:
    """The tables the App needs: system tables plus one per form and child table."""
    metadata = sa.MetaData()
    add_system_tables(metadata)
    kpi_event_indexes(app, metadata.tables["sl_events"])
    for form in app.forms.values():
        name = table_name(form.name)
        sa.Table(
            name,
            metadata,
            sa.Column("id", _ID, primary_key=True, autoincrement=True),
            sa.Column("state", sa.String(64), nullable=True, index=True),
            sa.Column("version", sa.Integer, nullable=False, default=1),
            sa.Column("created_at", TS, nullable=False, index=True),
            sa.Column("updated_at", TS, nullable=False),
            sa.Column("created_by", sa.String(64), nullable=False),
            *_field_columns(form, form.fields, name),
            # records in a state, most recently changed first (worklists, "my work" counts):
            # without it 30 k orders in one state were sorted for every page (110 ms at 42 k)
            sa.Index(conv(f"ix_{name}_state_updated"), "state", "updated_at", "id"),
            *(composite_index(name, columns) for columns in form.indexes),
        )
    for form in app.forms.values():
        for child in (f for f in form.fields if f.type == "table"):
            cname = child_table_name(form.name, child.name)
            sa.Table(
                cname,
                metadata,
                sa.Column("id", _ID, primary_key=True, autoincrement=True),
                sa.Column(
                    "parent_id",
                    _ID,
                    sa.ForeignKey(
                        f"{table_name(form.name)}.id", ondelete="CASCADE", name=f"fk_{cname}_parent"
                    ),
                    nullable=False,
                    index=True,
                ),
                sa.Column("position", sa.Integer, nullable=False),
                sa.Column("created_at", TS, nullable=False),
                sa.Column("created_by", sa.String(64), nullable=False),
                *_field_columns(None, child.children, cname),
            )
    return metadata
