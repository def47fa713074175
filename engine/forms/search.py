"""The WHERE clause of list search: a term matched against a form's own text columns and,
one level deep, the text of the records its ref fields point at.

How it stays fast (figures from ``bench/bench_search.py`` at 100,000 orders, README):

* Own columns go through the form's trigram index (``engine.store.search_index``): SQLite
  FTS5 ``trigram`` (``id IN (SELECT rowid FROM sx_form WHERE sx_form MATCH '"term"')``),
  PostgreSQL ``pg_trgm`` GIN indexes used by ``ILIKE``. Scanning 100 k wide rows with
  ``ILIKE`` on five columns took 200-400 ms.
* Refs: the matching target ids are resolved first (targets such as customers or products
  are small tables) and, when there are few (<= ``FEW``), each becomes an indexed
  ``ref IN (ids)`` branch. The branches are combined as ``id IN (own UNION ALL ref1 UNION
  ALL ...)``: every branch is an index lookup, so even a term that matches nothing (no
  LIMIT to stop early) costs a few index probes. An ``OR`` across them made both databases
  scan the table. On PostgreSQL the ids go through one array (``id = ANY(ARRAY(...))``):
  with ``IN (...)`` the planner walked the primary key backwards for ``ORDER BY id DESC``.
* A term that matches many targets (e.g. "有限公司", in every customer's name) or many rows
  of the form itself (e.g. "SO-2026", in every order number: the probe reads at most
  ``FEW + 1`` index entries) or is shorter
  than a trigram (one or two characters: no index can answer it) is matched with ``OR``
  while the rows are read newest first: such terms match many rows, so the LIMIT ends the
  scan early. (A short term that matches nothing still scans: the known slow case.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa

from engine.model.spec import FormSpec
from engine.store.search_index import fts_table, has_fts, searchable_fields
from engine.store.tables import table_name

__all__ = ["search_clause"]

FEW = 500  # target ids above this: match the ref with a subquery while scanning instead
_TRIGRAM = 3


def _needle(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _scan(columns: list[sa.ColumnElement[Any]], q: str) -> sa.ColumnElement[bool]:
    needle = _needle(q)
    if q.lower() == q.upper():  # nothing to fold (e.g. Chinese, digits): LIKE is much cheaper
        return sa.or_(sa.false(), *(c.like(needle, escape="\\") for c in columns))
    return sa.or_(sa.false(), *(c.ilike(needle, escape="\\") for c in columns))


def _match(
    conn: sa.Connection, table: sa.Table, form: FormSpec, names: list[str], q: str
) -> sa.ColumnElement[bool]:
    """``q`` in any of the columns ``names`` of ``form``'s table, through its index if any."""
    if not names:
        return sa.false()
    indexed = _indexed(conn, form, names, q)
    if indexed is not None:
        return table.c.id.in_(indexed)
    return _scan([table.c[n] for n in names], q)


def _indexed(
    conn: sa.Connection, form: FormSpec, names: list[str], q: str
) -> sa.Select[Any] | None:
    """The ids whose columns ``names`` hold ``q``, from the SQLite FTS5 trigram index (None:
    no such index here, or ``q`` shorter than a trigram)."""
    if conn.dialect.name != "sqlite" or len(q) < _TRIGRAM or not has_fts(conn, form.name):
        return None
    fts = sa.table(fts_table(form.name), sa.column("rowid"))
    columns = " ".join(f'"{n}"' for n in names)
    phrase = "{" + columns + '} : "' + q.replace('"', '""') + '"'
    return sa.select(fts.c.rowid).where(sa.literal_column(fts.name).op("MATCH")(sa.literal(phrase)))


def _many(conn: sa.Connection, ids: sa.Select[Any]) -> bool:
    """More than :data:`FEW` ids (read from the index, stopped at FEW + 1)."""
    probe = sa.select(sa.func.count()).select_from(ids.limit(FEW + 1).subquery())
    return int(conn.execute(probe).scalar_one()) > FEW


def _target_names(target: FormSpec, title_only: bool) -> list[str]:
    """Title and text/autonumber fields: what a ref's target is found by. Only its title when
    the person searching may not read the target's form: the list shows that title anyway,
    but matching its other fields would let them test guesses about what they may not see."""
    names = [target.title_field] if target.title_field else []
    if not title_only:
        names += [f.name for f in target.fields if f.value_type in ("text", "autonumber")]
    searchable = {f.name for f in searchable_fields(target)}
    return [n for n in dict.fromkeys(names) if n in searchable]


def search_clause(
    conn: sa.Connection,
    table: sa.Table,
    form: FormSpec,
    forms: Mapping[str, FormSpec],
    q: str,
    title_only: Collection[str] = (),
) -> sa.ColumnElement[bool]:
    """Rows of ``table`` whose own text, or whose refs' text, contains ``q`` (of the forms in
    ``title_only``, which the person searching may not read, only their titles)."""
    names = [f.name for f in searchable_fields(form)]
    own = _match(conn, table, form, names, q)
    refs: list[sa.ColumnElement[bool]] = []
    dense = len(q) < _TRIGRAM
    indexed = _indexed(conn, form, names, q) if names and not dense else None
    if indexed is not None and _many(conn, indexed):
        # e.g. "SO-2026", in every order number: the index would hand over every row to be
        # sorted; read newest first instead, the LIMIT ends the scan after a page
        own, dense = _scan([table.c[n] for n in names], q), True
    for spec in form.fields:
        target = forms.get(spec.ref_form or "") if spec.type == "ref" else None
        if target is None:
            continue
        names = _target_names(target, target.name in title_only)
        if not names:
            continue
        ttable = table.metadata.tables[table_name(target.name)]
        matching = sa.select(ttable.c.id).where(_match(conn, ttable, target, names, q))
        ids = list(conn.execute(matching.limit(FEW + 1)).scalars())
        if len(ids) > FEW:
            dense = True
            refs.append(table.c[spec.name].in_(matching))
        elif ids:
            refs.append(table.c[spec.name].in_(ids))
    if dense or not refs:
        return sa.or_(own, *refs)
    union = sa.union_all(*(sa.select(table.c.id).where(c) for c in (own, *refs))).subquery()
    if conn.dialect.name == "postgresql":
        # One array, computed once (an InitPlan), then primary-key lookups: with a plain
        # IN (…) the planner walked the whole primary key backwards for ORDER BY id DESC.
        found = sa.select(sa.func.array_agg(union.c.id)).scalar_subquery()
        return table.c.id == sa.any_(sa.cast(found, sa.ARRAY(sa.BigInteger())))
    return table.c.id.in_(sa.select(union.c.id))
