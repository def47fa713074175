"""Who is asking: cookie sessions for pages, Bearer tokens for the API, CSRF, login limits.

How views use this module
-------------------------
* The app is built with ``middleware=[session_middleware()]`` and
  ``exception_handlers=EXCEPTION_HANDLERS`` (turns :class:`SecurityError` into the JSON
  ``{"errors": [{"field": null, "code": ..., "message": ...}]}`` with its status).
* ``request.app.state.db`` (an Engine) and ``request.app.state.metadata`` must be set.
* ``await current_user(request)`` gives the :class:`~engine.accounts.auth.User` or None (cached on
  the request; ``user_of(request)`` is the same on a worker thread);
  ``await require_user(request)`` raises a 401 :class:`SecurityError` instead.
  API routes let it propagate; page routes catch it (or test for None) and redirect.
* Every view that changes something (POST/PUT/PATCH/DELETE) calls
  ``await require_csrf(request)`` before acting — the login view too. Pages put
  ``csrf_token(request)`` in a hidden input named ``csrf_token``; htmx sends it as the
  ``X-CSRF-Token`` header. Requests with ``Authorization: Bearer`` are exempt (no cookie is
  involved, and such requests never fall back to the session). ``check_csrf(request,
  form_value)`` is the same test as a plain bool for views that parse the form themselves.
* The login view calls ``await login(request, username, password)``: a User (a server-side
  session is started and the CSRF token rotated), None for wrong credentials, or a 429
  SecurityError when there were too many failures for this user name from this address.
* ``logout(request)`` clears the cookie at once; the session's record in ``sl_sessions`` is
  revoked by the session middleware before the response goes out, so a copy of the old
  cookie is refused from then on.

Sessions live on the server (:mod:`engine.accounts.sessions`): the signed cookie carries only a
random session id (plus, before sign-in, the visitor's CSRF token); every request looks the id up
(one primary-key read; the last-seen time is written at most every few minutes). A signed-in
session's CSRF token is an HMAC of its id under the secret key, so it changes with every
sign-in and needs no storage.

Database work runs in Starlette's thread pool so it never blocks the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from engine.accounts.auth import User, authenticate, user_for_session, user_for_token
from engine.accounts.secret import session_secret
from engine.accounts.sessions import end_session, start_session, touch_session
from engine.model.i18n import Text
from engine.model.logs import logger
from engine.store.storage import reader
from engine.web.current import request_lang

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "EXCEPTION_HANDLERS",
    "LOGIN_LIMITER",
    "SESSION_COOKIE",
    "LoginLimiter",
    "SecurityError",
    "check_csrf",
    "csrf_token",
    "current_user",
    "error_body",
    "login",
    "logout",
    "require_csrf",
    "require_user",
    "security_error_handler",
    "session_middleware",
    "session_secret",
]

log = logger(__name__)

SESSION_COOKIE = "seamline_session"
SESSION_MAX_AGE = (
    12 * 60 * 60
)  # the cookie's life; the server's limits are engine.accounts.sessions'
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_SID_KEY, _CSRF_KEY = "sid", "csrf"
_ENDING = "seamline_ending_session"  # request.state: a session id to revoke before answering
_UNSET = object()


# ---------------------------------------------------------------------------- errors


class SecurityError(HTTPException):
    """401 / 403 / 429 with a stable code and a bilingual message."""

    def __init__(
        self, status_code: int, code: str, message: Text, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status_code, message.en, headers)
        self.code = code
        self.message = message


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"errors": [{"field": field, "code": code, "message": message}]}


async def security_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SecurityError)
    return JSONResponse(
        error_body(
            exc.code, exc.message(request_lang(request, accept_language=True, app_locale=False))
        ),
        status_code=exc.status_code,
        headers=exc.headers,
    )


EXCEPTION_HANDLERS: dict[Any, Callable[..., Any]] = {SecurityError: security_error_handler}

_SIGN_IN = Text("sign in first (or send an API token)", "请先登录（或提供 API 令牌）")
_CSRF = Text(
    "the form is out of date or was not sent from this site; reload the page and try again",
    "表单已过期或不是从本站提交的；请刷新页面后重试",
)


# ---------------------------------------------------------------------------- sessions


def secure_cookies() -> bool:
    return os.environ.get("SEAMLINE_SECURE_COOKIES", "").strip().lower() in ("1", "true", "yes")


class ServerSessionMiddleware(SessionMiddleware):
    """Starlette's signed cookie, plus: a session ended by :func:`logout` is revoked in
    ``sl_sessions`` before the response starts (the view itself stays synchronous)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                ending = scope.get("state", {}).pop(_ENDING, None)
                app = scope.get("app")
                if ending is not None and app is not None:
                    await run_in_threadpool(_end, app.state.db, ending)
            await send(message)

        await super().__call__(scope, receive, sending)


