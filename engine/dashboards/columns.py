"""Run-time columns for KPI conditions: the form's table and LEFT JOINs along ref paths, and
the record's events for ``entered(…)``/``fired(…)``."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.expressions.sql import Sql, kind_of, not_computable
from engine.model.spec import App, EventSpec
from engine.store.event_sql import record_event_count, record_has_event
from engine.store.tables import table_name

__all__ = ["TableColumns"]


@dataclass
class TableColumns:
    """Run time: the form's table, with a LEFT JOIN per ref followed (``customer.tier``)."""

    app: App
    metadata: sa.MetaData
    form: str
    dialect: str = ""  # the database the queries run on (``entered()`` differs on PostgreSQL)
    joins: dict[tuple[str, ...], tuple[sa.FromClause, str]] = field(default_factory=dict)

    @property
    def table(self) -> sa.Table:
        return self.metadata.tables[table_name(self.form)]

    def record_events(self, spec: EventSpec, count: bool) -> Any:
        events = self.metadata.tables["sl_events"]
        if count:
            return record_event_count(events, self.form, spec, self.table.c.id)
        return record_has_event(events, self.form, spec, self.table.c.id, self.dialect)

    def column(self, path: tuple[str, ...], node: ast.AST) -> Sql:
        source: sa.FromClause = self.table
        form = self.form
        for i, part in enumerate(path[:-1]):
            spec = self.app.forms[form].by_name.get(part)
            if spec is None or spec.type != "ref" or spec.ref_form is None:
                raise not_computable(node, "this path", "此路径")
            prefix = path[: i + 1]
            if prefix not in self.joins:
                target = self.metadata.tables[table_name(spec.ref_form)]
                self.joins[prefix] = (target.alias("j_" + "__".join(prefix)), part)
            source, form = self.joins[prefix][0], spec.ref_form
        name = path[-1]
        if name not in source.c:
            raise not_computable(node, "this field", "此字段")
        spec = self.app.forms[form].by_name.get(name)
        kind = kind_of(spec.value_type) if spec is not None else _system_kind(name)
        return Sql(source.c[name], kind)

    def from_clause(self) -> sa.FromClause:
        """The form's table joined to every ref table the translated clauses used."""
        joined: sa.FromClause = self.table
        for prefix, (alias, part) in self.joins.items():
            owner = self.table if len(prefix) == 1 else self.joins[prefix[:-1]][0]
            joined = joined.outerjoin(alias, alias.c.id == owner.c[part])
        return joined


def _system_kind(name: str) -> str:
    return {"id": "number", "created_at": "datetime", "updated_at": "datetime"}.get(name, "text")
