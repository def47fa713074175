"""Turn a checked expression tree into nested Python closures, built once, called many times.

Every node becomes a ``Callable[[values, env], Any]``. Only the node types that
:mod:`engine.expressions.check` lets through are handled; nothing is ever passed to
``eval``/``exec``/``compile``. Semantics follow Python (and simpleeval): ``and``/``or``
short-circuit and return an operand, comparisons chain, ``+``/``*``/``**`` go through
simpleeval's limited operators (see :mod:`engine.expressions.safeops`).

Constant sub-expressions are computed once here; common shapes (a name or call compared with
a constant, a binary operator with a constant side, ``a and b``) get dedicated closures.
"""

from __future__ import annotations

import ast
import copy
import decimal
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simpleeval import IterableTooLong, NumberTooHigh

from engine.model.i18n import Text

from .check import node_position
from .env import EvalEnv
from .errors import EvaluationError, ExpressionWarning
from .functions import FunctionSpec
from .messages import describe, explain_type_error
from .safeops import limited_add, limited_mult, limited_power

__all__ = ["CompiledExpr", "Fn", "build", "to_evaluation_error"]

Fn = Callable[[Mapping[str, Any], EvalEnv], Any]

_DEFAULT_ENV = EvalEnv()


# ---- run-time helpers -------------------------------------------------------------------


def _not_a_record(value: object, key: str) -> EvaluationError:
    got = describe(value)
    return EvaluationError(
        "expr-not-a-record",
        Text(f"cannot read .{key} of {got.en}", f"无法从 {got.zh} 中读取 .{key}"),
    )


