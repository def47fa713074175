"""Real local fake servers for connector and outbox tests.

Every fake listens on 127.0.0.1 on a free port, in a background thread, for the span of a
``with`` block, records what it received and can be told to misbehave::

    with fake_webhook(secret="s") as hook:
        hook.url                      # POST here
        hook.fail_next(2, status=500) # the next two requests fail before being applied
        hook.lose_next()              # the next one is applied, then the answer is lost
        ...
        hook.applied, hook.repeats    # effects applied once per Idempotency-Key; repeats seen

Faults shared by the HTTP fakes: ``fail_next(n, status=…)``, ``slow_next(n, seconds=…)``,
``drop_next(n)`` (close the connection without answering). :class:`FakeHttpApi` can also be
switched for good with ``behave("ok" | "error" | "slow" | "drop")``. ``fake_smtp()`` is an
aiosmtpd server with ``fail_next(n, code=451)``.

All servers stop at the end of the ``with`` block; a slow answer in progress is cut short.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import errno
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

START_TIMEOUT = 10.0

# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it (header names in lower case)."""

    method: str
    path: str  # percent-decoded
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""  # as sent, percent-encoded
    query_string: str = ""  # as sent, percent-encoded

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass(frozen=True)
class Reply:
    status: int = 200
    json: Any = None
    text: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, str]:
        if self.text is not None:
            return self.text.encode(), self.content_type or "text/plain; charset=utf-8"
        body = json.dumps(self.json, ensure_ascii=False).encode()
        return body, self.content_type or "application/json"


@dataclass
class _Fault:
    kind: str  # "status" | "slow" | "drop" | "errcode" | "lose"
    status: int = 500
    seconds: float = 0.0
    errcode: int = 0
    errmsg: str = ""


class _Drop(Exception):
    """Close the connection without an answer."""


