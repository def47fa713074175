"""Confirmation on the record page: fields shown beside the field they are compared with
(``compare:``, highlighted while its condition holds), where each gate of the record's state
stands (the value, who confirmed it and when, who has not), a "confirm" button for the roles
the person holds, and the page action behind it (CSRF-checked by
:func:`~engine.web.pages.page`; role and state checks happen on the server)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.accounts.auth import User
from engine.expressions import EvaluationError
from engine.flows.confirm import confirm_gate, gates_of
from engine.model.errors import ValidationFailed
from engine.model.permissions import Resource, allowed
from engine.model.spec import FormSpec
from engine.runtime import LiveApp
from engine.web.api import live
from engine.web.jsonio import status_of
from engine.web.pages import _form, _lang, _record_id, _show_record, _text, page
from engine.web.templating import Formatter

__all__ = ["compare_panel", "confirm_page_routes", "gate_panel"]


def compare_panel(
    current: LiveApp, form: FormSpec, record: dict[str, Any], fmt: Formatter
) -> dict[str, dict[str, Any]]:
    """For each field with ``compare:``, the field beside it and whether to highlight them."""
    specs = [f for f in form.fields if f.compare is not None]
    if not specs:
        return {}
    records = current.records
    with records.reads.connect() as conn:
        loaded = records.load_refs(conn, form, record)
    context = records.context(form, record, record.get("state"), record.get("id"), loaded)
    out = {}
    for spec in specs:
        compare = spec.compare
        assert compare is not None
        other = form.by_name[compare.with_field]
        try:
            lit = compare.highlight is not None and bool(compare.highlight(context, records.env()))
        except EvaluationError:
            lit = False
        out[spec.name] = {
            "with": other,
            "shown": fmt.value(other, record.get(other.name)),
            "highlight": lit,
            "message": compare.message if lit else None,
        }
    return out


def gate_panel(
    current: LiveApp, form: FormSpec, record: dict[str, Any], user: User, fmt: Formatter
) -> list[dict[str, Any]]:
    """The gates of transitions that leave the record's state, as the page shows them."""
    machine = current.app.state_machines.get(form.name)
    if machine is None or not any(t.confirm for t in machine.transitions):
        return []
    with current.records.reads.connect() as conn:
        gates = gates_of(current.records, conn, form, record)
    out = []
    for transition in machine.transitions:
        gate = gates.get(transition.name)
        if gate is None or transition.confirm is None or record["state"] not in transition.sources:
            continue
        spec = form.by_name[gate.field]
        may_confirm = allowed(
            current.app, user, "confirm", Resource(form, transition=transition), shown_only=True
        )
        roles = []
        for role in transition.confirm.by:
            done = gate.confirmed.get(role)
            roles.append(
                {
                    "role": role,
                    "label": fmt.role(role),
                    "user": fmt.person(done.user) if done else None,
                    "at": fmt.datetime(done.at) if done else None,
                    "can": may_confirm
                    and done is None
                    and (role in user.roles or "*" in user.roles),
                }
            )
        out.append(
            {
                "transition": transition,
                "field_label": spec.label,
                "value": gate.value,
                "shown": fmt.value(spec, gate.value),
                "blank": gate.value in (None, ""),
                "roles": roles,
                "missing": [fmt.role(r) for r in gate.missing],
            }
        )
    return out


async def confirm_action(request: Request, user: User) -> Response:
    """The confirm button: confirm the value the person saw, as the role they chose."""
    form, current, record_id = _form(request), live(request), _record_id(request)
    post = request.state.post
    try:
        await run_in_threadpool(
            confirm_gate,
            current.records,
            form.name,
            record_id,
            request.path_params["transition"],
            user,
            _text(post, "role") or None,
            _text(post, "value") or None,
        )
    except ValidationFailed as failed:
        return await _show_record(
            request,
            status=status_of(failed),
            action_errors=[e.message(_lang(request)) for e in failed.errors],
        )
    return RedirectResponse(f"/forms/{form.name}/{record_id}#gates", 303)


def confirm_page_routes() -> list[Route]:
    return [
        Route(
            "/forms/{form}/{record_id:int}/confirm/{transition}",
            page(confirm_action),
            methods=["POST"],
        )
    ]
