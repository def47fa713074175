"""Record rows as the engine reads and writes them: UTC times, JSON-ready copies, cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["as_read", "decode_cursor", "encode_cursor", "plain", "utc"]


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_AS_IS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """JSON-ready copy (dates and decimals as text) for event payloads."""
    if type(value) in _AS_IS:  # the common case, without the ABC checks below
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def as_read(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as read: naive datetimes (SQLite) are UTC. ``row`` is a dict or SQLAlchemy's
    ``RowMapping`` (keyed by column name; its type also allows column objects as keys)."""
    return {
        k: (v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v)
        for k, v in row.items()
    }


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(plain(list(values))).encode()).decode()


def decode_cursor(cursor: str) -> list[Any]:
    data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    if not isinstance(data, list):
        raise ValueError("bad cursor")
    return data