def _end(engine: Engine, session_id: str) -> None:
    with engine.begin() as conn:
        end_session(conn, session_id)


def session_middleware() -> Middleware:
    """Signed-cookie sessions backed by ``sl_sessions``: HttpOnly, SameSite=Lax, Secure with
    SEAMLINE_SECURE_COOKIES=1."""
    return Middleware(
        ServerSessionMiddleware,
        secret_key=session_secret(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=secure_cookies(),
    )


def _session(request: Request) -> dict[str, Any]:
    if "session" not in request.scope:
        raise RuntimeError("install session_middleware() to use sessions")
    return request.session


# ---------------------------------------------------------------------------- who is asking


def _bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; "" for any other Authorization."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _db(request: Request) -> Engine:
    """Read-only use of the app's engine (no write lock on SQLite)."""
    return reader(request.app.state.db)


def _resolve(request: Request) -> User | None:
    token = _bearer(request)
    if token is not None:  # an API call: never fall back to the cookie
        if not token:
            return None
        with _db(request).connect() as conn:
            return user_for_token(conn, token)
    session_id = _session_id(request)
    if session_id is None:
        return None
    with _db(request).connect() as conn:
        found = user_for_session(conn, session_id)
    if found is None:
        return None
    user, stale = found
    if stale:  # at most every few minutes: note that the session is in use
        try:
            with request.app.state.db.begin() as conn:
                touch_session(conn, session_id)
        except OperationalError:  # e.g. SQLite's write lock stayed busy: try next time
            log.warning("could not note the use of a session", exc_info=True)
    return user


def has_credentials(request: Request) -> bool:
    """Whether the request carries a Bearer token or a session id at all (no database read):
    a request with neither is refused before anything of it is read."""
    return _bearer(request) is not None or _session_id(request) is not None


def _session_id(request: Request) -> str | None:
    """The session id the signed session cookie carries, if any (no database read)."""
    if "session" not in request.scope:
        return None
    session_id = request.session.get(_SID_KEY)
    return session_id if isinstance(session_id, str) else None


def user_of(request: Request) -> User | None:
    """:func:`current_user` for code already on a worker thread (it reads the database)."""
    cached = getattr(request.state, "seamline_user", _UNSET)
    if cached is not _UNSET:
        return cast(User | None, cached)
    user = _resolve(request)
    request.state.seamline_user = user
    return user


async def current_user(request: Request) -> User | None:
    """The signed-in user (Bearer token first, else the session), or None."""
    cached = getattr(request.state, "seamline_user", _UNSET)
    if cached is not _UNSET:
        return cast(User | None, cached)
    return await run_in_threadpool(user_of, request)


async def require_user(request: Request) -> User:
    """The signed-in user, or a 401 :class:`SecurityError` (JSON errors shape)."""
    user = await current_user(request)
    if user is None:
        raise SecurityError(401, "unauthenticated", _SIGN_IN, {"WWW-Authenticate": "Bearer"})
    return user


# ---------------------------------------------------------------------------- CSRF


def _session_csrf(session_id: str) -> str:
    key = session_secret().encode("utf-8")
    digest = hmac.new(key, b"csrf:" + session_id.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_token(request: Request) -> str:
    """This session's CSRF token: derived from a signed-in session's id, else made on first
    use and kept in the cookie (visitors not signed in, e.g. on the sign-in page)."""
    session = _session(request)
    session_id = session.get(_SID_KEY)
    if isinstance(session_id, str) and session_id:
        return _session_csrf(session_id)
    token = session.get(_CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def check_csrf(request: Request, form_value: str | None) -> bool:
    """True for safe methods, Bearer requests, or a token (form value, else the
    ``X-CSRF-Token`` header) equal to the session's."""
    if request.method in SAFE_METHODS or _bearer(request) is not None:
        return True
    expected: object = None
    if "session" in request.scope:
        session_id = request.session.get(_SID_KEY)
        if isinstance(session_id, str) and session_id:
            expected = _session_csrf(session_id)
        else:
            expected = request.session.get(_CSRF_KEY)
    given = form_value or request.headers.get(CSRF_HEADER)
    if not isinstance(expected, str) or not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


async def require_csrf(request: Request) -> None:
    """Raise a 403 :class:`SecurityError` (code ``csrf``) unless :func:`check_csrf` passes.

    Reads the ``csrf_token`` form field when the header is absent; Starlette keeps the parsed
    form on the request, so the view can still ``await request.form()`` afterwards.
    """
    form_value: str | None = None
    needs_form = request.method not in SAFE_METHODS and _bearer(request) is None
    if needs_form and CSRF_HEADER not in request.headers and _is_form(request):
        value = (await request.form()).get(CSRF_FIELD)
        form_value = value if isinstance(value, str) else None
    if not check_csrf(request, form_value):
        raise SecurityError(403, "csrf", _CSRF)


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


# ---------------------------------------------------------------------------- login


class LoginLimiter:
    """Failed sign-ins per (user name, client address), in this process's memory.

    Every attempt counts until it succeeds, so parallel guesses cannot slip past the limit.
    Kept in memory: each web process counts on its own and a restart forgets.
    """

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: tuple[str, str]) -> int:
        """Count an attempt: 0 when allowed, else the seconds to wait (nothing counted)."""
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.max_failures:
                return max(1, int(hits[0] + self.window - now) + 1)
            hits.append(now)
            if len(self._hits) > self.max_keys:
                self._prune(now)
            return 0

    def reset(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._hits.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
            del self._hits[key]
        while len(self._hits) > self.max_keys:
            del self._hits[next(iter(self._hits))]


LOGIN_LIMITER = LoginLimiter()


def _limiter(request: Request) -> LoginLimiter:
    return getattr(request.app.state, "login_limiter", None) or LOGIN_LIMITER


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _check_login(
    engine: Engine,
    username: str,
    password: str,
    previous: object,
    user_agent: str | None,
    address: str,
) -> tuple[User | None, str]:
    """The user and a new session id; the session this browser had before is ended."""
    if "\x00" in username or "\x00" in password:  # no such user can exist (PostgreSQL
        return None, ""  # would refuse the text outright)
    with engine.begin() as conn:  # begin(): authenticate may store a rehashed password
        user = authenticate(conn, username, password)
        if user is None:
            return None, ""
        end_session(conn, previous, "signed-in-again")
        session_id = start_session(conn, user.username, user_agent=user_agent, address=address)
    return user, session_id


async def login(request: Request, username: str, password: str) -> User | None:
    """Check the password and start a session; None when wrong, 429 when rate limited."""
    key = (username.strip().lower()[:64], _client(request))
    limiter = _limiter(request)
    wait = limiter.hit(key)
    if wait:
        log.warning("sign-in for %r from %s refused: too many failures", key[0], key[1])
        raise SecurityError(
            429,
            "too-many-attempts",
            Text(
                f"too many failed sign-ins; try again in {wait} seconds",
                f"登录失败次数过多；请 {wait} 秒后再试",
            ),
            {"Retry-After": str(wait)},
        )
    session = _session(request)
    user, session_id = await run_in_threadpool(
        _check_login,
        request.app.state.db,
        username,
        password,
        session.get(_SID_KEY),
        request.headers.get("user-agent"),
        _client(request),
    )
    if user is None:
        return None
    limiter.reset(key)
    session.clear()
    session[_SID_KEY] = session_id  # the CSRF token is derived from it: rotated too
    request.state.seamline_user = user
    return user


def logout(request: Request) -> None:
    """End the session: the cookie is cleared now, and the server-side record is revoked by
    :class:`ServerSessionMiddleware` before the response starts (the CSRF token goes too; a
    new one is made on next use)."""
    session = _session(request)
    session_id = session.get(_SID_KEY)
    session.clear()
    if isinstance(session_id, str) and session_id:
        setattr(request.state, _ENDING, session_id)
    request.state.seamline_user = None
