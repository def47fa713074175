"""A local stand-in for DingTalk and WeCom group robots, for ``seamline demo``.

A demo has no real chat groups, and an unset ``DINGTALK_WEBHOOK``/``WECOM_WEBHOOK`` makes every
message a dead letter ("connector not configured"). The demo points those variables at this
sink instead: it answers like a robot (``{"errcode": 0}``), appends every message to
``messages.jsonl`` in the demo folder and shows them, newest first, on its own page, so a
newcomer sees what procurement, the approvers and the customer would have received.

- ``POST /dingtalk/{connector}``, ``POST /wecom/{connector}`` — the robots' webhooks
- ``GET /`` — the messages as a page (times in the app's time zone); ``GET /messages`` — as
  JSON (``?connector=&since=N``)
"""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from engine.model.display import datetime_text

__all__ = ["ChatMessage", "ChatSink", "create_chat_app", "message_text"]

ROBOTS = ("dingtalk", "wecom")
MAX_BODY = 256 * 1024


@dataclass(frozen=True)
class ChatMessage:
    seq: int
    at: str
    robot: str
    connector: str
    title: str
    text: str
    payload: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "robot": self.robot,
            "connector": self.connector,
            "title": self.title,
            "text": self.text,
            "payload": self.payload,
        }


def message_text(payload: dict[str, Any]) -> tuple[str, str]:
    """(title, text) of a robot payload: markdown, text or an action card."""
    kind = payload.get("msgtype")
    body = payload.get(kind) if isinstance(kind, str) else None
    if not isinstance(body, dict):
        return "", json.dumps(payload, ensure_ascii=False)
    text = str(body.get("text") or body.get("content") or "")
    first = text.strip().splitlines()[0] if text.strip() else ""
    return str(body.get("title") or first), text


class ChatSink:
    """The messages received, in memory and in ``path`` (JSON lines, appended)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.messages: list[ChatMessage] = []
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    self.messages.append(ChatMessage(**item))

    def add(self, robot: str, connector: str, payload: dict[str, Any]) -> ChatMessage:
        title, text = message_text(payload)
        with self._lock:
            message = ChatMessage(
                len(self.messages) + 1,
                datetime.now(UTC).isoformat(timespec="seconds"),
                robot,
                connector,
                title,
                text,
                payload,
            )
            self.messages.append(message)
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(message.as_json(), ensure_ascii=False) + "\n")
        return message

    def since(self, seq: int, connector: str | None = None) -> list[ChatMessage]:
        with self._lock:
            found = [m for m in self.messages if m.seq > seq]
        return [m for m in found if connector is None or m.connector == connector]


async def _receive(request: Request) -> Response:
    robot = request.path_params["robot"]
    if robot not in ROBOTS:
        return JSONResponse({"errcode": 404, "errmsg": f"unknown robot {robot}"}, 404)
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"errcode": 40058, "errmsg": "message too long"})
    try:
        payload = json.loads(body)
    except ValueError:
        return JSONResponse({"errcode": 40008, "errmsg": "invalid JSON"})
    if not isinstance(payload, dict):
        return JSONResponse({"errcode": 40008, "errmsg": "invalid message"})
    sink: ChatSink = request.app.state.sink
    sink.add(robot, request.path_params["connector"], payload)
    return JSONResponse({"errcode": 0, "errmsg": "ok"})


async def _list(request: Request) -> Response:
    sink: ChatSink = request.app.state.sink
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError:
        since = 0
    found = sink.since(since, request.query_params.get("connector"))
    return JSONResponse({"messages": [m.as_json() for m in found]})


async def _page(request: Request) -> Response:
    sink: ChatSink = request.app.state.sink
    tz: tzinfo = request.app.state.tz
    items = []
    for m in reversed(sink.since(0)):
        items.append(
            f"<li><b>{html.escape(m.robot)} · {html.escape(m.connector)}</b> "
            f"<small><time datetime='{html.escape(m.at)}'>{html.escape(datetime_text(m.at, tz))}"
            f"</time></small><pre>{html.escape(m.text)}</pre></li>"
        )
    body = "".join(items) or "<li>还没有消息 / no messages yet</li>"
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        "<meta http-equiv=refresh content=10><title>Demo chat messages</title>"
        "<style>body{font-family:sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem}"
        "li{list-style:none;border-bottom:1px solid #ddd;padding:.5rem 0}"
        "pre{white-space:pre-wrap;margin:.3rem 0}</style>"
        "<h1>钉钉 / 企业微信消息（演示） · DingTalk / WeCom messages (demo)</h1>"
        "<p>演示环境没有真实的群机器人：消息发到这里。 · The demo has no real chat robots: "
        f"messages land here.</p><ul>{body}</ul>"
    )


def create_chat_app(sink: ChatSink, timezone: str = "UTC") -> Starlette:
    """The sink's web app; the page shows times in ``timezone`` (the app's), the JSON keeps
    them in UTC."""
    web = Starlette(
        routes=[
            Route("/", _page, methods=["GET"]),
            Route("/messages", _list, methods=["GET"]),
            Route("/{robot}/{connector}", _receive, methods=["POST"]),
        ]
    )
    web.state.sink = sink
    web.state.tz = ZoneInfo(timezone)
    return web
