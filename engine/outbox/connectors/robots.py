"""Chat-group robots: DingTalk custom robots and WeCom (企业微信) group robots.

Both answer HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; any other errcode is a failure.
Neither de-duplicates: the outbox marks a message sent right after the robot's answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus

import httpx

from engine.model.i18n import Text
from engine.model.logs import logger
from engine.model.spec import ConnectorSpec

from . import env, transport
from .errors import ConnectorError
from .model import Message

log = logger(__name__)

# errcodes worth retrying: rate limits and "system busy"
DINGTALK_TRANSIENT = frozenset({-1, 130101, 410100})
WECOM_TRANSIENT = frozenset({-1, 45009, 45033})
WECOM_MARKDOWN_BYTES = 4096
RATE_LIMIT_WAIT = 60.0

_DINGTALK_HINTS: dict[int, Text] = {
    310000: Text(
        " The robot's security check failed: check the secret in {token_env}, the robot's "
        "keywords and IP allow-list, and that this server's clock is right.",
        " 机器人安全校验失败：请检查 {token_env} 中的加签密钥、机器人自定义关键词和 IP 白名单，"
        "以及本机时钟是否准确。",
    ),
    300001: Text(
        " The access token is wrong: check the webhook URL in {url_env}.",
        " access_token 有误：请检查 {url_env} 中的 Webhook 地址。",
    ),
    400013: Text(
        " The robot does not exist (any more): check the webhook URL in {url_env}.",
        " 机器人不存在或已被删除：请检查 {url_env} 中的 Webhook 地址。",
    ),
}
_WECOM_HINTS: dict[int, Text] = {
    93000: Text(
        " The webhook key is invalid: check the URL in {url_env}.",
        " Webhook key 无效：请检查 {url_env} 中的地址。",
    ),
    40058: Text(" The message is too long.", " 消息内容过长。"),
}


# ----------------------------------------------------------------------------- DingTalk


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: base64(HmacSHA256(secret, "timestamp\\nsecret")), not yet
    URL-encoded."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    sign = quote_plus(dingtalk_sign(secret, timestamp_ms))
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign}"


def dingtalk_payload(message: Message) -> dict[str, Any]:
    """The robot's JSON: markdown (or text), or an actionCard for to-dos with a link."""
    phones = [r.phone for r in message.to if r.phone]
    user_ids = [r.dingtalk_id for r in message.to if r.dingtalk_id and not r.phone]
    mentions = " ".join(f"@{m}" for m in [*phones, *user_ids])
    at = {"atMobiles": phones, "atUserIds": user_ids, "isAtAll": False}
    if message.todo and message.url:
        names = "、".join(r.name or r.user for r in message.to)
        text = _with_heading(message)
        if names:
            text += f"\n\n处理人：{names}"
        return {
            "msgtype": "actionCard",
            "actionCard": {
                "title": message.title,
                "text": text,
                "singleTitle": message.link_title,
                "singleURL": message.url,
                "btnOrientation": "0",
            },
        }
    title = f"【待办】{message.title}" if message.todo else message.title
    if not message.markdown:
        content = "\n".join(p for p in (title, message.text, mentions) if p)
        return {"msgtype": "text", "text": {"content": content}, "at": at}
    text = _with_heading(message, title)
    if mentions:
        text += f"\n\n{mentions}"
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}


_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_FENCE = re.compile(r"^ {0,3}(?:```|~~~)")


def blank_after_headings(text: str) -> str:
    """``text`` with a blank line after every Markdown heading that has none: the robots'
    Markdown runs a heading into the line below it (a bullet becomes part of the heading).
    Lines inside fenced code stay as they are."""
    lines = text.split("\n")
    out: list[str] = []
    fenced = False
    for i, line in enumerate(lines):
        out.append(line)
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and _HEADING.match(line) and i + 1 < len(lines) and lines[i + 1].strip():
            out.append("")
    return "\n".join(out)


def _with_heading(message: Message, title: str | None = None) -> str:
    """Markdown text that shows the title: robots show ``title`` only in notifications."""
    title = title or message.title
    body = blank_after_headings(message.text.strip())
    if not title or body.splitlines()[:1] == [title]:
        return body
    return f"#### {title}\n\n{body}" if body else f"#### {title}"


