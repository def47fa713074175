"""Server-rendered pages: sign-in, the forms of the app, record lists, record pages with their
history, and create/edit forms built from the FieldSpecs alone (Jinja2 + htmx, no build step).

Every page needs a signed-in user (else a redirect to /login); every POST carries the session's
CSRF token. Field errors from the records service come back next to their fields, in the app's
language, with what was typed kept. Blocking work runs in Starlette's thread pool.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.accounts.auth import User
from engine.flows.machine import available_transitions, fire_transition
from engine.forms.validate import is_blank
from engine.model.errors import NotFound, ValidationFailed
from engine.model.i18n import Lang
from engine.model.permissions import Resource, allowed
from engine.model.spec import FieldSpec, FormSpec
from engine.runtime import LiveApp
from engine.store.files import file_infos
from engine.web.api import live, require
from engine.web.files import file_routes
from engine.web.jsonio import status_of
from engine.web.security import SecurityError, check_csrf, current_user, login, logout
from engine.web.templating import Formatter, page_lang, render, translate

__all__ = ["STATIC_DIR", "page_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_POST = 2_000_000
PAGE_SIZE = 25
PICK_LIMIT = 30
MAX_ROWS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ROW_KEY = re.compile(r"^([a-z][a-z0-9_]*)-(\d{1,4})-([a-z][a-z0-9_]*)$")

PageHandler = Callable[[Request, User], Awaitable[Response]]


# ---------------------------------------------------------------------------- plumbing


def _error_page(request: Request, status: int, key: str, detail: str | None = None) -> Response:
    return render(
        request, "error.html", {"status": status, "message": key, "detail": detail}, status
    )


def not_found_page(request: Request) -> Response:
    """The HTML 404 for addresses outside /api."""
    return _error_page(request, 404, "not_found")


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?" + urlencode({"next": target})


def _safe_next(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.startswith("/") or raw.startswith(("//", "/\\")):
        return "/"
    return raw if re.fullmatch(r"/[\x21-\x7e]*", raw) else "/"


async def _post(request: Request) -> FormData | None:
    length = request.headers.get("content-length", "")
    if length.isdecimal() and int(length) > MAX_POST:
        return None
    try:
        return await request.form(max_files=0, max_fields=5000)
    except HTTPException:
        return FormData()


def _text(post: FormData, key: str) -> str:
    value = post.get(key)
    return value if isinstance(value, str) else ""


def _search(request: Request) -> str:
    """The ``q`` parameter: trimmed, without control characters (PostgreSQL refuses NUL)."""
    return _CONTROL.sub("", request.query_params.get("q", "")).strip()[:200]


def page(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """Signed-in user (else redirect to /login), CSRF on POST, NotFound → 404 page."""

    async def endpoint(request: Request) -> Response:
        user = await current_user(request)
        if user is None:
            if request.headers.get("hx-request"):
                return Response(status_code=401, headers={"HX-Redirect": _login_url(request)})
            return RedirectResponse(_login_url(request), 303)
        if not request.headers.get("hx-request"):  # the count in the navigation
            from engine.web.pages_tasks import open_task_count  # it builds on this module

            request.state.open_tasks = await run_in_threadpool(
                open_task_count, live(request), user.username
            )
        if request.method == "POST":
            post = await _post(request)
            if post is None:
                return _error_page(request, 413, "too_large")
            if not check_csrf(request, _text(post, "csrf_token")):
                return _error_page(request, 403, "csrf")
            request.state.post = post  # handlers read the form from here
        try:
            return await handler(request, user)
        except NotFound:
            return _error_page(request, 404, "not_found")
        except ValidationFailed as failed:  # e.g. the form's permissions refuse this user
            if status_of(failed) != 403:
                raise
            return _error_page(request, 403, "forbidden", failed.errors[0].message(_lang(request)))

    return endpoint


def _form(request: Request) -> FormSpec:
    return live(request).records.form(request.path_params["form"])


def _record_id(request: Request) -> int:
    record_id = request.path_params["record_id"]
    if record_id <= 0 or record_id > 2**62:
        raise NotFound(request.path_params["form"], None)
    return int(record_id)


def _lang(request: Request) -> Lang:
    return page_lang(live(request).app)


def _errors(
    failed: ValidationFailed, request: Request, known: set[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Field errors by field (``table.col`` under ``table``) and the rest as general errors."""
    lang = _lang(request)
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


