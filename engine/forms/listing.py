"""Listing records: filters, sort, keyset paging with a stable cursor, text search (across
refs, see :mod:`engine.forms.search`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from engine.forms.rows import as_read, decode_cursor, encode_cursor
from engine.forms.search import search_clause
from engine.forms.validate import coerce_field
from engine.model.errors import BadRequest, FieldError, ValidationFailed
from engine.model.i18n import Text
from engine.model.spec import FieldSpec, FormSpec

MAX_LIMIT = 500
_OPS = {
    "": "eq",
    "eq": "eq",
    "ne": "ne",
    "gt": "gt",
    "gte": "ge",
    "lt": "lt",
    "lte": "le",
    "in": "in",
}
_SORTABLE_SYSTEM = ("id", "state", "created_at", "updated_at", "created_by")


def _bad(field: str | None, code: str, en: str, zh: str) -> ValidationFailed:
    return BadRequest([FieldError(field, code, Text(en, zh))])


def _system_value(name: str, raw: Any) -> Any:
    try:
        if name == "id":
            return int(raw)
        if name in ("created_at", "updated_at"):
            return datetime.fromisoformat(str(raw))
    except (TypeError, ValueError):
        raise _bad(name, "type", f"bad value for {name}", f"{name} 的取值不正确") from None
    return str(raw)


def _value(spec: FieldSpec | None, name: str, raw: Any, tz: str) -> Any:
    if spec is None:
        return _system_value(name, raw)
    if spec.type == "autonumber":
        return str(raw)
    value, error = coerce_field(spec, raw, tz)
    if error is not None:
        raise BadRequest([error])
    return value


def list_records(
    conn: sa.Connection,
    table: sa.Table,
    tz: str,
    form: FormSpec,
    filters: Mapping[str, Any],
    sort: str,
    limit: int,
    cursor: str | None,
    q: str | None,
    forms: Mapping[str, FormSpec] | None = None,
    title_only: Collection[str] = (),
) -> tuple[list[dict[str, Any]], str | None]:
    for key, raw in [*filters.items(), ("q", q or ""), ("sort", sort), ("cursor", cursor or "")]:
        if "\x00" in str(raw) or "\x00" in key:
            raise _bad(key, "type", "contains a NUL character", "包含非法字符")
    query = sa.select(table)
    for key, raw in filters.items():
        name, _, op = key.partition("__")
        if op not in _OPS:
            raise _bad(
                key, "bad_filter", f"unknown filter operator '{op}'", f"未知的筛选运算 '{op}'"
            )
        spec = form.by_name.get(name)
        if (spec is None and name not in _SORTABLE_SYSTEM) or (
            spec is not None and spec.type in ("table", "files", "multiselect")
        ):
            raise _bad(key, "bad_filter", f"cannot filter on '{name}'", f"不能按 '{name}' 筛选")
        column = table.c[name]
        if _OPS[op] == "in":
            values = [_value(spec, name, v, tz) for v in str(raw).split(",") if v != ""]
            query = query.where(column.in_(values))
        else:
            value = _value(spec, name, raw, tz)
            query = query.where(getattr(column, f"__{_OPS[op]}__")(value))
    if q:
        query = query.where(search_clause(conn, table, form, forms or {}, q, title_only))
    descending = sort.startswith("-")
    sort_name = sort.lstrip("-+")
    sort_spec = form.by_name.get(sort_name)
    if (sort_spec is None and sort_name not in _SORTABLE_SYSTEM) or (
        sort_spec is not None and sort_spec.type in ("table", "files", "multiselect")
    ):
        raise _bad(
            "sort", "bad_sort", f"cannot sort by '{sort_name}'", f"不能按 '{sort_name}' 排序"
        )
    column, ids = table.c[sort_name], table.c.id
    if cursor:
        try:
            last_value, last_id = decode_cursor(cursor)
            last_id = int(last_id)
            if last_value is not None:
                last_value = _cursor_value(sort_spec, sort_name, last_value)
        except (ValueError, TypeError, KeyError):
            raise _bad("cursor", "bad_cursor", "the cursor is not valid", "分页游标无效") from None
        after_id = ids < last_id if descending else ids > last_id
        if last_value is None:
            query = query.where(sa.and_(column.is_(None), after_id))
        else:
            beyond = column < last_value if descending else column > last_value
            query = query.where(
                sa.or_(beyond, sa.and_(column == last_value, after_id), column.is_(None))
            )
    if sort_name == "id":
        order = [ids.desc() if descending else ids.asc()]
    else:
        order = [
            (column.desc() if descending else column.asc()).nulls_last(),
            ids.desc() if descending else ids.asc(),
        ]
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows = [as_read(r._mapping) for r in conn.execute(query.order_by(*order).limit(limit + 1))]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last[sort_name], last["id"]])
    return rows, next_cursor


def _cursor_value(spec: FieldSpec | None, name: str, raw: Any) -> Any:
    kind = spec.value_type if spec is not None else name
    if kind == "date":
        return date.fromisoformat(raw)
    if kind in ("datetime", "created_at", "updated_at"):
        return datetime.fromisoformat(raw)
    if kind in ("decimal", "money"):
        return Decimal(raw)
    if kind in ("integer", "ref", "id"):
        return int(raw)
    if kind == "boolean":
        return bool(raw)
    return str(raw)
