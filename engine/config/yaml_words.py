"""Plain words for YAML syntax errors, in English and Chinese.

PyYAML says "mapping values are not allowed here" or "found character '\\t' that cannot start
any token (while scanning for the next token)". People who edit YAML by hand make a handful of
mistakes over and over: a tab, a full-width colon, space or quote typed by a Chinese input
method, a ': ' inside a value, a value starting with a character YAML reserves (``%``, ``@``,
`` ` ``, ``|``…), an unclosed quote or bracket, a key indented one space off. ``explain`` looks
at the text around PyYAML's position, names the mistake at the place it was made and gives the
line that fixes it. No parser words ever reach the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.model.i18n import Text

_BREAKS = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_ITEM = re.compile(r"^( *)((?:- +)*)")
# A key typed with a full-width colon, or with a full-width space after the colon.
_FULLWIDTH_KEY = re.compile(r"([A-Za-z_][\w.-]*)[ \u3000]*(：|:\u3000)")
_RESERVED = {  # a character a value cannot start with unquoted: why, in both languages
    "%": Text("which YAML reserves", "这是 YAML 的保留字符"),
    "@": Text("which YAML reserves", "这是 YAML 的保留字符"),
    "`": Text("which YAML reserves", "这是 YAML 的保留字符"),
    "|": Text("which starts a block of text", "它表示多行文本块"),
    ">": Text("which starts a block of text", "它表示多行文本块"),
    "*": Text("which YAML reads as an alias", "YAML 会把它当成别名"),
    "&": Text("which YAML reads as an anchor", "YAML 会把它当成锚点"),
    "!": Text("which YAML reads as a tag", "YAML 会把它当成标签"),
    "[": Text("which starts a list", "它表示列表的开始"),
    "{": Text("which starts a mapping", "它表示映射的开始"),
    "-": Text("which starts a list item", "它表示列表项"),
    "'": Text("but goes on after the closing quote", "但闭合引号之后还有内容"),
    '"': Text("but goes on after the closing quote", "但闭合引号之后还有内容"),
}
_FULLWIDTH_QUOTES = "“”‘’「」『』"
# What PyYAML says when a value starts with a character it reads as syntax.
_VALUE_START_PROBLEMS = ("cannot start any token", "sequence entries are not allowed")
_VALUE_START_CONTEXTS = ("block scalar", "alias", "anchor", "tag")


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """A YAML syntax mistake in plain words, at the place it was made (1-based)."""

    line: int
    col: int
    message: Text
    hint: Text
    width: int = 1


@dataclass(frozen=True, slots=True)
class _Line:
    """One source line: its number, its text, its indentation and where its content starts."""

    number: int
    text: str

    @property
    def indent(self) -> int:
        return len(self.text) - len(self.text.lstrip(" "))

    @property
    def start(self) -> int:
        """0-based column where the content starts (after spaces and '- ' item markers)."""
        found = _ITEM.match(self.text)
        return found.end() if found else 0

    @property
    def content(self) -> bool:
        stripped = self.text.strip()
        return bool(stripped) and not stripped.startswith("#")

    def key(self) -> str | None:
        """The key of a ``key: value`` line (None when the line is not one)."""
        found = re.match(r"([^\s:#'\"{}\[\],][^:#]*?)\s*:(?:\s|$)", self.text[self.start :])
        return found.group(1) if found else None

    def key_colon(self) -> int | None:
        """0-based column of the ':' that ends the line's key."""
        key = self.key()
        if key is None:
            return None
        return self.text.index(":", self.start + len(key))


def split_lines(text: str) -> list[str]:
    return _BREAKS.split(text)


def _lines(text: str) -> list[_Line]:
    return [_Line(i + 1, t) for i, t in enumerate(split_lines(text))]


def fullwidth_key(line: str, start: int) -> SyntaxProblem | None:
    """A key typed with '：' or ':' + a full-width space, if the line starts with one."""
    found = _FULLWIDTH_KEY.match(line, start)
    if found is None:
        return None
    key = found.group(1)
    rest = line[found.end() :].strip()
    fixed = f"{key}: {rest}" if rest else f"{key}:"
    col = found.start(2) + 1
    if found.group(2) == "：":
        return SyntaxProblem(
            0,
            col,
            Text(
                f"full-width colon '：' after '{key}': YAML needs an ordinary colon ':' "
                "followed by a space",
                f"'{key}' 后面是全角冒号 '：'：YAML 需要半角冒号 ':' 加一个空格",
            ),
            Text(f"write `{fixed}`", f"请改成 `{fixed}`"),
        )
    return SyntaxProblem(
        0,
        col + 1,
        Text(
            f"full-width space after '{key}:': YAML needs an ordinary space after the colon",
            f"'{key}:' 后面是全角空格：YAML 要求冒号后是半角空格",
        ),
        Text(f"write `{fixed}`", f"请改成 `{fixed}`"),
    )


