from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model.calendar import CalendarSpec, UnknownDateWarning, WorkCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
CN = WorkCalendar(CalendarSpec(base="cn"))
WEEKENDS = WorkCalendar(CalendarSpec())


def cn_with_sink(**spec: object) -> tuple[WorkCalendar, list[UnknownDateWarning]]:
    seen: list[UnknownDateWarning] = []
    return WorkCalendar(CalendarSpec(base="cn", **spec), on_unknown=seen.append), seen  # type: ignore[arg-type]


# ---- working days ---------------------------------------------------------------------


def test_national_day_2026_with_make_up_saturday() -> None:
    assert CN.add_workdays(date(2026, 9, 30), 3) == date(2026, 10, 10)
    assert not any(CN.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert CN.is_workday(date(2026, 10, 10))  # Saturday make-up workday
    assert CN.workdays_between(date(2026, 9, 30), date(2026, 10, 10)) == 3


def test_spring_festival_2026() -> None:
    assert CN.is_workday(date(2026, 2, 14))  # Saturday make-up workday
    assert not any(CN.is_workday(date(2026, 2, d)) for d in range(15, 24))
    assert CN.is_workday(date(2026, 2, 28))  # Saturday make-up workday
    assert CN.add_workdays(date(2026, 2, 13), 2) == date(2026, 2, 24)
    assert CN.workdays_between(date(2026, 2, 13), date(2026, 2, 24)) == 2


def test_overrides_beat_the_base() -> None:
    tuesday, saturday = date(2026, 3, 10), date(2026, 3, 14)
    cal = WorkCalendar(CalendarSpec(base="cn", holidays=frozenset({tuesday}), workdays={saturday}))  # type: ignore[arg-type]
    assert not cal.is_workday(tuesday)
    assert cal.is_workday(saturday)
    assert cal.add_workdays(date(2026, 3, 9), 1) == date(2026, 3, 11)
    assert cal.workdays_between(date(2026, 3, 9), date(2026, 3, 15)) == 4
    weekends = WorkCalendar(CalendarSpec(holidays=frozenset({tuesday})))
    assert not weekends.is_workday(tuesday)


def test_unknown_year_falls_back_to_weekdays_and_warns_once() -> None:
    cal, seen = cn_with_sink()
    assert not cal.is_known(date(2027, 3, 1))
    assert cal.is_known(date(2026, 3, 1))
    # 2027-10-01 is a Friday: with no data it is treated as an ordinary workday.
    assert cal.is_workday(date(2027, 10, 1))
    assert cal.add_workdays(date(2027, 9, 30), 3) == date(2027, 10, 5)
    assert cal.workdays_between(date(2027, 1, 1), date(2027, 12, 31)) == 260
    assert len(seen) == 1
    assert seen[0].day == date(2027, 10, 1)
    assert "2027-10-01" in seen[0].message.en and "Mon–Fri" in seen[0].message.en
    assert "2027-10-01" in seen[0].message.zh
    cal.is_workday(date(2028, 1, 3))
    assert [w.day.year for w in seen] == [2027, 2028]
    # A second calendar instance warns again (dedup is per instance).
    other, other_seen = cn_with_sink()
    other.is_workday(date(2027, 3, 1))
    assert len(other_seen) == 1


def test_unknown_year_without_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    WorkCalendar(CalendarSpec(base="cn")).is_workday(date(2027, 3, 1))
    assert "2027-03-01" in caplog.text


def test_declared_override_makes_year_known() -> None:
    cal, seen = cn_with_sink(holidays=frozenset({date(2027, 10, 1)}))
    assert cal.is_known(date(2027, 6, 1))
    assert not cal.is_workday(date(2027, 10, 1))
    assert cal.is_workday(date(2027, 10, 4))
    assert not cal.is_workday(date(2027, 10, 2))
    assert seen == []


def test_weekends_base_knows_every_year() -> None:
    assert WEEKENDS.is_known(date(1900, 1, 1)) and WEEKENDS.is_known(date(2100, 1, 1))
    assert WEEKENDS.is_workday(date(2026, 10, 1))  # no statutory holidays in this base


def test_negative_and_zero_n() -> None:
    assert CN.add_workdays(date(2026, 10, 10), -1) == date(2026, 10, 9)
    assert CN.add_workdays(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert CN.add_workdays(date(2026, 10, 8), -3) == date(2026, 9, 28)
    assert CN.add_workdays(date(2026, 10, 8), 0) == date(2026, 10, 8)
    assert CN.add_workdays(date(2026, 10, 3), 0) == date(2026, 10, 8)
    assert CN.workdays_between(date(2026, 10, 8), date(2026, 9, 28)) == -3
    assert CN.workdays_between(date(2026, 10, 8), date(2026, 10, 8)) == 0


def test_bounds_raise_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        CN.add_workdays(date(2026, 1, 1), 10_001)
    with pytest.raises(ValueError, match="out of range"):
        CN.add_workdays(date(2026, 1, 1), -(10**12))
    with pytest.raises(ValueError, match="longer than"):
        WEEKENDS.workdays_between(date(1900, 1, 1), date(2100, 1, 1))
    with pytest.raises(ValueError, match="longer than"):
        WEEKENDS.business_hours_between(datetime(2100, 1, 1), datetime(1900, 1, 1))
    with pytest.raises(ValueError):
        WEEKENDS.add_business_hours(datetime(2026, 1, 1), -1)
    with pytest.raises(TypeError):
        WEEKENDS.add_workdays(date(2026, 1, 1), 1.5)  # type: ignore[arg-type]


@given(
    d=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 10, 31)),
    n=st.integers(0, 60),
)
def test_workdays_between_inverts_add_workdays(d: date, n: int) -> None:
    # n == 0 on a day off moves to the next workday, which (d, next] then counts once.
    expected = n if n > 0 or CN.is_workday(d) else 1
    assert CN.workdays_between(d, CN.add_workdays(d, n)) == expected
    assert CN.workdays_between(CN.add_workdays(d, n), d) == -expected


