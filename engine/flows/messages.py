"""Notification messages rendered from the app's Jinja2 templates.

Templates are markdown or plain text, so autoescaping is off; they still run in a sandbox.
The first line is the title (leading ``#`` marks stripped), the rest is the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

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


def message_environment(bundle: Mapping[str, str]) -> jinja2.Environment:
    """A sandboxed environment over the bundle's ``templates/…`` files, falling back to the
    engine's shared templates (:mod:`engine.assets`); names drop the prefix (``messages/x.md``)."""
    own = {name[len(PREFIX) :]: text for name, text in bundle.items() if name.startswith(PREFIX)}
    loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader(own), jinja2.PackageLoader("engine.assets", "templates")]
    )
    return MessageSandbox(
        loader=loader,
        autoescape=False,
        undefined=LoggedUndefined,
        finalize=plain,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


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
