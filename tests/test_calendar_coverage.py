"""Calendar coverage: validate warns when the working-day calendar ends within 6 months of
today, naming the year to add; promise dates computed past it say so in their explanation."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import MINIMAL_APP, codes

from engine.cli.main import main
from engine.compile import CompileResult, compile_app
from engine.compile.app import calendar_today
from engine.functions.atp import available_to_promise
from engine.model import clock
from engine.model.calendar import CalendarSpec, WorkCalendar, covered_until

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"
PACK_DAY = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # the day the pack was tried


@pytest.fixture
def on_day(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[datetime], None]]:
    """Turn engine.model.clock to a moment (the conftest pins the check's day otherwise)."""
    monkeypatch.setattr("engine.compile.app.calendar_today", calendar_today)

    def turn(moment: datetime) -> None:
        clock.set_clock(lambda: moment)

    yield turn
    clock.set_clock(None)


def _pack(tmp_path: Path, app_yaml: Callable[[str], str] | None = None) -> CompileResult:
    root = tmp_path / "pack"
    shutil.copytree(PACK, root)
    if app_yaml is not None:
        target = root / "app.yaml"
        target.write_text(app_yaml(target.read_text(encoding="utf-8")), encoding="utf-8")
    return compile_app(root)


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith(needle))


def test_pack_warns_once_that_2027_is_missing(tmp_path: Path, on_day: Callable) -> None:
    on_day(PACK_DAY)
    result = _pack(tmp_path)
    line = _line_of(PACK / "app.yaml", "base: cn")
    assert codes(result) == [("app.yaml", line, 9, "calendar-ends-soon")]
    assert result.ok and result.app is not None  # a warning: the pack still compiles
    (warning,) = result.diagnostics.items
    assert warning.severity == "warning"
    assert "2026-12-31" in warning.message.en and "2004–2026" in warning.message.en
    assert warning.hint is not None
    assert "add 2027's holidays" in warning.hint.en
    assert "calendar.holidays" in warning.hint.en and "calendar.workdays" in warning.hint.en
    assert "2027 年" in warning.hint.zh and "calendar.holidays" in warning.hint.zh
    assert "不足 6 个月" in warning.message.zh


def test_no_warning_while_the_calendar_lasts_six_months(tmp_path: Path, on_day: Callable) -> None:
    on_day(datetime(2026, 6, 30, 12, tzinfo=UTC))
    assert codes(_pack(tmp_path)) == []


def test_listing_a_2027_date_makes_the_warning_go(tmp_path: Path, on_day: Callable) -> None:
    on_day(PACK_DAY)
    result = _pack(tmp_path, lambda text: text.replace("holidays: []", "holidays: [2027-01-01]"))
    assert codes(result) == []


def test_the_day_is_the_apps_local_day(tmp_path: Path, on_day: Callable) -> None:
    # 2026-06-30 20:00 UTC is already 1 July in Shanghai: 2026-12-31 is within 6 months
    on_day(datetime(2026, 6, 30, 20, tzinfo=UTC))
    assert [c[3] for c in codes(_pack(tmp_path))] == ["calendar-ends-soon"]


def test_a_year_already_outside_the_calendar(make_app: Callable, on_day: Callable) -> None:
    on_day(datetime(2027, 2, 1, tzinfo=UTC))
    result = make_app({})
    assert codes(result) == [("app.yaml", 4, 11, "calendar-ends-soon")]  # calendar: cn
    (warning,) = result.diagnostics.items
    assert "does not cover 2027" in warning.message.en
    assert "今年（2027 年）" in warning.message.zh


def test_weekends_calendar_never_ends(make_app: Callable, on_day: Callable) -> None:
    on_day(PACK_DAY)
    result = make_app({"app.yaml": MINIMAL_APP.replace("calendar: cn", "calendar: weekends")})
    assert codes(result) == []


def test_covered_until() -> None:
    cn = CalendarSpec(base="cn")
    assert covered_until(cn, date(2026, 12, 7)) == date(2026, 12, 31)
    with_2027 = CalendarSpec(base="cn", workdays=frozenset({date(2027, 2, 6)}))
    assert covered_until(with_2027, date(2026, 12, 7)) == date(2027, 12, 31)
    assert covered_until(cn, date(2028, 1, 1)) == date(2027, 12, 31)  # before today: ended
    assert covered_until(CalendarSpec(base="weekends"), date(2026, 12, 7)) is None


def test_cli_shows_the_warning_in_both_languages(tmp_path: Path, on_day: Callable) -> None:
    on_day(PACK_DAY)
    root = tmp_path / "pack"
    shutil.copytree(PACK, root)
    line = _line_of(PACK / "app.yaml", "base: cn")
    en = CliRunner().invoke(main, ["--app", str(root), "--lang", "en", "validate"])
    assert en.exit_code == 0, en.output
    assert f"app.yaml:{line}:9: warning: the working-day calendar ends on 2026-12-31" in en.output
    assert "0 errors, 1 warning" in en.output
    zh = CliRunner().invoke(main, ["--app", str(root), "--lang", "zh", "validate"])
    assert zh.exit_code == 0, zh.output
    assert f"app.yaml:{line}:9: warning: 工作日历只到 2026-12-31" in zh.output
    assert "2027 年的放假和调休安排公布后" in zh.output


# ---- dates computed past the known calendar ---------------------------------------------


def _calendar() -> WorkCalendar:
    return WorkCalendar(CalendarSpec(base="cn"), on_unknown=lambda warning: None)


def test_atp_explanation_says_when_the_date_is_past_the_calendar() -> None:
    late = available_to_promise(
        120, today=date(2026, 12, 7), on_hand=100, lead_days=5, calendar=_calendar()
    )
    assert late.date.year == 2027
    assert "2027 is outside the known working-day calendar" in late.explanation_en
    assert "weekends only" in late.explanation_en
    assert "2027 年超出已知的工作日历" in late.explanation
    assert "只按周末计算休息日" in late.explanation


def test_atp_explanation_within_the_calendar_has_no_note() -> None:
    soon = available_to_promise(
        10, today=date(2026, 12, 7), on_hand=100, lead_days=5, calendar=_calendar()
    )
    assert soon.date == date(2026, 12, 14)
    assert "outside" not in soon.explanation_en and "超出" not in soon.explanation


def test_atp_explanation_with_the_year_declared_has_no_note() -> None:
    spec = CalendarSpec(base="cn", holidays=frozenset({date(2027, 1, 1)}))
    result = available_to_promise(
        120, today=date(2026, 12, 7), on_hand=100, lead_days=5, calendar=WorkCalendar(spec)
    )
    assert "outside" not in result.explanation_en
