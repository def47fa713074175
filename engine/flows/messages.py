"""Notification messages rendered from the app's Jinja2 templates.

Templates are Markdown (DingTalk and WeCom robots, mail), so HTML autoescaping is off; they run
in a sandbox. The first line is the title (leading ``#`` marks stripped), the rest is the text.

What a template prints with ``{{ … }}`` — record values, the warehouse's answers, people's
names — is Markdown-escaped on the way out (:func:`markdown_inline`, the environment's
``finalize``), the way HTML pages autoescape: a customer note holding a newline and
``# heading``, ``[link](http://evil)`` or ``![image](…)`` prints as that text on the line the
template put it, never as a heading, a link or an image. The template's own text is Markdown
and stays as written; a value the template means as Markdown is printed with ``|safe``.

Numbers read as on the record page (``TEMPLATE_FILTERS`` of :mod:`engine.model.display`):
``{{ x|money }}`` gives ``1,234,567.50`` (``{{ x|money('CNY') }}`` gives ``¥1,234,567.50``),
``{{ x|number }}`` gives ``12,345`` (``{{ x|number(1) }}`` rounds to one place).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from engine.model.display import TEMPLATE_FILTERS
from engine.model.i18n import Text
from engine.model.logs import logger
from engine.outbox.connectors import ConnectorError, Message, Recipient

log = logger(__name__)

PREFIX = "templates/"


class LoggedUndefined(jinja2.ChainableUndefined):
    """A missing variable renders as empty text (and attributes of it too), with a warning."""

    __slots__ = ()

    def __str__(self) -> str:
        log.warning("message template: %s; rendered as empty text", self._undefined_message)
        return ""

    def __iter__(self) -> Iterator[Any]:
        log.warning("message template: %s; looped over as empty", self._undefined_message)
        return iter(())


class MessageSandbox(SandboxedEnvironment):
    """A sandbox that stops at unsafe attributes instead of rendering them as empty text."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__} is not allowed"
        )


def plain(value: Any) -> Any:
    """How values print in messages: no exponents, ISO dates, nothing for None."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return value


# line breaks of every kind: an inline value must not start a line of its own
_BREAKS = re.compile(r"\r\n|[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f]")
# links and images ([…](…), ![…](…)), HTML and autolinks (<…>), code, emphasis, strikethrough
_MARKUP = re.compile(r"([\\`*_\[\]<>~])")
# what makes a line a heading, a quote, a list item or a rule, where a value starts a line
_LINE_START = re.compile(r"^(\s*)(?:([#>+-])|(\d{1,9})([.)]))")


def markdown_inline(text: str) -> str:
    """``text`` as literal characters inside a line of Markdown: line breaks become spaces,
    control characters go, and the characters that start Markdown markup are backslash-escaped
    (CommonMark), so the text can neither open a line of its own nor make a link, an image,
    HTML, code or emphasis."""
    flat = _CONTROL.sub("", _BREAKS.sub(" ", text))
    escaped = _MARKUP.sub(r"\\\1", flat)
    return _LINE_START.sub(
        lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[1]}{m[3]}\\{m[4]}", escaped
    )


def finalize(value: Any) -> Any:
    """What ``{{ … }}`` prints: text Markdown-escaped (:func:`markdown_inline`) unless the
    template marked it ``|safe``; other values as :func:`plain` prints them."""
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, str):
        return markdown_inline(value)
    return plain(value)


def message_environment(bundle: Mapping[str, str]) -> jinja2.Environment:
    """A sandboxed environment over the bundle's ``templates/…`` files, falling back to the
    engine's shared templates (:mod:`engine.assets`); names drop the prefix (``messages/x.md``)."""
    own = {name[len(PREFIX) :]: text for name, text in bundle.items() if name.startswith(PREFIX)}
    loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader(own), jinja2.PackageLoader("engine.assets", "templates")]
    )
    env = MessageSandbox(
        loader=loader,
        autoescape=False,
        undefined=LoggedUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(TEMPLATE_FILTERS)
    return env


def split_title(rendered: str) -> tuple[str, str]:
    """(title, text): the first non-blank line without its ``#`` marks, and the rest.

    A one-line template gives that line as both title and text, so chat robots show it."""
    lines = rendered.strip().splitlines()
    if not lines:
        return "", ""
    first = lines[0].strip()
    title = first.lstrip("#").strip() if first.startswith("#") else first
    text = "\n".join(lines[1:]).strip("\n")
    return title, text if text.strip() else title


def render_message(
    env: jinja2.Environment,
    template_name: str,
    context: Mapping[str, Any],
    *,
    todo: bool = False,
    to: Iterable[Recipient] = (),
    url: str | None = None,
) -> Message:
    """Render ``template_name`` into a :class:`Message`.

    A missing template, a syntax error or a sandbox violation is a permanent
    :class:`ConnectorError` naming the template (the message can never be sent as is)."""
    try:
        rendered = env.get_template(template_name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise _error(
            template_name,
            Text("the template file does not exist", "模板文件不存在"),
            str(exc),
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise _error(
            template_name,
            Text("syntax error on line {n}", "第 {n} 行语法错误").format(n=exc.lineno),
            exc.message or "",
        ) from exc
    except Exception as exc:  # sandbox violations, errors raised inside expressions
        raise _error(
            template_name,
            Text("rendering failed", "渲染失败"),
            f"{type(exc).__name__}: {exc}",
        ) from exc
    title, text = split_title(rendered)
    return Message(title=title, text=text, to=tuple(to), todo=todo, url=url)


def _error(name: str, what: Text, detail: str) -> ConnectorError:
    message = Text(
        "Message template templates/{name}: {what_en} ({detail}).",
        "消息模板 templates/{name}：{what_zh}（{detail}）。",
    ).format(name=name, what_en=what.en, what_zh=what.zh, detail=detail[:200])
    return ConnectorError(message, transient=False)
