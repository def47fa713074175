"""The standard functions an expression may call, with arity and a one-line doc each.

Conventions (the language is for forms, where fields are often blank):

* a blank (``None``) argument makes date, number and text functions return ``None``;
* ``len(None)`` is 0, ``str(None)`` is ``''``, ``contains(None, x)`` and
  ``startswith(None, x)`` are False;
* ``sum``, ``min`` and ``max`` skip blank values; ``min``/``max`` of nothing is ``None``;
* everything that allocates or loops is bounded, and a bad argument raises
  :class:`EvaluationError` with a bilingual message.

Calendar and clock functions take the calendar and clock from the :class:`EvalEnv`.
"""

from __future__ import annotations

import builtins
import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from engine.model.i18n import Text

from .env import EvalEnv
from .errors import EvaluationError
from .messages import describe
from .safeops import MAX_INT_BITS, MAX_STRING_LENGTH

__all__ = [
    "FUNCTIONS",
    "FUNCTION_DOCS",
    "MAX_ROUND_DIGITS",
    "MAX_SPAN_DAYS",
    "MAX_WORKDAYS",
    "FunctionDoc",
    "FunctionSpec",
]

MAX_ROUND_DIGITS = 20
MAX_WORKDAYS = 10_000  # largest |n| for add_workdays
MAX_SPAN_DAYS = 366 * 100  # longest span for workdays_between / business_hours_between
_MAX_DATE_TEXT = 64
_MAX_DECIMAL_DIGITS = MAX_INT_BITS * 3 // 10  # int(decimal) beyond this would be too large


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A callable function: ``impl(*args)``, or ``impl(env, *args)`` when ``needs_env``.

    ``max_args`` None means "any number". ``arg_counts`` (optional) restricts the accepted
    counts further, e.g. ``date`` takes 1 or 3. ``pure`` functions with constant arguments
    are evaluated once at compile time.
    """

    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    doc: Text
    needs_env: bool = False
    pure: bool = False
    arg_counts: tuple[int, ...] | None = None

    def accepts(self, n: int) -> bool:
        if n < self.min_args or (self.max_args is not None and n > self.max_args):
            return False
        return self.arg_counts is None or n in self.arg_counts

    def arity_text(self) -> Text:
        """'takes 2 arguments' / 'takes 1 to 2 arguments' / 'takes at least 1 argument' …"""
        if self.arg_counts is not None:
            en = " or ".join(str(n) for n in self.arg_counts)
            zh = " 或 ".join(str(n) for n in self.arg_counts)
            return Text(f"takes {en} arguments", f"需要 {zh} 个参数")
        lo, hi = self.min_args, self.max_args
        if hi == 0:
            return Text("takes no arguments", "不接受参数")
        if hi is None:
            s = "" if lo == 1 else "s"
            return Text(f"takes at least {lo} argument{s}", f"至少需要 {lo} 个参数")
        if lo == hi:
            s = "" if lo == 1 else "s"
            return Text(f"takes {lo} argument{s}", f"需要 {lo} 个参数")
        return Text(f"takes {lo} to {hi} arguments", f"需要 {lo} 到 {hi} 个参数")


# ---- argument helpers -------------------------------------------------------------------


def _fail(code: str, en: str, zh: str, **params: object) -> EvaluationError:
    return EvaluationError(code, Text(en, zh).format(**params))


def _type_error(fname: str, wanted: Text, value: object) -> EvaluationError:
    got = describe(value)
    return EvaluationError(
        "expr-type",
        Text(
            f"{fname}() needs {wanted.en}, got {got.en}",
            f"{fname}() 需要{wanted.zh}，实际得到的是 {got.zh}",
        ),
    )


_A_DATE = Text("a date", "日期")
_A_DATETIME = Text("a date or date-time", "日期或日期时间")
_A_WHOLE = Text("a whole number", "整数")
_A_TEXT = Text("text", "文本")
_A_NUMBER = Text("a number", "数字")
_A_LIST = Text("text or a list", "文本或列表")
_A_VALUE = Text("a single value", "单个值")


def _whole(fname: str, value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    raise _type_error(fname, _A_WHOLE, value)


def _parse_date_text(fname: str, text: str) -> dt.date:
    text = text.strip()
    if len(text) <= _MAX_DATE_TEXT:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return dt.datetime.fromisoformat(text).date()
        except ValueError:
            pass
    raise _fail(
        "expr-bad-date",
        "{fname}(): {text!r} is not a date (write it as YYYY-MM-DD, e.g. '2026-09-30')",
        "{fname}()：{text!r} 不是有效日期（请写成 YYYY-MM-DD，例如 '2026-09-30'）",
        fname=fname,
        text=text[:_MAX_DATE_TEXT],
    )


def _to_date(fname: str, value: Any) -> dt.date:
    """A date from a date, a datetime (its own wall-clock date) or ISO text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return _parse_date_text(fname, value)
    raise _type_error(fname, _A_DATE, value)