def send_dingtalk(
    client: httpx.Client,
    spec: ConnectorSpec,
    message: Message,
    *,
    environ: Mapping[str, str],
    idempotency_key: str,
    clock: Callable[[], float],
) -> None:
    url = env.require(environ, spec.name, spec.url_env, "url_env", env.PURPOSE_URL)
    if spec.token_env:
        secret = env.require(environ, spec.name, spec.token_env, "token_env", env.PURPOSE_SECRET)
        url = signed_url(url, secret, int(clock() * 1000))
    answer = _post(client, spec, url, dingtalk_payload(message), idempotency_key)
    _check_errcode(spec, answer, DINGTALK_TRANSIENT, _DINGTALK_HINTS, "DingTalk", "钉钉")
    log.info("dingtalk %s: sent %r (key %s)", spec.name, message.title, idempotency_key)


# ----------------------------------------------------------------------------- WeCom


def clip_utf8(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def wecom_payload(message: Message) -> dict[str, Any]:
    ids = [r.wecom_id for r in message.to if r.wecom_id]
    if not message.markdown:
        content = "\n".join(p for p in (message.title, message.text) if p)
        phones = [r.phone for r in message.to if r.phone and not r.wecom_id]
        text = {"content": content, "mentioned_list": ids, "mentioned_mobile_list": phones}
        return {"msgtype": "text", "text": text}
    body = blank_after_headings(message.text.strip())
    if message.title and body.splitlines()[:1] != [message.title]:
        body = f"**{message.title}**\n{body}" if body else f"**{message.title}**"
    mentions = "".join(f"<@{i}>" for i in ids)
    limit = WECOM_MARKDOWN_BYTES - len(mentions.encode("utf-8")) - 1
    content = clip_utf8(body, limit) + (f"\n{mentions}" if mentions else "")
    return {"msgtype": "markdown", "markdown": {"content": content}}


def send_wecom(
    client: httpx.Client,
    spec: ConnectorSpec,
    message: Message,
    *,
    environ: Mapping[str, str],
    idempotency_key: str,
) -> None:
    url = env.require(environ, spec.name, spec.url_env, "url_env", env.PURPOSE_URL)
    answer = _post(client, spec, url, wecom_payload(message), idempotency_key)
    _check_errcode(spec, answer, WECOM_TRANSIENT, _WECOM_HINTS, "WeCom", "企业微信")
    log.info("wecom %s: sent %r (key %s)", spec.name, message.title, idempotency_key)


# ----------------------------------------------------------------------------- shared


def _post(
    client: httpx.Client, spec: ConnectorSpec, url: str, payload: Any, idempotency_key: str
) -> Any:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": idempotency_key,
    }
    response = transport.send(
        client,
        spec.name,
        "POST",
        url,
        timeout=spec.timeout,
        headers=headers,
        body=transport.dump_json(payload),
    )
    transport.check_status(response, spec.name)
    return transport.decode_json(response, spec.name, required=True)


def _check_errcode(
    spec: ConnectorSpec,
    answer: Any,
    transient_codes: frozenset[int],
    hints: Mapping[int, Text],
    robot_en: str,
    robot_zh: str,
) -> None:
    if not isinstance(answer, dict):
        answer = {"errcode": None, "errmsg": repr(answer)[:100]}
    code = answer.get("errcode", 0)
    if code == 0:
        return
    message = Text(
        "Connector '{c}': the {robot_en} robot refused the message: errcode {code}, {msg}.",
        "连接器“{c}”：{robot_zh}机器人拒收消息：errcode {code}，{msg}。",
    ).format(
        c=spec.name,
        robot_en=robot_en,
        robot_zh=robot_zh,
        code=code,
        msg=transport.snippet(str(answer.get("errmsg", "")), 160),
    )
    if isinstance(code, int) and code in hints:
        message += hints[code].format(token_env=spec.token_env or "-", url_env=spec.url_env or "-")
    transient = isinstance(code, int) and code in transient_codes
    # rate limits last about a minute (DingTalk: 20 messages a minute per robot)
    wait = RATE_LIMIT_WAIT if transient and code != -1 else None
    raise ConnectorError(
        message, transient=transient, status=200, connector=spec.name, retry_after=wait
    )
