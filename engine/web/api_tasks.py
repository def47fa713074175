"""The approval API: my inbox, decisions, a record's approvals and its PDF record, delegation.

- ``GET /api/tasks`` — what waits for me (and for those I stand in for), oldest first
- ``POST /api/tasks/{id}/approve|reject|return`` — ``{"comment": "…"}`` (required to reject
  or return); only an assignee or their delegate, never the submitter (403)
- ``GET /api/forms/{form}/records/{id}/approvals`` — the record's approvals and tasks
- ``GET /api/approvals/{id}/record.pdf`` — the sealed PDF record of a decided approval
- ``GET|POST /api/delegations``, ``DELETE /api/delegations/{id}`` — my delegation periods
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.flows.approvals import inbox as inbox_module
from engine.flows.approvals.service import APPROVALS
from engine.model import clock
from engine.model.errors import BadRequest, FieldError, Invalid, NotFound
from engine.model.i18n import Text
from engine.store.files import load_file
from engine.web.api import guarded, require
from engine.web.current import live
from engine.web.files import content_disposition
from engine.web.jsonio import json_response

_ID = re.compile(r"[0-9]{1,18}")


def _id(request: Request, name: str, what: str) -> int:
    raw = request.path_params[name]
    if not _ID.fullmatch(raw):
        raise NotFound(what, None)
    return int(raw)


@guarded
def my_tasks(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "use")  # one's own inbox
    current = live(request)
    with current.records.reads.connect() as conn:
        tasks = inbox_module.inbox(
            conn, current.app, current.records.runtime.calendar, user.username, clock.now()
        )
    return json_response({"tasks": tasks})


def _decide(decision: str):
    @guarded
    def endpoint(request: Request, user: Any, data: Any) -> Response:
        # Anyone signed in may try; the approval decides (assignee or delegate, never the
        # creator or starter) — the approval itself is the permission.
        require(request, user, "use")
        if data is not None and not isinstance(data, dict):
            raise BadRequest(
                [
                    FieldError(
                        None, "bad_body", Text("send a JSON object", "请求体必须是 JSON 对象")
                    )
                ],
            )
        comment = (data or {}).get("comment")
        if comment is not None and not isinstance(comment, str):
            raise Invalid(
                [FieldError("comment", "bad_type", Text("comment: text", "comment：须为文本"))]
            )
        task_id = _id(request, "task_id", "task")
        result = live(request).flows.approvals.decide(task_id, user, decision, comment)
        return json_response(result)

    return endpoint


@guarded
def record_approvals(request: Request, user: Any, data: Any) -> Response:
    current = live(request)
    form = current.records.form(request.path_params["form"])
    current.records.check_access(form, "read", user)
    record_id = _id(request, "record_id", form.name)
    with current.records.reads.connect() as conn:
        current.records.row(conn, form, record_id)  # 404 for a record that does not exist
        approvals = inbox_module.record_approvals(conn, form.name, record_id)
    return json_response({"approvals": approvals})


@guarded
def approval_pdf(request: Request, user: Any, data: Any) -> Response:
    current = live(request)
    approval_id = _id(request, "approval_id", "approval")
    with current.records.reads.connect() as conn:
        row = conn.execute(
            sa.select(APPROVALS.c.form, APPROVALS.c.record_file).where(
                APPROVALS.c.id == approval_id
            )
        ).first()
        if row is None or row.form not in current.app.forms:
            raise NotFound("approval", approval_id)
        current.records.check_access(current.records.form(row.form), "read", user)
        if row.record_file is None:  # not rendered yet
            raise NotFound("approval", approval_id)
        found = load_file(conn, row.record_file)
    if found is None:
        raise NotFound("approval", approval_id)
    info, content = found
    return Response(
        content,
        media_type="application/pdf",
        headers={"content-disposition": content_disposition(info.name)},
    )


@guarded
def delegations(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "use")  # one's own delegations
    current = live(request)
    if request.method == "POST":
        with current.records.engine.begin() as conn:
            made = inbox_module.add_delegation(
                conn, current.app, user.username, data or {}, clock.now()
            )
        return json_response(made, 201)
    with current.records.reads.connect() as conn:
        return json_response({"delegations": inbox_module.list_delegations(conn, user.username)})


@guarded
def revoke_delegation(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "use")  # only one's own (the query is by user)
    current = live(request)
    delegation_id = _id(request, "delegation_id", "delegation")
    with current.records.engine.begin() as conn:
        if not inbox_module.revoke_delegation(conn, delegation_id, user.username, clock.now()):
            raise NotFound("delegation", delegation_id)
    return json_response({"id": delegation_id, "revoked": True})


def task_routes() -> list[Route]:
    return [
        Route("/api/tasks", my_tasks, methods=["GET"]),
        Route("/api/tasks/{task_id}/approve", _decide("approve"), methods=["POST"]),
        Route("/api/tasks/{task_id}/reject", _decide("reject"), methods=["POST"]),
        Route("/api/tasks/{task_id}/return", _decide("return"), methods=["POST"]),
        Route("/api/forms/{form}/records/{record_id}/approvals", record_approvals, methods=["GET"]),
        Route("/api/approvals/{approval_id}/record.pdf", approval_pdf, methods=["GET"]),
        Route("/api/delegations", delegations, methods=["GET", "POST"]),
        Route("/api/delegations/{delegation_id}", revoke_delegation, methods=["DELETE"]),
    ]
