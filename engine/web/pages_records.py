"""The record pages, built from the FieldSpecs alone: the list of a form's records (search,
state filter, cursor pages), the ref picker, the record page (values, history, the panels of
:mod:`engine.web.panels`, transition buttons, the box for a new child row) and the create /
edit form. Field errors from the records service come back next to their fields, in the app's
language, with what was typed kept.

:func:`show_record` is the record page for handlers elsewhere that act on a record and show it
again with what went wrong (confirming a gate, deciding a task)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.flows.machine import available_transitions, fire_transition
from engine.forms.validate import is_blank
from engine.model.errors import NotFound, ValidationFailed
from engine.model.i18n import Lang
from engine.model.permissions import Resource, allowed
from engine.model.spec import FieldSpec, FormSpec
from engine.runtime import LiveApp
from engine.store.files import file_infos
from engine.web.api import require
from engine.web.current import live, request_lang
from engine.web.jsonio import status_of
from engine.web.live_record import last_event_id, live_mark, live_status
from engine.web.page_kit import (
    field_errors,
    page,
    path_form,
    path_record_id,
    post_text,
    search_text,
)
from engine.web.panels import approval_panel, compare_panel, gate_panel, hint_panel
from engine.web.related import related_lists
from engine.web.security import current_user
from engine.web.templating import Formatter, render
from engine.web.timeline import FILTERS, build_timeline, timeline_filter

__all__ = ["record_page_routes", "show_record"]

PAGE_SIZE = 25
PICK_LIMIT = 30
MAX_ROWS = 500
_ROW_KEY = re.compile(r"^([a-z][a-z0-9_]*)-(\d{1,4})-([a-z][a-z0-9_]*)$")


# ---------------------------------------------------------------------------- reading


def list_columns(form: FormSpec) -> list[str]:
    if form.list_columns:
        return list(form.list_columns)
    return [f.name for f in form.fields if f.type not in ("table", "long_text", "files")][:5]


def list_selection(request: Request, form: FormSpec) -> tuple[dict[str, str], str]:
    """What the list page's address selects: (filters for the records service, search text).
    ``state`` is a known state (others are ignored); ``field`` or ``field__op`` (as in the API:
    ``?customer=2``, ``?quantity__gte=10``, ``?created_by=li.sales``) filter on a field, a bad
    value is a field error.
    The exports (:mod:`engine.web.exports`) read the same, so they hold the rows listed."""
    params = request.query_params
    state = params.get("state", "")
    machine = live(request).app.state_machines.get(form.name)
    filters = {"state": state} if machine and state in {s.name for s in machine.states} else {}
    for key, value in params.items():
        name = key.partition("__")[0]
        if key not in ("q", "state", "cursor") and (
            name in form.by_name or name in ("id", "created_by")
        ):
            filters[key] = value
    return filters, search_text(request)


def list_query(request: Request, form: FormSpec) -> dict[str, str]:
    """The list page's address without its page cursor: what an export link carries."""
    filters, q = list_selection(request, form)
    return {k: v for k, v in (("q", q), *filters.items()) if v}


@page
async def record_list(request: Request, user: User) -> Response:
    form, current = path_form(request), live(request)
    params = request.query_params
    filters, q = list_selection(request, form)
    state = filters.get("state", "")
    machine = current.app.state_machines.get(form.name)
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
        if status_of(failed) == 403:
            raise  # may not read the form: the 403 page (@page), as its exports
        items, next_cursor, error = [], None, failed.errors[0].message(request_lang(request))
    base = list_query(request, form)
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
        "export_query": f"?{urlencode(base)}" if base else "",
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


class Choice(NamedTuple):
    """One record a ref picker offers: its id, its title, its code and the form's
    ``picker: show:`` values (select values by their labels), so records sharing a title can
    be told apart."""

    value: str
    title: str
    code: str = ""
    more: tuple[str, ...] = ()

    @property
    def details(self) -> str:
        """What the picker shows muted under the title: code · secondary fields."""
        return " · ".join(p for p in (self.code, *self.more) if p)

    @property
    def label(self) -> str:
        """title · code · secondary, on one line (the option of a plain select)."""
        return " · ".join(p for p in (self.title, self.details) if p)

    @property
    def short(self) -> str:
        """title · code: what the picker's text box shows once the record is chosen."""
        return " · ".join(p for p in (self.title, self.code) if p)


def _choice(target: FormSpec, row: Mapping[str, Any]) -> Choice:
    parts = [_title(target, row)]
    for name in (target.picker_code, *target.picker_show):
        spec = target.by_name.get(name or "")
        value = row.get(name or "")
        if spec is None or value in (None, "") or spec.type in ("table", "files"):
            parts.append("")
            continue
        labels = {o.value: o.label for o in spec.options}
        shown = labels.get(value, str(value)) if isinstance(value, str) else str(value)
        parts.append("" if shown in parts else shown)
    code = parts[1] if target.picker_code else ""
    more = parts[2:] if target.picker_code else parts[1:]
    return Choice(str(row["id"]), parts[0], code, tuple(m for m in more if m))


