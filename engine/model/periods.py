"""Time windows and trend buckets in the app's time zone, as UTC instants for SQL.

Windows count whole local days: ``30d`` starts at local midnight 29 days before today, so a
dashboard shows the same number all day; ``today`` and ``this_month`` start at local
midnight of today / the 1st; every window ends at ``now``. Trend buckets are local days,
weeks (from Monday) or months; their starts are computed here (time-zone and DST correct)
and SQL only compares timestamps with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["BUCKETS", "Period", "bucket_index", "bucket_unfinished", "trend_starts", "window"]

BUCKETS = 8


@dataclass(frozen=True, slots=True)
class Period:
    """``start`` (None: from the beginning) ≤ t ≤ ``end``, both aware UTC (SQLite drops the
    zone of a bound value, so anything compared in SQL must already be UTC)."""

    start: datetime | None
    end: datetime

    def clauses(self, column: ColumnElement[datetime]) -> list[ColumnElement[bool]]:
        out = [column <= _utc(self.end)]
        if self.start is not None:
            out.append(column >= _utc(self.start))
        return out


def _utc(moment: datetime) -> datetime:
    """In UTC: SQLite compares the UTC wall-clock text the records service stored."""
    return moment.astimezone(UTC)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def window(name: str, now: datetime, timezone: str) -> Period:
    tz = ZoneInfo(timezone)
    today = now.astimezone(tz).date()
    if name == "all":
        return Period(None, _utc(now))
    if name == "today":
        return Period(_utc(_midnight(today, tz)), _utc(now))
    if name == "this_month":
        return Period(_utc(_midnight(today.replace(day=1), tz)), _utc(now))
    match = re.fullmatch(r"(\d+)d", name)
    if match is None:
        raise ValueError(f"unknown window {name!r}")
    days = max(int(match.group(1)), 1)
    return Period(_utc(_midnight(today - timedelta(days=days - 1), tz)), _utc(now))


def _bucket_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _previous(start: date, unit: str) -> date:
    if unit == "week":
        return start - timedelta(days=7)
    if unit == "month":
        return (start - timedelta(days=1)).replace(day=1)
    return start - timedelta(days=1)


def _next(start: date, unit: str) -> date:
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def bucket_unfinished(start: date, unit: str, now: datetime, timezone: str) -> bool:
    """Whether the bucket starting ``start`` is still running at ``now`` (a day "as of" its
    last second counts as finished): its value is partial, drawn apart from the closed ones."""
    end = _utc(_midnight(_next(start, unit), ZoneInfo(timezone)))
    return _utc(now) < end - timedelta(seconds=1)


def trend_starts(unit: str, now: datetime, timezone: str, count: int = BUCKETS) -> list[date]:
    """The local start dates of the last ``count`` buckets, oldest first (the last one holds
    ``now``)."""
    tz = ZoneInfo(timezone)
    starts = [_bucket_start(now.astimezone(tz).date(), unit)]
    while len(starts) < count:
        starts.append(_previous(starts[-1], unit))
    return list(reversed(starts))


def bucket_index(
    column: ColumnElement[datetime], starts: list[date], timezone: str
) -> ColumnElement[int]:
    """0 … len(starts)-1: which bucket ``column`` falls in (call only on rows ≥ the first)."""
    tz = ZoneInfo(timezone)
    whens = [
        (column >= _utc(_midnight(day, tz)), i)
        for i, day in reversed(list(enumerate(starts)))
        if i > 0 or len(starts) == 1  # a CASE needs one WHEN
    ]
    return sa.case(*whens, else_=0)


def trend_period(starts: list[date], now: datetime, timezone: str) -> Period:
    return Period(_utc(_midnight(starts[0], ZoneInfo(timezone))), _utc(now))