def fullwidth_indent(line: str) -> SyntaxProblem | None:
    """Full-width spaces (U+3000) in the indentation of a line."""
    found = re.match(r"[ \u3000]*", line)
    lead = found.group(0) if found else ""
    if "\u3000" not in lead:
        return None
    return SyntaxProblem(
        0,
        lead.index("\u3000") + 1,
        Text(
            "full-width spaces in the indentation: YAML indents with ordinary spaces only",
            "缩进里有全角空格：YAML 只能用半角空格缩进",
        ),
        Text(
            "switch the input method to half-width and indent with ordinary spaces",
            "请切换到半角输入，用普通空格缩进",
        ),
        width=len(lead) - lead.index("\u3000"),
    )


def _located(problem: SyntaxProblem, line: int) -> SyntaxProblem:
    return SyntaxProblem(line, problem.col, problem.message, problem.hint, problem.width)


def _scan_fullwidth(lines: list[_Line], upto: int) -> SyntaxProblem | None:
    """The last full-width trap in key position on lines 1..upto (the likeliest cause)."""
    found: SyntaxProblem | None = None
    for ln in lines[:upto]:
        if not ln.content:
            continue
        problem = fullwidth_indent(ln.text) or fullwidth_key(ln.text, ln.start)
        if problem is not None:
            found = _located(problem, ln.number)
    return found


def _quote_value(value: str) -> str:
    """``value`` as YAML that reads back as the text meant (full-width outer quotes dropped)."""
    if value[:1] in "“‘「『" and value[-1:] in "”’」』":
        value = value[1:-1]
    if value[:1] in "'\"" and value[-1:] == value[:1] and value.count(value[0]) == 2:
        return value
    if '"' in value and "'" not in value:
        return "'" + value + "'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value_of(ln: _Line) -> tuple[str, int] | None:
    """(value text, 0-based column) of a ``key: value`` line, or of a list item."""
    colon = ln.key_colon()
    if colon is not None:
        start = colon + 1
    elif ln.text[ln.indent : ln.indent + 1] == "-":
        start = ln.indent + 1
    else:
        return None
    rest = ln.text[start:]
    value = re.sub(r"\s+#.*$", "", rest).strip()
    if not value:
        return None
    return value, start + len(rest) - len(rest.lstrip())


def _fix_line(ln: _Line, value: str) -> str:
    key = ln.key()
    quoted = _quote_value(value)
    return f"{key}: {quoted}" if key is not None else f"- {quoted}"


def _whose(ln: _Line) -> Text:
    key = ln.key()
    if key is None:
        return Text("this list item", "这个列表项")
    return Text(f"the value of '{key}'", f"'{key}' 的值")


def _reserved_start(ln: _Line) -> SyntaxProblem | None:
    found = _value_of(ln)
    if found is None:
        return None
    value, col = found
    first = value[0]
    if first in _FULLWIDTH_QUOTES:
        return SyntaxProblem(
            ln.number,
            col + 1,
            _whose(ln)
            + Text(
                f" starts with the full-width quote '{first}': YAML only reads ordinary quotes "
                "(\" or ') as quotes",
                f"以全角引号 '{first}' 开头：YAML 只认半角引号（\" 或 '）",
            ),
            Text(f"write `{_fix_line(ln, value)}`", f"请改成 `{_fix_line(ln, value)}`"),
        )
    why = _RESERVED.get(first)
    if why is None or (first == "-" and value[1:2] not in (" ", "")):
        return None
    shown = "- " if first == "-" else first
    return SyntaxProblem(
        ln.number,
        col + 1,
        _whose(ln) + Text(f" starts with '{shown}', ", f"以 '{shown}' 开头，") + why,
        Text(
            f"put the value in quotes: `{_fix_line(ln, value)}`",
            f"请给值加上引号：`{_fix_line(ln, value)}`",
        ),
    )


