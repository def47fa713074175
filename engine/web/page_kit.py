"""What every server-rendered page module shares: the :func:`page` decorator (signed-in user,
CSRF on POST, NotFound → the 404 page), the error pages, and reading the posted form, the
search box and the form / record named in the path.

Page modules build on this one; it imports none of them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from engine.accounts.auth import User
from engine.model.errors import NotFound, ValidationFailed
from engine.model.spec import FormSpec
from engine.web.current import live, request_lang
from engine.web.jsonio import status_of
from engine.web.panels import open_task_count
from engine.web.security import check_csrf, current_user
from engine.web.templating import render

__all__ = [
    "CONTROL",
    "PageHandler",
    "error_page",
    "field_errors",
    "not_found_page",
    "page",
    "path_form",
    "path_record_id",
    "post_text",
    "read_post",
    "search_text",
]

MAX_POST = 2_000_000
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

PageHandler = Callable[[Request, User], Awaitable[Response]]


def error_page(request: Request, status: int, key: str, detail: str | None = None) -> Response:
    return render(
        request, "error.html", {"status": status, "message": key, "detail": detail}, status
    )


def not_found_page(request: Request) -> Response:
    """The HTML 404 for addresses outside /api."""
    return error_page(request, 404, "not_found")


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urlencode({"next": target})


async def read_post(request: Request) -> FormData | None:
    """The posted form (no files); None when it is too large, empty when it does not parse."""
    length = request.headers.get("content-length", "")
    if length.isdecimal() and int(length) > MAX_POST:
        return None
    try:
        return await request.form(max_files=0, max_fields=5000)
    except HTTPException:
        return FormData()


def post_text(post: FormData, key: str) -> str:
    value = post.get(key)
    return value if isinstance(value, str) else ""


def search_text(request: Request) -> str:
    """The ``q`` parameter: trimmed, without control characters (PostgreSQL refuses NUL)."""
    return CONTROL.sub("", request.query_params.get("q", "")).strip()[:200]


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """Signed-in user (else redirect to /login), CSRF on POST, NotFound → 404 page."""

    async def endpoint(request: Request) -> Response:
        user = await current_user(request)
        if user is None:
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": _login_url(request)})
            return RedirectResponse(_login_url(request), 303)
        if not request.headers.get("hx-request"):  # the count in the navigation
            request.state.open_tasks = await run_in_threadpool(open_task_count, live(request), user)
        if request.method == "POST":
            post = await read_post(request)
            if post is None:
                return error_page(request, 413, "too_large")
            if not check_csrf(request, post_text(post, "csrf_token")):
                return error_page(request, 403, "csrf")
            request.state.post = post  # handlers read the form from here
        try:
            return await handler(request, user)
        except NotFound:
            return error_page(request, 404, "not_found")
        except ValidationFailed as failed:  # e.g. the form's permissions refuse this user
            if status_of(failed) != 403:
                raise
            message = failed.errors[0].message(request_lang(request))
            return error_page(request, 403, "forbidden", message)

    return endpoint


def path_form(request: Request) -> FormSpec:
    """The form named ``{form}`` in the path (NotFound when there is none)."""
    return live(request).records.form(request.path_params["form"])


def path_record_id(request: Request) -> int:
    """The ``{record_id}`` of the path (NotFound outside 1 … 2⁶²)."""
    record_id = request.path_params["record_id"]
    if record_id <= 0 or record_id > 2**62:
        raise NotFound(request.path_params["form"], None)
    return int(record_id)


def field_errors(
    failed: ValidationFailed, request: Request, known: set[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Field errors by field (``table.col`` under ``table``) and the rest as general errors."""
    lang = request_lang(request)
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for error in failed.errors:
        top = (error.field or "").split(".")[0]
        if top in known:
            by_field.setdefault(top, []).append(error.message(lang))
            if "." in (error.field or ""):
                by_field.setdefault(error.field or "", []).append(error.message(lang))
        else:
            general.append(error.message(lang))
    return by_field, general
