from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engine.expressions import (
    FUNCTIONS,
    Comparison,
    CompiledExpr,
    EvalEnv,
    EvaluationError,
    ExpressionError,
    FunctionSpec,
    NameInfo,
    Scope,
    comparisons,
    compile_expression,
    dotted_path,
    literal_value,
)
from engine.model.i18n import Text

SHANGHAI = ZoneInfo("Asia/Shanghai")

SCOPE = Scope(
    {
        "quantity": NameInfo.value("integer"),
        "unit_price": NameInfo.value("money"),
        "amount": NameInfo.value("money"),
        "lead_days": NameInfo.value("integer"),
        "note": NameInfo.value("text"),
        "desired_date": NameInfo.value("date"),
        "created_at": NameInfo.value("datetime"),
        "order_type": NameInfo.value("select", ("rush", "normal")),
        "tags": NameInfo.value("multiselect", ("urgent", "export", "sample")),
        "comm_log": NameInfo.value("long_text"),
        "customer": NameInfo.record(
            {
                "tier": NameInfo.value("select", ("VIP", "A", "B")),
                "name": NameInfo.value("text"),
                "region": NameInfo.record({"code": NameInfo.value("text")}),
            }
        ),
        "lines": NameInfo.rows(
            {
                "qty": NameInfo.value("integer"),
                "price": NameInfo.value("money"),
                "product": NameInfo.record({"sku": NameInfo.value("text")}),
            }
        ),
        "steps": NameInfo.record({"stock": NameInfo.record(open=True)}),
        "客户名称": NameInfo.value("text"),
    }
)

VALUES: dict[str, Any] = {
    "quantity": 12,
    "unit_price": 5000.0,
    "amount": 60000.0,
    "lead_days": 3,
    "note": "hello",
    "desired_date": date(2026, 10, 12),
    "order_type": "rush",
    "tags": ["urgent", "sample"],
    "comm_log": "called",
    "customer": {"tier": "VIP", "name": "ACME", "region": {"code": "EAST"}},
    "lines": [
        {"qty": 2, "price": 10.0, "product": {"sku": "A-1"}},
        {"qty": 3, "price": 5.5, "product": {"sku": "B-2"}},
        {"qty": None, "price": 1.0, "product": None},
    ],
    "steps": {"stock": {"available": 5, "detail": {"warehouse": "SH"}}},
    "客户名称": "张三",
}

FIXED = datetime(2026, 9, 29, 17, 30, tzinfo=UTC)  # 2026-09-30 01:30 in Shanghai


class FakeCalendar:
    """Mon–Fri workdays, with the given holidays; enough to test the plumbing."""

    def __init__(self, holidays: frozenset[date] = frozenset()) -> None:
        self.holidays = holidays
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def is_workday(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self.holidays

    def add_workdays(self, d: date, n: int) -> date:
        self.calls.append(("add_workdays", (d, n)))
        step = 1 if n >= 0 else -1
        for _ in range(abs(n)):
            d += timedelta(days=step)
            while not self.is_workday(d):
                d += timedelta(days=step)
        return d

    def workdays_between(self, a: date, b: date) -> int:
        self.calls.append(("workdays_between", (a, b)))
        return sum(1 for i in range(1, (b - a).days + 1) if self.is_workday(a + timedelta(days=i)))

    def business_hours_between(self, a: datetime, b: datetime) -> float:
        self.calls.append(("business_hours_between", (a, b)))
        return 8.0


def env(**kwargs: Any) -> EvalEnv:
    kwargs.setdefault("now", lambda: FIXED)
    return EvalEnv(**kwargs)


def run(source: str, values: dict[str, Any] | None = None, **env_kwargs: Any) -> Any:
    return compile_expression(source, SCOPE)(
        VALUES if values is None else values, env(**env_kwargs)
    )


def error(source: str, scope: Scope = SCOPE) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source, scope)
    return info.value


def eval_error(
    source: str, values: dict[str, Any] | None = None, **env_kwargs: Any
) -> EvaluationError:
    compiled = compile_expression(source, SCOPE)
    with pytest.raises(EvaluationError) as info:
        compiled(VALUES if values is None else values, env(**env_kwargs))
    return info.value


def assert_bilingual(text: Text | None) -> None:
    assert text is not None
    assert text.en and text.zh
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text.zh), text.zh


