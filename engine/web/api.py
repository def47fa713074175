"""The JSON API under /api (README, "HTTP"). Every handler checks the caller on the server."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.flows.confirm import confirm_gate, gates_of
from engine.flows.machine import fire_transition
from engine.model import permissions
from engine.model.errors import BadRequest, FieldError, NotFound, ValidationFailed
from engine.model.i18n import Lang, Text
from engine.model.permissions import Action, Resource, allowed
from engine.model.spec import App, FieldSpec, FormSpec
from engine.outbox.monitor import JOB_STATUSES, list_jobs, list_runs, retry_job
from engine.web.current import live, request_lang
from engine.web.jsonio import (
    error,
    error_response,
    json_response,
    parse_json,
    read_body,
    status_of,
)
from engine.web.openapi import build_openapi
from engine.web.security import check_csrf, has_credentials, user_of

Handler = Callable[[Request], Awaitable[Response]]
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def guarded(handler: Callable[[Request, Any, Any], Response]) -> Handler:
    """Refuse a request with no credentials at all (401) at once; else read the body (at most
    MAX_BODY), then on one worker thread: authenticate, check CSRF for cookie sessions, parse
    the JSON and run the (blocking) handler; known failures become 4xx answers. One thread hop
    per request: the user's lookup and the handler share it."""

    async def endpoint(request: Request) -> Response:
        lang = request_lang(request, accept_language=True)
        if not has_credentials(request):  # no token, no session: nothing of it is read
            return _unauthenticated(lang)
        try:
            body = await read_body(request) if request.method in ("POST", "PATCH") else b""
            return await run_in_threadpool(_checked, handler, request, body, lang)
        except ValidationFailed as failed:
            return error_response(failed.errors, lang, status_of(failed))
        except NotFound as missing:
            return error(
                404,
                "not_found",
                f"{missing.form} {missing.record_id or ''} not found",
                f"找不到 {missing.form} {missing.record_id or ''}",
                lang,
            )

    return endpoint


def _unauthenticated(lang: Lang) -> Response:
    return error(
        401, "unauthenticated", "sign in or send a Bearer token", "请先登录或提供 Bearer 令牌", lang
    )


def _checked(
    handler: Callable[[Request, Any, Any], Response], request: Request, body: bytes, lang: Lang
) -> Response:
    """The part of :func:`guarded` on the worker thread, in the order a request is judged:
    who asks (401), CSRF (403), the body (400/415), then the handler."""
    user = user_of(request)
    if user is None:
        return _unauthenticated(lang)
    if request.method in UNSAFE and not check_csrf(request, request.headers.get("x-csrf-token")):
        return error(403, "csrf", "missing or wrong CSRF token", "缺少或错误的 CSRF 令牌", lang)
    data = parse_json(request, body) if body else None
    return handler(request, user, data)


def _record_id(request: Request) -> int:
    raw = request.path_params["record_id"]
    if not re.fullmatch(r"[0-9]{1,18}", raw):
        raise NotFound(request.path_params["form"], None)
    return int(raw)


def field_json(spec: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": spec.name,
        "type": spec.type,
        "label": spec.label,
        "required": spec.required,
    }
    if spec.options:
        out["options"] = [{"value": o.value, "label": o.label} for o in spec.options]
    if spec.min is not None:
        out["min"] = spec.min
    if spec.max is not None:
        out["max"] = spec.max
    if spec.ref_form:
        out["ref"] = spec.ref_form
    if spec.readonly:
        out["readonly"] = True
    if spec.help:
        out["help"] = spec.help
    if spec.type == "computed":
        out["result"] = spec.result
    if spec.max_length is not None:
        out["max_length"] = spec.max_length
    if spec.pattern:
        out["pattern"] = spec.pattern
    if spec.type == "files":
        out.update(accept=list(spec.accept), max_size_mb=spec.max_size_mb, max_files=spec.max_files)
    return out


def form_json(app: App, form: FormSpec) -> dict[str, Any]:
    machine = app.state_machines.get(form.name)
    return {
        "name": form.name,
        "title": form.title,
        "title_field": form.title_field,
        "fields": [field_json(f) for f in form.fields if f.type != "table"],
        "children": [
            {
                "name": f.name,
                "label": f.label,
                "append_only": f.append_only,
                "fields": [field_json(c) for c in f.children],
            }
            for f in form.fields
            if f.type == "table"
        ],
        "states": [{"name": s.name, "label": s.label, "initial": s.initial} for s in machine.states]
        if machine
        else [],
        "transitions": [
            {"name": t.name, "label": t.label, "from": list(t.sources), "to": t.target}
            for t in machine.transitions
        ]
        if machine
        else [],
    }


async def health(request: Request) -> Response:
    app = live(request).app
    return json_response(
        {"status": "ok", "app": app.name, "version": app.version, "content_hash": app.content_hash}
    )


async def openapi(request: Request) -> Response:
    return json_response(build_openapi(live(request).app))


def require(request: Request, user: Any, action: Action, resource: Resource | None = None) -> None:
    """Refuse (403, with who may) unless ``allowed`` says yes — for the API and the pages."""
    permissions.require(live(request).app, user, action, resource)


@guarded
def list_forms(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "use")
    app = live(request).app
    return json_response(
        [
            {"name": f.name, "title": f.title}
            for f in app.forms.values()
            if allowed(app, user, "read", Resource(f))
        ]
    )


def _form(request: Request) -> FormSpec:
    return live(request).records.form(request.path_params["form"])


