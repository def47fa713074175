"""Who is asking: cookie sessions for pages, Bearer tokens for the API, CSRF, login limits.

How views use this module
-------------------------
* The app is built with ``middleware=[session_middleware()]`` and
  ``exception_handlers=EXCEPTION_HANDLERS`` (turns :class:`SecurityError` into the JSON
  ``{"errors": [{"field": null, "code": ..., "message": ...}]}`` with its status).
* ``request.app.state.db`` (an Engine) and ``request.app.state.metadata`` must be set.
* ``await current_user(request)`` gives the :class:`~engine.auth.User` or None (cached on
  the request); ``await require_user(request)`` raises a 401 :class:`SecurityError` instead.
  API routes let it propagate; page routes catch it (or test for None) and redirect.
* Every view that changes something (POST/PUT/PATCH/DELETE) calls
  ``await require_csrf(request)`` before acting — the login view too. Pages put
  ``csrf_token(request)`` in a hidden input named ``csrf_token``; htmx sends it as the
  ``X-CSRF-Token`` header. Requests with ``Authorization: Bearer`` are exempt (no cookie is
  involved, and such requests never fall back to the session). ``check_csrf(request,
  form_value)`` is the same test as a plain bool for views that parse the form themselves.
* The login view calls ``await login(request, username, password)``: a User (the session is
  set and the CSRF token rotated), None for wrong credentials, or a 429 SecurityError when
  there were too many failures for this user name from this address.

Database work runs in Starlette's thread pool so it never blocks the event loop.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.auth import User, authenticate, session_stamp, user_for_session, user_for_token
from engine.i18n import Lang, Text, default_lang, lang_from_locale
from engine.storage import reader

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

log = logging.getLogger("seamline.security")

SESSION_COOKIE = "seamline_session"
SESSION_MAX_AGE = 12 * 60 * 60  # a working day; signing in again after that is cheap
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_USER_KEY, _STAMP_KEY, _CSRF_KEY = "user", "stamp", "csrf"
_UNSET = object()
_generated_secret: str | None = None


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


def _lang(request: Request) -> Lang:
    """Accept-Language first (as the JSON API does), then SEAMLINE_LANG / the app's locale."""
    asked = request.headers.get("accept-language", "").split(",")[0].strip()
    if asked:
        return lang_from_locale(asked)
    app = getattr(request.app.state, "app", None)
    return default_lang(getattr(app, "locale", None))


async def security_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SecurityError)
    return JSONResponse(
        error_body(exc.code, exc.message(_lang(request))),
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


def session_secret() -> str:
    """``SEAMLINE_SECRET_KEY``, or a random key for this process only (with a warning)."""
    global _generated_secret
    configured = os.environ.get("SEAMLINE_SECRET_KEY", "").strip()
    if configured:
        if len(configured) < 32:
            log.warning("SEAMLINE_SECRET_KEY is short; use at least 32 random characters")
        return configured
    if _generated_secret is None:
        _generated_secret = secrets.token_urlsafe(48)
        log.warning(
            "SEAMLINE_SECRET_KEY is not set: using a random key for this process. Sessions "
            "will not survive a restart and will not work across several web processes."
        )
    return _generated_secret


def secure_cookies() -> bool:
    return os.environ.get("SEAMLINE_SECURE_COOKIES", "").strip().lower() in ("1", "true", "yes")


def session_middleware() -> Middleware:
    """Signed-cookie sessions: HttpOnly, SameSite=Lax, Secure with SEAMLINE_SECURE_COOKIES=1."""
    return Middleware(
        SessionMiddleware,
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
    if "session" not in request.scope:
        return None
    username = request.session.get(_USER_KEY)
    stamp = request.session.get(_STAMP_KEY)
    if not isinstance(username, str) or not isinstance(stamp, str):
        return None
    with _db(request).connect() as conn:
        return user_for_session(conn, username, stamp)


async def current_user(request: Request) -> User | None:
    """The signed-in user (Bearer token first, else the session), or None."""
    cached = getattr(request.state, "seamline_user", _UNSET)
    if cached is not _UNSET:
        return cast(User | None, cached)
    user = await run_in_threadpool(_resolve, request)
    request.state.seamline_user = user
    return user


async def require_user(request: Request) -> User:
    """The signed-in user, or a 401 :class:`SecurityError` (JSON errors shape)."""
    user = await current_user(request)
    if user is None:
        raise SecurityError(401, "unauthenticated", _SIGN_IN, {"WWW-Authenticate": "Bearer"})
    return user


# ---------------------------------------------------------------------------- CSRF


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use, also for visitors not signed in)."""
    session = _session(request)
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
    expected = request.session.get(_CSRF_KEY) if "session" in request.scope else None
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


def _check_login(engine: Engine, username: str, password: str) -> tuple[User | None, str]:
    if "\x00" in username or "\x00" in password:  # no such user can exist (PostgreSQL
        return None, ""  # would refuse the text outright)
    with engine.begin() as conn:  # begin(): authenticate may store a rehashed password
        user = authenticate(conn, username, password)
        stamp = session_stamp(conn, username) if user is not None else None
    return user, stamp or ""


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
    user, stamp = await run_in_threadpool(_check_login, request.app.state.db, username, password)
    if user is None:
        return None
    limiter.reset(key)
    session = _session(request)
    session.clear()
    session.update(
        {_USER_KEY: user.username, _STAMP_KEY: stamp, _CSRF_KEY: secrets.token_urlsafe(32)}
    )
    request.state.seamline_user = user
    return user


def logout(request: Request) -> None:
    """End the session (the CSRF token goes too; a new one is made on next use)."""
    _session(request).clear()
    request.state.seamline_user = None