def _colon_in_value(ln: _Line, col: int) -> SyntaxProblem | None:
    """'mapping values are not allowed' at a second ': ' of a ``key: value`` line."""
    colon = ln.key_colon()
    if colon is None or col - 1 <= colon:
        return None
    found = _value_of(ln)
    if found is None:
        return None
    value, _ = found
    key = ln.key()
    if value[0] in _FULLWIDTH_QUOTES:
        return _reserved_start(ln)
    return SyntaxProblem(
        ln.number,
        col,
        Text(
            f"the value of '{key}' contains ': ', which YAML reads as the start of another key",
            f"'{key}' 的值里有 ': '，YAML 会把它当成另一个键的开始",
        ),
        Text(
            f"put the value in quotes: `{_fix_line(ln, value)}`",
            f"请给值加上引号：`{_fix_line(ln, value)}`",
        ),
    )


def _previous(lines: list[_Line], number: int) -> list[_Line]:
    """Content lines before line ``number``, nearest first."""
    return [ln for ln in reversed(lines[: number - 1]) if ln.content]


def _name(ln: _Line) -> str:
    key = ln.key()
    if key is not None:
        return key
    return ln.text.strip()[:20]


def _mis_indented(ln: _Line, why: Text, hint: Text) -> SyntaxProblem:
    name = _name(ln)
    return SyntaxProblem(
        ln.number,
        ln.start + 1,
        Text(
            f"'{name}' at column {ln.start + 1} looks mis-indented: ",
            f"第 {ln.start + 1} 列的 '{name}' 缩进似乎不对：",
        )
        + why,
        hint,
        width=len(name),
    )


def _like(ln: _Line) -> Text:
    return Text(
        f"'{_name(ln)}' (column {ln.start + 1}, line {ln.number})",
        f"'{_name(ln)}'（第 {ln.number} 行第 {ln.start + 1} 列）",
    )


def _deeper_key(lines: list[_Line], ln: _Line) -> SyntaxProblem | None:
    """A key indented deeper than the line above it: read as that line's value going on."""
    before = _previous(lines, ln.number)
    if not before:
        return None
    above = before[0]
    if above.indent >= ln.indent or above.key() is None:
        return None
    earlier = next((p for p in before[1:]), None)
    if (
        earlier is not None
        and earlier.indent == above.indent
        and earlier.text.rstrip().endswith(":")
        and earlier.key() is not None
    ):
        # "quantity:" opens a block, yet the key under it sits at its column.
        return _mis_indented(
            above,
            Text(
                f"'{_name(earlier)}' above it opens a block, so it belongs inside",
                f"上面的 '{_name(earlier)}' 开始了一个块，它应在块内",
            ),
            Text("indent it like ", "请与 ") + _like(ln) + Text("", " 对齐"),
        )
    if earlier is not None and above.indent < earlier.indent and ln.indent <= earlier.indent:
        # The line above is the odd one out: it left its block, so this one reads as its value.
        return _mis_indented(
            above,
            Text(
                f"it ends the block above, so line {ln.number} is read as part of its value",
                f"它结束了上面的块，于是第 {ln.number} 行被当成了它的值",
            ),
            Text("indent it like ", "请与 ") + _like(earlier) + Text("", " 对齐"),
        )
    sibling = next((p for p in before if p.indent <= above.indent and p.key() is not None), above)
    return _mis_indented(
        ln,
        Text(
            f"it is read as part of the value of '{_name(above)}' on line {above.number}",
            f"它被当成了第 {above.number} 行 '{_name(above)}' 的值的一部分",
        ),
        Text("indent it like ", "请与 ") + _like(sibling) + Text("", " 对齐"),
    )


def _odd_indent(lines: list[_Line], ln: _Line) -> SyntaxProblem | None:
    """A key whose indentation matches none of the blocks it could belong to."""
    before = _previous(lines, ln.number)
    if not before:
        return None
    outer = next((p for p in before if p.indent < ln.indent), None)
    inside = [p for p in before if p.indent > ln.indent]
    if outer is not None:
        inside = [p for p in inside if p.number > outer.number]
    inner = min(inside, key=lambda p: (p.indent, -p.number)) if inside else None
    if outer is not None and inner is not None and inner.number > outer.number:
        return _mis_indented(
            ln,
            Text(
                f"it lines up neither with '{_name(inner)}' (column {inner.start + 1}) nor with "
                f"'{_name(outer)}' (column {outer.start + 1})",
                f"它既没有与 '{_name(inner)}'（第 {inner.start + 1} 列）对齐，也没有与 "
                f"'{_name(outer)}'（第 {outer.start + 1} 列）对齐",
            ),
            Text(
                f"indent it like '{_name(inner)}' to keep it inside '{_name(outer)}', or like "
                f"'{_name(outer)}' to start a new entry",
                f"与 '{_name(inner)}' 对齐表示属于 '{_name(outer)}'；与 '{_name(outer)}' "
                "对齐表示新的一项",
            ),
        )
    if inner is not None:
        return _mis_indented(
            ln,
            Text(
                f"it lines up with no key above it; '{_name(inner)}' on line {inner.number} "
                f"is at column {inner.start + 1}",
                f"它没有与上面的任何键对齐；第 {inner.number} 行的 '{_name(inner)}' 在第 "
                f"{inner.start + 1} 列",
            ),
            Text("indent it like ", "请与 ") + _like(inner) + Text("", " 对齐"),
        )
    return None


