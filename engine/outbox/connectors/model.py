"""Plain values passed to and returned by connectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person a message is addressed to; each channel uses the ids it understands."""

    user: str
    name: str | None = None
    email: str | None = None
    dingtalk_id: str | None = None
    wecom_id: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notification. ``text`` is markdown unless ``markdown`` is false.

    ``todo`` asks for an actionable card where the channel has one (DingTalk ``actionCard``,
    whose button opens ``url`` and is labelled ``link_title``). ``extra`` fields are added to
    the JSON body of generic webhooks.
    """

    title: str
    text: str
    markdown: bool = True
    to: tuple[Recipient, ...] = ()
    todo: bool = False
    url: str | None = None
    link_title: str = "查看订单"
    extra: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class CallResult:
    """The answer of one successful HTTP operation; ``data`` is the decoded JSON (or None)."""

    status: int
    data: Any
    elapsed_ms: float
