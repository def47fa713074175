"""Benchmark: compiled expressions vs hand-written Python vs simpleeval.

Run with ``python bench/bench_expressions.py``. For each rule it measures, with ``timeit``
(7 repeats, the median per call):

1. a hand-written Python function computing the same thing (the baseline),
2. the compiled closure from :func:`engine.expressions.compile_expression`,
3. simpleeval with a tree parsed once (``SimpleEval.eval(expr, previously_parsed=tree)``),
4. simpleeval parsing the text on every call.

Target: the compiled closure within 10x of the hand-written function for rules without
calendar calls (the calendar rule is dominated by the calendar itself).
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simpleeval import EvalWithCompoundTypes  # type: ignore[import-untyped]

from engine.expressions import EvalEnv, NameInfo, Scope, compile_expression

REPEAT = 7
TARGET = 10.0
SHANGHAI = ZoneInfo("Asia/Shanghai")
FIXED_NOW = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)  # 10:00 on 2026-09-29 in Shanghai


def _calendar() -> Any:
    from engine.model.calendar import CalendarSpec, WorkCalendar

    return WorkCalendar(CalendarSpec(base="cn"))


CALENDAR = _calendar()
ENV = EvalEnv(calendar=CALENDAR, now=lambda: FIXED_NOW, timezone="Asia/Shanghai")

SCOPE = Scope(
    {
        "quantity": NameInfo.value("integer"),
        "unit_price": NameInfo.value("money"),
        "customer": NameInfo.record({"tier": NameInfo.value("select", ("VIP", "A", "B"))}),
        "desired_date": NameInfo.value("date"),
        "order_type": NameInfo.value("select", ("rush", "normal")),
        "lead_days": NameInfo.value("integer"),
        "amount": NameInfo.value("money"),
    }
)

VALUES: dict[str, Any] = {
    "quantity": 12,
    "unit_price": 4999.5,
    "customer": {"tier": "A", "name": "ACME"},
    "desired_date": date(2026, 10, 12),
    "order_type": "rush",
    "lead_days": 7,
    "amount": 250_000.0,
}


def hand_value(v: dict[str, Any]) -> Any:
    return v["quantity"] * v["unit_price"] >= 50000 and v["customer"]["tier"] in ("VIP", "A")


def hand_date(v: dict[str, Any]) -> Any:
    today = FIXED_NOW.astimezone(SHANGHAI).date()
    return v["desired_date"] >= CALENDAR.add_workdays(today, 3)


def hand_rush(v: dict[str, Any]) -> Any:
    return (v["order_type"] == "rush" and v["lead_days"] < 5) or v["amount"] > 200000


RULES: list[tuple[str, str, Callable[[dict[str, Any]], Any]]] = [
    (
        "value",
        "quantity * unit_price >= 50000 and customer.tier in ('VIP', 'A')",
        hand_value,
    ),
    ("calendar", "desired_date >= add_workdays(today(), 3)", hand_date),
    ("rush", "order_type == 'rush' and lead_days < 5 or amount > 200000", hand_rush),
]


def simpleeval_for(values: dict[str, Any]) -> EvalWithCompoundTypes:
    functions = {
        "today": lambda: ENV.now().astimezone(SHANGHAI).date(),
        "add_workdays": CALENDAR.add_workdays,
    }
    return EvalWithCompoundTypes(names=values, functions=functions)


def per_call(stmt: Callable[[], Any]) -> float:
    """Median seconds per call over REPEAT runs (number chosen to run ~0.2 s each)."""
    timer = timeit.Timer(stmt)
    number, _ = timer.autorange()
    number = max(number, 1)
    runs = timer.repeat(repeat=REPEAT, number=number)
    return statistics.median(runs) / number


def main() -> int:
    rows = []
    ok = True
    for label, source, hand in RULES:
        compiled = compile_expression(source, SCOPE)
        evaluator = simpleeval_for(VALUES)
        tree = evaluator.parse(source)
        expected = hand(VALUES)
        results = {
            "compiled": compiled(VALUES, ENV),
            "simpleeval": evaluator.eval(source, previously_parsed=tree),
            "reparse": evaluator.eval(source),
        }
        for name, result in results.items():
            if result != expected:
                raise SystemExit(f"{label}: {name} gave {result!r}, expected {expected!r}")
        timings = {
            "hand-written": per_call(partial(hand, VALUES)),
            "compiled": per_call(partial(compiled, VALUES, ENV)),
            "simpleeval (parsed once)": per_call(
                partial(evaluator.eval, source, previously_parsed=tree)
            ),
            "simpleeval (re-parse)": per_call(partial(evaluator.eval, source)),
        }
        base = timings["hand-written"]
        rows.append((label, source, timings))
        if label != "calendar" and timings["compiled"] / base > TARGET:
            ok = False

    print(f"median of {REPEAT} repeats, µs per call (ratio to hand-written)\n")
    header = f"{'rule':<9} {'method':<26} {'µs/call':>9} {'ratio':>8}"
    print(header)
    print("-" * len(header))
    for label, source, timings in rows:
        base = timings["hand-written"]
        for method, seconds in timings.items():
            print(f"{label:<9} {method:<26} {seconds * 1e6:>9.3f} {seconds / base:>7.1f}x")
        print(f"{'':<9} {source}\n")
    verdict = "met" if ok else "NOT met"
    print(f"target (compiled ≤ {TARGET:.0f}x hand-written, non-calendar rules): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