def _get(obj: Any, key: str) -> Any:
    """``obj.key`` for a record; through a list (a child table) it maps over the rows."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, list | tuple):
        out: list[Any] = []
        for item in obj:
            if isinstance(item, list | tuple):
                out.extend(_get(item, key))
            else:
                out.append(_get(item, key))
        return out
    raise _not_a_record(obj, key)


def _index(obj: Any, i: int) -> Any:
    """``obj[i]``; None when ``obj`` is blank or too short."""
    if obj is None:
        return None
    if isinstance(obj, list | tuple | str):
        if -len(obj) <= i < len(obj):
            return obj[i]
        return None
    got = describe(obj)
    raise EvaluationError(
        "expr-not-a-list",
        Text(f"cannot take [{i}] of {got.en}", f"无法对 {got.zh} 取下标 [{i}]"),
    )


def _walk(obj: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        obj = _get(obj, step) if type(step) is str else _index(obj, step)  # type: ignore[arg-type]
    return obj


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        # '%999999999d' % 1 would build a gigabyte string; text formatting is not offered
        raise EvaluationError(
            "expr-type",
            Text(
                "% cannot be used on text (it is only the remainder of a division)",
                "% 不能用于文本（它只表示除法的余数）",
            ),
        )
    return a % b


def _in(a: Any, b: Any) -> bool:
    return a in b


def _not_in(a: Any, b: Any) -> bool:
    return a not in b


def _is(a: Any, b: Any) -> bool:
    return a is b


def _is_not(a: Any, b: Any) -> bool:
    return a is not b


_BIN: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: limited_add,
    ast.Sub: operator.sub,
    ast.Mult: limited_mult,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _mod,
    ast.Pow: limited_power,
}

_CMP: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: _in,
    ast.NotIn: _not_in,
    ast.Is: _is,
    ast.IsNot: _is_not,
}


# Comparisons of a value with a constant, written out so no operator function is called.
def _cmp_name_const(op: type[ast.cmpop], n: str, c: Any) -> Fn | None:
    if op is ast.Eq:
        return lambda v, e: v.get(n) == c
    if op is ast.NotEq:
        return lambda v, e: v.get(n) != c
    if op is ast.Lt:
        return lambda v, e: v.get(n) < c
    if op is ast.LtE:
        return lambda v, e: v.get(n) <= c
    if op is ast.Gt:
        return lambda v, e: v.get(n) > c
    if op is ast.GtE:
        return lambda v, e: v.get(n) >= c
    if op is ast.In:
        return lambda v, e: v.get(n) in c
    if op is ast.NotIn:
        return lambda v, e: v.get(n) not in c
    if op is ast.Is:
        return lambda v, e: v.get(n) is c
    if op is ast.IsNot:
        return lambda v, e: v.get(n) is not c
    return None


def _cmp_fn_const(op: type[ast.cmpop], f: Fn, c: Any) -> Fn | None:
    if op is ast.Eq:
        return lambda v, e: f(v, e) == c
    if op is ast.NotEq:
        return lambda v, e: f(v, e) != c
    if op is ast.Lt:
        return lambda v, e: f(v, e) < c
    if op is ast.LtE:
        return lambda v, e: f(v, e) <= c
    if op is ast.Gt:
        return lambda v, e: f(v, e) > c
    if op is ast.GtE:
        return lambda v, e: f(v, e) >= c
    if op is ast.In:
        return lambda v, e: f(v, e) in c
    if op is ast.NotIn:
        return lambda v, e: f(v, e) not in c
    if op is ast.Is:
        return lambda v, e: f(v, e) is c
    if op is ast.IsNot:
        return lambda v, e: f(v, e) is not c
    return None


def _cmp_fn_fn(op: type[ast.cmpop], f: Fn, g: Fn) -> Fn | None:
    if op is ast.Eq:
        return lambda v, e: f(v, e) == g(v, e)
    if op is ast.NotEq:
        return lambda v, e: f(v, e) != g(v, e)
    if op is ast.Lt:
        return lambda v, e: f(v, e) < g(v, e)
    if op is ast.LtE:
        return lambda v, e: f(v, e) <= g(v, e)
    if op is ast.Gt:
        return lambda v, e: f(v, e) > g(v, e)
    if op is ast.GtE:
        return lambda v, e: f(v, e) >= g(v, e)
    return None


# ---- compiled nodes ---------------------------------------------------------------------

_IMMUTABLE = (str, int, float, bool, type(None), decimal.Decimal)


@dataclass(slots=True)
class _Node:
    fn: Fn
    const: bool = False
    value: Any = None
    name: str | None = None  # a bare top-level name: ``values.get(name)``


def _const(value: Any) -> _Node:
    if isinstance(value, _IMMUTABLE) or (
        isinstance(value, tuple) and all(isinstance(x, _IMMUTABLE) for x in value)
    ):
        return _Node(lambda v, e: value, True, value)
    # a list (or something holding one): every evaluation gets its own copy
    return _Node(lambda v, e: copy.deepcopy(value), True, value)


def _membership(value: Any) -> Any:
    """A constant right-hand side of ``in``: lists become tuples (same answers, no copy)."""
    return tuple(value) if isinstance(value, list) else value


class _Builder:
    def __init__(self, functions: Mapping[str, FunctionSpec], source: str) -> None:
        self.functions = functions
        self.source = source
        self.warnings: list[ExpressionWarning] = []

    def build(self, node: ast.AST) -> _Node:
        method: Callable[[Any], _Node] = getattr(self, "build_" + type(node).__name__)
        return method(node)

    def fold(self, node: ast.AST, built: _Node, children: list[_Node]) -> _Node:
        """Compute a node whose inputs are all constants now, once."""
        if not all(child.const for child in children):
            return built
        try:
            value = built.fn({}, _DEFAULT_ENV)
        except Exception as exc:
            error = to_evaluation_error(exc, self.source)
            self.warnings.append(
                ExpressionWarning(
                    "expr-constant-error",
                    Text(
                        f"this part always fails: {error.message.en}",
                        f"这一部分总是会出错：{error.message.zh}",
                    ),
                    error.hint,
                    **node_position(self.source, node),
                )
            )
            return built
        return _const(value)

    # -- leaves --

    def build_Expression(self, node: ast.Expression) -> _Node:
        return self.build(node.body)

    def build_Constant(self, node: ast.Constant) -> _Node:
        return _const(node.value)

    def build_Name(self, node: ast.Name) -> _Node:
        n = node.id
        return _Node(lambda v, e: v.get(n), name=n)

    def build_Attribute(self, node: ast.Attribute) -> _Node:
        return self.build_path(node)

    def build_Subscript(self, node: ast.Subscript) -> _Node:
        return self.build_path(node)

    def build_path(self, node: ast.expr) -> _Node:
        steps: list[str | int] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute | ast.Subscript):
            if isinstance(base, ast.Attribute):
                steps.append(base.attr)
            else:
                steps.append(_int_index(base.slice))
            base = base.value
        steps.reverse()
        if isinstance(base, ast.Name):
            return _path_fn(base.id, tuple(steps))
        inner = self.build(base)
        f = inner.fn
        path = tuple(steps)
        return self.fold(node, _Node(lambda v, e: _walk(f(v, e), path)), [inner])

    def build_List(self, node: ast.List) -> _Node:
        items = [self.build(elt) for elt in node.elts]
        fns = tuple(item.fn for item in items)
        return self.fold(node, _Node(lambda v, e: [f(v, e) for f in fns]), items)

    def build_Tuple(self, node: ast.Tuple) -> _Node:
        items = [self.build(elt) for elt in node.elts]
        fns = tuple(item.fn for item in items)
        return self.fold(node, _Node(lambda v, e: tuple([f(v, e) for f in fns])), items)

    # -- operators --

    def build_UnaryOp(self, node: ast.UnaryOp) -> _Node:
        operand = self.build(node.operand)
        f = operand.fn
        if isinstance(node.op, ast.Not):
            built = _Node(lambda v, e: not f(v, e))
        elif isinstance(node.op, ast.USub):
            built = _Node(lambda v, e: -f(v, e))
        else:
            built = _Node(lambda v, e: +f(v, e))
        return self.fold(node, built, [operand])

    def build_BinOp(self, node: ast.BinOp) -> _Node:
        left, right = self.build(node.left), self.build(node.right)
        op = _BIN[type(node.op)]
        return self.fold(node, _Node(_binary(op, left, right)), [left, right])

    def build_BoolOp(self, node: ast.BoolOp) -> _Node:
        values = [self.build(value) for value in node.values]
        fns = tuple(value.fn for value in values)
        if isinstance(node.op, ast.And):
            if len(fns) == 2:
                f, g = fns
                fn: Fn = lambda v, e: f(v, e) and g(v, e)  # noqa: E731
            else:

                def fn(v: Mapping[str, Any], e: EvalEnv) -> Any:
                    result = None
                    for f in fns:
                        result = f(v, e)
                        if not result:
                            return result
                    return result

        elif len(fns) == 2:
            f, g = fns
            fn = lambda v, e: f(v, e) or g(v, e)  # noqa: E731
        else:

            def fn(v: Mapping[str, Any], e: EvalEnv) -> Any:
                result = None
                for f in fns:
                    result = f(v, e)
                    if result:
                        return result
                return result

        return self.fold(node, _Node(fn), values)

    def build_Compare(self, node: ast.Compare) -> _Node:
        operands = [self.build(node.left), *(self.build(c) for c in node.comparators)]
        if len(node.ops) == 1:
            built = _compare(type(node.ops[0]), operands[0], operands[1])
            return self.fold(node, _Node(built), operands)
        first = operands[0].fn
        pairs = tuple(
            (_CMP[type(op)], operand.fn) for op, operand in zip(node.ops, operands[1:], strict=True)
        )

        def chain(v: Mapping[str, Any], e: EvalEnv) -> Any:
            left = first(v, e)
            result: Any = True
            for op, g in pairs:
                right = g(v, e)
                result = op(left, right)
                if not result:
                    return result
                left = right
            return result

        return self.fold(node, _Node(chain), operands)

    def build_IfExp(self, node: ast.IfExp) -> _Node:
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        if test.const:
            return body if test.value else orelse
        t, b, o = test.fn, body.fn, orelse.fn
        return self.fold(
            node, _Node(lambda v, e: b(v, e) if t(v, e) else o(v, e)), [test, body, orelse]
        )

    # -- calls --

    def build_Call(self, node: ast.Call) -> _Node:
        assert isinstance(node.func, ast.Name)
        spec = self.functions[node.func.id]
        args = [self.build(arg) for arg in node.args]
        fns = tuple(arg.fn for arg in args)
        impl = spec.impl
        fn: Fn
        if spec.needs_env:
            if not fns:
                fn = lambda v, e: impl(e)  # noqa: E731
            elif len(fns) == 1:
                (a,) = fns
                fn = lambda v, e: impl(e, a(v, e))  # noqa: E731
            elif len(fns) == 2:
                a, b = fns
                fn = lambda v, e: impl(e, a(v, e), b(v, e))  # noqa: E731
            else:
                fn = lambda v, e: impl(e, *[f(v, e) for f in fns])  # noqa: E731
            return _Node(fn)
        if not fns:
            fn = lambda v, e: impl()  # noqa: E731
        elif len(fns) == 1:
            (a,) = fns
            fn = lambda v, e: impl(a(v, e))  # noqa: E731
        elif len(fns) == 2:
            a, b = fns
            fn = lambda v, e: impl(a(v, e), b(v, e))  # noqa: E731
        else:
            fn = lambda v, e: impl(*[f(v, e) for f in fns])  # noqa: E731
        if not spec.pure:
            return _Node(fn)
        return self.fold(node, _Node(fn), args)


def _int_index(node: ast.expr) -> int:
    """The index the checker accepted: an int constant, possibly negated."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
        sign = -1
    else:
        sign = 1
    assert isinstance(node, ast.Constant) and type(node.value) is int
    return sign * node.value


