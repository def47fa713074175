"""KPI conditions (``where``, ``numerator``) → SQLAlchemy clauses over the form's table.

The checked expression tree (``CompiledExpr.tree``) is walked once per query. What is
supported runs in the database: comparisons (chained), ``and``/``or``/``not``, ``in`` /
``not in`` lists, ``== None``, paths through refs (``customer.tier`` joins the customer
table), ``+ - * /`` on numbers, ``x if c else y``, ``abs``/``coalesce``/``lower``/``upper``
on columns, and any part without field names (``today()``, ``date(2026, 1, 1)``,
``add_days(today(), -7)``), which is computed once per query in Python. Anything else raises
:class:`NotSql` — at compile time, so ``seamline validate`` reports it.

Two functions exist only here, over the record's events: ``entered('returned', …)`` — how
many times the record entered one of these states — and ``fired('approve', …)`` — how many
times one of these transitions was fired. As a condition on their own they mean "ever"
(``EXISTS``); compared (``entered('approving') == 1``) they are counts.

Blank values: a comparison with a blank is false, also under ``not``; ``!=`` and ``not in``
are true for a blank (as in Python, ``None != 'x'``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from engine.expressions import EvalEnv, FunctionSpec, NameInfo, Scope, compile_expression
from engine.model.i18n import Text
from engine.model.spec import EventSpec

__all__ = [
    "EVENT_FUNCTIONS",
    "Columns",
    "NotSql",
    "ScopeColumns",
    "Sql",
    "condition",
    "condition_events",
    "kind_of",
    "not_computable",
    "sql_refusal",
]

# The translator builds clauses through ``ns``: the sqlalchemy module at run time, a shadow
# that accepts everything at compile time (which must not import a database library).


_KINDS = {
    "integer": "number",
    "decimal": "number",
    "money": "number",
    "boolean": "bool",
    "date": "date",
    "datetime": "datetime",
    "ref": "ref",
    "multiselect": "list",
    "files": "list",
    "table": "rows",
}
_ORDER = {ast.Lt: "__lt__", ast.LtE: "__le__", ast.Gt: "__gt__", ast.GtE: "__ge__"}
_ARITH = {ast.Add: "__add__", ast.Sub: "__sub__", ast.Mult: "__mul__", ast.Div: "__truediv__"}
_FUNCS = {"abs": "number", "coalesce": None, "lower": "text", "upper": "text"}


class NotSql(Exception):
    """The expression (at ``node``) cannot run in the database."""

    def __init__(self, node: ast.AST, reason: Text) -> None:
        super().__init__(reason.en)
        self.node = node
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Sql:
    """A translated sub-expression and what kind of value it gives."""

    expr: Any  # a SQLAlchemy ColumnElement (a _Shadow at compile time)
    kind: str  # number text bool date datetime ref list null any


class Columns(Protocol):
    def column(self, path: tuple[str, ...], node: ast.AST) -> Sql: ...

    def record_events(self, spec: EventSpec, count: bool) -> Any:
        """EXISTS such an event of the record (``count``: how many)."""
        ...


def _only_in_sql(*args: Any) -> Any:
    raise RuntimeError("entered()/fired() only run in dashboard queries")


# KPI conditions only: the record's events (compiled to SQL, never evaluated in Python)
_EVENT_KINDS = {"entered": "state_entered", "fired": "transition"}
EVENT_FUNCTIONS = {
    "entered": FunctionSpec(
        _only_in_sql,
        1,
        None,
        Text(
            "how many times the record entered one of these states, e.g. entered('returned')",
            "记录进入这些状态的次数，例如 entered('returned')",
        ),
    ),
    "fired": FunctionSpec(
        _only_in_sql,
        1,
        None,
        Text(
            "how many times one of these transitions was fired, e.g. fired('approve')",
            "这些流转被执行的次数，例如 fired('approve')",
        ),
    ),
}


def _event_call(node: ast.AST) -> EventSpec | None:
    """The events an ``entered(…)``/``fired(…)`` call names (None for other nodes); raises
    :class:`NotSql` unless every argument is a quoted name."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        return None
    kind = _EVENT_KINDS.get(node.func.id)
    if kind is None:
        return None
    names = []
    for arg in node.args:
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise _refuse(
                arg,
                f"{node.func.id}() takes quoted names, e.g. {node.func.id}('returned')",
                f"{node.func.id}() 的参数须为带引号的名称，例如 {node.func.id}('returned')",
            )
        names.append(arg.value)
    return EventSpec(kind, tuple(names))  # type: ignore[arg-type]


def condition_events(tree: ast.Expression) -> list[tuple[ast.Call, EventSpec]]:
    """The ``entered(…)``/``fired(…)`` calls of a checked condition and their events."""
    found = []
    for node in ast.walk(tree):
        try:
            spec = _event_call(node)
        except NotSql:
            continue
        if spec is not None:
            assert isinstance(node, ast.Call)
            found.append((node, spec))
    return found


