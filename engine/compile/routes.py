"""Static analysis of route conditions: routes that can never match, or are shadowed.

A condition that is a conjunction (``and``) of simple comparisons between a field path and
constants is turned into a box of per-field constraints. An empty box never matches; a box
inside an earlier route's box is never reached (first match wins). Anything fancier
(function calls) is left alone rather than guessed at. A condition with ``or`` is a union of
boxes (:func:`boxes_of`), which is enough to find overlaps and an example record for them.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any

Path = str


@dataclass
class Constraint:
    """What one field path may be: a set of allowed values and/or a numeric interval."""

    allowed: frozenset[Any] | None = None
    excluded: frozenset[Any] = frozenset()
    lo: float = -math.inf
    lo_open: bool = False
    hi: float = math.inf
    hi_open: bool = False

    def empty(self, options: tuple[str, ...] | None) -> bool:
        if self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open)):
            return True
        if self.allowed is not None:
            values = {v for v in self.allowed if v not in self.excluded and self.admits(v)}
            if options is not None:
                values = {v for v in values if v in options}
            return not values
        return False

    def admits(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return True
        if value < self.lo or (value == self.lo and self.lo_open):
            return False
        return not (value > self.hi or (value == self.hi and self.hi_open))

    def disjoint(self, other: Constraint) -> bool:
        """No value satisfies both constraints."""
        # the tighter lower bound is the larger one (open beats closed at the same value) …
        lo, lo_open = max((self.lo, self.lo_open), (other.lo, other.lo_open))
        # … and the tighter upper bound the smaller one (again open beats closed)
        hi, hi_closed = min((self.hi, not self.hi_open), (other.hi, not other.hi_open))
        if self.allowed is not None and other.allowed is not None:
            allowed: frozenset[Any] | None = self.allowed & other.allowed
        else:
            allowed = self.allowed if self.allowed is not None else other.allowed
        both = Constraint(allowed, self.excluded | other.excluded, lo, lo_open, hi, not hi_closed)
        return both.empty(None)

    def within(self, other: Constraint) -> bool:
        """Every value this admits is admitted by ``other``."""
        if other.allowed is not None:
            if self.allowed is None:
                return False
            if not {v for v in self.allowed if v not in self.excluded} <= other.allowed:
                return False
        if (
            other.excluded
            and not (self.allowed is not None and not (self.allowed & other.excluded))
            and not other.excluded <= self.excluded
        ):
            return False
        lo_ok = self.lo > other.lo or (self.lo == other.lo and (self.lo_open or not other.lo_open))
        hi_ok = self.hi < other.hi or (self.hi == other.hi and (self.hi_open or not other.hi_open))
        if (
            self.allowed is not None
            and all(isinstance(v, str) for v in self.allowed)
            and other.lo == -math.inf
            and other.hi == math.inf
        ):
            return True
        return lo_ok and hi_ok


@dataclass
class Box:
    """A conjunction of constraints, one per field path."""

    parts: dict[Path, Constraint] = field(default_factory=dict)
    never: bool = False

    def get(self, path: Path) -> Constraint:
        return self.parts.setdefault(path, Constraint())

    def empty(self, options: dict[Path, tuple[str, ...] | None]) -> bool:
        return self.never or any(c.empty(options.get(p)) for p, c in self.parts.items())

    def within(self, other: Box) -> bool:
        """Every record matching this box matches ``other``."""
        if other.never:
            return False
        return all(p in self.parts and self.parts[p].within(c) for p, c in other.parts.items())

    def disjoint(self, other: Box) -> bool:
        """No record matches both boxes (provably, from one field they both constrain)."""
        if self.never or other.never:
            return True
        return any(p in other.parts and c.disjoint(other.parts[p]) for p, c in self.parts.items())


def _path(node: ast.AST) -> Path | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _path(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _const(node: ast.AST, constants: dict[str, Any]) -> tuple[bool, Any]:
    if isinstance(node, ast.Constant):
        return True, node.value
    path = _path(node)
    if path is not None and path in constants:
        return True, constants[path]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        ok, value = _const(node.operand, constants)
        if ok and isinstance(value, int | float):
            return True, -value
    return False, None


_FLIP = {
    ast.Lt: ast.Gt,
    ast.Gt: ast.Lt,
    ast.LtE: ast.GtE,
    ast.GtE: ast.LtE,
    ast.Eq: ast.Eq,
    ast.NotEq: ast.NotEq,
}


def box_of(tree: ast.Expression | None, constants: dict[str, Any] | None = None) -> Box | None:
    """The box of a condition, or None when it is not a simple conjunction.

    ``constants``: paths with fixed values (an approval's ``params.NAME``)."""
    box = Box()
    if tree is None:
        return box
    return box if _add(box, tree.body, constants or {}) else None


MAX_BOXES = 32


def boxes_of(
    tree: ast.Expression | None, constants: dict[str, Any] | None = None
) -> tuple[list[Box], bool]:
    """The condition as a union of boxes (``a or b and c`` → two boxes), and whether the
    union is the whole condition (False: some ``or`` branches could not be read, the boxes
    given each still imply the condition)."""
    if tree is None:
        return [Box()], True
    branches = _dnf(tree.body)
    if branches is None:
        return [], False
    out: list[Box] = []
    complete = True
    for branch in branches:
        box = Box()
        if all(_add(box, node, constants or {}) for node in branch):
            out.append(box)
        else:
            complete = False
    return out, complete


def _dnf(node: ast.AST) -> list[list[ast.AST]] | None:
    """``node`` as a disjunction of conjunctions of its leaves (None when too large)."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        out: list[list[ast.AST]] = []
        for value in node.values:
            part = _dnf(value)
            if part is None:
                return None
            out.extend(part)
        return out if len(out) <= MAX_BOXES else None
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        product: list[list[ast.AST]] = [[]]
        for value in node.values:
            part = _dnf(value)
            if part is None:
                return None
            product = [a + b for a in product for b in part]
            if len(product) > MAX_BOXES:
                return None
        return product
    return [[node]]


def example(a: Box, b: Box, options: dict[Path, tuple[str, ...] | None]) -> list[str] | None:
    """A record both boxes admit, as ``path = value`` items (``path != value`` where only
    values to avoid are known), or None when no such record exists."""
    if a.never or b.never:
        return None
    out: list[str] = []
    for path in sorted({*a.parts, *b.parts}):
        parts = [c for c in (a.parts.get(path), b.parts.get(path)) if c is not None]
        value = _pick(parts, options.get(path))
        if value is _NONE:
            return None
        if value is _OTHER:
            avoided = sorted({v for c in parts for v in c.excluded}, key=repr)
            out.append(" and ".join(f"{path} != {_show(v)}" for v in avoided))
        else:
            out.append(f"{path} = {_show(value)}")
    return [item for item in out if item]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "None" if value is None else str(value)


_OTHER = object()  # any value but the excluded ones
_NONE = object()


def _pick(parts: list[Constraint], options: tuple[str, ...] | None) -> Any:
    allowed: frozenset[Any] | None = None
    excluded: set[Any] = set()
    lo, lo_open, hi, hi_open = -math.inf, False, math.inf, False
    for c in parts:
        if c.allowed is not None:
            allowed = c.allowed if allowed is None else allowed & c.allowed
        excluded |= c.excluded
        if (c.lo, c.lo_open) > (lo, lo_open):
            lo, lo_open = c.lo, c.lo_open
        if (c.hi, not c.hi_open) < (hi, not hi_open):
            hi, hi_open = c.hi, c.hi_open
    merged = Constraint(None, frozenset(excluded), lo, lo_open, hi, hi_open)
    pool: list[Any] = sorted(allowed, key=repr) if allowed is not None else list(options or ())
    if allowed is not None or options:
        for candidate in pool:
            if candidate in excluded or not merged.admits(candidate):
                continue
            if options is not None and isinstance(candidate, str) and candidate not in options:
                continue
            return candidate
        return _NONE
    if lo > hi or (lo == hi and (lo_open or hi_open)):
        return _NONE
    if lo == -math.inf and hi == math.inf:
        return _OTHER
    if lo == -math.inf:
        value: float = hi - 1 if hi_open else hi
    elif hi == math.inf or not lo_open:
        value = lo + 1 if lo_open else lo
        if value > hi or (value == hi and hi_open):
            value = (lo + hi) / 2
    else:
        value = (lo + hi) / 2
    if value in excluded:
        return _NONE
    return int(value) if float(value).is_integer() else value


def _add(box: Box, node: ast.AST, constants: dict[str, Any]) -> bool:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return all(_add(box, v, constants) for v in node.values)
    ok, value = _const(node, constants)
    if ok:
        if not value:
            box.never = True
        return True
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, op, right = node.left, node.ops[0], node.comparators[0]
        path = _path(left) if _path(left) not in constants else None
        if path is None:
            path = _path(right) if _path(right) not in constants else None
            if path is None or type(op) not in _FLIP:
                return False
            left, right, op = right, left, _FLIP[type(op)]()
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right, ast.Tuple | ast.List):
                return False
            consts = [_const(e, constants) for e in right.elts]
            if not all(ok for ok, _ in consts):
                return False
            values = frozenset(v for _, v in consts)
            c = box.get(path)
            if isinstance(op, ast.In):
                c.allowed = values if c.allowed is None else c.allowed & values
            else:
                c.excluded = c.excluded | values
            return True
        ok, value = _const(right, constants)
        if not ok:
            return False
        return _compare(box.get(path), op, value)
    return False


def _compare(c: Constraint, op: ast.cmpop, value: Any) -> bool:
    if isinstance(op, ast.Eq):
        c.allowed = frozenset([value]) if c.allowed is None else c.allowed & {value}
        return True
    if isinstance(op, ast.NotEq):
        c.excluded = c.excluded | {value}
        return True
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    if isinstance(op, ast.Gt | ast.GtE):
        open_ = isinstance(op, ast.Gt)
        if value > c.lo or (value == c.lo and open_):
            c.lo, c.lo_open = value, open_
        return True
    if isinstance(op, ast.Lt | ast.LtE):
        open_ = isinstance(op, ast.Lt)
        if value < c.hi or (value == c.hi and open_):
            c.hi, c.hi_open = value, open_
        return True
    return False