def _root_indented(lines: list[_Line]) -> SyntaxProblem | None:
    """The file's first key is indented, so the keys after it do not belong to anything."""
    first = next((ln for ln in lines if ln.content), None)
    if first is None or first.indent == 0:
        return None
    return _mis_indented(
        first,
        Text(
            "the top-level keys of a file start at column 1",
            "文件最外层的键应从第 1 列开始",
        ),
        Text(
            f"remove the {first.indent} space(s) before '{_name(first)}'",
            f"请删除 '{_name(first)}' 前面的 {first.indent} 个空格",
        ),
    )


def _tab(ln: _Line, col: int) -> SyntaxProblem:
    if ln.text[: col - 1].strip(" ") == "":
        return SyntaxProblem(
            ln.number,
            col,
            Text(
                "a tab is used for indentation: YAML indents with spaces only",
                "这里用 Tab 缩进：YAML 只能用空格缩进",
            ),
            Text("replace the tab with spaces", "请把 Tab 换成空格"),
        )
    return SyntaxProblem(
        ln.number,
        col,
        Text(
            "a tab inside a line: YAML ends the value at the tab",
            "行内有 Tab：YAML 会在 Tab 处截断这个值",
        ),
        Text(
            "replace the tab with a space, or put the value in quotes",
            "请把 Tab 换成空格，或给值加上引号",
        ),
    )


def _tab_hint(lines: list[_Line], ln: _Line, col: int) -> SyntaxProblem:
    problem = _tab(ln, col)
    if ln.text[: col - 1].strip(" ") != "":
        return problem
    before = _previous(lines, ln.number)
    if not before:
        return problem
    above = before[0]
    opens = above.text.rstrip().endswith(":")
    spaces = above.start + 2 if opens else above.start
    key = _Line(ln.number, ln.text.lstrip(" \t")).key() or ln.text.strip()[:20]
    how = (
        Text(
            f"replace the tab with {spaces} spaces so that '{key}' sits inside "
            f"'{_name(above)}' (line {above.number})",
            f"请把 Tab 换成 {spaces} 个空格，让 '{key}' 归属于第 {above.number} 行的 "
            f"'{_name(above)}'",
        )
        if opens
        else Text(
            f"replace the tab with {spaces} spaces so that '{key}' lines up with "
            f"'{_name(above)}' (line {above.number})",
            f"请把 Tab 换成 {spaces} 个空格，让 '{key}' 与第 {above.number} 行的 "
            f"'{_name(above)}' 对齐",
        )
    )
    return SyntaxProblem(problem.line, problem.col, problem.message, how)


def _unclosed_quote(lines: list[_Line], upto: int) -> SyntaxProblem | None:
    """The last value on lines 1..upto that opens a quote and does not close it on its line."""
    found: SyntaxProblem | None = None
    for ln in lines[:upto]:
        if not ln.content:
            continue
        value = _value_of(ln)
        if value is None or value[0][0] not in "'\"":
            continue
        text, col = value
        quote = text[0]
        body = text[1:].replace("\\\\", "").replace('\\"', "") if quote == '"' else text[1:]
        body = body.replace("''", "") if quote == "'" else body
        if quote not in body:
            found = _unclosed(ln.number, col + 1, quote)
    return found


def _unclosed(line: int, col: int, opener: str) -> SyntaxProblem:
    closer = {"'": "'", '"': '"', "[": "]", "{": "}"}.get(opener, opener)
    return SyntaxProblem(
        line,
        col,
        Text(
            f"the {opener} opened here is never closed",
            f"这里的 {opener} 没有闭合",
        ),
        Text(
            f"close it with {closer} on the same line",
            f"请在同一行用 {closer} 闭合",
        ),
    )