def kind_of(field_type: str | None) -> str:
    return _KINDS.get(field_type or "", "text")


# ---------------------------------------------------------------------------- columns
class ScopeColumns:
    """Compile time: columns stand in for the scope's names (nothing is queried)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def record_events(self, spec: EventSpec, count: bool) -> Any:
        return _SHADOW

    def column(self, path: tuple[str, ...], node: ast.AST) -> Sql:
        info: NameInfo | None = self.scope.resolve(path)
        if info is None or info.kind == "rows" or (info.kind == "record" and info.open):
            raise NotSql(node, _reason("child-table rows and open records", "子表行和未知记录"))
        kind = "ref" if info.kind == "record" else kind_of(info.type)
        if kind in ("rows", "list"):
            raise NotSql(node, _reason("list values", "列表值"))
        return Sql(_SHADOW, kind)


# ---------------------------------------------------------------------------- translation
def not_computable(node: ast.AST, what_en: str, what_zh: str) -> NotSql:
    return NotSql(node, _reason(what_en, what_zh))


def _reason(what_en: str, what_zh: str) -> Text:
    return Text(f"{what_en} cannot be computed in SQL", f"{what_zh}无法在 SQL 中计算")


def _refuse(node: ast.AST, en: str, zh: str) -> NotSql:
    return NotSql(node, Text(en, zh))


def _path(node: ast.AST) -> tuple[str, ...] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return tuple(reversed(parts))


def _name_free(node: ast.AST) -> bool:
    """True when ``node`` uses no field (only literals and function calls, none of them over
    the record's events)."""
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    if any(isinstance(c.func, ast.Name) and c.func.id in _EVENT_KINDS for c in calls):
        return False
    called = {id(n.func) for n in calls}
    return not any(isinstance(n, ast.Name) and id(n) not in called for n in ast.walk(node))


_UNKNOWN = object()  # a constant that could not be computed at compile time (no clock)


def _value_kind(value: Any) -> str:
    if value is _UNKNOWN:
        return "any"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    if isinstance(value, list | tuple):
        return "list"
    return "text"


class _Shadow:
    """Stands in for SQLAlchemy at compile time: every operation gives the shadow again."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Shadow:
        return self

    def _op(self, *args: Any) -> _Shadow:
        return self

    __add__ = __sub__ = __mul__ = __truediv__ = __neg__ = _op
    __lt__ = __le__ = __gt__ = __ge__ = __eq__ = __ne__ = _op  # type: ignore[assignment]
    __hash__ = object.__hash__


_SHADOW = _Shadow()


@dataclass
class _Translator:
    columns: Columns
    constant: Callable[[ast.expr], Any]
    ns: Any  # the sqlalchemy module, or the shadow

    # -- values
    def value(self, node: ast.expr) -> Sql:
        events = _event_call(node)
        if events is not None:
            return Sql(self.columns.record_events(events, count=True), "number")
        if isinstance(node, ast.Constant) or (_name_free(node) and not isinstance(node, ast.Name)):
            value = node.value if isinstance(node, ast.Constant) else self.constant(node)
            kind = _value_kind(value)
            if kind == "list":
                raise _refuse(node, "a list is only allowed after 'in'", "列表只能用在 'in' 之后")
            return Sql(self.ns.null() if kind in ("null", "any") else self.ns.literal(value), kind)
        path = _path(node)
        if path is not None:
            return self.columns.column(path, node)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return self._arith(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = self._number(node.operand)
            return Sql(-inner.expr if isinstance(node.op, ast.USub) else inner.expr, "number")
        if isinstance(node, ast.IfExp):
            body, orelse = self.value(node.body), self.value(node.orelse)
            kind = body.kind if body.kind != "null" else orelse.kind
            return Sql(self.ns.case((self.truth(node.test), body.expr), else_=orelse.expr), kind)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Compare | ast.BoolOp) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        ):
            return Sql(self.truth(node), "bool")
        raise _refuse(
            node,
            f"{type(node).__name__} cannot be computed in SQL",
            f"{type(node).__name__} 无法在 SQL 中计算",
        )

    def _number(self, node: ast.expr) -> Sql:
        got = self.value(node)
        if got.kind not in ("number", "null", "any"):
            raise _refuse(
                node,
                "arithmetic in SQL needs number fields",
                "SQL 中的算术运算只能用于数值字段",
            )
        return got

    def _arith(self, node: ast.BinOp) -> Sql:
        left, right = self._number(node.left), self._number(node.right)
        expr = getattr(left.expr, _ARITH[type(node.op)])(right.expr)
        return Sql(expr, "number")

    def _call(self, node: ast.Call) -> Sql:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name not in _FUNCS or node.keywords:
            raise _refuse(
                node,
                f"{name or 'this call'}() on fields cannot be computed in SQL",
                f"对字段调用 {name or '此函数'}() 无法在 SQL 中计算",
            )
        args = [self.value(a) for a in node.args]
        wanted = _FUNCS[name]
        for arg, raw in zip(args, node.args, strict=True):
            if wanted is not None and arg.kind not in (wanted, "null", "any"):
                raise _refuse(raw, f"{name}() needs a {wanted}", f"{name}() 的参数类型不符")
        kind = wanted or next((a.kind for a in args if a.kind != "null"), "null")
        return Sql(getattr(self.ns.func, name)(*(a.expr for a in args)), kind)

    # -- conditions
    def truth(self, node: ast.expr) -> Any:
        """A clause that is true exactly when ``node`` is truthy (never NULL at the top)."""
        events = _event_call(node)
        if events is not None:
            return self.columns.record_events(events, count=False)
        if isinstance(node, ast.BoolOp):
            parts = [self.truth(v) for v in node.values]
            return self.ns.and_(*parts) if isinstance(node.op, ast.And) else self.ns.or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self.ns.not_(self.truth(node.operand))
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            pairs = [
                self._compare(operands[i], op, operands[i + 1]) for i, op in enumerate(node.ops)
            ]
            clause = pairs[0] if len(pairs) == 1 else self.ns.and_(*pairs)
            return self.ns.func.coalesce(clause, self.ns.false())
        got = self.value(node)
        return _truthy(self.ns, got, node)

    def _compare(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> Any:
        if isinstance(op, ast.In | ast.NotIn):
            return self._membership(left, isinstance(op, ast.NotIn), right)
        a, b = self.value(left), self.value(right)
        if b.kind == "null" or a.kind == "null":
            other = a if b.kind == "null" else b
            if isinstance(op, ast.Eq | ast.Is):
                return other.expr.is_(None)
            if isinstance(op, ast.NotEq | ast.IsNot):
                return other.expr.is_not(None)
            raise _refuse(right, "blank values cannot be ordered", "空值不能比较大小")
        if isinstance(op, ast.Eq):
            return a.expr == b.expr
        if isinstance(op, ast.NotEq):
            return a.expr.is_distinct_from(b.expr)
        if type(op) in _ORDER:
            return getattr(a.expr, _ORDER[type(op)])(b.expr)
        raise _refuse(right, "'is' only works with None", "'is' 只能与 None 一起使用")

    def _membership(self, left: ast.expr, negated: bool, right: ast.expr) -> Any:
        if not _name_free(right):
            raise _refuse(
                right,
                "'in' needs a fixed list in SQL, e.g. ('a', 'b')",
                "SQL 中 'in' 之后须为固定列表，例如 ('a', 'b')",
            )
        values = right.value if isinstance(right, ast.Constant) else self.constant(right)
        if values is _UNKNOWN:
            values = []
        if not isinstance(values, list | tuple):
            raise _refuse(right, "'in' needs a list in SQL", "SQL 中 'in' 之后须为列表")
        a = self.value(left)
        if negated:
            return self.ns.or_(a.expr.is_(None), a.expr.not_in(list(values)))
        return a.expr.in_(list(values))


def _truthy(ns: Any, got: Sql, node: ast.AST) -> Any:
    if got.kind == "bool":
        return got.expr.is_(True)
    if got.kind == "number":
        return ns.func.coalesce(got.expr, 0) != 0
    if got.kind == "text":
        return ns.func.coalesce(got.expr, "") != ""
    if got.kind in ("date", "datetime", "ref"):
        return got.expr.is_not(None)
    if got.kind in ("null", "any"):
        return ns.false()
    raise _refuse(node, "this value cannot be a condition in SQL", "此值无法在 SQL 中作为条件")


# ---------------------------------------------------------------------------- entry points
_CONSTANTS: dict[str, Any] = {}


def _constant_fn(env: EvalEnv) -> Callable[[ast.expr], Any]:
    """Evaluates a sub-expression without fields once, in Python, with ``env``'s clock."""

    def evaluate(node: ast.expr) -> Any:
        source = ast.unparse(node)
        compiled = _CONSTANTS.get(source)
        if compiled is None:
            compiled = compile_expression(source, Scope({}))
            _CONSTANTS[source] = compiled
        return compiled({}, env)

    return evaluate


def condition(tree: ast.Expression, columns: Columns, env: EvalEnv) -> Any:
    """The SQL clause for a KPI condition; raises :class:`NotSql`."""
    import sqlalchemy

    return _Translator(columns, _constant_fn(env), sqlalchemy).truth(tree.body)


def sql_refusal(tree: ast.Expression, scope: Scope) -> NotSql | None:
    """Compile time: why the condition cannot run in the database, or None when it can."""

    def placeholder(node: ast.expr) -> Any:  # no clock at compile time; only the shape counts
        try:
            return _constant_fn(EvalEnv())(node)
        except Exception:
            return _UNKNOWN

    try:
        _Translator(ScopeColumns(scope), placeholder, _SHADOW).truth(tree.body)
    except NotSql as refusal:
        return refusal
    return None
