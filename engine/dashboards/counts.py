"""What a ``per_record`` KPI counts for one record, as a correlated scalar subquery.

Events (``state_entered``, ``transition``, ``field_changed``, ``notified``) are counted through
:mod:`engine.store.event_sql` (one seek in the record-ordered index per record, events
up to ``now``); child rows (``rows: log``) through the child table's ``parent_id`` index, with
the ``where`` condition translated like any KPI condition, over the row's own columns (rows
added up to ``now``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from engine.expressions import EvalEnv
from engine.expressions.sql import Sql, condition, kind_of, not_computable
from engine.model.spec import App, CountSpec, EventSpec
from engine.store.event_sql import record_event_count
from engine.store.tables import child_table_name

__all__ = ["per_record_count"]


@dataclass
class RowColumns:
    """Run time: a child table's own columns (no paths through refs)."""

    app: App
    table: sa.Table
    form: str
    child: str

    def column(self, path: tuple[str, ...], node: ast.AST) -> Sql:
        if len(path) != 1 or path[0] not in self.table.c:
            raise not_computable(node, "this path", "此路径")
        parent = self.app.forms[self.form].by_name[self.child]
        spec = next((c for c in parent.children if c.name == path[0]), None)
        return Sql(self.table.c[path[0]], kind_of(spec.value_type if spec else None))

    def record_events(self, spec: EventSpec, count: bool) -> Any:
        raise AssertionError("the compile stage allows entered()/fired() on records only")


def per_record_count(
    app: App,
    metadata: sa.MetaData,
    form: str,
    count: CountSpec,
    record_id: Any,
    env: EvalEnv,
    now: datetime,
) -> ColumnElement[int]:
    """How many of ``count``'s events or rows the record ``record_id`` has."""
    if count.event is not None:
        return record_event_count(metadata.tables["sl_events"], form, count.event, record_id, now)
    assert count.rows is not None
    rows = metadata.tables[child_table_name(form, count.rows)]
    clauses = [rows.c.parent_id == record_id, rows.c.created_at <= now]
    if count.where is not None:
        columns = RowColumns(app, rows, form, count.rows)
        clauses.append(condition(count.where.tree, columns, env))
    return sa.select(sa.func.count()).where(*clauses).scalar_subquery()