def ref_options(
    current: LiveApp, target_name: str, q: str | None, selected: list[str], user: User
) -> list[Choice]:
    """The choices of a ref picker: the newest (or matching) records, plus the chosen ones
    first. Someone who may not read the target form sees only the chosen ids, without titles."""
    target = current.app.forms[target_name]
    if not allowed(current.app, user, "read", Resource(target)):
        return [Choice(c, f"#{c}") for c in selected if c and c.isdecimal()]
    items = current.records.list_page(target.name, q=q or None, limit=PICK_LIMIT).items
    options = [_choice(target, r) for r in items]
    known = {o.value for o in options}
    for chosen in selected:
        if chosen and chosen.isdecimal() and chosen not in known and len(chosen) < 19:
            try:
                options.insert(0, _choice(target, current.records.get(target.name, int(chosen))))
            except NotFound:
                continue
    return options


@page
async def pick(request: Request, user: User) -> Response:
    """The options of a ref picker's list box (``templates/_options.html``) for ``?q=``."""
    form = path_form(request)
    spec = _ref_spec(form, request.path_params["field"])
    if spec is None or spec.ref_form is None:
        raise NotFound(form.name)
    # The picker lists records of the ref's form: reading them needs its read permission.
    require(request, user, "read", Resource(form))
    require(request, user, "read", Resource(live(request).app.forms[spec.ref_form]))
    q = search_text(request)
    options = await run_in_threadpool(ref_options, live(request), spec.ref_form, q, [], user)
    context = {"options": options, "q": q, "more": len(options) >= PICK_LIMIT}
    return render(request, "_options.html", context)


@page
async def related_records(request: Request, user: User) -> Response:
    """The related lists of a record (:mod:`engine.web.related`): the part the record page
    loads with htmx, or a page of their own."""
    form, current = path_form(request), live(request)
    record_id = path_record_id(request)
    record = await run_in_threadpool(current.records.get, form.name, record_id, user)
    found = await run_in_threadpool(related_lists, current, form, record_id, user)
    forms = [r.form.name for r in found]
    # the column that points back at this record would repeat its title on every row
    lists = [
        (
            r,
            [c for c in list_columns(r.form) if c != r.field.name] or list_columns(r.form),
            forms.count(r.form.name) > 1,
        )
        for r in found
    ]
    heading = _title(form, record)
    context = {"form": form, "record_id": record_id, "lists": lists, "heading": heading}
    name = "_related_lists.html" if request.headers.get("hx-request") else "related.html"
    return render(request, name, context)


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
    approvals = approval_panel(current, form.name, record_id, user)
    return {
        "record": record,
        "events": events,
        "titles": titles,
        "files": files,
        "approvals": approvals,
    }


def _timeline_view(request: Request, user: User) -> tuple[str, bool]:
    """The timeline's ``?show=`` filter, and whether to add technical events (``?tech=1``,
    operators only)."""
    params = request.query_params
    technical = params.get("tech") == "1" and allowed(live(request).app, user, "operate")
    return timeline_filter(params.get("show")), technical


async def _display_context(request: Request, user: User) -> dict[str, Any]:
    """Everything the record page shows and the live fragment refreshes."""
    form, current = path_form(request), live(request)
    record_id = path_record_id(request)
    context = await run_in_threadpool(_record_context, current, form, record_id, user)
    lang = request_lang(request)
    fmt = Formatter(current.app, lang)
    show, technical = _timeline_view(request, user)
    events = context.pop("events")
    context["timeline"] = build_timeline(
        fmt, form, events, context.pop("titles"), show=show, technical=technical
    )
    context.update(form=form, show=show, technical=technical, filters=FILTERS)
    choices = await run_in_threadpool(
        available_transitions, current.records, form.name, context["record"], user
    )
    context["actions"] = [
        (t, " ".join(e.message(lang) for e in refusal.errors) if refusal else None)
        for t, refusal in choices
    ]
    # the edit button only when this person may change something of it in this state
    context["can_edit"] = allowed(current.app, user, "update", Resource(form)) and bool(
        _editable(current, form, user, context["record"].get("state"), creating=False)
    )
    context["gates"] = await run_in_threadpool(
        gate_panel, current, form, context["record"], user, fmt
    )
    context["compared"] = await run_in_threadpool(
        compare_panel, current, form, context["record"], fmt
    )
    status = await run_in_threadpool(live_status, current, form, context["record"], fmt)
    last = events[-1]["id"] if events else 0
    context["live"] = status
    mark = live_mark(context["record"], last, status)
    context["live_url"] = _live_url(form, record_id, mark, request)
    return context