# ---- positions of syntax errors -----------------------------------------------------------


def test_incomplete_expression_points_at_its_end() -> None:
    err = error("quantity >")
    assert (err.code, err.line, err.col) == ("expr-syntax", 1, 10)
    assert_bilingual(err.message)
    assert_bilingual(err.hint)


def test_doubled_operator_points_at_the_second_one() -> None:
    err = error("a +* b")
    assert (err.code, err.line, err.col) == ("expr-syntax", 1, 3)


def test_syntax_error_column_counts_characters_not_bytes() -> None:
    err = error("客户名称 == '张三' +* 1")
    assert err.code == "expr-syntax"
    assert err.col == "客户名称 == '张三' +* 1".index("*")


def test_syntax_error_on_second_line() -> None:
    err = error("quantity > 0 and\n   lead_days <> 3")
    assert (err.code, err.line) == ("expr-syntax", 2)
    assert err.col == 13
    assert err.hint is not None and "!=" in err.hint.en


def test_unclosed_parenthesis() -> None:
    err = error("max(quantity, 3")
    assert err.code == "expr-syntax"
    assert err.col == 3
    assert_bilingual(err.message)


def test_unmatched_closing_parenthesis_in_multiline_text() -> None:
    err = error("quantity)\n or (lead_days > 1")
    assert (err.code, err.line, err.col) == ("expr-syntax", 1, 8)


def test_common_mistakes_get_hints() -> None:
    assert "and" in (error("quantity > 1 && lead_days < 3").hint or Text("", "")).en
    assert "==" in (error("order_type = 'rush'").hint or Text("", "")).en
    assert "==" in (error("order_type === 'rush'").hint or Text("", "")).en
    leading_zero = error("date(2026, 09, 30)")
    assert leading_zero.col == 11
    assert "0" in leading_zero.message.zh


@pytest.mark.parametrize("source", ["", "   ", "\n\n"])
def test_empty_expression_is_a_syntax_error(source: str) -> None:
    err = error(source)
    assert err.code == "expr-syntax"
    assert_bilingual(err.message)


def test_multiline_and_indented_expressions_compile() -> None:
    compiled = compile_expression("  quantity > 1\n  and lead_days < 5  # a comment\n", SCOPE)
    assert compiled(VALUES, env()) is True
    assert compiled.tree.body.lineno == 1  # positions are relative to the source


# ---- names, fields and functions --------------------------------------------------------


def test_unknown_name_in_the_middle_has_exact_column_and_suggestion() -> None:
    source = "quantity > 0 and custmer.tier == 'VIP' and lead_days < 5"
    err = error(source)
    assert err.code == "expr-unknown-name"
    assert (err.line, err.col, err.end_col) == (1, source.index("custmer"), source.index(".tier"))
    assert err.suggestion == "customer"
    assert err.hint is not None and "customer" in err.hint.en and "customer" in err.hint.zh
    assert_bilingual(err.message)


def test_unknown_name_on_line_two() -> None:
    err = error("quantity > 0 and\n  custmer.tier == 'VIP'")
    assert (err.code, err.line, err.col) == ("expr-unknown-name", 2, 2)
    assert err.suggestion == "customer"


def test_unknown_name_case_and_literal_aliases() -> None:
    assert error("Quantity > 1").suggestion == "quantity"
    assert error("order_type == 'rush' and true").suggestion == "True"
    assert error("note == null").suggestion == "None"


def test_unknown_name_can_suggest_a_function() -> None:
    err = error("todya")
    assert err.code == "expr-unknown-name"
    assert err.suggestion == "today()"


def test_function_used_without_parentheses() -> None:
    err = error("desired_date >= today")
    assert err.code == "expr-unknown-name"
    assert err.suggestion == "today()"
    assert err.col == len("desired_date >= ")


def test_unknown_sub_field_points_at_the_attribute() -> None:
    source = "quantity > 1 and customer.teir == 'VIP'"
    err = error(source)
    assert err.code == "expr-unknown-field"
    assert err.col == source.index(".teir")
    assert err.end_col == source.index(" ==")
    assert err.suggestion == "tier"
    assert_bilingual(err.message)
    assert err.hint is not None and "tier" in err.hint.zh