# ---------------------------------------------------------------------------- sign-in


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        if await current_user(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        return render(request, "login.html", {"next": request.query_params.get("next", "/")})
    post = await _post(request) or FormData()
    token, name, password = (_text(post, k) for k in ("csrf_token", "username", "password"))
    context: dict[str, Any] = {"next": _safe_next(post.get("next")), "username": name}

    def refuse(key: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
        context["error"] = translate(_lang(request), key)
        return render(request, "login.html", context, status, headers)

    if not check_csrf(request, token):
        return refuse("csrf", 403)
    if not name or not password or _CONTROL.search(name):
        return refuse("bad_login", 400)
    try:
        user = await login(request, name.strip()[:64], password[:1024])
    except SecurityError as refused:
        context["error"] = refused.message(_lang(request))
        return render(request, "login.html", context, refused.status_code, refused.headers)
    if user is None:
        return refuse("bad_login", 401)
    return RedirectResponse(context["next"], 303)


async def logout_page(request: Request) -> Response:
    post = await _post(request) or FormData()
    if not check_csrf(request, _text(post, "csrf_token")):
        return _error_page(request, 403, "csrf")
    logout(request)
    return RedirectResponse("/login", 303)


# ---------------------------------------------------------------------------- reading


@page
async def home(request: Request, user: User) -> Response:
    require(request, user, "use")
    app = live(request).app
    forms = [f for f in app.forms.values() if allowed(app, user, "read", Resource(f))]
    return render(request, "home.html", {"forms": forms})


@page
async def runs_page(request: Request, user: User) -> Response:
    """Recent flow runs (inputs, outputs, errors, attempts) and the dead-letter list."""
    from engine.outbox.monitor import list_jobs, list_runs

    app, db = live(request).app, request.app.state.db
    operator = allowed(app, user, "operate")
    sees_codes = allowed(app, user, "track_codes")
    if not sees_codes:
        require(request, user, "operate")
    runs = await run_in_threadpool(list_runs, db, limit=50) if operator else None
    dead = await run_in_threadpool(list_jobs, db, status="dead", limit=100) if operator else None
    codes = None
    if sees_codes:
        from engine.tracking.codes import recent_code_messages

        codes = await run_in_threadpool(recent_code_messages, db)
    return render(request, "runs.html", {"runs": runs, "dead": dead, "codes": codes})


@page
async def retry_page(request: Request, user: User) -> Response:
    from engine.outbox.monitor import retry_job

    require(request, user, "operate")
    await run_in_threadpool(retry_job, request.app.state.db, request.path_params["job_id"])
    return RedirectResponse("/runs", 303)


def list_columns(form: FormSpec) -> list[str]:
    if form.list_columns:
        return list(form.list_columns)
    return [f.name for f in form.fields if f.type not in ("table", "long_text", "files")][:5]


@page
async def record_list(request: Request, user: User) -> Response:
    form, current = _form(request), live(request)
    params = request.query_params
    q = _search(request)
    state = params.get("state", "")
    machine = current.app.state_machines.get(form.name)
    filters = {"state": state} if machine and state in {s.name for s in machine.states} else {}
    cursor = params.get("cursor") or None
    error = None
    try:
        found = await run_in_threadpool(
            lambda: current.records.list_page(
                form.name,
                filters=filters,
                limit=PAGE_SIZE,
                cursor=cursor,
                q=q or None,
                actor=user,
            )
        )
        items, next_cursor = found.items, found.next_cursor
    except ValidationFailed as failed:
        items, next_cursor, error = [], None, failed.errors[0].message(_lang(request))
    base = {k: v for k, v in (("q", q), ("state", state)) if v}
    context = {
        "form": form,
        "columns": list_columns(form),
        "items": items,
        "q": q,
        "state": state,
        "states": machine.states if machine else (),
        "error": error,
        "next_url": f"?{urlencode({**base, 'cursor': next_cursor})}" if next_cursor else None,
        "first_url": f"?{urlencode(base)}" if cursor else None,
    }
    name = "_table.html" if request.headers.get("hx-request") else "list.html"
    return render(request, name, context, 400 if error else 200)


def _ref_spec(form: FormSpec, path: str) -> FieldSpec | None:
    top, _, column = path.partition(".")
    spec = form.by_name.get(top)
    if spec is not None and column:
        spec = (
            next((c for c in spec.children if c.name == column), None)
            if spec.type == "table"
            else None
        )
    return spec if spec is not None and spec.type == "ref" and spec.ref_form else None


def _title(target: FormSpec, row: Mapping[str, Any]) -> str:
    value = row.get(target.title_field) if target.title_field else None
    return f"#{row['id']}" if value in (None, "") else str(value)


def ref_options(
    current: LiveApp, target_name: str, q: str | None, selected: list[str], user: User
) -> list[tuple[str, str]]:
    """(id, title) choices for a ref picker: the newest (or matching) records, plus the chosen.
    Someone who may not read the target form sees only the chosen ids, without titles."""
    target = current.app.forms[target_name]
    if not allowed(current.app, user, "read", Resource(target)):
        return [(c, f"#{c}") for c in selected if c and c.isdecimal()]
    items = current.records.list_page(target.name, q=q or None, limit=PICK_LIMIT).items
    options = [(str(r["id"]), _title(target, r)) for r in items]
    known = {o[0] for o in options}
    for chosen in selected:
        if chosen and chosen.isdecimal() and chosen not in known and len(chosen) < 19:
            try:
                options.insert(
                    0, (chosen, _title(target, current.records.get(target.name, int(chosen))))
                )
            except NotFound:
                continue
    return options


@page
async def pick(request: Request, user: User) -> Response:
    form = _form(request)
    spec = _ref_spec(form, request.path_params["field"])
    if spec is None or spec.ref_form is None:
        raise NotFound(form.name)
    # The picker lists records of the ref's form: reading them needs its read permission.
    require(request, user, "read", Resource(form))
    require(request, user, "read", Resource(live(request).app.forms[spec.ref_form]))
    q = _search(request)
    options = await run_in_threadpool(ref_options, live(request), spec.ref_form, q, [], user)
    return render(request, "_options.html", {"options": options, "q": q})


def _ref_titles(
    current: LiveApp, form: FormSpec, events: list[dict[str, Any]], user: User
) -> dict[str, dict[int, str]]:
    """Titles of the records that ref fields pointed at in the changes of ``events`` (of the
    forms ``user`` may read; the others stay ids)."""
    wanted: dict[str, set[int]] = {}
    for event in events:
        for name, pair in ((event.get("payload") or {}).get("changes") or {}).items():
            spec = form.by_name.get(name)
            if spec is not None and spec.type == "ref" and isinstance(pair, list):
                wanted.setdefault(name, set()).update(v for v in pair if isinstance(v, int))
    titles: dict[str, dict[int, str]] = {}
    for name, ids in wanted.items():
        target = current.app.forms[form.by_name[name].ref_form or ""]
        if not allowed(current.app, user, "read", Resource(target)):
            continue
        rows = current.records.list_page(
            target.name, filters={"id__in": ",".join(map(str, sorted(ids)))}, limit=500
        ).items
        titles[name] = {r["id"]: _title(target, r) for r in rows}
    return titles


def _record_context(current: LiveApp, form: FormSpec, record_id: int, user: User) -> dict[str, Any]:
    record = current.records.get(form.name, record_id, user)
    events = current.records.events(form.name, record_id, user)
    with current.records.engine.connect() as conn:
        files = file_infos(
            conn, [i for f in form.fields if f.type == "files" for i in record[f.name] or []]
        )
    titles = _ref_titles(current, form, events, user)
    from engine.web.pages_tasks import approval_panel

    approvals = approval_panel(current, form.name, record_id, user)
    return {
        "record": record,
        "events": events,
        "titles": titles,
        "files": files,
        "approvals": approvals,
    }


async def _show_record(
    request: Request,
    entry: dict[str, Any] | None = None,
    status: int = 200,
    action_errors: list[str] | None = None,
) -> Response:
    form, current = _form(request), live(request)
    user = await current_user(request)
    assert user is not None  # @page signed them in
    context = await run_in_threadpool(_record_context, current, form, _record_id(request), user)
    fmt = Formatter(current.app, page_lang(current.app))
    context["timeline"] = fmt.timeline(form, context.pop("events"), context.pop("titles"))
    context.update(
        form=form, entry=entry or {}, defaults=fmt.row_defaults(form, current.records.env())
    )
    lang = _lang(request)
    choices = await run_in_threadpool(
        available_transitions, current.records, form.name, context["record"], user
    )
    context["actions"] = [
        (t, " ".join(e.message(lang) for e in refusal.errors) if refusal else None)
        for t, refusal in choices
    ]
    context["action_errors"] = action_errors or []
    # the edit button only when this person may change something of it in this state
    context["can_edit"] = allowed(current.app, user, "update", Resource(form)) and bool(
        _editable(current, form, user, context["record"].get("state"), creating=False)
    )
    from engine.web.pages_confirm import compare_panel, gate_panel  # they build on pages

    context["gates"] = await run_in_threadpool(
        gate_panel, current, form, context["record"], user, fmt
    )
    context["compared"] = await run_in_threadpool(
        compare_panel, current, form, context["record"], fmt
    )
    from engine.web.pages_insights import hint_panel

    context["hints"] = await run_in_threadpool(hint_panel, current, form, context["record"], lang)
    return render(request, "record.html", context, status)


@page
async def fire_action(request: Request, user: User) -> Response:
    """A transition button: fire it (all checks on the server) and show the record again."""
    form, current = _form(request), live(request)
    record_id = _record_id(request)
    version = _text(request.state.post, "version")
    try:
        await run_in_threadpool(
            fire_transition,
            current.records,
            form.name,
            record_id,
            request.path_params["transition"],
            user,
            int(version) if version and version.isdecimal() else None,
        )
    except ValidationFailed as failed:
        return await _show_record(
            request,
            status=status_of(failed),
            action_errors=[e.message(_lang(request)) for e in failed.errors],
        )
    return RedirectResponse(f"/forms/{form.name}/{record_id}", 303)


@page
async def record_page(request: Request, user: User) -> Response:
    return await _show_record(request)


# ---------------------------------------------------------------------------- input


def _rows(spec: FieldSpec, post: FormData) -> list[dict[str, Any]]:
    """Child rows posted as ``table-INDEX-column`` inputs, in the order they came; blank rows
    (nothing typed, or only unticked boxes) are dropped."""
    rows: dict[str, dict[str, Any]] = {}
    columns = {c.name: c for c in spec.children}
    for key in dict.fromkeys(post.keys()):
        match = _ROW_KEY.match(key)
        if not match or match[1] != spec.name or match[3] not in columns:
            continue
        if match[2] not in rows and len(rows) >= MAX_ROWS:
            continue
        rows.setdefault(match[2], {})[match[3]] = _value(columns[match[3]], post, key)
    return [r for r in rows.values() if not all(is_blank(v) or v == "false" for v in r.values())]


def _value(spec: FieldSpec, post: FormData, key: str) -> Any:
    if spec.type == "table":
        return _rows(spec, post)
    values = [v for v in post.getlist(key) if isinstance(v, str)]
    if spec.type in ("multiselect", "files"):
        return values
    return values[-1] if values else ""  # a checkbox comes after its hidden "false"


def _data(
    form: FormSpec, inputs: Mapping[str, Any], before: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The record data to save: on create the non-blank inputs, on edit what was changed."""
    data: dict[str, Any] = {}
    for name, value in inputs.items():
        if before is not None and value == before.get(name):
            continue
        if form.by_name[name].type == "table":
            data[name] = [{k: v for k, v in r.items() if not is_blank(v)} for r in value]
        elif before is not None or not is_blank(value):
            data[name] = None if is_blank(value) else value
    return data


def _editable(
    current: LiveApp, form: FormSpec, user: User, state: str | None, creating: bool
) -> set[str]:
    """The fields this user may set now (append-only tables only on create when required)."""
    return {
        spec.name
        for spec in form.fields
        if spec.type not in ("computed", "autonumber")
        and current.records.edit_refusal(spec, user, state, form) is None
        and not (spec.type == "table" and spec.append_only and not (creating and spec.min_rows))
    }


def _locked_for(
    current: LiveApp, form: FormSpec, user: User, state: str | None, editable: set[str], lang: Lang
) -> dict[str, str]:
    """Why a field this person sees is not theirs to set (e.g. a tier only finance sets), for
    the fields that are not filled in by the system: shown beside the value, not hidden."""
    out = {}
    for spec in form.fields:
        if spec.name in editable or spec.type in ("computed", "autonumber", "table"):
            continue
        refused = current.records.edit_refusal(spec, user, state, form)
        if refused is not None and refused.code == "forbidden":
            out[spec.name] = refused.message(lang)
    return out


def _form_context(
    current: LiveApp, form: FormSpec, editable: set[str], inputs: Mapping[str, Any], user: User
) -> dict[str, Any]:
    """Ref choices and file metadata for the inputs of the edit form."""
    options: dict[str, list[tuple[str, str]]] = {}
    file_ids: list[str] = []
    for spec in (f for f in form.fields if f.name in editable):
        value: Any = inputs.get(spec.name)
        if spec.type == "ref" and spec.ref_form:
            options[spec.name] = ref_options(current, spec.ref_form, None, [value or ""], user)
        file_ids.extend(value if spec.type == "files" else [])
        for child in spec.children:
            chosen = [r.get(child.name) or "" for r in value or []]
            if child.type == "ref" and child.ref_form:
                options[f"{spec.name}.{child.name}"] = ref_options(
                    current, child.ref_form, None, chosen, user
                )
            file_ids.extend(i for ids in chosen for i in ids if child.type == "files")
    with current.records.engine.connect() as conn:
        return {"options": options, "files": file_infos(conn, file_ids)}


@page
async def edit_record(request: Request, user: User) -> Response:
    """The create form (/forms/F/new) and the edit form (/forms/F/ID/edit), GET and POST."""
    form, current = _form(request), live(request)
    record_id = _record_id(request) if "record_id" in request.path_params else None
    fmt = Formatter(current.app, page_lang(current.app))
    require(request, user, "update" if record_id else "create", Resource(form))
    record = (
        await run_in_threadpool(current.records.get, form.name, record_id, user)
        if record_id
        else None
    )
    state = record["state"] if record else current.records.initial_state(form.name)
    editable = _editable(current, form, user, state, record is None)
    before = fmt.record_inputs(form, record, current.records.env())
    inputs, status = dict(before), 200
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    if request.method == "POST":
        post: FormData = request.state.post
        inputs.update({name: _value(form.by_name[name], post, name) for name in editable})
        data = _data(form, {k: inputs[k] for k in editable}, before if record else None)
        version = _text(post, "_version")
        expected = int(version) if version.isdecimal() and len(version) < 10 else None
        try:
            if record is None:
                saved = await run_in_threadpool(current.records.create, form.name, data, user)
            else:
                saved = await run_in_threadpool(
                    current.records.update, form.name, record["id"], data, user, expected
                )
            return RedirectResponse(f"/forms/{form.name}/{saved['id']}", 303)
        except ValidationFailed as failed:
            errors, general = _errors(failed, request, editable)  # others: at the top
            status = status_of(failed)
    context = await run_in_threadpool(_form_context, current, form, editable, inputs, user)
    context.update(
        form=form, record=record, inputs=inputs, editable=editable, errors=errors, general=general
    )
    context["locked"] = _locked_for(current, form, user, state, editable, _lang(request))
    context["defaults"] = fmt.row_defaults(form, current.records.env())
    return render(request, "form.html", context, status)


@page
async def add_entry(request: Request, user: User) -> Response:
    """One new row for an (append-only) child table, from the box on the record page."""
    form, current, record_id = _form(request), live(request), _record_id(request)
    spec = form.by_name.get(request.path_params["child"])
    if spec is None or spec.type != "table":
        raise NotFound(form.name)
    rows = _rows(spec, request.state.post)
    row = rows[0] if rows else {}
    data = {k: v for k, v in row.items() if not is_blank(v)}
    try:
        await run_in_threadpool(
            current.records.add_child_row, form.name, record_id, spec.name, data, user
        )
    except ValidationFailed as failed:
        errors, general = _errors(failed, request, {spec.name})
        entry = {"child": spec.name, "values": row, "errors": errors, "general": general}
        return await _show_record(request, entry, status_of(failed))
    return RedirectResponse(f"/forms/{form.name}/{record_id}#{spec.name}", 303)


def page_routes() -> list[BaseRoute]:
    """Pages, the /api/files routes and the vendored assets under /static."""
    from engine.web.pages_confirm import confirm_page_routes
    from engine.web.pages_dashboards import dashboard_page_routes
    from engine.web.pages_insights import insight_page_routes
    from engine.web.pages_tasks import task_page_routes
    from engine.web.track import track_routes

    base = "/forms/{form}"
    record = base + "/{record_id:int}"
    return [
        *task_page_routes(),
        *confirm_page_routes(),
        *dashboard_page_routes(),
        *insight_page_routes(),
        *file_routes(),
        *track_routes(),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout_page, methods=["POST"]),
        Route("/", home),
        Route(base, record_list),
        Route(base + "/new", edit_record, methods=["GET", "POST"]),
        Route(base + "/pick/{field}", pick),
        Route(record, record_page),
        Route(record + "/edit", edit_record, methods=["GET", "POST"]),
        Route(record + "/children/{child}", add_entry, methods=["POST"]),
        Route(record + "/actions/{transition}", fire_action, methods=["POST"]),
        Route("/runs", runs_page),
        Route("/runs/jobs/{job_id:int}/retry", retry_page, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