# ----------------------------------------------------------------------------- base server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread.

    Subclasses implement :meth:`handle`. Use as a context manager (or ``start``/``stop``).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Received] = []
        self._faults: deque[_Fault] = deque()
        self._stopping = threading.Event()
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    @property
    def port(self) -> int:
        assert self._socket is not None, "the fake server is not running"
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url

    def start(self) -> None:
        # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (with proto 0 it
        # does not, and every answer waits ~40 ms for a delayed ACK)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            access_log=False,
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """The next ``n`` requests get ``status`` and are not applied."""
        self._add(n, _Fault("status", status=status))

    def slow_next(self, n: int = 1, *, seconds: float = 2.0) -> None:
        """The next ``n`` requests wait ``seconds`` before being handled normally."""
        self._add(n, _Fault("slow", seconds=seconds))

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` connections are closed without an answer (nothing applied)."""
        self._add(n, _Fault("drop"))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _add(self, n: int, fault: _Fault) -> None:
        with self.lock:
            self._faults.extend(_Fault(**vars(fault)) for _ in range(n))

    def _take_fault(self) -> _Fault | None:
        with self.lock:
            return self._faults.popleft() if self._faults else None

    # -- requests

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def handle(self, request: Received) -> Reply:  # pragma: no cover - overridden
        return Reply(404, {"error": "not found"})

    async def before(self, request: Received) -> Reply | None:
        """Apply the next queued fault; a reply ends the request there."""
        fault = self._take_fault()
        if fault is None:
            return None
        if fault.kind == "status":
            return Reply(fault.status, {"error": f"fake failure {fault.status}"})
        if fault.kind == "slow":
            await self.sleep(fault.seconds)
            return None
        if fault.kind == "drop":
            raise _Drop
        return await self.on_fault(fault, request)

    async def on_fault(self, fault: _Fault, request: Received) -> Reply | None:
        return None

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake up when the server stops (so tests end quickly)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    async def respond(self, request: Received) -> Reply:
        reply = await self.before(request)
        if reply is not None:
            return reply
        with self.lock:
            return self.handle(request)

    async def _asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            chunks.append(event.get("body", b""))
            if not event.get("more_body"):
                break
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        request = Received(
            scope["method"],
            scope["path"],
            query,
            headers,
            b"".join(chunks),
            raw_path,
            scope["query_string"].decode("latin-1"),
        )
        with self.lock:
            self.requests.append(request)
        try:
            reply = await self.respond(request)
        except _Drop:
            cycle = getattr(receive, "__self__", None)
            transport = getattr(cycle, "transport", None)
            assert transport is not None, "uvicorn internals changed: cannot drop a connection"
            transport.abort()
            await receive()  # the disconnect, so uvicorn does not complain
            return
        body, content_type = reply.encode()
        raw_headers = [(b"content-type", content_type.encode())]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})


class _Idempotent:
    """Applies each ``Idempotency-Key`` once; later requests with the key are repeats."""

    def _init_keys(self) -> None:
        self.payloads: list[Any] = []
        self.keys: list[str] = []
        self.repeats = 0
        self._seen: dict[str, Any] = {}

    @property
    def applied(self) -> int:
        return len(self.keys)

    def apply(self, key: str, payload: Any) -> bool:
        """True when applied now, False for a repeat of an applied key."""
        if key in self._seen:
            self.repeats += 1
            return False
        self._seen[key] = payload
        self.keys.append(key)
        self.payloads.append(payload)
        return True


# ----------------------------------------------------------------------------- DingTalk


def dingtalk_expected_sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


class FakeDingTalk(FakeServer):
    """A DingTalk custom robot: ``POST /robot/send?access_token=…[&timestamp=…&sign=…]``.

    Checks the token and, with a ``secret``, the signature (errcode 310000 when wrong, as
    DingTalk does). Accepted message bodies land in ``messages``; ``reply_next(n, errcode)``
    makes the next answers errors such as 130101 (too fast).
    """

    def __init__(self, *, secret: str | None = None, token: str = "test-token") -> None:
        super().__init__()
        self.secret = secret
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self.rejected: list[tuple[int, Received]] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/robot/send?access_token={quote(self.token)}"

    def reply_next(self, n: int = 1, *, errcode: int = 130101, errmsg: str = "") -> None:
        message = errmsg or f"fake errcode {errcode}"
        self._add(n, _Fault("errcode", errcode=errcode, errmsg=message))

    async def on_fault(self, fault: _Fault, request: Received) -> Reply | None:
        return Reply(200, {"errcode": fault.errcode, "errmsg": fault.errmsg})

    def _error(self, request: Received, errcode: int, errmsg: str) -> Reply:
        self.rejected.append((errcode, request))
        return Reply(200, {"errcode": errcode, "errmsg": errmsg})

    def handle(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != "/robot/send":
            return Reply(404, {"errcode": 404, "errmsg": "not found"})
        if request.query.get("access_token") != self.token:
            return self._error(request, 300001, "token is not exist")
        if self.secret is not None:
            stamp, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
            if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > 3_600_000:
                return self._error(request, 310000, "invalid timestamp")
            if not hmac.compare_digest(sign, dingtalk_expected_sign(self.secret, stamp)):
                return self._error(request, 310000, "sign not match")
        body = request.json
        if not isinstance(body, dict) or body.get("msgtype") not in (
            "text",
            "markdown",
            "actionCard",
            "link",
            "feedCard",
        ):
            return self._error(request, 40035, "缺少参数 msgtype")
        self.messages.append(body)
        return Reply(200, {"errcode": 0, "errmsg": "ok"})


@contextlib.contextmanager
def fake_dingtalk(
    *, secret: str | None = None, token: str = "test-token"
) -> Iterator[FakeDingTalk]:
    with FakeDingTalk(secret=secret, token=token) as robot:
        yield robot


# ----------------------------------------------------------------------------- WeCom


class FakeWeCom(FakeServer):
    """A WeCom group robot: ``POST /cgi-bin/webhook/send?key=…``; bodies in ``messages``;
    ``reply_next(n, errcode=45009)`` for rate limiting."""

    def __init__(self, *, key: str = "test-key") -> None:
        super().__init__()
        self.key = key
        self.messages: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/cgi-bin/webhook/send?key={quote(self.key)}"

    def reply_next(self, n: int = 1, *, errcode: int = 45009, errmsg: str = "") -> None:
        message = errmsg or f"fake errcode {errcode}"
        self._add(n, _Fault("errcode", errcode=errcode, errmsg=message))

    async def on_fault(self, fault: _Fault, request: Received) -> Reply | None:
        return Reply(200, {"errcode": fault.errcode, "errmsg": fault.errmsg})

    def handle(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != "/cgi-bin/webhook/send":
            return Reply(404, {"errcode": 404, "errmsg": "not found"})
        if request.query.get("key") != self.key:
            return Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
        body = request.json
        if not isinstance(body, dict) or body.get("msgtype") not in (
            "text",
            "markdown",
            "image",
            "news",
            "file",
            "template_card",
        ):
            return Reply(200, {"errcode": 40008, "errmsg": "invalid message type"})
        content = (body.get(body["msgtype"]) or {}).get("content", "")
        if len(str(content).encode()) > 4096:
            return Reply(200, {"errcode": 40058, "errmsg": "content exceed max length"})
        self.messages.append(body)
        return Reply(200, {"errcode": 0, "errmsg": "ok"})


@contextlib.contextmanager
def fake_wecom(*, key: str = "test-key") -> Iterator[FakeWeCom]:
    with FakeWeCom(key=key) as robot:
        yield robot


# ----------------------------------------------------------------------------- webhook


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class FakeWebhook(_Idempotent, FakeServer):
    """A receiver that verifies ``X-Seamline-Signature`` (401 when wrong or missing) and
    applies each ``Idempotency-Key`` once (400 without one): ``applied``, ``payloads``,
    ``keys``, ``repeats``. ``lose_next(n)`` applies the next requests and then drops the
    connection, as when an answer is lost on the way back."""

    def __init__(self, *, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self._init_keys()

    def lose_next(self, n: int = 1) -> None:
        self._add(n, _Fault("lose"))

    async def on_fault(self, fault: _Fault, request: Received) -> Reply | None:
        with self.lock:
            self.handle(request)
        raise _Drop

    def handle(self, request: Received) -> Reply:
        if request.method != "POST":
            return Reply(405, {"error": "POST only"})
        if self.secret is not None:
            stamp = request.headers.get("x-seamline-timestamp", "")
            given = request.headers.get("x-seamline-signature", "")
            expected = webhook_signature(self.secret, stamp, request.body)
            if not stamp or not hmac.compare_digest(given, expected):
                return Reply(401, {"error": "bad signature"})
        key = request.idempotency_key
        if not key:
            return Reply(400, {"error": "Idempotency-Key header missing"})
        fresh = self.apply(key, request.json)
        return Reply(200, {"status": "applied" if fresh else "duplicate"})


@contextlib.contextmanager
def fake_webhook(*, secret: str | None = None) -> Iterator[FakeWebhook]:
    with FakeWebhook(secret=secret) as hook:
        yield hook


# ----------------------------------------------------------------------------- HTTP API

Handler = Callable[[Received, dict[str, str]], Reply | Any]


class FakeHttpApi(_Idempotent, FakeServer):
    """A JSON API with routes set by :meth:`answer`; unknown routes answer 404.

    ``behave("error", status=500)``, ``behave("slow", seconds=3)``, ``behave("drop")`` switch
    every request until ``behave("ok")``. Requests other than GET/HEAD with an
    ``Idempotency-Key`` are counted like the webhook's (``applied``, ``repeats``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._init_keys()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.mode = "ok"
        self.mode_status = 500
        self.mode_seconds = 0.0

    def answer(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        status: int = 200,
        text: str | None = None,
        content_type: str | None = None,
        handler: Handler | None = None,
    ) -> None:
        """Route ``method path`` (``{name}`` placeholders allowed) to a fixed answer or to
        ``handler(request, path_params)`` returning a :class:`Reply` or JSON data."""
        pattern = re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
        )
        fixed = Reply(status, json, text, content_type)
        with self.lock:
            self._routes.insert(0, (method.upper(), pattern, handler or (lambda _r, _p: fixed)))

    def behave(self, mode: str, *, status: int = 500, seconds: float = 2.0) -> None:
        if mode not in ("ok", "error", "slow", "drop"):
            raise ValueError(f"unknown mode {mode!r}")
        with self.lock:
            self.mode, self.mode_status, self.mode_seconds = mode, status, seconds

    async def respond(self, request: Received) -> Reply:
        with self.lock:
            mode, status, seconds = self.mode, self.mode_status, self.mode_seconds
        if mode == "error":
            return Reply(status, {"error": f"fake failure {status}"})
        if mode == "drop":
            raise _Drop
        if mode == "slow":
            await self.sleep(seconds)
        return await super().respond(request)

    def handle(self, request: Received) -> Reply:
        for method, pattern, handler in self._routes:
            match = pattern.match(request.raw_path.split("?")[0])
            if method == request.method and match:
                key = request.idempotency_key
                if key and request.method not in ("GET", "HEAD"):
                    self.apply(key, request.json)
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                result = handler(request, params)
                return result if isinstance(result, Reply) else Reply(200, result)
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})


@contextlib.contextmanager
def fake_http_api() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as api:
        yield api


# ----------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class Mail:
    """One message accepted by the fake SMTP server."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None

    def __getitem__(self, header: str) -> str | None:
        value = self.message[header]
        return None if value is None else str(value)

    def part(self, content_type: str) -> str:
        found = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert found is not None, f"no {content_type} part"
        content = str(found.get_content())  # type: ignore[attr-defined]
        return content.replace("\r\n", "\n")


class FakeSmtp:
    """An aiosmtpd server on 127.0.0.1: ``url``, ``messages`` (:class:`Mail`),
    ``fail_next(n, code=451)`` (answer DATA with that code), optional LOGIN/PLAIN auth
    (``user``/``password``: mail without login is refused with 530)."""

    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        self.user = user
        self.password = password
        self.messages: list[Mail] = []
        self.lock = threading.Lock()
        self._failures: deque[tuple[int, str]] = deque()
        self._controller: Controller | None = None
        self.port = 0

    @property
    def url(self) -> str:
        auth = f"{quote(self.user)}:{quote(self.password or '')}@" if self.user else ""
        return f"smtp://{auth}127.0.0.1:{self.port}"

    def fail_next(self, n: int = 1, *, code: int = 451, text: str = "try again later") -> None:
        with self.lock:
            self._failures.extend((code, text) for _ in range(n))

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.user
            and data.password.decode() == (self.password or "")
        )
        return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.user and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self._failures:
                code, text = self._failures.popleft()
                return f"{code} {text}"
            raw = envelope.original_content or b""
            parsed = message_from_bytes(raw, policy=email_policy.default)
            login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
            self.messages.append(
                Mail(str(envelope.mail_from), tuple(envelope.rcpt_tos), parsed, login)  # type: ignore[arg-type]
            )
        return "250 Message accepted"

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.user:
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        # aiosmtpd binds the port itself: another process (a pytest-xdist worker) may take the
        # free port first, so a port found taken is replaced by another free one
        for attempt in range(5):
            self.port = free_port()
            controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
            try:
                controller.start()
            except OSError as error:
                controller.loop.close()
                if error.errno != errno.EADDRINUSE or attempt == 4:
                    raise
                continue
            self._controller = controller
            return

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSmtp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def fake_smtp(*, user: str | None = None, password: str | None = None) -> Iterator[FakeSmtp]:
    with FakeSmtp(user=user, password=password) as server:
        yield server


_HELD_PORTS: list[socket.socket] = []


def _close_held_ports() -> None:
    while _HELD_PORTS:
        _HELD_PORTS.pop().close()


atexit.register(_close_held_ports)


def closed_port_url(scheme: str = "http") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused).

    The port stays bound, never listening, until the process exits: connecting is refused, and
    no other server (another pytest-xdist worker's fake) can be given the port meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(sock)
    return f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"


# ----------------------------------------------------------------------------- any ASGI app


class AsgiServer(FakeServer):
    """Serve any ASGI app (e.g. the pack's mock warehouse) on 127.0.0.1 for a test."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self._app = app

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:  # type: ignore[override]
        await self._app(scope, receive, send)
