"""Sign-in and sign-out, the home page (the forms this person may read) and the operators' runs
page (recent flow runs, the dead-letter list, tracking codes waiting in the outbox)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.model.permissions import Resource, allowed
from engine.outbox.monitor import list_jobs, list_runs, retry_job
from engine.tracking.codes import recent_code_messages
from engine.web.api import require
from engine.web.current import live, request_lang
from engine.web.page_kit import CONTROL, error_page, page, post_text, read_post
from engine.web.panels import my_work
from engine.web.security import SecurityError, check_csrf, current_user, login, logout
from engine.web.templating import render, translate

__all__ = ["home_page_routes"]


def _safe_next(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return "/"
    return raw if re.fullmatch(r"/[\x21-\x7e]*", raw) else "/"


# ---------------------------------------------------------------------------- sign-in


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        if await current_user(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        return render(request, "login.html", {"next": request.query_params.get("next", "/")})
    post = await read_post(request) or FormData()
    token, name, password = (post_text(post, k) for k in ("csrf_token", "username", "password"))
    context: dict[str, Any] = {"next": _safe_next(post.get("next")), "username": name}

    def refuse(key: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
        context["error"] = translate(request_lang(request), key)
        return render(request, "login.html", context, status, headers)

    if not check_csrf(request, token):
        return refuse("csrf", 403)
    if not name or not password or CONTROL.search(name):
        return refuse("bad_login", 400)
    try:
        user = await login(request, name.strip()[:64], password[:1024])
    except SecurityError as refused:
        context["error"] = refused.message(request_lang(request))
        return render(request, "login.html", context, refused.status_code, refused.headers)
    if user is None:
        return refuse("bad_login", 401)
    return RedirectResponse(context["next"], 303)


async def logout_page(request: Request) -> Response:
    post = await read_post(request) or FormData()
    if not check_csrf(request, post_text(post, "csrf_token")):
        return error_page(request, 403, "csrf")
    logout(request)
    return RedirectResponse("/login", 303)


# ---------------------------------------------------------------------------- home, runs


HOME_ITEMS = 3  # records shown per card of the home page (the rest on /tasks)


@page
async def home(request: Request, user: User) -> Response:
    """One card per section of the person's work (its count and first items), then the forms
    they may use."""
    require(request, user, "use")
    current = live(request)
    app = current.app
    forms = [f for f in app.forms.values() if allowed(app, user, "read", Resource(f))]
    work = await run_in_threadpool(my_work, current, user, HOME_ITEMS)
    return render(request, "home.html", {"forms": forms, "work": work, "shown": HOME_ITEMS})


@page
async def runs_page(request: Request, user: User) -> Response:
    """Recent flow runs (inputs, outputs, errors, attempts) and the dead-letter list."""
    app, db = live(request).app, request.app.state.db
    operator = allowed(app, user, "operate")
    sees_codes = allowed(app, user, "track_codes")
    if not sees_codes:
        require(request, user, "operate")
    runs = await run_in_threadpool(list_runs, db, limit=50) if operator else None
    dead = await run_in_threadpool(list_jobs, db, status="dead", limit=100) if operator else None
    codes = None
    if sees_codes:
        codes = await run_in_threadpool(recent_code_messages, db)
    for run in runs or ():
        run["inputs"] = readable(run.get("trigger"))
        run["outputs"] = readable(run.get("results"))
    return render(request, "runs.html", {"runs": runs, "dead": dead, "codes": codes})


FOLD_AT = 80  # characters of a value shown before the rest is folded away


def readable(value: Any, prefix: str = "") -> list[tuple[str, str, str]]:
    """A run's inputs or outputs as ``key: value`` lines for people, not raw JSON: nested
    mappings by dotted keys (``stock.available``), lists of plain values joined, other lists
    as ``key[0].x`` lines; each line ``(key, shown, rest)`` with the part of a long value
    after :data:`FOLD_AT` characters in ``rest`` (the page folds it away)."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return [(prefix, "—", "")]
        return [
            line
            for key, inner in value.items()
            for line in readable(inner, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(value, list) and any(isinstance(v, (Mapping, list)) for v in value):
        return [line for i, inner in enumerate(value) for line in readable(inner, f"{prefix}[{i}]")]
    text = (
        (", ".join(_plain(v) for v in value) or "—") if isinstance(value, list) else _plain(value)
    )
    if not prefix:
        return [] if text in ("", "—") else [("", text[:FOLD_AT], text[FOLD_AT:])]
    return [(prefix, text[:FOLD_AT], text[FOLD_AT:])]


def _plain(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@page
async def retry_page(request: Request, user: User) -> Response:
    require(request, user, "operate")
    await run_in_threadpool(retry_job, request.app.state.db, request.path_params["job_id"])
    return RedirectResponse("/runs", 303)


def home_page_routes() -> list[BaseRoute]:
    return [
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout_page, methods=["POST"]),
        Route("/", home),
        Route("/runs", runs_page),
        Route("/runs/jobs/{job_id:int}/retry", retry_page, methods=["POST"]),
    ]