def _local_date(fname: str, value: Any, env: EvalEnv) -> dt.date:
    """Like :func:`_to_date`, but an aware datetime is first moved to ``env.timezone``."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(env.tz).date()
    return _to_date(fname, value)


def _to_datetime(fname: str, value: Any, env: EvalEnv) -> dt.datetime:
    """An aware datetime; dates are midnight and naive times are local to ``env.timezone``."""
    if isinstance(value, dt.datetime):
        result = value
    elif isinstance(value, dt.date):
        result = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str) and len(value.strip()) <= _MAX_DATE_TEXT:
        try:
            result = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _fail(
                "expr-bad-date",
                "{fname}(): {text!r} is not a date-time (write e.g. '2026-09-30 14:30')",
                "{fname}()：{text!r} 不是有效的日期时间（例如 '2026-09-30 14:30'）",
                fname=fname,
                text=value,
            ) from None
    else:
        raise _type_error(fname, _A_DATETIME, value)
    if result.tzinfo is None:
        result = result.replace(tzinfo=env.tz)
    return result


def _calendar(fname: str, env: EvalEnv) -> Any:
    if env.calendar is None:
        raise _fail(
            "expr-no-calendar",
            "{fname}() needs a working-day calendar, but none is configured"
            " (set calendar: in app.yaml)",
            "{fname}() 需要工作日历，但尚未配置（请在 app.yaml 中设置 calendar:）",
            fname=fname,
        )
    return env.calendar


def _check_span(fname: str, a: dt.date, b: dt.date) -> None:
    if abs((b - a).days) > MAX_SPAN_DAYS:
        raise _fail(
            "expr-limit",
            "{fname}(): {a} → {b} is longer than {n} days",
            "{fname}()：{a} 到 {b} 的跨度超过了 {n} 天",
            fname=fname,
            a=a,
            b=b,
            n=MAX_SPAN_DAYS,
        )


def _bad_date_range(fname: str) -> EvaluationError:
    return _fail(
        "expr-bad-date",
        "{fname}(): the result is outside the supported dates (years 1–9999)",
        "{fname}()：结果超出了支持的日期范围（公元 1–9999 年）",
        fname=fname,
    )


# ---- date and time ----------------------------------------------------------------------


def fn_today(env: EvalEnv) -> dt.date:
    return env.local_now().date()


def fn_now(env: EvalEnv) -> dt.datetime:
    return env.local_now()


def fn_date(*args: Any) -> dt.date | None:
    if len(args) == 1:
        value = args[0]
        if value is None or value == "":
            return None
        return _to_date("date", value)
    y, m, d = (_whole("date", a) for a in args)
    try:
        return dt.date(y, m, d)
    except (ValueError, OverflowError):
        raise _fail(
            "expr-bad-date",
            "date({y}, {m}, {d}) is not a valid date",
            "date({y}, {m}, {d}) 不是有效日期",
            y=y,
            m=m,
            d=d,
        ) from None


def fn_datetime(env: EvalEnv, *args: Any) -> dt.datetime | None:
    if len(args) == 1:
        value = args[0]
        if value is None or value == "":
            return None
        return _to_datetime("datetime", value, env)
    parts = [_whole("datetime", a) for a in args] + [0] * (6 - len(args))
    try:
        y, mo, d, h, mi, sec = parts
        return dt.datetime(y, mo, d, h, mi, sec, tzinfo=env.tz)
    except (ValueError, OverflowError):
        shown = ", ".join(str(p) for p in parts[: len(args)])
        raise _fail(
            "expr-bad-date",
            "datetime({args}) is not a valid date-time",
            "datetime({args}) 不是有效的日期时间",
            args=shown,
        ) from None


def fn_add_days(d: Any, n: Any) -> dt.date | None:
    if d is None or n is None:
        return None
    days = _whole("add_days", n)
    base = d if isinstance(d, dt.date) else _to_date("add_days", d)
    if abs(days) > 3_700_000:
        raise _bad_date_range("add_days")
    try:
        return base + dt.timedelta(days=days)
    except OverflowError:
        raise _bad_date_range("add_days") from None


def fn_add_workdays(env: EvalEnv, d: Any, n: Any) -> dt.date | None:
    if d is None or n is None:
        return None
    count = _whole("add_workdays", n)
    if abs(count) > MAX_WORKDAYS:
        raise _fail(
            "expr-limit",
            "add_workdays(): {n} workdays is too many (at most ±{max})",
            "add_workdays()：{n} 个工作日太多了（最多 ±{max}）",
            n=count,
            max=MAX_WORKDAYS,
        )
    day = _local_date("add_workdays", d, env)
    result: dt.date = _calendar("add_workdays", env).add_workdays(day, count)
    return result


def fn_workdays_between(env: EvalEnv, a: Any, b: Any) -> int | None:
    if a is None or b is None:
        return None
    first = _local_date("workdays_between", a, env)
    last = _local_date("workdays_between", b, env)
    _check_span("workdays_between", first, last)
    result: int = _calendar("workdays_between", env).workdays_between(first, last)
    return result


def fn_hours_between(env: EvalEnv, a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    start = _to_datetime("hours_between", a, env)
    end = _to_datetime("hours_between", b, env)
    return (end - start).total_seconds() / 3600


def fn_business_hours_between(env: EvalEnv, a: Any, b: Any) -> float | None:
    if a is None or b is None:
        return None
    start = _to_datetime("business_hours_between", a, env)
    end = _to_datetime("business_hours_between", b, env)
    _check_span("business_hours_between", start.date(), end.date())
    result: float = _calendar("business_hours_between", env).business_hours_between(start, end)
    return result


# ---- numbers ----------------------------------------------------------------------------


def fn_len(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, str | list | tuple | Mapping | set | frozenset):
        return len(x)
    raise _type_error("len", _A_LIST, x)


def fn_round(x: Any, n: Any = None) -> Any:
    if x is None:
        return None
    if n is None:
        if isinstance(x, Decimal) and x.is_finite() and x.adjusted() > _MAX_DECIMAL_DIGITS:
            raise _fail("expr-limit", "round(): the number is too large", "round()：数字太大")
        return round(x)
    digits = _whole("round", n)
    if abs(digits) > MAX_ROUND_DIGITS:
        raise _fail(
            "expr-limit",
            "round(): {n} digits is too many (at most ±{max})",
            "round()：保留 {n} 位小数太多了（最多 ±{max}）",
            n=digits,
            max=MAX_ROUND_DIGITS,
        )
    return round(x, digits)


def fn_abs(x: Any) -> Any:
    return None if x is None else abs(x)


def _items(fname: str, args: tuple[Any, ...]) -> list[Any] | None:
    """min/max/sum arguments: one list (or text) or several values; blanks are skipped."""
    if len(args) == 1:
        (only,) = args
        if only is None:
            return None
        if isinstance(only, str | list | tuple | set | frozenset):
            return [v for v in only if v is not None]
        raise _type_error(fname, _A_LIST, only)
    return [v for v in args if v is not None]


def fn_min(*args: Any) -> Any:
    items = _items("min", args)
    return builtins.min(items) if items else None


def fn_max(*args: Any) -> Any:
    items = _items("max", args)
    return builtins.max(items) if items else None


def fn_sum(x: Any) -> Any:
    if x is None:
        return 0
    if not isinstance(x, list | tuple | set | frozenset):
        raise _type_error("sum", Text("a list", "列表"), x)
    return builtins.sum(v for v in x if v is not None)


def _bad_number(fname: str, value: Any) -> EvaluationError:
    shown = describe(value)
    return EvaluationError(
        "expr-bad-number",
        Text(
            f"{fname}(): {shown.en} cannot be turned into a number",
            f"{fname}()：{shown.zh} 无法转换为数字",
        ),
    )


def fn_int(x: Any) -> int | None:
    if x is None or (isinstance(x, str) and not x.strip()):
        return None
    if isinstance(x, int):
        return int(x)
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            x = fn_decimal(x)  # '12.5' → Decimal('12.5') → 12
    if isinstance(x, float) and math.isfinite(x):
        return int(x)
    if isinstance(x, Decimal) and x.is_finite():
        if x.adjusted() > _MAX_DECIMAL_DIGITS:
            raise _fail("expr-limit", "int(): the number is too large", "int()：数字太大")
        return int(x)
    raise _bad_number("int", x)


def fn_float(x: Any) -> float | None:
    if x is None or (isinstance(x, str) and not x.strip()):
        return None
    if isinstance(x, int | float | Decimal | str):
        try:
            return float(x)
        except (ValueError, OverflowError):
            raise _bad_number("float", x) from None
    raise _bad_number("float", x)


def fn_decimal(x: Any) -> Decimal | None:
    if x is None or (isinstance(x, str) and not x.strip()):
        return None
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float):
        x = repr(x)
    if isinstance(x, int | str) and not isinstance(x, bool):
        try:
            result = Decimal(x.strip() if isinstance(x, str) else x)
        except (InvalidOperation, ValueError):
            raise _bad_number("decimal", x) from None
        if result.is_finite():
            return result
    raise _bad_number("decimal", x)


# ---- text and lists ---------------------------------------------------------------------


_SCALARS = (str, int, float, Decimal, bool, dt.date, dt.datetime, dt.time)


def fn_str(x: Any) -> str:
    if x is None:
        return ""
    if not isinstance(x, _SCALARS):
        raise _type_error("str", _A_VALUE, x)
    try:
        text = str(x)
    except ValueError:  # an int too large to print
        text = "?" * (MAX_STRING_LENGTH + 1)
    if len(text) > MAX_STRING_LENGTH:
        raise _fail(
            "expr-limit",
            "str(): the text would be longer than {max} characters",
            "str()：得到的文本会超过 {max} 个字符",
            max=MAX_STRING_LENGTH,
        )
    return text


def fn_upper(s: Any) -> str | None:
    if s is None:
        return None
    if not isinstance(s, str):
        raise _type_error("upper", _A_TEXT, s)
    return s.upper()


def fn_lower(s: Any) -> str | None:
    if s is None:
        return None
    if not isinstance(s, str):
        raise _type_error("lower", _A_TEXT, s)
    return s.lower()


def fn_startswith(s: Any, prefix: Any) -> bool:
    if s is None or prefix is None:
        return False
    if not isinstance(s, str):
        raise _type_error("startswith", _A_TEXT, s)
    if not isinstance(prefix, str):
        raise _type_error("startswith", _A_TEXT, prefix)
    return s.startswith(prefix)


def fn_contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    return item in container


def fn_coalesce(*args: Any) -> Any:
    for value in args:
        if value is not None and not (type(value) is str and value == ""):
            return value
    return None


def _spec(
    impl: Callable[..., Any],
    arity: tuple[int, int | None],
    en: str,
    zh: str,
    *,
    env: bool = False,
    counts: tuple[int, ...] | None = None,
) -> FunctionSpec:
    return FunctionSpec(impl, arity[0], arity[1], Text(en, zh), env, not env, counts)


FUNCTIONS: Mapping[str, FunctionSpec] = MappingProxyType(
    {
        "today": _spec(fn_today, (0, 0), "today's date", "今天的日期", env=True),
        "now": _spec(fn_now, (0, 0), "the current date and time", "当前的日期和时间", env=True),
        "date": _spec(
            fn_date,
            (1, 3),
            "date(y, m, d) or date('2026-09-30'): a date",
            "date(年, 月, 日) 或 date('2026-09-30')：构造日期",
            counts=(1, 3),
        ),
        "datetime": _spec(
            fn_datetime,
            (1, 6),
            "datetime(y, m, d, h, min, s) or datetime('2026-09-30 14:30'): a date-time",
            "datetime(年, 月, 日, 时, 分, 秒) 或 datetime('2026-09-30 14:30')：构造日期时间",
            env=True,
            counts=(1, 3, 4, 5, 6),
        ),
        "add_days": _spec(
            fn_add_days,
            (2, 2),
            "add_days(d, n): n calendar days after d",
            "add_days(d, n)：d 之后第 n 个自然日",
        ),
        "add_workdays": _spec(
            fn_add_workdays,
            (2, 2),
            "add_workdays(d, n): the n-th workday after d",
            "add_workdays(d, n)：d 之后第 n 个工作日",
            env=True,
        ),
        "workdays_between": _spec(
            fn_workdays_between,
            (2, 2),
            "workdays_between(a, b): workdays after a up to and including b",
            "workdays_between(a, b)：a 之后到 b（含）之间的工作日天数",
            env=True,
        ),
        "hours_between": _spec(
            fn_hours_between,
            (2, 2),
            "hours_between(a, b): hours from a to b (wall clock)",
            "hours_between(a, b)：从 a 到 b 经过的小时数（按自然时间）",
            env=True,
        ),
        "business_hours_between": _spec(
            fn_business_hours_between,
            (2, 2),
            "business_hours_between(a, b): working hours from a to b",
            "business_hours_between(a, b)：从 a 到 b 之间的工作小时数",
            env=True,
        ),
        "len": _spec(
            fn_len, (1, 1), "len(x): length of a text or list", "len(x)：文本或列表的长度"
        ),
        "round": _spec(
            fn_round,
            (1, 2),
            "round(x, n): x rounded to n decimals",
            "round(x, n)：把 x 四舍五入到 n 位小数",
        ),
        "abs": _spec(fn_abs, (1, 1), "abs(x): absolute value", "abs(x)：绝对值"),
        "min": _spec(
            fn_min,
            (1, None),
            "min(a, b, …) or min(list): smallest value",
            "min(a, b, …) 或 min(列表)：最小值",
        ),
        "max": _spec(
            fn_max,
            (1, None),
            "max(a, b, …) or max(list): largest value",
            "max(a, b, …) 或 max(列表)：最大值",
        ),
        "sum": _spec(fn_sum, (1, 1), "sum(list): total of the values", "sum(列表)：各值之和"),
        "contains": _spec(
            fn_contains,
            (2, 2),
            "contains(container, item): whether item is in the text or list",
            "contains(容器, 项)：文本或列表中是否包含该项",
        ),
        "coalesce": _spec(
            fn_coalesce,
            (1, None),
            "coalesce(a, b, …): the first value that is not blank",
            "coalesce(a, b, …)：第一个非空的值",
        ),
        "int": _spec(fn_int, (1, 1), "int(x): x as a whole number", "int(x)：转换为整数"),
        "float": _spec(fn_float, (1, 1), "float(x): x as a number", "float(x)：转换为浮点数"),
        "decimal": _spec(
            fn_decimal,
            (1, 1),
            "decimal(x): x as an exact decimal number",
            "decimal(x)：转换为精确的十进制数",
        ),
        "str": _spec(fn_str, (1, 1), "str(x): x as text", "str(x)：转换为文本"),
        "upper": _spec(fn_upper, (1, 1), "upper(s): text in upper case", "upper(s)：转换为大写"),
        "lower": _spec(fn_lower, (1, 1), "lower(s): text in lower case", "lower(s)：转换为小写"),
        "startswith": _spec(
            fn_startswith,
            (2, 2),
            "startswith(s, prefix): whether s starts with prefix",
            "startswith(s, 前缀)：s 是否以该前缀开头",
        ),
    }
)


# ---- documentation (seamline functions, docs/functions.md) ------------------------------


@dataclass(frozen=True, slots=True)
class FunctionDoc:
    """How a function is shown in the function reference: its ``signature``, an ``example``
    call and the field values it reads (``given``); the result shown is computed by running
    the example, so it cannot drift from the code."""

    signature: str
    example: str
    given: Mapping[str, Any] = field(default_factory=dict)


FUNCTION_DOCS: Mapping[str, FunctionDoc] = MappingProxyType(
    {
        "today": FunctionDoc("today()", "today()"),
        "now": FunctionDoc("now()", "now()"),
        "date": FunctionDoc("date(y, m, d) | date(text)", "date(2026, 9, 30)"),
        "datetime": FunctionDoc(
            "datetime(y, m, d[, h[, min[, s]]]) | datetime(text)", "datetime('2026-09-30 14:30')"
        ),
        "add_days": FunctionDoc("add_days(d, n)", "add_days(date(2026, 9, 30), 3)"),
        "add_workdays": FunctionDoc("add_workdays(d, n)", "add_workdays(date(2026, 9, 30), 1)"),
        "workdays_between": FunctionDoc(
            "workdays_between(a, b)", "workdays_between(date(2026, 9, 30), date(2026, 10, 12))"
        ),
        "hours_between": FunctionDoc(
            "hours_between(a, b)",
            "hours_between(datetime('2026-12-07 16:00'), datetime('2026-12-08 10:30'))",
        ),
        "business_hours_between": FunctionDoc(
            "business_hours_between(a, b)",
            "business_hours_between(datetime('2026-12-07 16:00'), datetime('2026-12-08 10:30'))",
        ),
        "len": FunctionDoc("len(x)", "len(tags)", MappingProxyType({"tags": ["rush", "export"]})),
        "round": FunctionDoc("round(x[, n])", "round(3.14159, 2)"),
        "abs": FunctionDoc("abs(x)", "abs(-5)"),
        "min": FunctionDoc("min(a, b, …) | min(list)", "min(3, 1, 2)"),
        "max": FunctionDoc("max(a, b, …) | max(list)", "max([3, 7, 5])"),
        "sum": FunctionDoc("sum(list)", "sum([1, 2, 3.5])"),
        "contains": FunctionDoc(
            "contains(container, item)",
            "contains(tags, 'rush')",
            MappingProxyType({"tags": ["rush", "export"]}),
        ),
        "coalesce": FunctionDoc(
            "coalesce(a, b, …)",
            "coalesce(nickname, name)",
            MappingProxyType({"nickname": None, "name": "Li Lei"}),
        ),
        "int": FunctionDoc("int(x)", "int('12')"),
        "float": FunctionDoc("float(x)", "float('2.5')"),
        "decimal": FunctionDoc("decimal(x)", "decimal('19.99')"),
        "str": FunctionDoc("str(x)", "str(42)"),
        "upper": FunctionDoc("upper(s)", "upper('so-1')"),
        "lower": FunctionDoc("lower(s)", "lower('SO-1')"),
        "startswith": FunctionDoc("startswith(s, prefix)", "startswith('SO-2026-001', 'SO-')"),
    }
)
