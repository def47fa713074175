"""Approval pages: the inbox (``/tasks``), decisions posted from plain HTML forms, and the
approvals panel of the record page.

- ``GET /tasks`` — what waits for the signed-in user and for those they stand in for
- ``POST /tasks/{id}/approve|reject|return`` — ``comment`` and ``next`` (``/tasks`` or the
  record page) in the form; success redirects back (303) with a flash message, a refusal
  (403/404/409/422/400) shows the page again with the message and keeps its status

The PDF record is downloaded from ``/api/approvals/{id}/record.pdf``: the API accepts the page
session for GET, so no page route is needed for it.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.flows.approvals.inbox import inbox, record_approvals
from engine.flows.approvals.service import APPROVALS, ASSIGNEES, TASKS, delegators
from engine.model import clock
from engine.model.errors import NotFound, ValidationFailed
from engine.runtime import LiveApp
from engine.web.api import live, require
from engine.web.jsonio import status_of
from engine.web.pages import _CONTROL, _show_record, _text, page
from engine.web.templating import page_lang, render, translate

__all__ = ["approval_panel", "open_task_count", "task_page_routes"]

DECISIONS = ("approve", "reject", "return")
MAX_COMMENT = 4000
_RECORD_PAGE = re.compile(r"/forms/([a-z][a-z0-9_]*)/([1-9][0-9]{0,17})")
FLASH_KEY = "flash"


def open_task_count(current: LiveApp, username: str) -> int:
    """How many open tasks wait for ``username`` (or for people they stand in for)."""
    with current.records.reads.connect() as conn:
        principals = [username, *delegators(conn, username, clock.now())]
        mine = sa.select(ASSIGNEES.c.task_id).where(ASSIGNEES.c.user.in_(principals))
        query = (
            sa.select(sa.func.count())
            .select_from(TASKS.join(APPROVALS, APPROVALS.c.id == TASKS.c.approval_id))
            .where(
                TASKS.c.status == "open",
                APPROVALS.c.status == "active",
                TASKS.c.id.in_(mine),
                APPROVALS.c.form.in_(list(current.app.forms)),
            )
        )
        return int(conn.execute(query).scalar_one())


def approval_panel(current: LiveApp, form: str, record_id: int, user: User) -> list[dict[str, Any]]:
    """The record's approvals, each task marked ``may_decide`` when the viewer is one of its
    assignees or stands in for one (the server still checks everything on the decision)."""
    with current.records.reads.connect() as conn:
        approvals = record_approvals(conn, form, record_id)
        principals = {user.username, *delegators(conn, user.username, clock.now())}
    for approval in approvals:
        for task in approval["tasks"]:
            task["may_decide"] = (
                approval["status"] == "active"
                and task["status"] == "open"
                and bool(principals & set(task["assignees"]))
                and approval["submitter"] != user.username  # never one's own submission
                and user.username not in (approval.get("excluded") or ())  # nor its creator
            )
    return approvals


def _my_tasks(current: LiveApp, username: str) -> list[dict[str, Any]]:
    with current.records.reads.connect() as conn:
        return inbox(conn, current.app, current.records.runtime.calendar, username, clock.now())


async def _show_inbox(
    request: Request, user: User, status: int = 200, errors: list[str] | None = None
) -> Response:
    current = live(request)
    tasks = await run_in_threadpool(_my_tasks, current, user.username)
    context = {"tasks": tasks, "errors": errors or [], "comment": ""}
    if errors:
        context["comment"] = _text(request.state.post, "comment")
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
    comment = _CONTROL.sub(" ", _text(post, "comment")).strip()[: MAX_COMMENT + 1]
    back = _back(_text(post, "next"))
    lang = page_lang(live(request).app)
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
        return await _show_record(request, status=status_of(failed), action_errors=errors)
    request.session[FLASH_KEY] = translate(lang, f"decided_{decision}")
    return RedirectResponse(back, 303)


def task_page_routes() -> list[BaseRoute]:
    return [
        Route("/tasks", page(tasks_page)),
        Route("/tasks/{task_id:int}/{decision}", page(decide_page), methods=["POST"]),
    ]
