"""Related lists on a record page: for every form with a ref field pointing at the record's
form (a customer's orders, a product's orders), its newest rows that point at this record and
how many there are. Derived from the refs, so nothing is declared; forms the user may not read
are left out. The count stops at :data:`COUNT_CAP` (shown as "1000+"): it reads the indexed
ref column, at most ``COUNT_CAP + 1`` entries of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine.accounts.auth import User
from engine.model.permissions import Resource, allowed
from engine.model.spec import FieldSpec, FormSpec
from engine.runtime import LiveApp

__all__ = ["COUNT_CAP", "ROWS", "RelatedList", "related_lists"]

ROWS = 10
COUNT_CAP = 1000


@dataclass(frozen=True, slots=True)
class RelatedList:
    form: FormSpec
    field: FieldSpec
    items: list[dict[str, Any]]
    count: int  # at most cap + 1
    cap: int

    @property
    def capped(self) -> bool:
        return self.count > self.cap


def referring_fields(current: LiveApp, form: FormSpec) -> list[tuple[FormSpec, FieldSpec]]:
    """(form, ref field) for every top-level ref field that points at ``form``."""
    return [
        (other, spec)
        for other in current.app.forms.values()
        for spec in other.fields
        if spec.type == "ref" and spec.ref_form == form.name
    ]


def _count(current: LiveApp, table: sa.Table, column: str, record_id: int) -> int:
    capped = sa.select(sa.literal(1)).where(table.c[column] == record_id).limit(COUNT_CAP + 1)
    with current.records.reads.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(capped.subquery())).scalar_one()
        )


def related_lists(
    current: LiveApp, form: FormSpec, record_id: int, user: User
) -> list[RelatedList]:
    """The related lists of one record, in the order the forms and fields are declared."""
    out = []
    for other, spec in referring_fields(current, form):
        if not allowed(current.app, user, "read", Resource(other)):
            continue
        items = current.records.list_page(
            other.name, filters={spec.name: str(record_id)}, sort="-id", limit=ROWS, actor=user
        ).items
        count = (
            len(items)
            if len(items) < ROWS
            else _count(current, current.records.table(other.name), spec.name, record_id)
        )
        out.append(RelatedList(other, spec, items, count, COUNT_CAP))
    return out
