"""Check message templates (Jinja2) against what they are rendered with.

A notify step or an approval names a template; the template reads ``record.<field>`` (and
paths through refs: ``record.customer.name``) and a few other names (``steps``, ``task``…).
A field the form does not have renders as empty text at run time, so it is an error here,
at the template's own file:line, with a did-you-mean.

Layout: the message environment drops the line break after a ``{% … %}`` or ``{# … #}`` tag
that ends a line (``trim_blocks``), so a line that prints text and then ends in a tag runs into
the next line (``### 标题{% if x %}`` glues the heading to the first bullet). That is a warning
here (``template-tag-joins-lines``) at the tag's file:line:col.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import meta, nodes

from engine.compile.context import CompileContext
from engine.config.workspace import display_path, read_source
from engine.expressions import NameInfo
from engine.model.diagnostics import Mark, suggestion_hint
from engine.model.display import TEMPLATE_FILTERS
from engine.model.i18n import Text

__all__ = [
    "APPROVAL_NAMES",
    "AUTOMATION_NAMES",
    "LAYOUT",
    "TRACKING_NAMES",
    "TRACK_LINK_NAMES",
    "check_template_names",
    "track_link_names",
]

# what each kind of message is rendered with (flows/runner.py, flows/approvals/service.py,
# tracking/codes.py); automations of the tracked form also get TRACK_LINK_NAMES
# (engine.flows.links.track_names) when the app has ``tracking:``
AUTOMATION_NAMES = ("record", "steps", "state_label", "trigger", "agreed", "app")
TRACK_LINK_NAMES = ("track_url",)
APPROVAL_NAMES = ("record", "event", "app", "approval", "task")
TRACKING_NAMES = ("code", "minutes", "app")

_ENV = jinja2.Environment(autoescape=False)  # parsing only; rendering is sandboxed at run time
_ENV.filters.update(TEMPLATE_FILTERS)  # the filters the message environment has
_CACHE_KEY = "message_templates"
# the message environment's whitespace rules (engine.flows.messages.message_environment;
# tests/test_template_layout_lint.py keeps the two the same)
LAYOUT = {"trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": False}
_LEXER = jinja2.Environment(**LAYOUT)  # type: ignore[arg-type]
_TAG_START = re.compile(r"\{[%#]")


def track_link_names(ctx: CompileContext, form: str | None) -> tuple[str, ...]:
    """TRACK_LINK_NAMES when ``form`` is the one app.yaml's ``tracking.records.form`` tracks
    (its messages get ``track_url``), else ()."""
    data = ctx.ws.app.data if ctx.ws.app is not None else None
    tracking = data.get("tracking") if isinstance(data, dict) else None
    records = tracking.get("records") if isinstance(tracking, dict) else None
    tracked = records.get("form") if isinstance(records, dict) else None
    return TRACK_LINK_NAMES if form is not None and tracked == form else ()


@dataclass(frozen=True)
class _Parsed:
    shown: str
    lines: list[str]
    tree: nodes.Template | None
    declared: frozenset[str]  # names the template sets itself ({% set %}, loop targets)


def check_template_names(
    ctx: CompileContext,
    file: Path,
    form: str | None,
    record: NameInfo | None,
    names: Iterable[str],
) -> None:
    """Report ``record.<x>`` paths the form does not have and names the message is not
    rendered with; each problem once per template (several steps may share it)."""
    parsed = _parse(ctx, file)
    if parsed is None or parsed.tree is None:
        return
    reported: set[tuple[str, ...]] = ctx.extras.setdefault(_CACHE_KEY + ".reported", set())
    known = set(names)
    for name in sorted(meta.find_undeclared_variables(parsed.tree)):
        if name in known or name in _ENV.globals or (parsed.shown, name) in reported:
            continue
        reported.add((parsed.shown, name))
        line = _first_line(parsed.tree, name)
        _report(
            ctx,
            parsed,
            line,
            name,
            "template-unknown-name",
            Text(
                f"the template uses '{name}', which this message is not given (it would "
                "print as empty text)",
                f"模板使用了 '{name}'，但发送这条消息时没有这个名称（会显示为空）",
            ),
            suggestion_hint(name, known, Text("names", "名称")),
        )
    if record is None or "record" in parsed.declared:
        return
    for line, path in _record_paths(parsed.tree):
        info: NameInfo | None = record
        walked = ["record"]
        for part in path:
            if info is None or info.kind != "record" or info.open:
                break  # a single value (its methods), a child table, or unknown sub-fields
            child = info.child(part)
            if child is None:
                key = (parsed.shown, form or "", *walked, part)
                if key not in reported:
                    reported.add(key)
                    _unknown_field(ctx, parsed, line, walked, part, info, form)
                break
            info = child
            walked.append(part)


def _unknown_field(
    ctx: CompileContext,
    parsed: _Parsed,
    line: int,
    walked: list[str],
    part: str,
    info: NameInfo,
    form: str | None,
) -> None:
    owner = ".".join(walked)
    whose_en = f"form '{form}'" if len(walked) == 1 and form else f"'{owner}'"
    whose_zh = f"表单 '{form}' " if len(walked) == 1 and form else f"'{owner}' "
    _report(
        ctx,
        parsed,
        line,
        f"{owner}.{part}",
        "template-unknown-field",
        Text(
            f"the template uses {owner}.{part}, but {whose_en} has no field '{part}' (it "
            "would print as empty text)",
            f"模板使用了 {owner}.{part}，但{whose_zh}没有字段 '{part}'（会显示为空）",
        ),
        suggestion_hint(part, info.field_names(), Text("fields", "字段")),
        column_of=part,
    )


def _report(
    ctx: CompileContext,
    parsed: _Parsed,
    line: int,
    text: str,
    code: str,
    message: Text,
    hint: Text,
    *,
    column_of: str | None = None,
) -> None:
    source = parsed.lines[line - 1] if 0 < line <= len(parsed.lines) else ""
    at = source.find(text)
    col = at + 1 if at >= 0 else 1
    width = len(text)
    if at >= 0 and column_of is not None:
        col = at + len(text) - len(column_of) + 1
        width = len(column_of)
    ctx.diags.report("error", parsed.shown, Mark(line, col), code, message, hint, width=width)


def _parse(ctx: CompileContext, file: Path) -> _Parsed | None:
    cache: dict[Path, _Parsed | None] = ctx.extras.setdefault(_CACHE_KEY, {})
    if file in cache:
        return cache[file]
    text = read_source(file, ctx.diags)
    parsed = None
    if text is not None:
        shown = display_path(file)
        lines = text.splitlines()
        try:
            tree: nodes.Template | None = _ENV.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            tree = None
            ctx.ws.sources[shown] = text
            ctx.diags.report(
                "error",
                shown,
                Mark(max(1, exc.lineno), 1),
                "template-syntax",
                _syntax_message(exc.message or ""),
                Text(
                    "check the {{ }} and {% %} tags on this line (each {% if %} / {% for %} "
                    "needs its {% endif %} / {% endfor %})",
                    "请检查这一行的 {{ }} 和 {% %} 标签（每个 {% if %} / {% for %} 都需要对应的 "
                    "{% endif %} / {% endfor %}）",
                ),
            )
        declared: frozenset[str] = frozenset()
        if tree is not None:
            declared = frozenset(
                n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")
            )
        parsed = _Parsed(shown, lines, tree, declared)
        if tree is not None:
            ctx.ws.sources[shown] = text
            _check_layout(ctx, parsed, text)
    cache[file] = parsed
    return parsed


def _tags_joining_lines(text: str) -> Iterator[tuple[int, int, str]]:
    """(line, column, tag) of every tag that ends a line which printed something before it:
    the message drops the line break after such a tag, so that text runs into the next line."""
    printed = False  # the current line printed text before the tag being read
    start: tuple[int, int, str, bool] | None = None  # line, nth tag on it, name, printed
    tags_on_line: dict[int, int] = {}
    for line, kind, value in _LEXER.lex(text):
        if kind in ("data", "variable_begin"):
            if kind == "variable_begin":
                printed = True
            elif "\n" in value:
                printed = bool(value.rsplit("\n", 1)[1].strip())
            else:
                printed = printed or bool(value.strip())
        elif kind in ("block_begin", "comment_begin", "raw_begin"):
            nth = tags_on_line.get(line, 0)
            tags_on_line[line] = nth + 1
            name = {"comment_begin": "{# #}", "raw_begin": "{% raw %}…{% endraw %}"}.get(kind, "")
            start = (line, nth, name, printed)  # a block tag is named by its first word
        elif kind == "name" and start is not None and not start[2]:
            start = (start[0], start[1], f"{{% {value} %}}", start[3])
        elif kind in ("block_end", "comment_end", "raw_end"):
            if start is not None and value.endswith("\n") and start[3]:
                yield start[0], start[1], start[2]
            if value.endswith("\n"):
                printed = False
            start = None


def _check_layout(ctx: CompileContext, parsed: _Parsed, text: str) -> None:
    for line, nth, tag in _tags_joining_lines(text):
        source = parsed.lines[line - 1] if 0 < line <= len(parsed.lines) else ""
        found = list(_TAG_START.finditer(source))
        col = found[nth].start() + 1 if nth < len(found) else 1
        before = source[: col - 1].strip()
        shown = before if len(before) <= 30 else before[:29] + "…"
        ctx.diags.report(
            "warning",
            parsed.shown,
            Mark(line, col),
            "template-tag-joins-lines",
            Text(
                f"this line ends with {tag}, and the message drops the line break after a tag "
                f"that ends a line: '{shown}' runs into the next line",
                f"这一行以 {tag} 结尾，消息会去掉行尾标签后面的换行：'{shown}' 会和下一行连在一起",
            ),
            Text(
                "put the tag on a line of its own (or at the start of the next line), or end it "
                "with +%} to keep the line break, e.g. {% endif +%}",
                "把标签单独放一行（或放到下一行的开头），或者用 +%} 结尾以保留换行，"
                "例如 {% endif +%}",
            ),
            width=2,
        )


def _record_paths(tree: nodes.Template) -> Iterator[tuple[int, list[str]]]:
    """(line, [field, sub-field…]) of every outermost ``record.a.b`` / ``record['a']``."""
    inner: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if id(node) in inner:
            continue
        parts: list[str] = []
        current: nodes.Node = node
        chain: list[nodes.Node] = []
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            chain.append(current)
            if isinstance(current, nodes.Getattr):
                parts.append(current.attr)
            elif isinstance(current.arg, nodes.Const) and isinstance(current.arg.value, str):
                parts.append(current.arg.value)
            else:
                parts.clear()  # record[x]: cannot know the field
                chain.clear()
                break
            current = current.node
        inner.update(id(c) for c in chain)
        if isinstance(current, nodes.Name) and current.name == "record" and parts:
            yield node.lineno, list(reversed(parts))


def _first_line(tree: nodes.Template, name: str) -> int:
    lines = [n.lineno for n in tree.find_all(nodes.Name) if n.name == name]
    return min(lines) if lines else 1


def _syntax_message(detail: str) -> Text:
    """Jinja's parser message in plain words (its own wording is never shown)."""
    if "end of template" in detail.lower():
        return Text(
            "the message template ends before a {% if %} or {% for %} is closed",
            "消息模板结束时还有 {% if %} 或 {% for %} 没有关闭",
        )
    if "unknown tag" in detail.lower():
        return Text(
            "the message template uses a tag it does not know in {% %}",
            "消息模板的 {% %} 中使用了无法识别的标签",
        )
    return Text("this line of the message template cannot be read", "消息模板的这一行无法解析")
