"""Links to the public tracking page (``/track``) for messages, pages and QR codes.

The address people outside reach the app at is ``SEAMLINE_PUBLIC_URL`` (e.g.
``https://track.example.com``): the app cannot know it (behind a proxy it sees its own
address). Without it, messages carry no link: ``track_url`` is empty text, so a template
writes ``{% if track_url %}…{% endif %}`` (a relative ``/track`` in a chat message is not a
link anyone can open). ``seamline serve`` says so once when it starts.

A link only fills in the order number (``/track?no=SO-…``): the page still asks for the phone
number and the code (or the number's last characters) before it shows anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from markupsafe import Markup

from engine.model.i18n import Text
from engine.model.spec import App

__all__ = [
    "MAX_NUMBER",
    "PUBLIC_URL_ENV",
    "public_url",
    "public_url_problem",
    "track_names",
    "track_path",
]

PUBLIC_URL_ENV = "SEAMLINE_PUBLIC_URL"
MAX_NUMBER = 64  # the longest record number a link carries (the page refuses longer ones)
# characters that would end or break a Markdown link [text](url) or an HTML attribute
_NOT_IN_LINKS = frozenset("()[]<>\"'`\\")


def public_url() -> str | None:
    """``SEAMLINE_PUBLIC_URL`` without a trailing ``/``; None when unset or not an http(s)
    address without query or fragment."""
    raw = os.environ.get(PUBLIC_URL_ENV, "").strip().rstrip("/")
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.query or parts.fragment or any(c.isspace() or c in _NOT_IN_LINKS for c in raw):
        return None
    return raw


def public_url_problem() -> Text | None:
    """What ``serve`` says once at its start about ``SEAMLINE_PUBLIC_URL`` (None: all set)."""
    raw = os.environ.get(PUBLIC_URL_ENV, "").strip()
    if not raw:
        return Text(
            f"{PUBLIC_URL_ENV} is not set: customer messages carry no link to the tracking "
            "page (/track); set it to the address customers reach, e.g. https://track.example.com",
            f"未设置 {PUBLIC_URL_ENV}：客户消息里不会附上订单查询页（/track）的链接；"
            "请设为客户能访问的地址，例如 https://track.example.com",
        )
    if public_url() is None:
        return Text(
            f"{PUBLIC_URL_ENV}={raw!r} is not a plain http(s) address (no ?query, #fragment, "
            "spaces, quotes or brackets): customer messages carry no link to the tracking page",
            f"{PUBLIC_URL_ENV}={raw!r} 不是普通的 http(s) 地址（不能带 ?查询、#片段、空格、"
            "引号或括号）：客户消息里不会附上订单查询页的链接",
        )
    return None


def track_path(number: str | None = None) -> str:
    """``/track``, or ``/track?no=…`` with a record number to fill in."""
    number = (number or "").strip()
    if not number or len(number) > MAX_NUMBER:
        return "/track"
    return "/track?" + urlencode({"no": number})


def track_names(app: App, form: str, row: Mapping[str, Any]) -> dict[str, str]:
    """``track_url`` for messages about a record of the tracked form (``{}`` for any other
    form or an app without ``tracking:``; empty text without ``SEAMLINE_PUBLIC_URL``).

    The address is built here from checked parts (the number is URL-encoded), so it is marked
    safe: messages print it as is, where a record value would be Markdown-escaped."""
    spec = app.tracking
    if spec is None or form != spec.record_form:
        return {}
    base = public_url()
    if base is None:
        return {"track_url": ""}
    number = row.get(spec.number_field)
    return {"track_url": Markup(base + track_path(None if number is None else str(number)))}