@given(
    d=st.dates(min_value=date(2024, 3, 1), max_value=date(2026, 12, 31)),
    n=st.integers(1, 40),
)
def test_negative_n_inverts(d: date, n: int) -> None:
    back = CN.add_workdays(d, -n)
    assert back < d and CN.is_workday(back)
    # (back, d] holds the n - 1 workdays strictly between them, plus d itself if it works.
    assert CN.workdays_between(back, d) == n - 1 + CN.is_workday(d)


# ---- business hours -------------------------------------------------------------------


def test_business_hours_across_lunch() -> None:
    assert CN.business_hours_between(datetime(2026, 3, 2, 11), datetime(2026, 3, 2, 14)) == 2
    assert CN.business_hours_between(datetime(2026, 3, 2, 8), datetime(2026, 3, 2, 20)) == 8
    assert (
        CN.business_hours_between(datetime(2026, 3, 2, 12, 15), datetime(2026, 3, 2, 12, 45)) == 0
    )
    assert CN.business_hours_between(datetime(2026, 3, 2, 14), datetime(2026, 3, 2, 11)) == -2


def test_business_hours_across_weekend_and_holiday() -> None:
    # Fri 2026-03-06 17:00 → Mon 2026-03-09 10:00: 1h Friday + 1h Monday.
    assert CN.business_hours_between(datetime(2026, 3, 6, 17), datetime(2026, 3, 9, 10)) == 2
    # Wed 2026-09-30 17:30 → Thu 2026-10-08 09:30: Oct 1–7 are holidays.
    assert (
        CN.business_hours_between(datetime(2026, 9, 30, 17, 30), datetime(2026, 10, 8, 9, 30)) == 1
    )
    # Saturday 2026-10-10 is a make-up workday and counts in full.
    assert CN.business_hours_between(datetime(2026, 10, 10), datetime(2026, 10, 11)) == 8


