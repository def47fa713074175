"""The worklist page (``/tasks``, "my work") and what is done from it: approval decisions
posted from plain HTML forms (the approvals panel of the record page is
:func:`engine.web.panels.approval_panel`) and to-dos marked done.

- ``GET /tasks`` — what waits for the signed-in user, by section with counts
  (:func:`engine.flows.worklist.worklist`): approval tasks (theirs and those of people they
  stand in for), confirmations at gates, to-dos, records their roles move on
- ``POST /tasks/{id}/approve|reject|return`` — ``comment`` and ``next`` (``/tasks`` or the
  record page) in the form; success redirects back (303) with a flash message, a refusal
  (403/404/409/422/400) shows the page again with the message and keeps its status
- ``POST /tasks/todos/{id}/done`` — mark a to-do done (its person, or anyone holding its role);
  back to ``next`` (``/tasks`` or ``/``) with a flash message, a refusal shows the page again

The PDF record is downloaded from ``/api/approvals/{id}/record.pdf``: the API accepts the page
session for GET, so no page route is needed for it.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.flows.todos import mark_done
from engine.model import clock
from engine.model.errors import NotFound, ValidationFailed
from engine.runtime import LiveApp
from engine.web.api import require
from engine.web.current import live, request_lang
from engine.web.jsonio import status_of
from engine.web.page_kit import CONTROL, page, post_text
from engine.web.pages_records import show_record
from engine.web.panels import my_work
from engine.web.templating import render, translate

__all__ = ["task_page_routes"]

DECISIONS = ("approve", "reject", "return")
MAX_COMMENT = 4000
_RECORD_PAGE = re.compile(r"/forms/([a-z][a-z0-9_]*)/([1-9][0-9]{0,17})")
FLASH_KEY = "flash"


async def _show_inbox(
    request: Request, user: User, status: int = 200, errors: list[str] | None = None
) -> Response:
    current = live(request)
    work = await run_in_threadpool(my_work, current, user)
    context = {"work": work, "tasks": work.approvals, "errors": errors or [], "comment": ""}
    if errors:
        context["comment"] = post_text(request.state.post, "comment")
        context["failed_task"] = request.path_params.get("task_id")
    return render(request, "tasks.html", context, status)


async def tasks_page(request: Request, user: User) -> Response:
    require(request, user, "use")  # one's own inbox
    return await _show_inbox(request, user)


def _back(raw: str) -> str:
    """Where to go after deciding: a record page, else the inbox."""
    return raw if _RECORD_PAGE.fullmatch(raw) else "/tasks"


async def decide_page(request: Request, user: User) -> Response:
    """Approve, reject or return a task from a plain form; ``decide`` checks everything
    (assignee or delegate, never the creator or starter: the approval is the permission)."""
    require(request, user, "use")
    decision = request.path_params["decision"]
    task_id = int(request.path_params["task_id"])
    post = request.state.post
    comment = CONTROL.sub(" ", post_text(post, "comment")).strip()[: MAX_COMMENT + 1]
    back = _back(post_text(post, "next"))
    lang = request_lang(request)
    try:
        if decision not in DECISIONS or not 0 < task_id < 2**62:
            raise NotFound("task", None)
        await run_in_threadpool(
            live(request).flows.approvals.decide, task_id, user, decision, comment or None
        )
    except ValidationFailed as failed:
        errors = [e.message(lang) for e in failed.errors]
        found = _RECORD_PAGE.fullmatch(back)
        if found is None:
            return await _show_inbox(request, user, status_of(failed), errors)
        request.scope["path_params"] = {"form": found[1], "record_id": int(found[2])}
        return await show_record(request, status=status_of(failed), action_errors=errors)
    request.session[FLASH_KEY] = translate(lang, f"decided_{decision}")
    return RedirectResponse(back, 303)


def _done(current: LiveApp, todo_id: int, user: User) -> dict[str, Any]:
    with current.records.engine.begin() as conn:
        return mark_done(conn, current.metadata, todo_id, user, clock.now())


async def todo_done_page(request: Request, user: User) -> Response:
    """Mark a to-do done; ``mark_done`` checks it is the user's (the assignment is the
    permission, like an approval task's)."""
    require(request, user, "use")
    todo_id = int(request.path_params["todo_id"])
    back = "/" if post_text(request.state.post, "next") == "/" else "/tasks"
    lang = request_lang(request)
    try:
        if not 0 < todo_id < 2**62:
            raise NotFound("todo", None)
        await run_in_threadpool(_done, live(request), todo_id, user)
    except ValidationFailed as failed:
        errors = [e.message(lang) for e in failed.errors]
        return await _show_inbox(request, user, status_of(failed), errors)
    request.session[FLASH_KEY] = translate(lang, "todo_done")
    return RedirectResponse(back, 303)


def task_page_routes() -> list[BaseRoute]:
    return [
        Route("/tasks", page(tasks_page)),
        Route("/tasks/todos/{todo_id:int}/done", page(todo_done_page), methods=["POST"]),
        Route("/tasks/{task_id:int}/{decision}", page(decide_page), methods=["POST"]),
    ]
