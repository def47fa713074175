"""Connectors: the engine's calls to outside systems, one attempt at a time.

The outbox worker owns retries, backoff and idempotency keys; every method here makes exactly
one attempt and either returns or raises :class:`ConnectorError`, whose ``transient`` flag says
whether to retry (``retry_after`` may suggest when) or to dead-letter the effect now.
URLs and secrets come only from the environment variables named in app.yaml.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from engine.model.i18n import Text
from engine.model.logs import logger
from engine.model.spec import ConnectorSpec

from . import http_api, mail, robots, webhook
from .errors import ConnectorError, ConnectorNotConfigured
from .keep import keep_values
from .model import CallResult, Message, Recipient

__all__ = [
    "CallResult",
    "ConnectorError",
    "ConnectorNotConfigured",
    "Connectors",
    "Message",
    "Recipient",
    "keep_values",
]

log = logger(__name__)

SEND_TYPES = frozenset({"dingtalk", "wecom", "email", "webhook"})
MAX_CONNECTIONS = 20
USER_AGENT = "Seamline connectors"


class Connectors:
    """The connectors of one App over one pooled :class:`httpx.Client`.

    A client passed in is used as is (timeouts are still set per request from each spec) and
    is not closed by :meth:`close`; otherwise one is created and owned here.
    """

    def __init__(
        self,
        specs: Mapping[str, ConnectorSpec],
        *,
        environ: Mapping[str, str] = os.environ,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.specs = dict(specs)
        self._environ = environ
        self._clock = clock
        self._owns_client = client is None
        if client is None:
            longest = max((s.timeout for s in self.specs.values()), default=10.0)
            client = httpx.Client(
                timeout=httpx.Timeout(longest),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS // 2
                ),
                headers={"User-Agent": USER_AGENT},
                follow_redirects=False,
                # httpx writes a request's headers and body separately; without TCP_NODELAY
                # Nagle holds the body until the server's delayed ACK (~40 ms a request).
                transport=httpx.HTTPTransport(
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
                ),
            )
        self._client = client

    def call(
        self, connector: str, operation: str, values: Mapping[str, Any], *, idempotency_key: str
    ) -> CallResult:
        """One attempt at an operation of an ``http`` connector."""
        spec = self._spec(connector, {"http"})
        return http_api.call(
            self._client,
            spec,
            operation,
            values,
            environ=self._environ,
            idempotency_key=idempotency_key,
            clock=self._clock,
        )

    def send(self, connector: str, message: Message, *, idempotency_key: str) -> None:
        """One attempt at delivering ``message`` through a dingtalk, wecom, email or webhook
        connector."""
        spec = self._spec(connector, SEND_TYPES)
        common: dict[str, Any] = {"environ": self._environ, "idempotency_key": idempotency_key}
        if spec.type == "dingtalk":
            robots.send_dingtalk(self._client, spec, message, clock=self._clock, **common)
        elif spec.type == "wecom":
            robots.send_wecom(self._client, spec, message, **common)
        elif spec.type == "email":
            mail.send_email(spec, message, clock=self._clock, **common)
        else:
            webhook.send_webhook(self._client, spec, message, clock=self._clock, **common)

    def deduplicated(self, connector: str) -> bool:
        """Whether the receiver applies a repeated ``Idempotency-Key`` once (webhooks, by
        their contract), so a delivery may be marked done in a later commit: a crash in
        between sends it again, applied once. Robots and mail have no such key."""
        spec = self.specs.get(connector)
        return spec is not None and spec.type == "webhook"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Connectors:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spec(self, name: str, types: frozenset[str] | set[str]) -> ConnectorSpec:
        spec = self.specs.get(name)
        if spec is None:
            message = Text(
                "There is no connector '{name}' in app.yaml (known: {known}).",
                "app.yaml 中没有连接器“{name}”（现有：{known}）。",
            ).format(name=name, known=", ".join(sorted(self.specs)) or "-")
            raise ConnectorError(message, transient=False, connector=name)
        if spec.type not in types:
            usage = (
                Text("call: with an operation", "call:（调用操作）")
                if spec.type == "http"
                else Text("notify: via it", "notify:（发送消息）")
            )
            message = Text(
                "Connector '{name}' is of type {type}; use it with {use_en}.",
                "连接器“{name}”的类型是 {type}，请通过 {use_zh} 使用。",
            ).format(name=name, type=spec.type, use_en=usage.en, use_zh=usage.zh)
            raise ConnectorError(message, transient=False, connector=name)
        return spec
