"""``type: webhook`` connectors: a signed JSON POST to any receiver.

Receivers should de-duplicate on the ``Idempotency-Key`` header (the same for every attempt
of one effect) and verify ``X-Seamline-Signature`` =
``sha256=`` + hex HMAC-SHA256(secret, f"{X-Seamline-Timestamp}.{raw body}").
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from engine.model.logs import logger
from engine.model.spec import ConnectorSpec

from . import env, transport
from .model import Message

log = logger(__name__)

TIMESTAMP_HEADER = "X-Seamline-Timestamp"
SIGNATURE_HEADER = "X-Seamline-Signature"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_payload(message: Message) -> dict[str, Any]:
    payload: dict[str, Any] = dict(message.extra)
    payload.update(
        title=message.title,
        text=message.text,
        markdown=message.markdown,
        todo=message.todo,
        recipients=[dataclasses.asdict(r) for r in message.to],
    )
    if message.url:
        payload["url"] = message.url
    return payload


def send_webhook(
    client: httpx.Client,
    spec: ConnectorSpec,
    message: Message,
    *,
    environ: Mapping[str, str],
    idempotency_key: str,
    clock: Callable[[], float],
) -> None:
    url = env.require(environ, spec.name, spec.url_env, "url_env", env.PURPOSE_URL)
    body = transport.dump_json(webhook_payload(message))
    timestamp = str(int(clock()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": idempotency_key,
        TIMESTAMP_HEADER: timestamp,
    }
    if spec.token_env:
        secret = env.require(environ, spec.name, spec.token_env, "token_env", env.PURPOSE_SECRET)
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    response = transport.send(
        client, spec.name, "POST", url, timeout=spec.timeout, headers=headers, body=body
    )
    transport.check_status(response, spec.name, clock=clock)
    log.info(
        "webhook %s: HTTP %s for %r (key %s)",
        spec.name,
        response.status_code,
        message.title,
        idempotency_key,
    )