def _path_fn(name: str, path: tuple[str | int, ...]) -> _Node:
    """``name.a.b[0]``: records are read with ``.get``; blanks give None."""
    if len(path) == 1 and type(path[0]) is str:
        key = path[0]

        def one(v: Mapping[str, Any], e: EvalEnv) -> Any:
            record = v.get(name)
            if type(record) is dict:
                return record.get(key)
            return _get(record, key)

        return _Node(one)
    if all(type(step) is str for step in path):

        def fields(v: Mapping[str, Any], e: EvalEnv) -> Any:
            obj = v.get(name)
            for key in path:
                obj = obj.get(key) if type(obj) is dict else _get(obj, key)  # type: ignore[arg-type]
            return obj

        return _Node(fields)
    return _Node(lambda v, e: _walk(v.get(name), path))


def _binary(op: Callable[[Any, Any], Any], left: _Node, right: _Node) -> Fn:
    f, g = left.fn, right.fn
    if right.const:
        c = right.value
        if left.name is not None:
            n = left.name
            return lambda v, e: op(v.get(n), c)
        return lambda v, e: op(f(v, e), c)
    if left.const:
        c = left.value
        if right.name is not None:
            m = right.name
            return lambda v, e: op(c, v.get(m))
        return lambda v, e: op(c, g(v, e))
    if left.name is not None and right.name is not None:
        n, m = left.name, right.name
        return lambda v, e: op(v.get(n), v.get(m))
    return lambda v, e: op(f(v, e), g(v, e))