def test_unknown_nested_field_lists_the_fields() -> None:
    err = error("customer.region.zone == 'E'")
    assert err.code == "expr-unknown-field"
    assert err.suggestion is None
    assert err.hint is not None and "code" in err.hint.en


def test_unknown_field_of_a_child_table_row() -> None:
    err = error("sum(lines.qtty) > 0")
    assert (err.code, err.suggestion) == ("expr-unknown-field", "qty")
    assert err.col == len("sum(lines")


def test_path_into_a_leaf_value() -> None:
    err = error("quantity.foo > 1")
    assert err.code == "expr-not-a-record"
    assert err.col == len("quantity")
    assert_bilingual(err.message)


def test_index_on_a_record_is_refused() -> None:
    assert error("customer[0]").code == "expr-not-a-list"


def test_open_records_accept_any_path() -> None:
    compiled = compile_expression("steps.stock.available < quantity", SCOPE)
    assert compiled(VALUES, env()) is True
    assert run("steps.stock.detail.warehouse") == "SH"
    assert run("steps.stock.missing.deeper") is None
    assert error("steps.stok.available").suggestion == "stock"


def test_unknown_function_with_suggestion() -> None:
    err = error("add_workday(desired_date, 3)")
    assert err.code == "expr-unknown-function"
    assert err.suggestion == "add_workdays"
    assert (err.col, err.end_col) == (0, len("add_workday"))
    assert_bilingual(err.message)


def test_calling_a_field() -> None:
    err = error("quantity(3)")
    assert err.code == "expr-unknown-function"
    assert_bilingual(err.hint)


@pytest.mark.parametrize(
    ("source", "en"),
    [
        ("add_workdays(today())", "add_workdays takes 2 arguments, got 1"),
        ("today(1)", "today takes no arguments, got 1"),
        ("round(1, 2, 3)", "round takes 1 to 2 arguments, got 3"),
        ("min()", "min takes at least 1 argument, got 0"),
        ("date(2026, 9)", "date takes 1 or 3 arguments, got 2"),
    ],
)
def test_arity(source: str, en: str) -> None:
    err = error(source)
    assert err.code == "expr-arity"
    assert err.message.en == en
    assert_bilingual(err.message)
    assert err.hint is not None  # the function's one-line doc


def test_unknown_select_option_is_an_error() -> None:
    """A select compared with a value it can never hold is refused (issue 15)."""
    source = "order_type == 'urgnt' and lead_days < 5"
    err = error(source)
    assert err.code == "expr-unknown-option"
    assert (err.col, err.end_col) == (source.index("'urgnt'"), source.index(" and"))
    assert "order_type" in err.message.en
    assert_bilingual(err.message)


def test_option_errors_for_records_lists_and_reversed_sides() -> None:
    assert error("customer.tier == 'vip'").suggestion == "VIP"
    assert error("'VIPP' != customer.tier").suggestion == "VIP"
    assert error("order_type in ('rush', 'normall', 'x')").suggestion == "normal"
    assert error("'urgnt' in tags").suggestion == "urgent"
    assert error("tags[0] == 'exprt'").suggestion == "export"
    assert compile_expression("order_type == 'rush'", SCOPE).warnings == ()


def test_names_used() -> None:
    compiled = compile_expression(
        "customer.tier == 'VIP' and order_type == 'rush' or sum(lines.qty) > quantity"
        " and lines[0].product.sku != '' and steps.stock.available > 0",
        SCOPE,
    )
    assert compiled.names == frozenset(
        {
            "customer.tier",
            "order_type",
            "lines.qty",
            "quantity",
            "lines.product.sku",
            "steps.stock.available",
        }
    )


def test_extra_functions() -> None:
    spec = FunctionSpec(lambda s: s[::-1], 1, 1, Text("reverse(s)", "reverse(s)：反转文本"))
    compiled = compile_expression("reverse(note)", SCOPE, extra_functions={"reverse": spec})
    assert compiled(VALUES, env()) == "olleh"
    with pytest.raises(ValueError):
        compile_expression("1", SCOPE, extra_functions={"_evil": spec})


def test_every_function_has_a_bilingual_doc() -> None:
    for name, spec in FUNCTIONS.items():
        assert_bilingual(spec.doc)
        assert name in spec.doc.en or spec.min_args == spec.max_args == 0