def _live_url(form: FormSpec, record_id: int, mark: str, request: Request) -> str:
    keep = {k: request.query_params[k] for k in ("show", "tech") if request.query_params.get(k)}
    return f"/forms/{form.name}/{record_id}/live?{urlencode({'v': mark, **keep})}"


async def show_refusal(request: Request, failed: ValidationFailed) -> Response:
    """The record page again, with why the action on it was refused (and the refusal's status)."""
    return await show_record(
        request,
        status=status_of(failed),
        action_errors=[e.message(request_lang(request)) for e in failed.errors],
    )


async def show_record(
    request: Request,
    entry: dict[str, Any] | None = None,
    status: int = 200,
    action_errors: list[str] | None = None,
) -> Response:
    form, current = path_form(request), live(request)
    user = await current_user(request)
    assert user is not None  # @page signed them in
    context = await _display_context(request, user)
    fmt = Formatter(current.app, request_lang(request))
    context.update(entry=entry or {}, defaults=fmt.row_defaults(form, current.records.env()))
    context["action_errors"] = action_errors or []
    context["hints"] = await run_in_threadpool(
        hint_panel, current, form, context["record"], request_lang(request)
    )
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "history":
        return render(request, "_timeline_swap.html", context, status)  # the filter
    return render(request, "record.html", context, status)


@page
async def live_record(request: Request, user: User) -> Response:
    """The record page's live regions (state, buttons, values, confirmations, approvals,
    timeline, the status line) when what the page shows (``?v=``) is out of date; 204 when it
    is not and work is pending; 286 (htmx: stop polling) when nothing is pending any more.
    Reading it needs what reading the record needs."""
    form, current = path_form(request), live(request)
    record_id = path_record_id(request)
    fmt = Formatter(current.app, request_lang(request))
    try:
        record = await run_in_threadpool(current.records.get, form.name, record_id, user)
    except (NotFound, ValidationFailed):
        if not request.headers.get("hx-request"):
            raise
        # the record is gone or no longer readable: stop polling (htmx swaps nothing on a
        # 4xx and would keep asking every few seconds)
        return Response(status_code=286, headers={"HX-Reswap": "none"})
    status = await run_in_threadpool(live_status, current, form, record, fmt)
    last = await run_in_threadpool(last_event_id, current, form, record_id)
    if request.query_params.get("v") == live_mark(record, last, status):
        if status.poll is None:
            return Response(status_code=286, headers={"HX-Reswap": "none"})
        return Response(status_code=204)
    context = await _display_context(request, user)
    context["action_errors"] = []
    return render(request, "_record_live.html", context)


@page
async def fire_action(request: Request, user: User) -> Response:
    """A transition button: fire it (all checks on the server) and show the record again."""
    form, current = path_form(request), live(request)
    record_id = path_record_id(request)
    version = post_text(request.state.post, "version")
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
        return await show_refusal(request, failed)
    return RedirectResponse(f"/forms/{form.name}/{record_id}", 303)


@page
async def record_page(request: Request, user: User) -> Response:
    return await show_record(request)


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
    """Ref choices (:class:`Choice`, the chosen first) and file metadata for the inputs of the
    edit form."""
    options: dict[str, list[Choice]] = {}
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
    form, current = path_form(request), live(request)
    record_id = path_record_id(request) if "record_id" in request.path_params else None
    fmt = Formatter(current.app, request_lang(request))
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
        version = post_text(post, "_version")
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
            errors, general = field_errors(failed, request, editable)  # others: at the top
            status = status_of(failed)
    context = await run_in_threadpool(_form_context, current, form, editable, inputs, user)
    context.update(
        form=form, record=record, inputs=inputs, editable=editable, errors=errors, general=general
    )
    context["locked"] = _locked_for(current, form, user, state, editable, request_lang(request))
    context["defaults"] = fmt.row_defaults(form, current.records.env())
    return render(request, "form.html", context, status)


@page
async def add_entry(request: Request, user: User) -> Response:
    """One new row for an (append-only) child table, from the box on the record page."""
    form, current, record_id = path_form(request), live(request), path_record_id(request)
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
        errors, general = field_errors(failed, request, {spec.name})
        entry = {"child": spec.name, "values": row, "errors": errors, "general": general}
        return await show_record(request, entry, status_of(failed))
    return RedirectResponse(f"/forms/{form.name}/{record_id}#{spec.name}", 303)


def record_page_routes() -> list[BaseRoute]:
    base = "/forms/{form}"
    record = base + "/{record_id:int}"
    return [
        Route(base, record_list),
        Route(base + "/new", edit_record, methods=["GET", "POST"]),
        Route(base + "/pick/{field}", pick),
        Route(record, record_page),
        Route(record + "/live", live_record),
        Route(record + "/related", related_records),
        Route(record + "/edit", edit_record, methods=["GET", "POST"]),
        Route(record + "/children/{child}", add_entry, methods=["POST"]),
        Route(record + "/actions/{transition}", fire_action, methods=["POST"]),
    ]