def explain(
    text: str,
    problem: str,
    context: str,
    line: int,
    col: int,
    context_at: tuple[int, int] | None = None,
) -> SyntaxProblem:
    """Plain words for PyYAML's ``problem`` at ``line``:``col`` (1-based) in ``text``."""
    lines = _lines(text)
    here = lines[line - 1] if 0 < line <= len(lines) else _Line(line, "")
    if "'\\t'" in problem:
        return _tab_hint(lines, here, col)
    if "quoted scalar" in context and context_at is not None:
        opener = lines[context_at[0] - 1].text[context_at[1] - 1 : context_at[1]] or '"'
        return _unclosed(*context_at, opener)
    found = _scan_fullwidth(lines, line) or _unclosed_quote(lines, line)
    if found is not None:
        return found
    if "flow mapping" in context or "flow sequence" in context:
        return _flow(lines, line, col, context, context_at)
    if "mapping values are not allowed" in problem:
        found = _colon_in_value(here, col) or _deeper_key(lines, here)
    elif any(w in problem for w in _VALUE_START_PROBLEMS) or any(
        w in context for w in _VALUE_START_CONTEXTS
    ):
        found = _reserved_start(here)
    elif "expected '<document start>'" in problem:
        found = _root_indented(lines) or _odd_indent(lines, here)
    elif "expected <block end>" in problem:
        found = _reserved_start(here) if "<scalar>" in problem else None
        found = found or _odd_indent(lines, here) or _root_indented(lines)
    elif "could not find expected ':'" in problem and context_at is not None:
        found = _missing_colon(lines, context_at)
    elif "another document" in problem:
        found = SyntaxProblem(
            line,
            col,
            Text("a second document ('---') in one file", "一个文件里出现了第二个文档（'---'）"),
            Text(
                "put one document per file: remove the '---' line",
                "每个文件只能有一个文档：请删除 '---' 这一行",
            ),
            width=3,
        )
    return found or SyntaxProblem(
        line,
        col,
        Text("YAML cannot read the file from here", "YAML 从这里开始无法读取"),
        Text(
            "check this line and the one above: each line is 'key: value' or '- item', "
            "keys of one mapping line up, and a value with special characters is quoted",
            "请检查这一行和上一行：每行应为 '键: 值' 或 '- 项'，同一层的键要对齐，"
            "含特殊字符的值要加引号",
        ),
    )


def _missing_colon(lines: list[_Line], at: tuple[int, int]) -> SyntaxProblem | None:
    ln = lines[at[0] - 1]
    start = at[1] - 1
    word = ln.text[start:].split()[0] if ln.text[start:].split() else ""
    if not word:
        return None
    rest = ln.text[start + len(word) :].strip()
    return SyntaxProblem(
        ln.number,
        at[1],
        Text(
            f"'{word}' has no ':' after it: each line of a mapping is 'key: value'",
            f"'{word}' 后面没有 ':'：映射的每一行应为 '键: 值'",
        ),
        Text(
            f"write `{word}: {rest}`" if rest else f"write `{word}: …`",
            f"请改成 `{word}: {rest}`" if rest else f"请改成 `{word}: …`",
        ),
        width=len(word),
    )


def _flow(
    lines: list[_Line], line: int, col: int, context: str, at: tuple[int, int] | None
) -> SyntaxProblem:
    opener, closer = ("{", "}") if "mapping" in context else ("[", "]")
    where = (
        Text(f" (opened on line {at[0]}, column {at[1]})", f"（第 {at[0]} 行第 {at[1]} 列打开）")
        if at is not None
        else Text("", "")
    )
    got = lines[line - 1].text[col - 1 : col] if 0 < line <= len(lines) else ""
    if got == ":":
        return SyntaxProblem(
            line,
            col,
            Text(
                f"a ':' inside {opener}…{closer} where YAML expects ',' or '{closer}'",
                f"{opener}…{closer} 里出现了 ':'，这里应为 ',' 或 '{closer}'",
            )
            + where,
            Text(
                "put a value that contains ': ' in quotes",
                "含有 ': ' 的值请加引号",
            ),
        )
    return SyntaxProblem(
        line,
        col,
        Text(f"the '{opener}' is not closed with '{closer}'", f"'{opener}' 没有用 '{closer}' 闭合")
        + where,
        Text(
            f"close it with '{closer}' on the same line, and put values that contain ', ' or "
            "': ' in quotes",
            f"请在同一行用 '{closer}' 闭合；含有 ', ' 或 ': ' 的值请加引号",
        ),
    )