@guarded
def describe_form(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "read", Resource(_form(request)))
    return json_response(form_json(live(request).app, _form(request)))


@guarded
def list_records(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    params = dict(request.query_params)
    sort = params.pop("sort", "-id")
    cursor = params.pop("cursor", None)
    q = params.pop("q", None)
    try:
        limit = int(params.pop("limit", "50"))
    except ValueError:
        limit = 50
    page = live(request).records.list_page(
        form.name, filters=params, sort=sort, limit=limit, cursor=cursor, q=q, actor=user
    )
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@guarded
def create_record(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    record = live(request).records.create(form.name, data, user)
    return json_response(record, 201)


@guarded
def get_record(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    return json_response(live(request).records.get(form.name, _record_id(request), user))


@guarded
def update_record(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    version = request.headers.get("if-match")
    expected = int(version.strip('"')) if version and version.strip('"').isdecimal() else None
    record = live(request).records.update(form.name, _record_id(request), data, user, expected)
    return json_response(record)


@guarded
def record_events(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    return json_response(live(request).records.events(form.name, _record_id(request), user))


@guarded
def add_child(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    row = live(request).records.add_child_row(
        form.name, _record_id(request), request.path_params["child"], data, user
    )
    return json_response(row, 201)


@guarded
def fire_action(request: Request, user: Any, data: Any) -> Response:
    form = _form(request)
    version = request.headers.get("if-match")
    expected = int(version.strip('"')) if version and version.strip('"').isdecimal() else None
    record = fire_transition(
        live(request).records,
        form.name,
        _record_id(request),
        request.path_params["transition"],
        user,
        expected,
    )
    if record is not None and not allowed(live(request).app, user, "read", Resource(form)):
        record = {k: record[k] for k in ("id", "state", "version")}  # may fire, may not read
    return json_response(record)


@guarded
def gates(request: Request, user: Any, data: Any) -> Response:
    form, records = _form(request), live(request).records
    record = records.get(form.name, _record_id(request), user)
    with records.reads.connect() as conn:
        found = gates_of(records, conn, form, record)
    return json_response({"gates": [g.to_json() for g in found.values()]})


@guarded
def confirm(request: Request, user: Any, data: Any) -> Response:
    """Confirm the current value at a transition's gate: ``{"role"?, "value"?}`` — ``value``
    is what the caller saw (refused with 409 when the record now holds another)."""
    body = data if isinstance(data, dict) else {}
    role, value = body.get("role"), body.get("value")
    if (role is not None and not isinstance(role, str)) or isinstance(value, dict | list):
        raise BadRequest(
            [
                FieldError(
                    None,
                    "type",
                    Text(
                        'the body is {"role": text, "value": the value seen}',
                        '请求体应为 {"role": 文本, "value": 看到的值}',
                    ),
                )
            ],
        )
    status = confirm_gate(
        live(request).records,
        _form(request).name,
        _record_id(request),
        request.path_params["transition"],
        user,
        role,
        value,
    )
    return json_response(status.to_json())


@guarded
def flow_runs(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "operate")

    params = request.query_params
    record = params.get("record_id", "")
    return json_response(
        list_runs(
            request.app.state.db,
            form=params.get("form") or None,
            record_id=int(record) if re.fullmatch(r"[0-9]{1,18}", record) else None,
            status=params.get("status") or None,
        )
    )


@guarded
def outbox(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "operate")

    status = request.query_params.get("status")
    if status and status not in JOB_STATUSES:
        raise BadRequest(
            [
                FieldError(
                    "status",
                    "bad_filter",
                    Text(
                        f"status must be one of {', '.join(JOB_STATUSES)}",
                        f"status 只能是 {'、'.join(JOB_STATUSES)}",
                    ),
                )
            ],
        )
    return json_response(
        list_jobs(
            request.app.state.db, status=status, kind=request.query_params.get("kind") or None
        )
    )


@guarded
def retry_outbox(request: Request, user: Any, data: Any) -> Response:
    require(request, user, "operate")

    raw = request.path_params["job_id"]
    if not re.fullmatch(r"[0-9]{1,18}", raw) or not retry_job(request.app.state.db, int(raw)):
        raise NotFound("job", None)
    return json_response({"id": int(raw), "status": "ready"})


def api_routes() -> list[Route]:
    base = "/api/forms/{form}/records"
    return [
        Route("/api/health", health),
        Route("/api/openapi.json", openapi),
        Route("/api/forms", list_forms),
        Route("/api/forms/{form}", describe_form),
        Route(base, list_records, methods=["GET"]),
        Route(base, create_record, methods=["POST"]),
        Route(base + "/{record_id}", get_record, methods=["GET"]),
        Route(base + "/{record_id}", update_record, methods=["PATCH"]),
        Route(base + "/{record_id}/events", record_events, methods=["GET"]),
        Route(base + "/{record_id}/children/{child}", add_child, methods=["POST"]),
        Route(base + "/{record_id}/actions/{transition}", fire_action, methods=["POST"]),
        Route(base + "/{record_id}/confirmations", gates, methods=["GET"]),
        Route(base + "/{record_id}/confirmations/{transition}", confirm, methods=["POST"]),
        Route("/api/runs", flow_runs, methods=["GET"]),
        Route("/api/outbox", outbox, methods=["GET"]),
        Route("/api/outbox/{job_id}/retry", retry_outbox, methods=["POST"]),
    ]
