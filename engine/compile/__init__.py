"""The compile stage: a loaded workspace in, one immutable :class:`~engine.model.spec.App` out.

Schema checks run first on every file; cross-file checks (references, expressions, states,
routes) run on the files that passed. Everything is collected; nothing stops at the first
problem. No database and no network are touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.compile.app import (
    compile_calendar,
    compile_connectors,
    compile_people,
    compile_roles,
    template_dirs,
)
from engine.compile.approvals import compile_approval
from engine.compile.context import CompileContext
from engine.compile.dashboards import compile_dashboard, compile_tests
from engine.compile.flows import (
    compile_automations,
    compile_machine,
    machine_docs,
    warn_open_transitions,
)
from engine.compile.forms import compile_forms
from engine.compile.hints import compile_hints
from engine.compile.insights import compile_insights
from engine.compile.tracking import compile_tracking
from engine.config.check_schema import check_schema
from engine.config.loader import LoadedYaml
from engine.config.workspace import Workspace, load_workspace
from engine.expressions.form_scopes import ScopeBuilder, shapes_from_raw
from engine.model.calendar import CalendarSpec
from engine.model.diagnostics import Diagnostics
from engine.model.spec import App, frozen_map

__all__ = ["CompileResult", "compile_app", "compile_workspace"]


@dataclass
class CompileResult:
    app: App | None
    diagnostics: Diagnostics
    workspace: Workspace

    @property
    def ok(self) -> bool:
        return self.app is not None and not self.diagnostics.has_errors()


def compile_app(root: Path | str) -> CompileResult:
    """Load, check and compile the app folder ``root``."""
    diags = Diagnostics()
    ws = load_workspace(Path(root), diags)
    return CompileResult(compile_workspace(ws, diags), diags, ws)


def _clean(kind: str, docs: list[LoadedYaml], diags: Diagnostics) -> list[LoadedYaml]:
    return [doc for doc in docs if check_schema(kind, doc, diags)]


def compile_workspace(ws: Workspace, diags: Diagnostics) -> App | None:
    ctx = CompileContext(ws, diags)
    app_doc = ws.app if ws.app is not None and check_schema("app", ws.app, diags) else None
    roles = compile_roles(app_doc) if app_doc else {}
    ctx.roles = frozenset(roles)
    calendar = compile_calendar(ctx, app_doc) if app_doc else None
    connectors = compile_connectors(ctx, app_doc) if app_doc else {}
    raw_connectors = (app_doc.data.get("connectors") or {}) if app_doc else {}
    people = compile_people(ctx, app_doc, set(roles)) if app_doc else {}
    ctx.people = frozenset(people)

    form_docs = {ws.name_of(d): d for d in _clean("form", ws.of_kind("form"), diags)}
    broken_forms = {ws.name_of(d) for d in ws.of_kind("form")} - set(form_docs)
    flow_docs = _clean("flow", ws.of_kind("flow"), diags)
    raw_fields = {n: d.data["fields"] for n, d in form_docs.items()}
    form_fields = {n: list(f) for n, f in raw_fields.items()}
    # Forms that failed their schema still exist as names, so references to them are not
    # reported twice.
    all_forms = set(form_docs) | broken_forms
    machines_src = machine_docs(
        ctx,
        [d for d in flow_docs if d.data["form"] in form_docs or d.data["form"] not in broken_forms],
        all_forms,
    )
    states = {f: tuple(d.data["states"]) for f, d in machines_src.items()}
    scopes = ScopeBuilder(shapes_from_raw(raw_fields), states)
    machines = {}
    for form, doc in machines_src.items():
        if form in form_docs:
            kinds = {
                n: str(r.get("type")) for n, r in raw_fields[form].items() if isinstance(r, dict)
            }
            machine = compile_machine(ctx, doc, scopes, form_fields[form], kinds)
            if machine is not None:
                machines[form] = machine
    forms = compile_forms(ctx, form_docs, scopes, {f: s for f, s in states.items()})
    compile_hints(ctx, form_docs, raw_fields, states, forms)
    templates = template_dirs(ws.root)
    automations = []
    for doc in flow_docs:
        automations.extend(
            compile_automations(
                ctx,
                doc,
                scopes,
                machines.get(doc.data["form"]),
                form_fields,
                raw_connectors,
                templates,
            )
        )
    approvals = {}
    for doc in _clean("approval", ws.of_kind("approval"), diags):
        approval = compile_approval(
            ctx, doc, scopes, machines, form_fields, raw_connectors, templates
        )
        if approval is not None:
            approvals[approval.name] = approval
    for form in sorted({a.form for a in approvals.values()}):
        warn_open_transitions(ctx, machines_src[form], machines[form])
    by_form: dict[str, list[str]] = {}
    for automation in automations:
        by_form.setdefault(automation.form, []).append(automation.name)
    dashboards = {}
    for doc in _clean("dashboard", ws.of_kind("dashboard"), diags):
        name = ws.name_of(doc)
        dashboard = compile_dashboard(ctx, doc, name, scopes, machines, by_form)
        if dashboard is not None:
            dashboards[name] = dashboard
    ref_targets = {
        n: {f: r["form"] for f, r in fields.items() if r.get("type") == "ref"}
        for n, fields in raw_fields.items()
    }
    tests = []
    for doc in _clean("test", ws.of_kind("test"), diags):
        tests.extend(compile_tests(ctx, doc, form_fields, ref_targets, machines, approvals))
    tracking = (
        compile_tracking(ctx, app_doc, raw_fields, machines, raw_connectors, templates)
        if app_doc
        else None
    )
    insights = compile_insights(ctx, app_doc, raw_fields) if app_doc else {}
    if diags.has_errors() or app_doc is None or calendar is None:
        return None
    data: dict[str, Any] = app_doc.data
    return App(
        name=data["name"],
        title=data["title"],
        version=str(data.get("version", "0")),
        locale=data.get("locale", "en"),
        timezone=data.get("timezone", "Asia/Shanghai"),
        calendar=calendar,
        business_hours=calendar.business_hours,
        roles=frozen_map(roles),
        people=frozen_map(people),
        connectors=frozen_map(connectors),
        forms=frozen_map(forms),
        state_machines=frozen_map(machines),
        automations=tuple(automations),
        approvals=frozen_map(approvals),
        dashboards=frozen_map(dashboards),
        tests=tuple(tests),
        database=data.get("database"),
        root=str(ws.root),
        content_hash=ws.digest,
        description=data.get("description"),
        tracking=tracking,
        insights=frozen_map(insights),
    )


def calendar_of(app: App) -> CalendarSpec:
    return app.calendar
