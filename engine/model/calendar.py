"""Working-day and business-hours calendar.

Backs the expression functions ``add_workdays``, ``workdays_between`` and
``business_hours_between`` and the approval SLA timers. Pure Python: the Chinese statutory
holidays (and make-up workdays) come from the ``chinese_calendar`` package.

A date in a year the calendar does not know is never guessed silently: it is treated as
Mon–Fri and reported once per year through ``on_unknown`` (or logged when none is given).
Business time is measured in wall-clock time in ``CalendarSpec.timezone``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

from engine.model.i18n import Text
from engine.model.logs import logger

__all__ = [
    "CN_FIRST_YEAR",
    "CN_LAST_YEAR",
    "CalendarSpec",
    "UnknownDateWarning",
    "WorkCalendar",
    "covered_until",
    "first_unknown_year",
]

log = logger(__name__)

MAX_WORKDAYS = 10_000  # largest |n| accepted by add_workdays
MAX_SPAN_DAYS = 366 * 100  # longest span (in days) any computation may walk

# Years chinese_calendar has data for, read from its own holiday table (never hard-coded).
_CN_FIRST_YEAR: int = min(chinese_calendar.holidays).year
_CN_LAST_YEAR: int = max(chinese_calendar.holidays).year
_CN_HOLIDAYS: frozenset[date] = frozenset(chinese_calendar.holidays)
_CN_WORKDAYS: frozenset[date] = frozenset(chinese_calendar.workdays)
CN_FIRST_YEAR, CN_LAST_YEAR = _CN_FIRST_YEAR, _CN_LAST_YEAR

_UNKNOWN = Text(
    en="{day} is outside the working-day calendar (cn knows {first}–{last}); treated Mon–Fri "
    "as workdays — add the year's holidays/workdays to calendar: in app.yaml",
    zh="{day} 超出工作日历范围（cn 只包含 {first}–{last} 年）；已按周一至周五为工作日处理"
    " —— 请在 app.yaml 的 calendar: 中补充该年的节假日/调休工作日",
)


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    """What counts as working time. Validated on construction (``ValueError``)."""

    base: Literal["cn", "weekends"] = "weekends"
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    business_hours: tuple[tuple[time, time], ...] = ((time(9), time(12)), (time(13), time(18)))
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        if self.base not in ("cn", "weekends"):
            raise ValueError(f"calendar base must be 'cn' or 'weekends', not {self.base!r}")
        for name in ("holidays", "workdays"):
            days = frozenset(getattr(self, name))
            if any(isinstance(d, datetime) or not isinstance(d, date) for d in days):
                raise ValueError(f"calendar {name} must contain dates only")
            object.__setattr__(self, name, days)
        both = self.holidays & self.workdays
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"calendar dates listed as both holiday and workday: {listed}")
        windows = tuple((start, end) for start, end in self.business_hours)
        object.__setattr__(self, "business_hours", windows)
        _check_windows(windows)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown calendar timezone {self.timezone!r}") from exc


def _check_windows(windows: tuple[tuple[time, time], ...]) -> None:
    if not windows:
        raise ValueError("calendar business_hours needs at least one window")
    previous_end: time | None = None
    for start, end in windows:
        if not (isinstance(start, time) and isinstance(end, time)):
            raise ValueError("calendar business_hours windows must be (time, time) pairs")
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("calendar business_hours must be local times without a timezone")
        if start >= end:
            raise ValueError(f"business_hours window {start}–{end}: start must be before end")
        if previous_end is not None and start < previous_end:
            raise ValueError(
                f"business_hours window {start}–{end} overlaps or is out of order "
                f"(previous window ends at {previous_end})"
            )
        previous_end = end


@dataclass(frozen=True, slots=True)
class UnknownDateWarning:
    """A date fell in a year the calendar has no holiday data for."""

    day: date
    message: Text = field(compare=False)


class WorkCalendar:
    """Answers working-day and business-hours questions for one :class:`CalendarSpec`."""

    def __init__(
        self, spec: CalendarSpec, on_unknown: Callable[[UnknownDateWarning], None] | None = None
    ) -> None:
        self.spec = spec
        self._on_unknown = on_unknown
        self._tz = ZoneInfo(spec.timezone)
        self._declared_years = frozenset(d.year for d in spec.holidays | spec.workdays)
        self._warned_years: set[int] = set()

    # ---- working days -------------------------------------------------------------------

    def is_known(self, d: date) -> bool:
        """True if the base calendar or the spec's own dates cover ``d``'s year."""
        return _known_year(self.spec, self._declared_years, d.year)

    def first_unknown_year(self, a: date, b: date) -> int | None:
        """The first year from ``a`` to ``b`` (either order) the calendar has no holidays
        for — dates there count Monday–Friday as workdays — or None when all are known."""
        return first_unknown_year(self.spec, a, b)

    def is_workday(self, d: date) -> bool:
        d = _as_date(d)
        if d in self.spec.workdays:
            return True
        if d in self.spec.holidays:
            return False
        if self.spec.base == "cn" and _CN_FIRST_YEAR <= d.year <= _CN_LAST_YEAR:
            # Same answer as chinese_calendar.is_workday, from its tables read once (5× faster).
            if d in _CN_WORKDAYS:
                return True
            return d not in _CN_HOLIDAYS and d.weekday() < 5
        if not self.is_known(d):
            self._warn_unknown(d)
        return d.weekday() < 5

    def add_workdays(self, d: date, n: int) -> date:
        """The n-th workday after ``d`` (before it when n < 0); n == 0 → ``d`` or the next one."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"add_workdays: n must be a whole number, not {n!r}")
        if abs(n) > MAX_WORKDAYS:
            raise ValueError(f"add_workdays: n={n} is out of range (at most ±{MAX_WORKDAYS})")
        d = _as_date(d)
        step = -1 if n < 0 else 1
        remaining = abs(n)
        if n == 0:
            remaining, d = 1, _shift(d, -1)  # "the first workday on or after d"
        for _ in range(MAX_SPAN_DAYS):
            d = _shift(d, step)
            if self.is_workday(d):
                remaining -= 1
                if remaining == 0:
                    return d
        raise ValueError(f"add_workdays: no {abs(n)} workdays within {MAX_SPAN_DAYS} days")

    def workdays_between(self, a: date, b: date) -> int:
        """Workdays in (a, b] — or minus the workdays in (b, a] when b < a."""
        a, b = _as_date(a), _as_date(b)
        if b < a:
            return -self.workdays_between(b, a)
        _check_span(a, b)
        return sum(1 for d in _days(a + timedelta(days=1), b) if self.is_workday(d))

    # ---- business hours -----------------------------------------------------------------

    def business_hours_between(self, a: datetime, b: datetime) -> float:
        """Business hours from ``a`` to ``b`` (negative when b < a)."""
        start, end = self._local(a), self._local(b)
        if end < start:
            return -self.business_hours_between(b, a)
        _check_span(start.date(), end.date())
        total = timedelta()
        for day in _days(start.date(), end.date()):
            if not self.is_workday(day):
                continue
            for ws, we in self._windows(day):
                lo, hi = max(ws, start), min(we, end)
                if lo < hi:
                    total += hi - lo
        return total.total_seconds() / 3600

    def add_business_hours(self, start: datetime, hours: float) -> datetime:
        """When ``hours`` of business time have elapsed after ``start`` (aware, local tz)."""
        if not math.isfinite(hours) or hours < 0:
            raise ValueError(f"add_business_hours: hours must be a finite number >= 0, not {hours}")
        cursor = self._local(start)
        remaining = timedelta(hours=hours)
        for offset in range(MAX_SPAN_DAYS):
            day = _shift(cursor.date(), offset)
            if not self.is_workday(day):
                continue
            for ws, we in self._windows(day):
                lo = max(ws, cursor)
                if lo >= we:
                    continue
                if remaining <= we - lo:
                    return (lo + remaining).replace(tzinfo=self._tz)
                remaining -= we - lo
        raise ValueError(f"add_business_hours: {hours} hours do not fit in {MAX_SPAN_DAYS} days")

    # ---- helpers ------------------------------------------------------------------------

    def _local(self, dt: datetime) -> datetime:
        """Naive wall-clock time in the spec's timezone (naive input is already local)."""
        if dt.tzinfo is None:
            return dt
        return dt.astimezone(self._tz).replace(tzinfo=None)

    def _windows(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for ws, we in self.spec.business_hours:
            yield datetime.combine(day, ws), datetime.combine(day, we)

    def _warn_unknown(self, d: date) -> None:
        if d.year in self._warned_years:
            return
        self._warned_years.add(d.year)
        warning = UnknownDateWarning(
            day=d,
            message=_UNKNOWN.format(day=d.isoformat(), first=_CN_FIRST_YEAR, last=_CN_LAST_YEAR),
        )
        if self._on_unknown is not None:
            self._on_unknown(warning)
        else:
            log.warning("%s", warning.message.en)


def _known_year(spec: CalendarSpec, declared: frozenset[int], year: int) -> bool:
    if spec.base == "weekends" or year in declared:
        return True
    return _CN_FIRST_YEAR <= year <= _CN_LAST_YEAR


def first_unknown_year(spec: CalendarSpec, a: date, b: date) -> int | None:
    """The first year from ``a`` to ``b`` (either order) ``spec`` has no holidays for."""
    declared = frozenset(d.year for d in spec.holidays | spec.workdays)
    first, last = sorted((_as_date(a).year, _as_date(b).year))
    return next((y for y in range(first, last + 1) if not _known_year(spec, declared, y)), None)


def covered_until(spec: CalendarSpec, today: date) -> date | None:
    """The last day of the run of known years from ``today``'s year on (31 December), the
    day before 1 January of today's year when that year is unknown already, or None when
    every year is known (base ``weekends``)."""
    if spec.base == "weekends":
        return None
    declared = frozenset(d.year for d in spec.holidays | spec.workdays)
    year = today.year
    while year <= 9999 and _known_year(spec, declared, year):
        year += 1
    return date(year - 1, 12, 31) if year > 1 else date.min


def _as_date(d: date) -> date:
    return d.date() if isinstance(d, datetime) else d


def _shift(d: date, days: int) -> date:
    try:
        return d + timedelta(days=days)
    except OverflowError:
        raise ValueError(f"date arithmetic left the supported range near {d}") from None


def _check_span(a: date, b: date) -> None:
    if (b - a).days > MAX_SPAN_DAYS:
        raise ValueError(f"calendar span {a} → {b} is longer than {MAX_SPAN_DAYS} days")


def _days(first: date, last: date) -> Iterator[date]:
    """Every date from ``first`` to ``last`` inclusive."""
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)
