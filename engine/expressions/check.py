"""Parse an expression once and check it: whitelisted syntax, known names, fields and functions.

:func:`check_expression` returns the checked tree, the dotted names it reads and any warnings,
or raises :class:`ExpressionError` with the position of the problem inside the expression
(1-based line, 0-based character column on that line).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from engine.model.i18n import Text

from .errors import ExpressionError, ExpressionWarning
from .functions import FUNCTIONS, FunctionSpec
from .messages import closest, did_you_mean, quoted_list
from .safeops import MAX_STRING_LENGTH
from .scope import NameInfo, Scope

__all__ = [
    "MAX_DEPTH",
    "MAX_SOURCE_LENGTH",
    "Checked",
    "check_expression",
    "node_position",
    "parse_expression",
]

MAX_SOURCE_LENGTH = 2_000
MAX_DEPTH = 50

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARYOPS = (ast.Not, ast.USub, ast.UAdd)
_CMPOPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_LITERAL_ALIASES = {"true": "True", "false": "False", "null": "None", "none": "None"}


@dataclass(frozen=True, slots=True)
class Checked:
    tree: ast.Expression
    names: frozenset[str]
    warnings: tuple[ExpressionWarning, ...]


# ---- parsing ----------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Python's parser message (a fragment of it) → the Chinese wording.
_SYNTAX_MESSAGES: tuple[tuple[str, str], ...] = (
    ("invalid syntax. Perhaps you forgot a comma?", "语法错误，是不是漏了逗号？"),
    ("was never closed", "{token} 没有对应的右括号"),
    ("unmatched", "多了一个 {token}，找不到对应的左括号"),
    ("does not match opening parenthesis", "左右括号不匹配"),
    ("unterminated string literal", "文本缺少结尾的引号"),
    ("unterminated triple-quoted string", "文本缺少结尾的三引号"),
    ("leading zeros in decimal integer", "整数不能以 0 开头（例如把 09 写成 9）"),
    ("invalid decimal literal", "数字的写法不正确"),
    ("expected 'else' after 'if' expression", "if 表达式缺少 else 部分"),
    ("cannot assign", "表达式中不能赋值；比较请用 =="),
    ("invalid character", "包含无法识别的字符（是不是用了中文标点？）"),
    ("invalid non-printable character", "包含不可见的特殊字符"),
)


def _syntax_text(msg: str) -> Text:
    for needle, zh in _SYNTAX_MESSAGES:
        if needle in msg:
            token = re.search(r"'[^']*'", msg)
            return Text(f"syntax error: {msg}", zh.format(token=token.group(0) if token else ""))
    return Text(f"syntax error: {msg}", "语法错误，这里的写法无法识别")


_STRING_LITERAL = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")


def _syntax_hint(source: str, line_text: str, col: int) -> Text | None:
    source = _STRING_LITERAL.sub("''", source)  # an '=' inside text is not a mistake
    if "===" in source or "!==" in source:
        return Text("use == and != (there is no === or !==)", "请用 == 和 !=（没有 === 或 !==）")
    if "&&" in source:
        return Text("use 'and' instead of &&", "请用 and 代替 &&")
    if "||" in source:
        return Text("use 'or' instead of ||", "请用 or 代替 ||")
    if "<>" in source:
        return Text("use != instead of <>", "请用 != 代替 <>")
    if re.search(r"!(?!=)", source):
        return Text("use 'not' instead of !", "请用 not 代替 !")
    if re.search(r"(?<![=!<>])=(?!=)", source):
        return Text(
            "use == to compare (a single = is not allowed)", "比较是否相等请用 ==（不能用单个 =）"
        )
    if re.search(r"[，。：；（）【】“”‘’]", source):
        return Text(
            "use English punctuation: , ( ) ' \" instead of ，（）‘ ’",
            "请使用英文标点：用 , ( ) ' \" 代替 ，（）‘ ’",
        )
    if col >= len(line_text.rstrip()):
        return Text(
            "something is missing at the end of the expression",
            "表达式末尾缺少内容（例如运算符后面的值）",
        )
    return None


def _lines(source: str) -> list[str]:
    return _LINE_BREAK.split(source)


def _end_position(lines: list[str]) -> tuple[int, int]:
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            return index + 1, len(lines[index].rstrip())
    return 1, 0


def _check_brackets(source: str) -> None:
    """A closing bracket without an opening one would close our own wrapping paren."""
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.OP:
                continue
            if tok.string in ("(", "[", "{"):
                depth += 1
            elif tok.string in (")", "]", "}"):
                depth -= 1
                if depth < 0:
                    line, col = tok.start
                    raise ExpressionError(
                        "expr-syntax",
                        Text(
                            f"syntax error: unmatched '{tok.string}'",
                            f"多了一个 '{tok.string}'，找不到对应的左括号",
                        ),
                        line=line,
                        col=col,
                        end_col=col + 1,
                    )
    except (tokenize.TokenError, SyntaxError):
        return  # the parser reports it


def parse_expression(source: str) -> ast.Expression:
    """``ast.parse(source, mode="eval")`` with positions relative to ``source``.

    Multi-line text and text with leading blanks is parsed inside parentheses (so YAML block
    scalars work); positions are shifted back so they point into ``source``.
    """
    if not source.strip():
        raise ExpressionError(
            "expr-syntax", Text("the expression is empty", "表达式为空"), line=1, col=0
        )
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            "expr-too-complex",
            Text(
                f"the expression is too long ({len(source)} characters, at most "
                f"{MAX_SOURCE_LENGTH})",
                f"表达式太长（{len(source)} 个字符，最多 {MAX_SOURCE_LENGTH} 个）",
            ),
            hint=_SPLIT_HINT,
        )
    wrapped = "\n" in source or "\r" in source or source[:1].isspace()
    text = source
    if wrapped:
        _check_brackets(source)
        text = "(\n" + source + "\n)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences in text
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        _raise_syntax(exc, source, 1 if wrapped else 0)
    except (RecursionError, MemoryError):
        raise _too_complex(1, 0) from None
    if wrapped:
        ast.increment_lineno(tree, -1)
    return tree


def _raise_syntax(exc: SyntaxError, source: str, shift: int) -> NoReturn:
    lines = _lines(source)
    msg = exc.msg or "invalid syntax"
    if "too many nested parentheses" in msg:
        raise _too_complex(1, 0) from None
    line = (exc.lineno or 0) - shift
    offset = exc.offset or 0
    if line < 1 or line > len(lines) or offset <= 0:
        line, col = _end_position(lines)
        end_col = None
        message = Text("the expression is incomplete", "表达式不完整")
        if "never closed" in msg and shift == 0:
            message = _syntax_text(msg)
    else:
        line_text = lines[line - 1]
        col = min(offset - 1, len(line_text))
        end_col = None
        if exc.end_lineno == exc.lineno and exc.end_offset and exc.end_offset - 1 > col:
            end_col = min(exc.end_offset - 1, len(line_text))
        message = _syntax_text(msg)
    hint = _syntax_hint(source, lines[line - 1], col)
    raise ExpressionError(
        "expr-syntax", message, hint=hint, line=line, col=col, end_col=end_col
    ) from None


_SPLIT_HINT = Text(
    "split it into smaller rules or computed fields", "请拆分成几条较小的规则或计算字段"
)


def _too_complex(line: int, col: int) -> ExpressionError:
    return ExpressionError(
        "expr-too-complex",
        Text(
            f"the expression is nested too deeply (at most {MAX_DEPTH} levels)",
            f"表达式嵌套层数太多（最多 {MAX_DEPTH} 层）",
        ),
        hint=_SPLIT_HINT,
        line=line,
        col=col,
    )


def node_position(source: str, node: ast.AST) -> dict[str, Any]:
    """``line``/``col``/``end_col`` of ``node`` in characters (the AST counts UTF-8 bytes)."""
    encoded = [line.encode("utf-8") for line in _lines(source)]

    def char_col(line: int, byte_col: int) -> int:
        if 1 <= line <= len(encoded):
            return len(encoded[line - 1][:byte_col].decode("utf-8", errors="replace"))
        return byte_col

    line = max(1, getattr(node, "lineno", 1))
    col = char_col(line, getattr(node, "col_offset", 0))
    end_col = None
    if getattr(node, "end_lineno", None) == getattr(node, "lineno", None):
        end_col = char_col(line, getattr(node, "end_col_offset", 0))
    return {"line": line, "col": col, "end_col": end_col}


# ---- checking ---------------------------------------------------------------------------

_FORBIDDEN: dict[type[ast.AST], tuple[Text, Text | None]] = {
    ast.Lambda: (
        Text("lambda functions", "lambda 函数"),
        Text("functions cannot be defined in an expression", "表达式中不能定义函数"),
    ),
    ast.ListComp: (
        Text("comprehensions", "推导式"),
        Text(
            "to work on a child table use a path: sum(lines.qty), len(lines)",
            "要处理子表，请直接写路径，例如 sum(lines.qty)、len(lines)",
        ),
    ),
    ast.JoinedStr: (
        Text("f-strings", "f 字符串"),
        Text("join text with +, e.g. 'No. ' + str(x)", "请用 + 拼接文本，例如 'No. ' + str(x)"),
    ),
    ast.Starred: (Text("* unpacking", "* 解包"), None),
    ast.NamedExpr: (
        Text(":= assignments", ":= 赋值"),
        Text("use == to compare", "比较是否相等请用 =="),
    ),
    ast.Await: (Text("await", "await"), None),
    ast.Yield: (Text("yield", "yield"), None),
    ast.YieldFrom: (Text("yield", "yield"), None),
    ast.Set: (
        Text("sets { }", "集合 { }"),
        Text("use a list [a, b] or a tuple (a, b)", "请改用列表 [a, b] 或元组 (a, b)"),
    ),
    ast.Dict: (Text("dictionaries { : }", "字典 { : }"), None),
    ast.Slice: (
        Text("slicing", "切片"),
        Text("use a single index such as x[0]", "只能使用单个下标，例如 x[0]"),
    ),
    ast.keyword: (
        Text("keyword arguments", "关键字参数"),
        Text("pass arguments by position, e.g. round(x, 2)", "请按位置传参，例如 round(x, 2)"),
    ),
}
_FORBIDDEN[ast.SetComp] = _FORBIDDEN[ast.DictComp] = _FORBIDDEN[ast.ListComp]
_FORBIDDEN[ast.GeneratorExp] = _FORBIDDEN[ast.ListComp]
_FORBIDDEN[ast.FormattedValue] = _FORBIDDEN[ast.JoinedStr]

_BITWISE = Text("bitwise operators (& | ^ ~ << >> @)", "位运算符（& | ^ ~ << >> @）")
_BITWISE_HINT = Text("use and / or / not", "请使用 and / or / not")
_IS_HINT = Text("use == or != to compare values", "比较值请用 == 或 !=")


def _node_name(node: ast.AST) -> Text:
    name = type(node).__name__
    return Text(f"'{name}'", f"'{name}'")


class _Checker:
    def __init__(self, source: str, scope: Scope, functions: Mapping[str, FunctionSpec]) -> None:
        self.source = source
        self.scope = scope
        self.functions = functions
        self.lines = _lines(source)
        self.names: set[str] = set()
        self.warnings: list[ExpressionWarning] = []
        self.path_of: dict[int, str] = {}  # id(node) → dotted path, for messages

    # -- positions --

    def position(self, node: ast.AST) -> dict[str, Any]:
        return node_position(self.source, node)

    def attr_position(self, node: ast.Attribute) -> dict[str, Any]:
        """The ``.teir`` part of ``customer.teir`` (falls back to the whole node)."""
        pos = self.position(node)
        if pos["end_col"] is None or node.end_lineno is None:
            return pos
        line_text = self.lines[node.end_lineno - 1]
        start = pos["end_col"] - len(node.attr)
        if line_text[start : pos["end_col"]] != node.attr:
            return pos
        if start > 0 and line_text[start - 1] == ".":
            start -= 1
        return {"line": pos["line"], "col": start, "end_col": pos["end_col"]}

    def fail(
        self,
        code: str,
        message: Text,
        node: ast.AST,
        hint: Text | None = None,
        suggestion: str | None = None,
        pos: dict[str, Any] | None = None,
    ) -> NoReturn:
        where = pos if pos is not None else self.position(node)
        raise ExpressionError(code, message, hint=hint, suggestion=suggestion, **where)

    def forbid(self, node: ast.AST, what: Text, hint: Text | None = None) -> NoReturn:
        zh = " " + what.zh if what.zh[:1].isascii() else what.zh
        self.fail(
            "expr-forbidden",
            Text(f"{what.en} are not allowed in expressions", f"表达式中不支持{zh}"),
            node,
            hint,
        )

    def underscore(self, node: ast.AST, name: str, pos: dict[str, Any] | None = None) -> None:
        if name.startswith("_"):
            self.fail(
                "expr-forbidden",
                Text(
                    f"'{name}': names starting with _ are not allowed",
                    f"'{name}'：不允许使用以 _ 开头的名称",
                ),
                node,
                pos=pos,
            )

    # -- the walk --

    def visit(self, node: ast.AST, depth: int) -> NameInfo | None:
        """Check ``node``; return the :class:`NameInfo` it denotes when it is a path."""
        if depth > MAX_DEPTH:
            pos = self.position(node)
            raise _too_complex(pos["line"], pos["col"])
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            self.visit_forbidden(node)
        result: NameInfo | None = method(node, depth + 1)
        return result

    def visit_forbidden(self, node: ast.AST) -> NoReturn:
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            self.forbid(node, _BITWISE, _BITWISE_HINT)
        what, hint = _FORBIDDEN.get(type(node), (_node_name(node), None))
        self.forbid(node, what, hint)

    def visit_Expression(self, node: ast.Expression, depth: int) -> None:
        self.check_condition_tuple(node.body)
        self.visit(node.body, depth)

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> None:
        for value in node.values:
            self.check_condition_tuple(value)
            self.visit(value, depth)

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> NameInfo | None:
        if not isinstance(node.op, _BINOPS):
            self.visit_forbidden(node)
        left = _category(self.visit(node.left, depth))
        right = _category(self.visit(node.right, depth))
        if left == right == "number":
            return _TYPED["decimal"]
        if left == right == "text" and isinstance(node.op, ast.Add):
            return _TYPED["text"]
        return None

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> NameInfo | None:
        if not isinstance(node.op, _UNARYOPS):
            self.visit_forbidden(node)
        operand = self.visit(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return _TYPED["boolean"]
        return _TYPED["decimal"] if _category(operand) == "number" else None

    def visit_IfExp(self, node: ast.IfExp, depth: int) -> NameInfo | None:
        self.visit(node.test, depth)
        body = self.visit(node.body, depth)
        orelse = self.visit(node.orelse, depth)
        if _is_none(node.orelse):
            return body if _category(body) is not None else None
        if _is_none(node.body):
            return orelse if _category(orelse) is not None else None
        same = _category(body) is not None and _category(body) == _category(orelse)
        return body if same else None

    def visit_Constant(self, node: ast.Constant, depth: int) -> NameInfo | None:
        value = node.value
        if not isinstance(value, _CONSTANT_TYPES):
            what = Text("constants like this", "这种常量")
            if isinstance(value, bytes):
                what = Text("bytes literals", "字节串")
            elif isinstance(value, complex):
                what = Text("complex numbers", "复数")
            self.forbid(node, what)
        if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            self.fail(
                "expr-too-complex",
                Text("this text is too long", "这段文本太长"),
                node,
            )
        return _constant_info(value)

    def visit_List(self, node: ast.List, depth: int) -> None:
        for elt in node.elts:
            self.visit(elt, depth)

    visit_Tuple = visit_List

    def visit_Compare(self, node: ast.Compare, depth: int) -> NameInfo:
        operands = [node.left, *node.comparators]
        infos = [self.visit(operand, depth) for operand in operands]
        for index, op in enumerate(node.ops):
            left, right = operands[index], operands[index + 1]
            if isinstance(op, ast.Is | ast.IsNot):
                if not (_is_none(left) or _is_none(right)):
                    self.fail(
                        "expr-forbidden",
                        Text(
                            "'is' / 'is not' only work with None",
                            "is / is not 只能与 None 一起使用",
                        ),
                        node,
                        _IS_HINT,
                    )
                continue
            if not isinstance(op, _CMPOPS):
                self.visit_forbidden(node)
            self.check_options(op, left, infos[index], right, infos[index + 1])
            self.check_types(op, left, infos[index], right, infos[index + 1])
        return _TYPED["boolean"]

    def visit_Call(self, node: ast.Call, depth: int) -> NameInfo | None:
        func = node.func
        if not isinstance(func, ast.Name):
            hint = None
            if isinstance(func, ast.Attribute) and func.attr in self.functions:
                hint = Text(
                    f"call it as a function: {func.attr}(…)", f"请写成函数形式：{func.attr}(…)"
                )
            if isinstance(func, ast.Attribute):
                self.underscore(func, func.attr, self.attr_position(func))
            self.fail(
                "expr-forbidden",
                Text("only functions can be called, by name", "只能按名称调用函数"),
                func,
                hint or Text("call a function by its name, e.g. upper(x)", "例如 upper(x)"),
            )
        name = func.id
        self.underscore(func, name)
        for keyword in node.keywords:
            self.visit_forbidden(keyword)
        spec = self.functions.get(name)
        if spec is None:
            self.unknown_function(func)
        count = len(node.args)
        if not spec.accepts(count):
            self.fail(
                "expr-arity",
                Text(
                    f"{name} {spec.arity_text().en}, got {count}",
                    f"{name} {spec.arity_text().zh}，实际传入了 {count} 个",
                ),
                node,
                Text(f"{name}: {spec.doc.en}", f"{name}：{spec.doc.zh}"),
            )
        for arg in node.args:
            self.visit(arg, depth)
        returns = _RETURNS.get(name) if self.functions.get(name) is FUNCTIONS.get(name) else None
        return _TYPED[returns] if returns else None

    def unknown_function(self, func: ast.Name) -> NoReturn:
        name = func.id
        if self.scope.lookup(name) is not None:
            self.fail(
                "expr-unknown-function",
                Text(f"'{name}' is a field, not a function", f"'{name}' 是字段，不是函数"),
                func,
                Text("remove the parentheses after it", "请去掉它后面的括号"),
            )
        best = closest(name, self.functions)
        hint = did_you_mean(best + "()") if best else None
        if hint is None:
            hint = Text("functions: ", "可用函数：") + quoted_list(sorted(self.functions), 30)
        self.fail(
            "expr-unknown-function",
            Text(f"unknown function '{name}'", f"未知函数 '{name}'"),
            func,
            hint,
            best,
        )

    def visit_Name(self, node: ast.Name, depth: int) -> NameInfo:
        return self.resolve_path(node, depth)

    def visit_Attribute(self, node: ast.Attribute, depth: int) -> NameInfo | None:
        return self.resolve_path(node, depth)

    def visit_Subscript(self, node: ast.Subscript, depth: int) -> NameInfo | None:
        return self.resolve_path(node, depth)

    # -- names and paths --

    def resolve_path(self, node: ast.expr, depth: int) -> NameInfo:
        """Check a chain such as ``lines[0].product.price`` and return what it denotes."""
        chain: list[ast.Attribute | ast.Subscript] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute | ast.Subscript):
            chain.append(base)
            base = base.value
        chain.reverse()  # innermost first
        if depth + len(chain) > MAX_DEPTH:
            pos = self.position(node)
            raise _too_complex(pos["line"], pos["col"])
        for link in chain:
            if isinstance(link, ast.Attribute):
                self.underscore(link, link.attr, self.attr_position(link))
            else:
                self.check_index(link)
        if not isinstance(base, ast.Name):
            attribute = next((c for c in chain if isinstance(c, ast.Attribute)), None)
            if attribute is not None:
                self.fail(
                    "expr-forbidden",
                    Text(
                        "a .field can only follow a field name, e.g. customer.tier",
                        "只能在字段名后面用 . 取下级字段，例如 customer.tier",
                    ),
                    attribute,
                    pos=self.attr_position(attribute),
                )
            self.visit(base, depth + len(chain))
            return _ANY
        info = self.name_info(base)
        parts = [base.id]
        mapped = False  # True once the path went through a child table (yields a list)
        for link in chain:
            if isinstance(link, ast.Subscript):
                info, mapped = self.index_info(link, info, mapped)
                continue
            info, was_rows = self.field_info(link, info, parts)
            mapped = mapped or was_rows
            parts.append(link.attr)
        dotted = ".".join(parts)
        self.names.add(dotted)
        self.path_of[id(node)] = dotted
        return _ANY if mapped else info

    def name_info(self, node: ast.Name) -> NameInfo:
        name = node.id
        self.underscore(node, name)
        info = self.scope.lookup(name)
        if info is not None:
            return info
        if name in self.functions:
            self.fail(
                "expr-unknown-name",
                Text(
                    f"'{name}' is a function: call it as {name}()",
                    f"'{name}' 是函数，请写成 {name}()",
                ),
                node,
                suggestion=f"{name}()",
            )
        alias = _LITERAL_ALIASES.get(name.lower())
        best = alias or closest(name, [*self.scope.names, *self.functions])
        if best in self.functions and best not in self.scope.names:
            best = f"{best}()"
        hint = did_you_mean(best) if best else None
        if hint is None and self.scope.names:
            hint = Text("names: ", "可用名称：") + quoted_list(sorted(self.scope.names))
        self.fail(
            "expr-unknown-name",
            Text(f"unknown name '{name}'", f"未知名称 '{name}'"),
            node,
            hint,
            best,
        )

    def field_info(
        self, node: ast.Attribute, info: NameInfo, parts: list[str]
    ) -> tuple[NameInfo, bool]:
        path = ".".join(parts)
        if info.kind == "value":
            self.fail(
                "expr-not-a-record",
                Text(
                    f"'{path}' is a single value, it has no field '{node.attr}'",
                    f"'{path}' 是单个值，没有下级字段 '{node.attr}'",
                ),
                node,
                pos=self.attr_position(node),
            )
        child = info.child(node.attr)
        if child is None:
            fields = info.field_names()
            best = closest(node.attr, fields)
            hint = did_you_mean(best) if best else None
            if hint is None and fields:
                hint = Text(f"fields of {path}: ", f"{path} 的字段：") + quoted_list(fields)
            self.fail(
                "expr-unknown-field",
                Text(
                    f"'{path}' has no field '{node.attr}'",
                    f"'{path}' 没有字段 '{node.attr}'",
                ),
                node,
                hint,
                best,
                self.attr_position(node),
            )
        return child, info.kind == "rows"

    def check_index(self, node: ast.Subscript) -> None:
        index = node.slice
        if isinstance(index, ast.Slice):
            self.visit_forbidden(index)
        if _int_constant(index) is None:
            self.fail(
                "expr-forbidden",
                Text("an index must be a fixed whole number", "下标必须是固定的整数"),
                index,
                Text("e.g. lines[0] or lines[-1]", "例如 lines[0] 或 lines[-1]"),
            )

    def index_info(
        self, node: ast.Subscript, info: NameInfo, mapped: bool
    ) -> tuple[NameInfo, bool]:
        if mapped:
            return info, False  # lines.qty[0]: the first row's qty
        if info.kind == "rows":
            return NameInfo("record", info.type, None, info.fields, info.open), False
        if info.kind == "record" and not info.open:
            self.fail(
                "expr-not-a-list",
                Text(
                    "only lists and child tables can be indexed with [ ]",
                    "只有列表和子表可以用 [ ] 取下标",
                ),
                node,
                Text("use a field name: customer.tier", "请使用字段名，例如 customer.tier"),
            )
        if info.type == "multiselect":
            return NameInfo("value", "select", info.options), False
        return _ANY, False

    # -- select options --

    def check_options(
        self,
        op: ast.cmpop,
        left: ast.expr,
        left_info: NameInfo | None,
        right: ast.expr,
        right_info: NameInfo | None,
    ) -> None:
        if isinstance(op, ast.Eq | ast.NotEq):
            self.check_option(left_info, left, right)
            self.check_option(right_info, right, left)
        elif isinstance(op, ast.In | ast.NotIn):
            if (
                left_info is not None
                and left_info.type == "select"
                and isinstance(right, ast.List | ast.Tuple)
            ):
                for elt in right.elts:
                    self.check_option(left_info, left, elt)
            if right_info is not None and right_info.type == "multiselect":
                self.check_option(right_info, right, left)

    def check_option(self, info: NameInfo | None, field: ast.expr, node: ast.expr) -> None:
        if info is None or not info.options or info.kind != "value":
            return
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            return
        value = node.value
        if value in info.options:
            return
        path = self.path_of.get(id(field), "this field")
        path_zh = self.path_of.get(id(field), "该字段")
        best = closest(value, info.options)
        hint = (
            did_you_mean(best)
            if best
            else Text("options: ", "可选值：") + quoted_list(info.options)
        )
        self.fail(
            "expr-unknown-option",
            Text(
                f"'{value}' is not one of the options of {path}: the comparison never holds",
                f"'{value}' 不是 {path_zh} 的可选值：这个比较永远不成立",
            ),
            node,
            hint,
            best,
        )

    # -- types --

    def check_types(
        self,
        op: ast.cmpop,
        left: ast.expr,
        left_info: NameInfo | None,
        right: ast.expr,
        right_info: NameInfo | None,
    ) -> None:
        """Refuse comparing values that can never be compared: a date with text, a number
        with text, a date with a number (they never match, or fail at run time)."""
        if isinstance(op, ast.In | ast.NotIn):
            if isinstance(right, ast.List | ast.Tuple):
                for elt in right.elts:
                    self.check_pair(left, left_info, elt, _constant_of(elt))
            return
        self.check_pair(left, left_info, right, right_info)

    def check_pair(
        self,
        left: ast.expr,
        left_info: NameInfo | None,
        right: ast.expr,
        right_info: NameInfo | None,
    ) -> None:
        a, b = _category(left_info), _category(right_info)
        if a is None or b is None or a == b:
            return
        if {a, b} <= {"number", "boolean"} or {a, b} <= {"date", "datetime"}:
            return  # True == 1; a date-time against a date compares in the database
        if id(left) not in self.path_of and id(right) not in self.path_of:
            return  # only a field's type is known for sure (1 == 'a' is plain to see)
        # the side that is a literal is the one to rewrite
        field, value, field_cat, value_cat = left, right, a, b
        if isinstance(left, ast.Constant) and not isinstance(right, ast.Constant):
            field, value, field_cat, value_cat = right, left, b, a
        name = self.path_of.get(id(field))
        what_en, what_zh = _KIND[field_cat]
        other_en, other_zh = _KIND[value_cat]
        subject_en = f"{what_en} ({name})" if name else what_en
        subject_zh = f"{what_zh}（{name}）" if name else what_zh
        self.fail(
            "expr-type-mismatch",
            Text(
                f"compares {subject_en} with {other_en}: they are never equal and cannot be "
                "ordered",
                f"把{subject_zh}和{other_zh}比较：两者永远不相等，也无法比较大小",
            ),
            value,
            _type_hint(field_cat, value),
        )

    def check_condition_tuple(self, node: ast.expr) -> None:
        """``amount >= 500,000`` is a pair (always true), not a comparison with 500000."""
        if not isinstance(node, ast.Tuple):
            return
        segment = ast.get_source_segment(self.source, node) or ""
        if segment.startswith("("):
            return
        fixed = _THOUSANDS.sub(lambda m: m[0].replace(",", ""), segment)
        if fixed != segment:
            self.fail(
                "expr-thousands-separator",
                Text(
                    "a number is written with a thousands separator: the comma makes it a "
                    "list of two values, and the condition always holds",
                    "数字中写了千位分隔符：逗号把它变成了两个值的列表，条件将永远成立",
                ),
                node,
                Text(f"write {fixed}", f"请写成 {fixed}"),
                fixed,
            )
        self.fail(
            "expr-forbidden",
            Text(
                "a comma outside brackets makes a list of values, not a condition",
                "括号外的逗号会构成一组值，而不是条件",
            ),
            node,
            Text("join conditions with 'and' / 'or'", "请用 and / or 连接多个条件"),
        )


_ANY = NameInfo("value", "any")

# the kinds of values the checker compares: field types (and literal types) → a category
_CATEGORIES: dict[str, str] = {
    "integer": "number",
    "decimal": "number",
    "money": "number",
    "text": "text",
    "long_text": "text",
    "select": "text",
    "phone": "text",
    "email": "text",
    "autonumber": "text",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
}
_KIND: dict[str, tuple[str, str]] = {
    "number": ("a number", "数字"),
    "text": ("text", "文本"),
    "date": ("a date", "日期"),
    "datetime": ("a date-time", "日期时间"),
    "boolean": ("yes/no", "是/否"),
}
_TYPED = {t: NameInfo("value", t) for t in (*_CATEGORIES, "null", "list")}
# result types of the language's own functions (None: depends on the arguments)
_RETURNS: dict[str, str] = {
    "today": "date",
    "date": "date",
    "add_days": "date",
    "add_workdays": "date",
    "now": "datetime",
    "datetime": "datetime",
    "workdays_between": "integer",
    "len": "integer",
    "int": "integer",
    "hours_between": "decimal",
    "business_hours_between": "decimal",
    "round": "decimal",
    "abs": "decimal",
    "float": "decimal",
    "decimal": "decimal",
    "sum": "decimal",
    "str": "text",
    "upper": "text",
    "lower": "text",
    "contains": "boolean",
    "startswith": "boolean",
}
_THOUSANDS = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\w.])")
_DATE_TEXT = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$")
_DATETIME_TEXT = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}(:\d{2})?$")
_NUMBER_TEXT = re.compile(r"^[+-]?\d[\d,]*(\.\d+)?$")


def _category(info: NameInfo | None) -> str | None:
    if info is None or info.kind != "value" or info.type is None:
        return None
    return _CATEGORIES.get(info.type)


def _constant_info(value: Any) -> NameInfo | None:
    if isinstance(value, bool):
        return _TYPED["boolean"]
    if isinstance(value, int):
        return _TYPED["integer"]
    if isinstance(value, float):
        return _TYPED["decimal"]
    if isinstance(value, str):
        return _TYPED["text"]
    return _TYPED["null"] if value is None else None


def _constant_of(node: ast.expr) -> NameInfo | None:
    if isinstance(node, ast.Constant):
        return _constant_info(node.value)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub | ast.UAdd)
        and isinstance(node.operand, ast.Constant)
    ):
        return _constant_info(node.operand.value)
    return None


def _type_hint(field: str, literal: ast.expr) -> Text:
    """How to write ``literal`` as a value of the ``field`` category."""
    text = literal.value if isinstance(literal, ast.Constant) else None
    if isinstance(text, str):
        if field == "date" and _DATE_TEXT.match(text.strip()):
            return Text(f"write date('{text.strip()}')", f"请写成 date('{text.strip()}')")
        if field == "datetime" and (
            _DATETIME_TEXT.match(text.strip()) or _DATE_TEXT.match(text.strip())
        ):
            return Text(f"write datetime('{text.strip()}')", f"请写成 datetime('{text.strip()}')")
        if field == "number" and _NUMBER_TEXT.match(text.strip()):
            number = text.strip().replace(",", "")
            return Text(
                f"write the number without quotes: {number}", f"数字不要加引号，请写成 {number}"
            )
    if field == "text" and isinstance(text, int | float) and not isinstance(text, bool):
        return Text(f"write it in quotes: '{text}'", f"请加上引号：'{text}'")
    if field == "date":
        return Text(
            "compare with a date: date('2026-12-31'), today(), add_workdays(today(), 3)",
            "请与日期比较：date('2026-12-31')、today()、add_workdays(today(), 3)",
        )
    what_en, what_zh = _KIND[field]
    return Text(
        f"compare it with {what_en}, or convert one side (str(x), decimal(x), date(x))",
        f"请与{what_zh}比较，或先转换其中一边（str(x)、decimal(x)、date(x)）",
    )


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _int_constant(node: ast.expr) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    return None


def check_expression(source: str, scope: Scope, functions: Mapping[str, FunctionSpec]) -> Checked:
    """Parse and check ``source``; raise :class:`ExpressionError` on the first problem."""
    tree = parse_expression(source)
    checker = _Checker(source, scope, functions)
    checker.visit(tree, 0)
    return Checked(tree, frozenset(checker.names), tuple(checker.warnings))