def test_forbidden_messages_are_bilingual() -> None:
    for source in ["lambda: 1", "{1: 2}", "x.__dict__", "quantity & 1", "quantity is 1"]:
        err = error(source)
        assert err.code == "expr-forbidden", source
        assert_bilingual(err.message)


# ---- semantics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("quantity * unit_price", 60000.0),
        ("quantity * unit_price >= 50000 and customer.tier in ('VIP', 'A')", True),
        ("customer.tier == 'VIP' and order_type == 'rush'", True),
        ("order_type == 'rush' and lead_days < 5 or amount > 200000", True),
        ("steps.stock.available < quantity", True),
        ("sum(lines.qty) > 0", True),
        ("sum(lines.qty)", 5),
        ("lines.qty", [2, 3, None]),
        ("lines.product.sku", ["A-1", "B-2", None]),
        ("lines[0].qty", 2),
        ("lines[-1].product.sku", None),
        ("lines[5].qty", None),
        ("lines.qty[1]", 3),
        ("len(lines)", 3),
        ("len(comm_log) > 0", True),
        ("customer.region.code", "EAST"),
        ("quantity if quantity > 100 else -quantity", -12),
        ("0 or '' or 'x'", "x"),
        ("1 and 0 and 2", 0),
        ("not quantity", False),
        ("1 < lead_days < 5 < quantity", True),
        ("1 < lead_days > 5", False),
        ("note + ' world'", "hello world"),
        ("[quantity, lead_days]", [12, 3]),
        ("(1, 'a')", (1, "a")),
        ("'urgent' in tags", True),
        ("tags[0]", "urgent"),
        ("note[0]", "h"),
        ("2 ** 10", 1024),
        ("7 // 2 + 7 % 2 - 7 / 2", 0.5),
    ],
)
def test_values(source: str, expected: Any) -> None:
    assert run(source) == expected


def test_blank_values_and_paths_are_none_safe() -> None:
    values: dict[str, Any] = {"customer": None, "lines": None}
    assert run("customer.tier", values) is None
    assert run("customer.region.code", values) is None
    assert run("lines.qty", values) is None
    assert run("sum(lines.qty)", values) == 0
    assert run("len(lines)", values) == 0
    assert run("quantity is None", {}) is True
    assert run("coalesce(note, customer.name, 'n/a')", {"note": "", "customer": {}}) == "n/a"


def test_non_dict_mappings_and_nested_child_tables() -> None:
    from types import MappingProxyType

    values = MappingProxyType({"customer": MappingProxyType({"tier": "B"}), "quantity": 1})
    assert compile_expression("customer.tier", SCOPE)(values, env()) == "B"
    nested = Scope(
        {"orders": NameInfo.rows({"lines": NameInfo.rows({"qty": NameInfo.value("integer")})})}
    )
    compiled = compile_expression("sum(orders.lines.qty)", nested)
    data = {"orders": [{"lines": [{"qty": 1}, {"qty": 2}]}, {"lines": [{"qty": 4}]}]}
    assert compiled(data, env()) == 7


def test_constant_lists_are_fresh_each_call() -> None:
    compiled = compile_expression("[1, [2]]", SCOPE)
    first = compiled(VALUES, env())
    first[1].append(3)
    assert compiled(VALUES, env()) == [1, [2]]


def test_runtime_type_errors_are_bilingual_with_a_hint_for_blanks() -> None:
    err = eval_error("quantity > 3", {"quantity": None})
    assert err.code == "expr-type"
    assert err.source == "quantity > 3"
    assert_bilingual(err.message)
    assert_bilingual(err.hint)
    assert "blank" in err.message.en
    err = eval_error("note + quantity")
    assert err.code == "expr-type"
    assert "str(x)" in err.message.en


def test_division_by_zero() -> None:
    err = eval_error("amount / (quantity - 12)")
    assert err.code == "expr-division-by-zero"
    assert_bilingual(err.message)
    assert eval_error("quantity % 0").code == "expr-division-by-zero"


def test_text_formatting_with_percent_is_refused() -> None:
    assert eval_error("'%s' % quantity").code == "expr-type"


def test_constant_parts_that_always_fail_give_a_warning() -> None:
    compiled = compile_expression("quantity > 0 and date(2026, 2, 30) > desired_date", SCOPE)
    (warning,) = compiled.warnings
    assert warning.code == "expr-constant-error"
    assert warning.col == len("quantity > 0 and ")
    assert_bilingual(warning.message)
    with pytest.raises(EvaluationError) as info:
        compiled(VALUES, env())
    assert info.value.code == "expr-bad-date"


