"""The "confirm" button of the record page's gates: confirm the value the person saw, as one
of their roles (CSRF-checked by :func:`~engine.web.page_kit.page`; role and state checks happen
on the server). What the record page shows of the gates and of ``compare:`` is
:func:`engine.web.panels.gate_panel` and :func:`engine.web.panels.compare_panel`."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.accounts.auth import User
from engine.flows.confirm import confirm_gate
from engine.model.errors import ValidationFailed
from engine.web.current import live
from engine.web.page_kit import page, path_form, path_record_id, post_text
from engine.web.pages_records import show_refusal

__all__ = ["confirm_page_routes"]


async def confirm_action(request: Request, user: User) -> Response:
    """The confirm button: confirm the value the person saw, as the role they chose."""
    form, current, record_id = path_form(request), live(request), path_record_id(request)
    post = request.state.post
    try:
        await run_in_threadpool(
            confirm_gate,
            current.records,
            form.name,
            record_id,
            request.path_params["transition"],
            user,
            post_text(post, "role") or None,
            post_text(post, "value") or None,
        )
    except ValidationFailed as failed:
        return await show_refusal(request, failed)
    return RedirectResponse(f"/forms/{form.name}/{record_id}#gates", 303)


def confirm_page_routes() -> list[Route]:
    return [
        Route(
            "/forms/{form}/{record_id:int}/confirm/{transition}",
            page(confirm_action),
            methods=["POST"],
        )
    ]