def test_business_hours_with_aware_datetimes() -> None:
    # 01:00–06:00 UTC is 09:00–14:00 in Shanghai: 3h morning + 1h afternoon.
    a = datetime(2026, 3, 2, 1, tzinfo=UTC)
    b = datetime(2026, 3, 2, 6, tzinfo=UTC)
    assert CN.business_hours_between(a, b) == 4
    assert CN.business_hours_between(a, datetime(2026, 3, 2, 14)) == 4  # naive = Shanghai
    end = CN.add_business_hours(a, 4)
    assert end == b and end.tzinfo == SHANGHAI


def test_add_business_hours() -> None:
    start = datetime(2026, 3, 2, 11)
    assert CN.add_business_hours(start, 1) == datetime(2026, 3, 2, 12, tzinfo=SHANGHAI)
    assert CN.add_business_hours(start, 1.5) == datetime(2026, 3, 2, 13, 30, tzinfo=SHANGHAI)
    assert CN.add_business_hours(start, 8) == datetime(2026, 3, 3, 11, tzinfo=SHANGHAI)
    # Outside business time, counting starts at the next window (Oct 8 after the holiday).
    assert CN.add_business_hours(datetime(2026, 10, 1, 10), 0) == datetime(
        2026, 10, 8, 9, tzinfo=SHANGHAI
    )
    assert CN.add_business_hours(datetime(2026, 9, 30, 19), 2) == datetime(
        2026, 10, 8, 11, tzinfo=SHANGHAI
    )


@given(
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 11, 30)),
    hours=st.floats(min_value=0, max_value=200, allow_nan=False, allow_infinity=False),
)
def test_add_business_hours_round_trip(start: datetime, hours: float) -> None:
    end = CN.add_business_hours(start, hours)
    assert end >= start.replace(tzinfo=SHANGHAI)
    assert CN.business_hours_between(start, end) == pytest.approx(hours, abs=1e-6)


@given(
    a=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 6, 30)),
    delta=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
)
def test_business_hours_between_is_antisymmetric_and_bounded(a: datetime, delta: timedelta) -> None:
    b = a + delta
    forward = CN.business_hours_between(a, b)
    assert forward == -CN.business_hours_between(b, a)
    assert 0 <= forward <= delta.total_seconds() / 3600


# ---- spec validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "windows",
    [
        (),
        ((time(12), time(9)),),
        ((time(9), time(9)),),
        ((time(9), time(13)), (time(12), time(18))),
        ((time(13), time(18)), (time(9), time(12))),
    ],
)
def test_bad_business_hours_raise(windows: tuple[tuple[time, time], ...]) -> None:
    with pytest.raises(ValueError, match="business_hours"):
        CalendarSpec(business_hours=windows)


def test_other_bad_specs_raise() -> None:
    with pytest.raises(ValueError, match="timezone"):
        CalendarSpec(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="both holiday and workday"):
        CalendarSpec(holidays=frozenset({date(2026, 1, 5)}), workdays=frozenset({date(2026, 1, 5)}))
    with pytest.raises(ValueError, match="base"):
        CalendarSpec(base="us")  # type: ignore[arg-type]


def test_adjacent_windows_are_allowed() -> None:
    cal = WorkCalendar(CalendarSpec(business_hours=((time(9), time(12)), (time(12), time(17)))))
    assert cal.business_hours_between(datetime(2026, 3, 2), datetime(2026, 3, 3)) == 8


def test_cn_tables_agree_with_chinese_calendar_on_every_known_day() -> None:
    import chinese_calendar

    cal = WorkCalendar(CalendarSpec(base="cn"))
    day, last = min(chinese_calendar.holidays), date(max(chinese_calendar.holidays).year, 12, 31)
    while day <= last:
        assert cal.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)