def test_compiled_expr_fields() -> None:
    compiled = compile_expression("quantity > 1", SCOPE)
    assert isinstance(compiled, CompiledExpr)
    assert compiled.source == "quantity > 1"
    assert isinstance(compiled.tree, ast.Expression)
    assert compiled(VALUES) is True  # env defaults to a fresh EvalEnv


# ---- functions --------------------------------------------------------------------------


def test_today_and_now_use_the_env_clock_and_timezone() -> None:
    assert run("today()") == date(2026, 9, 30)  # already the 30th in Shanghai
    assert run("today()", timezone="UTC") == date(2026, 9, 29)
    now = run("now()")
    assert now == FIXED and now.tzinfo is not None and now.utcoffset() == timedelta(hours=8)
    naive = run("today()", now=lambda: datetime(2026, 1, 2, 23, 0))
    assert naive == date(2026, 1, 2)


def test_today_with_the_default_clock_is_today() -> None:
    result = compile_expression("today()", SCOPE)({}, EvalEnv())
    assert abs((result - datetime.now(SHANGHAI).date()).days) <= 1


def test_dates() -> None:
    assert run("date(2026, 9, 30)") == date(2026, 9, 30)
    assert run("date('2026-09-30')") == date(2026, 9, 30)
    assert run("date('2026-09-30T10:00:00')") == date(2026, 9, 30)
    assert run("date(created_at)", {"created_at": datetime(2026, 1, 1, 9)}) == date(2026, 1, 1)
    assert run("date(note)", {"note": None}) is None
    assert run("add_days(date(2026, 9, 30), 2)") == date(2026, 10, 2)
    assert run("add_days(desired_date, -12)") == date(2026, 9, 30)
    assert run("add_days(desired_date, 2.0)") == date(2026, 10, 14)
    assert run("add_days(desired_date, 3)", {"desired_date": None}) is None
    assert run("datetime(2026, 9, 30, 14, 30)") == datetime(2026, 9, 30, 14, 30, tzinfo=SHANGHAI)
    assert run("datetime('2026-09-30 14:30')") == datetime(2026, 9, 30, 14, 30, tzinfo=SHANGHAI)
    assert run("hours_between(datetime(2026, 9, 30, 9), datetime(2026, 9, 30, 17, 30))") == 8.5
    assert run("hours_between(date(2026, 9, 30), now())") == 1.5


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("date(2026, 2, 30)", "expr-bad-date"),
        ("date('30/09/2026')", "expr-bad-date"),
        ("date(2026, 13, 1.5)", "expr-type"),
        ("date(quantity)", "expr-type"),
        ("add_days(desired_date, 1.5)", "expr-type"),
        ("add_days(desired_date, 10 ** 9)", "expr-bad-date"),
        ("add_days(date(9999, 12, 31), 1)", "expr-bad-date"),
        ("datetime(2026, 9, 30, 25)", "expr-bad-date"),
        ("datetime('soon')", "expr-bad-date"),
        ("round(unit_price, 1000)", "expr-limit"),
        ("round(unit_price, 0.5)", "expr-type"),
        ("len(quantity)", "expr-type"),
        ("int('abc')", "expr-bad-number"),
        ("decimal('1e5x')", "expr-bad-number"),
        ("float([1])", "expr-bad-number"),
        ("upper(quantity)", "expr-type"),
        ("startswith(note, 1)", "expr-type"),
        ("str(lines)", "expr-type"),
        ("sum(quantity)", "expr-type"),
        ("min(quantity)", "expr-type"),
    ],
)
def test_function_errors(source: str, code: str) -> None:
    err = eval_error(source)
    assert err.code == code, err
    assert_bilingual(err.message)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("len('abc')", 3),
        ("len(None)", 0),
        ("round(2.675, 2)", 2.67),
        ("round(2.5)", 2),
        ("round(1234, -2)", 1200),
        ("abs(-3)", 3),
        ("min(3, 1, 2)", 1),
        ("max(lines.qty)", 3),
        ("min(lines.product.sku)", "A-1"),
        ("min([None, None])", None),
        ("sum([1, 2.5])", 3.5),
        ("contains(note, 'ell')", True),
        ("contains(tags, 'export')", False),
        ("contains(None, 'x')", False),
        ("coalesce(None, '', 0, 5)", 0),
        ("int('12')", 12),
        ("int(' 12.9 ')", 12),
        ("int(12.9)", 12),
        ("int('')", None),
        ("float('1.5')", 1.5),
        ("decimal(0.1) + decimal('0.2')", Decimal("0.3")),
        ("str(12) + str(None)", "12"),
        ("str(date(2026, 9, 30))", "2026-09-30"),
        ("upper(note)", "HELLO"),
        ("lower('ÄB')", "äb"),
        ("upper(None)", None),
        ("startswith(customer.region.code, 'EA')", True),
        ("startswith(None, 'EA')", False),
    ],
)
def test_function_values(source: str, expected: Any) -> None:
    result = run(source)
    assert result == expected
    assert type(result) is type(expected)