def _compare(op: type[ast.cmpop], left: _Node, right: _Node) -> Fn:
    if right.const and not isinstance(right.value, list | dict):
        c = _membership(right.value) if op in (ast.In, ast.NotIn) else right.value
        special = (
            _cmp_name_const(op, left.name, c)
            if left.name is not None
            else _cmp_fn_const(op, left.fn, c)
        )
        if special is not None:
            return special
    if right.const and op in (ast.In, ast.NotIn):
        c = _membership(right.value)
        f = left.fn
        return (lambda v, e: f(v, e) in c) if op is ast.In else (lambda v, e: f(v, e) not in c)
    if not left.const and not right.const:
        special = _cmp_fn_fn(op, left.fn, right.fn)
        if special is not None:
            return special
    return _binary(_CMP[op], left, right)


# ---- errors -----------------------------------------------------------------------------


def to_evaluation_error(exc: BaseException, source: str) -> EvaluationError:
    """Any exception raised while evaluating ``source``, as an :class:`EvaluationError`."""
    if isinstance(exc, EvaluationError):
        if not exc.source:
            exc.source = source
        return exc
    code, hint = "expr-runtime", None
    if isinstance(exc, NumberTooHigh | IterableTooLong | OverflowError | decimal.Overflow):
        code = "expr-limit"
        message = Text("the result would be too large to compute", "计算结果过大，无法计算")
    elif isinstance(exc, RecursionError | MemoryError):
        code = "expr-limit"
        message = Text("the expression needs too much memory", "表达式需要的内存过多")
    elif isinstance(exc, ZeroDivisionError | decimal.DivisionByZero):
        code = "expr-division-by-zero"
        message = Text("division by zero", "除数为 0")
        hint = Text(
            "check the divisor first, e.g. x / y if y else 0",
            "请先判断除数，例如 x / y if y else 0",
        )
    elif isinstance(exc, TypeError):
        code = "expr-type"
        message, hint = explain_type_error(exc)
    elif isinstance(exc, decimal.InvalidOperation):
        code = "expr-value"
        message = Text("invalid decimal arithmetic", "无效的十进制运算")
    elif isinstance(exc, ValueError | ArithmeticError):
        code = "expr-value"
        message = Text("a value here is not valid for this calculation", "值无效，无法计算")
    else:
        message = Text("the expression could not be computed for these values", "计算时出错")
    return EvaluationError(code, message, source, hint)


# ---- the result -------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledExpr:
    """A checked, compiled expression. Call it with the form's values and an :class:`EvalEnv`."""

    source: str
    names: frozenset[str]
    tree: ast.Expression = field(repr=False, compare=False)
    warnings: tuple[ExpressionWarning, ...] = ()
    fn: Fn = field(default=lambda v, e: None, repr=False, compare=False)

    def __call__(self, values: Mapping[str, Any], env: EvalEnv | None = None) -> Any:
        try:
            return self.fn(values, env or _DEFAULT_ENV)
        except Exception as exc:
            raise to_evaluation_error(exc, self.source) from exc


def build(
    tree: ast.Expression, functions: Mapping[str, FunctionSpec], source: str
) -> tuple[Fn, tuple[ExpressionWarning, ...]]:
    """The closure for a checked tree, plus warnings about parts that always fail."""
    builder = _Builder(functions, source)
    node = builder.build(tree)
    return node.fn, tuple(builder.warnings)
