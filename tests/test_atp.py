"""Available-to-promise: stock, in-transit POs, replenishment, capacity, the cn calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.expressions import EvalEnv, EvaluationError, NameInfo, Scope, compile_expression
from engine.functions.atp import (
    ATP_FUNCTIONS,
    AtpInputError,
    AtpResult,
    AtpSource,
    atp_from_stock,
    available_to_promise,
)
from engine.model.calendar import CalendarSpec, WorkCalendar

CN = WorkCalendar(CalendarSpec(base="cn"))
WEEKENDS = WorkCalendar(CalendarSpec())
MONDAY = date(2026, 11, 30)
TWO_LOCATIONS = {"A-01-03": 20, "B-02-01": 10}
PO_123 = {"po": "PO-123", "quantity": 100, "eta": "2026-12-10"}


def atp(quantity: int, **kwargs: Any) -> AtpResult:
    kwargs.setdefault("today", MONDAY)
    kwargs.setdefault("on_hand", TWO_LOCATIONS)
    kwargs.setdefault("calendar", CN)
    return available_to_promise(quantity, **kwargs)


# ---- stock covers -------------------------------------------------------------------------


def test_enough_stock_is_today_plus_lead_days() -> None:
    result = atp(25, lead_days=5)
    assert result.date == date(2026, 12, 7)
    assert result.shortfall == 0
    assert result.available == 30
    assert result.ready == MONDAY
    assert result.production_days == 5
    assert result.sources == (
        AtpSource("stock", 20, MONDAY, location="A-01-03"),
        AtpSource("stock", 5, MONDAY, location="B-02-01"),
    )
    assert result.explanation == (
        "需求 25 件，现有可用 30 件（A-01-03 20 件、B-02-01 10 件），库存充足；"
        "加上生产周期 5 个工作日，最早可承诺 12 月 7 日。"
    )
    assert result.explanation_en == (
        "Need 25 pcs: 30 available now (A-01-03: 20, B-02-01: 10), enough in stock; "
        "plus 5 working days of production, the earliest promise date is Dec 7."
    )
    assert result.text.zh == result.explanation


def test_no_lead_time_is_today_or_the_next_workday() -> None:
    today = atp(10)
    assert today.date == MONDAY
    assert "最早可承诺 11 月 30 日（今天）" in today.explanation
    saturday = atp(10, today=date(2026, 12, 5))
    assert saturday.date == date(2026, 12, 7)
    assert atp(0).date == MONDAY
    assert atp(5, on_hand=40).sources == (AtpSource("stock", 5, MONDAY),)


# ---- purchase orders in transit -----------------------------------------------------------


def test_shortfall_covered_by_one_purchase_order() -> None:
    result = atp(100, incoming=[PO_123], lead_days=5)
    assert result.date == date(2026, 12, 17)
    assert result.shortfall == 70
    assert result.ready == date(2026, 12, 10)
    assert result.sources[-1] == AtpSource(
        "incoming", 70, date(2026, 12, 10), po="PO-123", eta=date(2026, 12, 10)
    )
    assert result.explanation == (
        "需求 100 件，现有可用 30 件（A-01-03 20 件、B-02-01 10 件），不足 70 件；"
        "采购单 PO-123 预计 12 月 10 日到货 100 件，"
        "加上生产周期 5 个工作日，最早可承诺 12 月 17 日。"
    )
    assert "PO-123 brings 100 pcs on Dec 10" in result.explanation_en
    assert "70 short" in result.explanation_en


def test_shortfall_covered_by_two_purchase_orders_in_eta_order() -> None:
    incoming = [
        {"po": "PO-2", "quantity": 50, "eta": date(2026, 12, 20)},
        {"po": "PO-3", "quantity": 100, "eta": "2026-12-28"},
        {"po": "PO-1", "quantity": 100, "eta": "2026-12-10"},
    ]
    result = atp(150, incoming=incoming, lead_days=5)
    assert [(s.kind, s.po, s.quantity) for s in result.sources] == [
        ("stock", None, 20),
        ("stock", None, 10),
        ("incoming", "PO-1", 100),
        ("incoming", "PO-2", 20),
    ]
    assert result.ready == date(2026, 12, 20)  # a Sunday: production counts from Monday
    assert result.date == date(2026, 12, 25)
    assert "采购单 PO-1 预计 12 月 10 日到货 100 件、PO-2 预计 12 月 20 日到货 50 件" in (
        result.explanation
    )
    assert "PO-3" not in result.explanation


def test_overdue_purchase_order_counts_from_today() -> None:
    result = atp(40, on_hand=0, incoming=[{"quantity": 100, "eta": "2026-11-20"}], lead_days=2)
    assert result.ready == MONDAY
    assert result.date == date(2026, 12, 2)
    assert "无单号采购原定 11 月 20 日到货 100 件（已逾期，按今天计）" in result.explanation
    assert "overdue" in result.explanation_en


# ---- not covered: a new purchase -------------------------------------------------------------


def test_not_covered_at_all_needs_replenishment() -> None:
    result = atp(500, incoming=[PO_123], lead_days=5)
    assert result.date == CN.add_workdays(MONDAY, 5 + 15) == date(2026, 12, 28)
    assert result.shortfall == 470
    assert result.ready == date(2026, 12, 21)
    assert result.sources[-1] == AtpSource("replenishment", 370, date(2026, 12, 21))
    assert "其余 370 件需另行补货，按补货周期 15 个工作日计，预计 12 月 21 日到料" in (
        result.explanation
    )
    assert "370 pcs need a new purchase of 15 working days" in result.explanation_en


def test_nothing_in_transit() -> None:
    result = atp(50, on_hand=0, lead_days=0, replenish_days=10)
    assert result.date == CN.add_workdays(MONDAY, 10)
    assert result.explanation.startswith(
        "需求 50 件，当前无库存，不足 50 件；无在途采购单，50 件需"
    )
    assert "no purchase orders in transit" in result.explanation_en


def test_a_purchase_order_later_than_a_new_purchase_is_not_waited_for() -> None:
    late = {"po": "PO-9", "quantity": 1000, "eta": "2027-03-01"}
    result = atp(100, incoming=[late], lead_days=5)
    assert result.date == CN.add_workdays(MONDAY, 20)
    assert [s.kind for s in result.sources] == ["stock", "stock", "replenishment"]
    assert "PO-9 预计 2027 年 3 月 1 日才到货，晚于补货，未计入" in result.explanation
    assert "PO-9 due Mar 1, 2027 would arrive later" in result.explanation_en


# ---- reservations and safety stock --------------------------------------------------------


def test_reservations_and_safety_stock_are_not_available() -> None:
    stock = {"on_hand": {"A-01-01": 100}, "reserved": 40, "safety_stock": 30}
    enough = atp(30, **stock, lead_days=1)
    assert (enough.available, enough.shortfall, enough.date) == (30, 0, date(2026, 12, 1))
    assert "现有库存 100 件（A-01-01 100 件），扣除已预留 40 件、安全库存 30 件后可用 30 件" in (
        enough.explanation
    )
    assert "100 on hand (A-01-01: 100), 30 available after 40 reserved and 30 safety stock" in (
        enough.explanation_en
    )
    one_more = atp(31, **stock, lead_days=1)
    assert one_more.shortfall == 1
    assert one_more.date == CN.add_workdays(MONDAY, 16)
    over = atp(1, on_hand=10, reserved=8, safety_stock=5)
    assert (over.available, over.shortfall) == (0, 1)
    assert "扣除已预留 8 件、安全库存 5 件后可用 0 件" in over.explanation


def test_net_of_reservations_the_warehouse_reserved_amount_is_what_stock_covers() -> None:
    # the stock answer was read before the reservation; the reservation answer decides
    stock = {"on_hand": {"A-01-01": 10}, "reserved": 2, "incoming": [PO_123]}
    covered = atp(1, **stock, lead_days=5, allocated=1)
    assert (covered.available, covered.shortfall, covered.date) == (1, 0, date(2026, 12, 7))
    assert covered.sources == (AtpSource("stock", 1, MONDAY),)
    assert covered.explanation.startswith("需求 1 件，仓库已从现有库存为本单预留 1 件，库存充足；")
    assert covered.explanation_en.startswith(
        "Need 1 pcs: the warehouse reserved 1 from stock for this order, enough in stock;"
    )
    # the stock answer said 8 were free, but other orders took them first: nothing reserved
    late = atp(1, **stock, lead_days=5, allocated=0)
    assert (late.available, late.shortfall) == (0, 1)
    assert late.date == CN.add_workdays(date(2026, 12, 10), 5)  # PO-123 arrives Dec 10
    assert late.sources == (
        AtpSource("incoming", 1, date(2026, 12, 10), po="PO-123", eta=date(2026, 12, 10)),
    )
    assert "现有库存已无可用量，仓库未能为本单预留，不足 1 件" in late.explanation
    assert "nothing left in stock to reserve for this order, 1 short" in late.explanation_en
    partial = atp(5, **stock, lead_days=5, allocated=3)
    assert (partial.shortfall, [x.quantity for x in partial.sources]) == (2, [3, 2])
    assert "仓库已从现有库存为本单预留 3 件，不足 2 件" in partial.explanation
    assert atp(5, **stock, lead_days=5, allocated=9).shortfall == 0  # never more than needed
    with pytest.raises(AtpInputError, match="allocated must not be negative"):
        atp(1, allocated=-1)
    from_answer = atp_from_stock(WMS_ANSWER, 100, today=MONDAY, calendar=CN, allocated=0)
    assert from_answer.shortfall == 100


# ---- the Chinese calendar -----------------------------------------------------------------


def test_national_day_2026_is_skipped() -> None:
    result = atp(10, today=date(2026, 9, 29), lead_days=3)
    assert result.date == date(2026, 10, 9)
    assert WEEKENDS.add_workdays(date(2026, 9, 29), 3) == date(2026, 10, 2)
    assert "10 月 1 日至 7 日放假，不计工作日" in result.explanation
    assert "holidays Oct 1–7 are not working days" in result.explanation_en
    arriving = {"po": "PO-77", "quantity": 100, "eta": "2026-09-30"}
    po = atp(100, today=date(2026, 9, 29), incoming=[arriving], lead_days=3)
    assert po.date == date(2026, 10, 10)  # Saturday 10 October is a make-up working day
    assert atp(10, today=date(2026, 10, 3)).date == date(2026, 10, 8)
    quiet = atp(10, today=date(2026, 11, 2), lead_days=3)
    assert "放假" not in quiet.explanation


# ---- capacity -----------------------------------------------------------------------------


def test_capacity_lengthens_production() -> None:
    result = atp(20, lead_days=3, capacity_per_day=40, load_ahead=140)
    assert result.production_days == 4  # ceil((140 + 20) / 40)
    assert result.date == CN.add_workdays(MONDAY, 4)
    assert "按日产能 40 件、已排产 140 件计，生产需 4 个工作日（长于标准周期 3 个工作日）" in (
        result.explanation
    )
    assert "at 40 pcs a day with 140 pcs already scheduled, production takes 4 working days" in (
        result.explanation_en
    )
    roomy = atp(20, lead_days=3, capacity_per_day=100)
    assert roomy.production_days == 3
    assert "日产能" not in roomy.explanation
    no_lead = atp(20, capacity_per_day=8)
    assert no_lead.production_days == 3
    assert "按日产能 8 件计，生产需 3 个工作日，" in no_lead.explanation


# ---- explanations and inputs --------------------------------------------------------------


def test_explanation_names_the_key_numbers() -> None:
    result = atp(120, on_hand={"A-01-03": 20, "B-02-01": 10, "C-01-01": 0}, incoming=[PO_123])
    for number in ("120", "30", "90", "PO-123", "12 月 10 日", "100"):
        assert number in result.explanation
    assert "C-01-01" not in result.explanation  # empty locations are not listed
    many = {f"A-01-{i:02d}": 1 for i in range(1, 9)}
    listed = atp(1, on_hand=many)
    assert "A-01-05 1 件 等 8 个库位" in listed.explanation
    assert "and 3 more locations" in listed.explanation_en
    next_year = atp(10, today=date(2026, 12, 31), lead_days=1, calendar=WEEKENDS)
    assert "2027 年 1 月 1 日" in next_year.explanation
    assert "Jan 1, 2027" in next_year.explanation_en


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": -5}, "quantity must not be negative"),
        ({"quantity": True}, "quantity must be a whole number"),
        ({"quantity": 2.5}, "quantity must be a whole number"),
        ({"on_hand": -1}, "on_hand must not be negative"),
        ({"on_hand": {"A-01": -1}}, "on_hand must not be negative"),
        ({"on_hand": {"": 3}}, "locations must be named by text"),
        ({"reserved": -1}, "reserved must not be negative"),
        ({"lead_days": -1}, "lead_days must not be negative"),
        ({"capacity_per_day": 0}, "capacity_per_day must be more than 0"),
        ({"load_ahead": -3}, "load_ahead must not be negative"),
        ({"replenish_days": -1}, "replenish_days must not be negative"),
        ({"incoming": [{"quantity": 5, "eta": "soon"}]}, "incoming[0].eta must be a date"),
        ({"incoming": [{"quantity": -5, "eta": "2026-12-01"}]}, "quantity must not be negative"),
        ({"incoming": [{"po": 7, "quantity": 5, "eta": "2026-12-01"}]}, "po must be text"),
        ({"incoming": ["PO-1"]}, "incoming[0] must look like"),
        ({"incoming": "PO-1"}, "incoming must be a list"),
        ({"today": "2026-11-30"}, "today must be a date"),
        ({"lead_days": 9_990, "replenish_days": 15}, "more than 10000 working days"),
    ],
)
def test_bad_inputs_are_value_errors(kwargs: dict[str, Any], message: str) -> None:
    quantity = kwargs.pop("quantity", 10)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        atp(quantity, **kwargs)
    assert isinstance(err.value, AtpInputError)
    assert err.value.message.zh  # every message has a Chinese version


def test_negative_quantity_message_in_chinese() -> None:
    with pytest.raises(AtpInputError) as err:
        atp(-5)
    assert err.value.message.zh == "数量不能为负数（收到 -5）"


# ---- the WMS answer -----------------------------------------------------------------------


WMS_ANSWER = {
    "sku": "DP-100001",
    "on_hand": 30,
    "reserved": 0,
    "safety_stock": 0,
    "available": 30,
    "locations": [
        {"location": "A-01-03", "on_hand": 20},
        {"location": "B-02-01", "on_hand": 10},
    ],
    "incoming": [{"po": "PO-123", "quantity": 100, "eta": "2026-12-10"}],
}


def test_atp_from_the_wms_stock_answer() -> None:
    result = atp_from_stock(WMS_ANSWER, 100, today=MONDAY, lead_days=5, calendar=CN)
    assert result == atp(100, incoming=[PO_123], lead_days=5)
    assert "A-01-03 20 件" in result.explanation


def test_atp_from_stock_tolerates_json_shapes() -> None:
    floats = WMS_ANSWER | {"on_hand": 30.0, "reserved": 0.0}
    assert atp_from_stock(floats, 10, today=MONDAY, calendar=CN).available == 30
    mismatch = WMS_ANSWER | {"on_hand": 50}  # a partial location list: trust the total
    result = atp_from_stock(mismatch, 10, today=MONDAY, calendar=CN)
    assert result.available == 50
    assert "A-01-03" not in result.explanation
    only_locations = {"locations": WMS_ANSWER["locations"]}
    assert atp_from_stock(only_locations, 10, today=MONDAY, calendar=CN).available == 30
    stale = WMS_ANSWER | {"available": 999}  # recomputed, not trusted
    assert atp_from_stock(stale, 10, today=MONDAY, calendar=CN).available == 30
    with pytest.raises(ValueError, match="no on_hand"):
        atp_from_stock({"sku": "X"}, 1, today=MONDAY, calendar=CN)
    with pytest.raises(ValueError, match="must be a record"):
        atp_from_stock([], 1, today=MONDAY, calendar=CN)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="each location"):
        atp_from_stock({"locations": [{"on_hand": 1}]}, 1, today=MONDAY, calendar=CN)


# ---- expression functions -----------------------------------------------------------------


SCOPE = Scope(
    {
        "quantity": NameInfo.value("integer"),
        "steps": NameInfo.record({"stock": NameInfo.record(open=True, type="step")}),
        "product": NameInfo.record({"lead_days": NameInfo.value("integer")}),
    }
)
ENV = EvalEnv(
    calendar=CN, now=lambda: datetime(2026, 11, 30, 18, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
)


def evaluate(source: str, values: dict[str, Any], env: EvalEnv = ENV) -> Any:
    compiled = compile_expression(source, SCOPE, extra_functions=ATP_FUNCTIONS)
    assert compiled.warnings == ()
    return compiled(values, env)


VALUES = {"quantity": 100, "steps": {"stock": WMS_ANSWER}, "product": {"lead_days": 5}}
DATE_EXPR = "available_to_promise(quantity, steps.stock, product.lead_days)"
TEXT_EXPR = "atp_explanation(quantity, steps.stock, product.lead_days)"


def test_expression_functions() -> None:
    assert evaluate(DATE_EXPR, VALUES) == date(2026, 12, 17)
    assert evaluate(TEXT_EXPR, VALUES).endswith("最早可承诺 12 月 17 日。")
    english = "atp_explanation(quantity, steps.stock, product.lead_days, 'en')"
    assert evaluate(english, VALUES).startswith("Need 100 pcs: 30 available now")
    assert evaluate(f"{DATE_EXPR} <= add_workdays(today(), 15)", VALUES) is True
    decimal = VALUES | {"quantity": Decimal("100"), "product": {"lead_days": 5.0}}
    assert evaluate(DATE_EXPR, decimal) == date(2026, 12, 17)
    blank = VALUES | {"steps": {"stock": None}}
    assert evaluate(DATE_EXPR, blank) is None
    assert evaluate(TEXT_EXPR, VALUES | {"quantity": None}) is None
    assert {"available_to_promise", "atp_explanation"} == set(ATP_FUNCTIONS)
    # the 4th argument (5th of the explanation): what the warehouse reserved for the order
    netted = VALUES | {"quantity": 100}
    reserved = "available_to_promise(quantity, steps.stock, product.lead_days, {})"
    assert evaluate(reserved.format("quantity"), netted) == date(2026, 12, 7)
    assert evaluate(reserved.format("0"), netted) == date(2026, 12, 17)
    assert evaluate(reserved.format("None"), netted) == date(2026, 12, 17)  # blank: the stock's
    said = "atp_explanation(quantity, steps.stock, product.lead_days, 'en', 100)"
    assert evaluate(said, VALUES).startswith("Need 100 pcs: the warehouse reserved 100 from")
    with pytest.raises(EvaluationError, match="4th argument"):
        evaluate(reserved.format("'x'"), netted)
    with pytest.raises(EvaluationError, match="5th argument"):
        evaluate("atp_explanation(quantity, steps.stock, product.lead_days, 'zh', 1.5)", VALUES)
    assert all(spec.needs_env and not spec.pure for spec in ATP_FUNCTIONS.values())


def test_today_comes_from_the_env_in_its_timezone() -> None:
    late_utc = EvalEnv(
        calendar=CN, now=lambda: datetime(2026, 11, 29, 17, 0, tzinfo=ZoneInfo("UTC"))
    )
    assert evaluate(DATE_EXPR, VALUES, late_utc) == date(2026, 12, 17)  # already the 30th


@pytest.mark.parametrize(
    ("values", "env", "code", "fragment"),
    [
        (VALUES | {"quantity": -1}, ENV, "expr-value", "quantity must not be negative"),
        (VALUES | {"quantity": 1.5}, ENV, "expr-type", "whole number as its 1st argument"),
        (VALUES | {"quantity": "10"}, ENV, "expr-type", "whole number as its 1st argument"),
        (VALUES | {"product": {"lead_days": True}}, ENV, "expr-type", "3rd argument"),
        (VALUES | {"steps": {"stock": 30}}, ENV, "expr-type", "WMS stock answer"),
        (VALUES | {"steps": {"stock": {"sku": "X"}}}, ENV, "expr-value", "no on_hand"),
        (VALUES, EvalEnv(), "expr-no-calendar", "needs a working-day calendar"),
    ],
)
def test_expression_errors(values: dict[str, Any], env: EvalEnv, code: str, fragment: str) -> None:
    with pytest.raises(EvaluationError) as err:
        evaluate(DATE_EXPR, values, env)
    assert err.value.code == code
    assert fragment in err.value.message.en
    assert "available_to_promise" in err.value.message.zh


def test_expression_arity_is_checked() -> None:
    with pytest.raises(Exception, match="takes 3 to 4 arguments"):
        compile_expression("available_to_promise(1, 2)", SCOPE, extra_functions=ATP_FUNCTIONS)
    with pytest.raises(Exception, match="takes 3 to 5 arguments"):
        compile_expression("atp_explanation(1)", SCOPE, extra_functions=ATP_FUNCTIONS)


# ---- properties ---------------------------------------------------------------------------


QUIET = WorkCalendar(CalendarSpec(base="cn"), on_unknown=lambda warning: None)

stock_args = st.fixed_dictionaries(
    {
        "today": st.dates(date(2025, 1, 1), date(2026, 12, 31)),
        "on_hand": st.one_of(
            st.integers(0, 500),
            st.dictionaries(
                st.sampled_from(["A-01-01", "B-02-03", "C-09-09"]), st.integers(0, 200)
            ),
        ),
        "reserved": st.integers(0, 200),
        "safety_stock": st.integers(0, 100),
        "incoming": st.lists(
            st.fixed_dictionaries(
                {
                    "po": st.sampled_from(["PO-1", "PO-2", "PO-3"]),
                    "quantity": st.integers(0, 300),
                    "eta": st.integers(-30, 200),  # days after today
                }
            ),
            max_size=4,
        ),
        "lead_days": st.integers(0, 30),
        "capacity_per_day": st.none() | st.integers(1, 200),
        "load_ahead": st.integers(0, 1000),
        "replenish_days": st.integers(0, 40),
    }
)


def _resolve(args: dict[str, Any]) -> dict[str, Any]:
    incoming = [
        line | {"eta": args["today"] + timedelta(days=line["eta"])} for line in args["incoming"]
    ]
    return args | {"incoming": incoming, "calendar": QUIET}


@settings(max_examples=300, deadline=None)
@given(stock_args, st.integers(0, 2000), st.integers(0, 2000))
def test_promise_never_precedes_today_and_grows_with_quantity(
    args: dict[str, Any], a: int, b: int
) -> None:
    resolved = _resolve(args)
    small, large = sorted((a, b))
    first = available_to_promise(small, **resolved)
    second = available_to_promise(large, **resolved)
    assert first.date >= args["today"]
    assert first.date <= second.date
    assert first.ready <= first.date
    assert sum(source.quantity for source in first.sources) == small
    assert first.shortfall == max(0, small - first.available)
    assert first.explanation.endswith("。") and first.explanation_en.endswith(".")
