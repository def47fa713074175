"""The expression language of Seamline rules: parsed once, checked, compiled to closures.

>>> from engine.expressions import NameInfo, Scope, compile_expression
>>> scope = Scope({"quantity": NameInfo.value("integer")})
>>> rule = compile_expression("quantity * 2 > 10", scope)
>>> rule({"quantity": 6})
True

``compile_expression`` raises :class:`ExpressionError` (with a position inside the
expression) for anything it will not run; a compiled expression raises
:class:`EvaluationError` when it fails on particular values.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .check import MAX_DEPTH, MAX_SOURCE_LENGTH, check_expression
from .compile import CompiledExpr, build
from .env import EvalEnv
from .errors import EvaluationError, ExpressionError, ExpressionWarning
from .functions import FUNCTIONS, FunctionSpec
from .scope import NameInfo, Scope

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_SOURCE_LENGTH",
    "Comparison",
    "CompiledExpr",
    "EvalEnv",
    "EvaluationError",
    "ExpressionError",
    "ExpressionWarning",
    "FunctionSpec",
    "NameInfo",
    "Scope",
    "comparisons",
    "compile_expression",
    "dotted_path",
    "literal_value",
]


def compile_expression(
    source: str,
    scope: Scope,
    *,
    extra_functions: Mapping[str, FunctionSpec] | None = None,
) -> CompiledExpr:
    """Parse, check and compile ``source`` against ``scope``; raises :class:`ExpressionError`."""
    functions: Mapping[str, FunctionSpec] = FUNCTIONS
    if extra_functions:
        for name in extra_functions:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"invalid function name {name!r}")
        functions = {**FUNCTIONS, **extra_functions}
    checked = check_expression(source, scope, functions)
    fn, folded_warnings = build(checked.tree, functions, source)
    return CompiledExpr(
        source=source,
        names=checked.names,
        tree=checked.tree,
        warnings=checked.warnings + folded_warnings,
        fn=fn,
    )


# ---- helpers for static analysis of checked trees ---------------------------------------

_NO_VALUE = object()


def literal_value(node: ast.AST) -> Any:
    """The value of a literal node: a constant, ``-5``, or a list/tuple of literals.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(node, ast.Constant):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
    ):
        number: int | float = node.operand.value
        return -number if isinstance(node.op, ast.USub) else number
    if isinstance(node, ast.List):
        return [literal_value(elt) for elt in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(literal_value(elt) for elt in node.elts)
    raise ValueError(f"not a literal: {ast.dump(node)[:80]}")


def dotted_path(node: ast.AST) -> str | None:
    """``customer.tier`` for an Attribute chain over a Name (indexes dropped), else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True, slots=True)
class Comparison:
    """``path op value``, e.g. ``Comparison("order_type", "==", "rush")``."""

    path: str
    op: str
    value: Any
    node: ast.Compare


def comparisons(tree: ast.AST) -> Iterator[Comparison]:
    """Every ``path OP literal`` (or ``literal OP path``) comparison in ``tree``.

    The path is always reported on the left (``5 < qty`` becomes ``qty > 5``). Chained
    comparisons yield one item per adjacent pair that fits the pattern. Source order.
    """
    compares = [node for node in ast.walk(tree) if isinstance(node, ast.Compare)]
    compares.sort(key=lambda node: (node.lineno, node.col_offset))
    for node in compares:
        operands = [node.left, *node.comparators]
        for index, op_node in enumerate(node.ops):
            op = _OPS[type(op_node)]
            left, right = operands[index], operands[index + 1]
            path, value = dotted_path(left), _literal_or_none(right)
            if path is not None and value is not _NO_VALUE:
                yield Comparison(path, op, value, node)
                continue
            path, value = dotted_path(right), _literal_or_none(left)
            if path is not None and value is not _NO_VALUE and op in _FLIPPED:
                yield Comparison(path, _FLIPPED[op], value, node)


def _literal_or_none(node: ast.AST) -> Any:
    try:
        return literal_value(node)
    except ValueError:
        return _NO_VALUE