def test_calendar_functions_use_the_env_calendar() -> None:
    calendar = FakeCalendar(holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2)}))
    c = calendar
    assert run("add_workdays(date(2026, 9, 30), 3)", calendar=c) == date(2026, 10, 7)
    assert run("workdays_between(date(2026, 9, 30), date(2026, 10, 7))", calendar=c) == 3
    assert run("business_hours_between(now(), datetime(2026, 10, 9, 9))", calendar=c) == 8.0
    assert [name for name, _ in calendar.calls] == [
        "add_workdays",
        "workdays_between",
        "business_hours_between",
    ]
    start, end = calendar.calls[-1][1]
    assert start.tzinfo is not None and end == datetime(2026, 10, 9, 9, tzinfo=SHANGHAI)
    assert run("add_workdays(desired_date, 3)", {"desired_date": None}, calendar=c) is None


def test_calendar_functions_without_a_calendar() -> None:
    err = eval_error("add_workdays(today(), 3)")
    assert err.code == "expr-no-calendar"
    assert_bilingual(err.message)


def test_calendar_function_limits() -> None:
    calendar = FakeCalendar()
    assert eval_error("add_workdays(today(), 100000)", calendar=calendar).code == "expr-limit"
    source = "workdays_between(date(1, 1, 1), date(9999, 1, 1))"
    assert eval_error(source, calendar=calendar).code == "expr-limit"
    assert calendar.calls == []


def test_cn_calendar_national_day() -> None:
    calendar_module = pytest.importorskip("engine.model.calendar")
    calendar = calendar_module.WorkCalendar(calendar_module.CalendarSpec(base="cn"))
    assert run("add_workdays(date(2026, 9, 30), 3)", calendar=calendar) == date(2026, 10, 10)
    weekends = calendar_module.WorkCalendar(calendar_module.CalendarSpec(base="weekends"))
    assert run("add_workdays(date(2026, 9, 30), 3)", calendar=weekends) == date(2026, 10, 5)
    rule = compile_expression("desired_date >= add_workdays(today(), 3)", SCOPE)
    assert rule({"desired_date": date(2026, 10, 10)}, env(calendar=calendar)) is True
    assert rule({"desired_date": date(2026, 10, 9)}, env(calendar=calendar)) is False


# ---- static-analysis helpers ------------------------------------------------------------


def test_literal_value_and_comparisons() -> None:
    compiled = compile_expression(
        "order_type == 'rush' and 5 > lead_days or customer.tier in ('VIP', 'A') or amount >= -1.5",
        SCOPE,
    )
    found = [(c.path, c.op, c.value) for c in comparisons(compiled.tree)]
    assert found == [
        ("order_type", "==", "rush"),
        ("lead_days", "<", 5),
        ("customer.tier", "in", ("VIP", "A")),
        ("amount", ">=", -1.5),
    ]
    assert all(isinstance(c, Comparison) for c in comparisons(compiled.tree))
    assert literal_value(ast.parse("[1, (2, 'x'), None]", mode="eval").body) == [1, (2, "x"), None]
    with pytest.raises(ValueError):
        literal_value(ast.parse("quantity", mode="eval").body)
    assert dotted_path(ast.parse("lines[0].product.sku", mode="eval").body) == "lines.product.sku"
    assert dotted_path(ast.parse("f(x).y", mode="eval").body) is None
