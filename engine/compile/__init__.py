"""The compile stage: a loaded workspace in, one immutable :class:`~engine.model.spec.App` out.

Schema checks run first on every file; a file that fails them goes on with the parts that
passed (:mod:`engine.compile.recover`), so cross-file checks (references, expressions, states,
routes) still see every name it defines, and errors that only follow from another are
suppressed. Everything is collected; nothing stops at the first problem. No database and no
network are touched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
from engine.compile.forms import check_currency, compile_forms
from engine.compile.hints import compile_hints
from engine.compile.indexes import warn_unindexed_filters
from engine.compile.insights import compile_insights
from engine.compile.recover import (
    Damage,
    Recovery,
    definitions,
    definitions_in_text,
    file_order,
    recover,
    stand_in_shape,
    suppress_follow_ons,
)
from engine.compile.tracking import compile_tracking
from engine.config.check_schema import check_schema
from engine.config.loader import LoadedYaml
from engine.config.workspace import Workspace, load_workspace
from engine.expressions.form_scopes import ScopeBuilder, shapes_from_raw
from engine.model.calendar import CalendarSpec
from engine.model.diagnostics import Diagnostics
from engine.model.spec import App, StateMachineSpec, frozen_map

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


class _Checked:
    """Schema checks with recovery: every file goes on with the parts that passed."""

    def __init__(self, ws: Workspace, diags: Diagnostics, *, recovering: bool = True) -> None:
        self.ws = ws
        self.diags = diags
        self.recovering = recovering
        self.saved = False  # a file that failed its schema goes on in part
        self.originals: dict[str, LoadedYaml] = {}
        self.cut_fields: dict[str, dict[str, Any]] = {}
        self.damage = Damage()
        self.lost: set[str] = set()  # files nothing could be saved of

    def one(self, kind: str, doc: LoadedYaml) -> LoadedYaml | None:
        """``doc`` if it passes its schema, else what :func:`recover` could save of it."""
        self.originals[doc.path] = doc
        if check_schema(kind, doc, self.diags):
            return doc
        saved = recover(kind, doc) if self.recovering else Recovery(None)
        self.saved |= saved.doc is not None
        if saved.doc is None:
            self.lost.add(doc.path)
        if saved.renamed:
            self.damage.renamed[doc.path] = saved.renamed
        if saved.dropped:
            self.damage.cut.add(doc.path)
        if kind == "form":
            fields = doc.data.get("fields")
            self.cut_fields[self.ws.name_of(doc)] = {
                str(p[1]): fields.get(p[1])
                for p in saved.dropped
                if len(p) == 2 and p[0] == "fields" and isinstance(fields, dict)
            }
        return saved.doc

    def all(self, kind: str) -> list[LoadedYaml]:
        return [d for d in (self.one(kind, doc) for doc in self.ws.of_kind(kind)) if d]

    def unread(self, folder: str) -> set[str]:
        """Files of ``folder`` that could not be read as YAML at all."""
        loaded = {d.path for docs in self.ws.files.values() for d in docs}
        return {p for p in self.ws.sources if p not in loaded and Path(p).parent.name == folder}

    def done(self) -> Damage:
        """What the errors found broke: the names each file with an error defines. Files
        that could not be read (or nothing of which could be saved) are listed first: all
        they define is missing, so they are the root cause of what refers to them."""
        loaded = {d.path for docs in self.ws.files.values() for d in docs}
        if self.ws.app is not None:
            loaded.add(self.ws.app.path)
        order = self.diags.file_order
        order.update(file_order(self.ws))
        unread = {p for p in self.ws.sources if p not in loaded and p.endswith((".yaml", ".yml"))}
        for path in self.lost | unread:
            if path in order:
                order[path] -= len(order) + 100
        for path in {d.path for d in self.diags.errors}:
            doc = self.originals.get(path)
            names = (
                definitions(doc.data)
                if doc is not None
                else definitions_in_text(self.ws.sources.get(path, ""))
            )
            self.damage.defined[path] = names | {Path(path).stem}
            if Path(path).parent.name == "flows":
                self.damage.flows_broken = True
        return self.damage


def _stand_in_machine(
    ctx: CompileContext,
    doc: LoadedYaml,
    scopes: ScopeBuilder,
    fields: list[str],
    kinds: dict[str, str],
) -> StateMachineSpec | None:
    """When a flow's states cannot compile (none or two marked initial), the machine with the
    first initial (or first) state as the only one, compiled quietly: what the approvals and
    dashboards of the form are checked against, instead of "the form has no states"."""
    raw = doc.data.get("states")
    if not isinstance(raw, dict) or not raw:
        return None
    initials = [n for n, s in raw.items() if isinstance(s, dict) and s.get("initial")]
    if len(initials) == 1:
        return None
    first = initials[0] if initials else next(iter(raw))
    states = {n: {**s, "initial": n == first} for n, s in raw.items() if isinstance(s, dict)}
    quiet = replace(ctx, diags=Diagnostics())
    return compile_machine(
        quiet, replace(doc, data={**doc.data, "states": states}), scopes, fields, kinds
    )


def compile_workspace(ws: Workspace, diags: Diagnostics) -> App | None:
    before = len(diags.items)
    checked = _Checked(ws, diags)
    try:
        return _compile(ws, diags, checked)
    except Exception:
        if not checked.saved:
            raise
        # The compile takes schema-clean files; a recovered one is, but should one still
        # trip a check, compile again the old way, without the files that failed.
        del diags.items[before:]
        diags.suppressed.clear()
        return _compile(ws, diags, _Checked(ws, diags, recovering=False))


def _compile(ws: Workspace, diags: Diagnostics, checked: _Checked) -> App | None:
    ctx = CompileContext(ws, diags)
    app_doc = checked.one("app", ws.app) if ws.app is not None else None
    roles = compile_roles(app_doc) if app_doc else {}
    ctx.roles = frozenset(roles)
    calendar = compile_calendar(ctx, app_doc) if app_doc else None
    if app_doc is not None and "currency" in app_doc.data:
        check_currency(ctx, app_doc, ("currency",), app_doc.data["currency"])
    connectors = compile_connectors(ctx, app_doc) if app_doc else {}
    raw_connectors = (app_doc.data.get("connectors") or {}) if app_doc else {}
    people = compile_people(ctx, app_doc, set(roles)) if app_doc else {}
    ctx.people = frozenset(people)

    form_docs: dict[str, LoadedYaml] = {}
    # Forms that could not be saved (or read) still exist as names, so references to them are
    # not reported again.
    broken_forms = {Path(p).stem for p in checked.unread("forms")}
    for doc in ws.of_kind("form"):
        saved = checked.one("form", doc)
        if saved is None:
            broken_forms.add(ws.name_of(doc))
        else:
            form_docs[ws.name_of(doc)] = saved
    flow_docs = checked.all("flow")
    raw_fields = {n: d.data["fields"] for n, d in form_docs.items()}
    form_fields = {n: list(f) for n, f in raw_fields.items()}
    all_forms = set(form_docs) | broken_forms
    machines_src = machine_docs(
        ctx,
        [d for d in flow_docs if d.data["form"] in form_docs or d.data["form"] not in broken_forms],
        all_forms,
    )
    states = {f: tuple(d.data["states"]) for f, d in machines_src.items()}
    # A field cut out of its form stays a name of it, of no known type, for expressions.
    shapes = shapes_from_raw(raw_fields)
    for form, cut in checked.cut_fields.items():
        for name, raw in cut.items():
            shapes.get(form, {}).setdefault(name, stand_in_shape(raw))
    scopes = ScopeBuilder(shapes, states)
    machines = {}
    for form, doc in machines_src.items():
        if form in form_docs:
            kinds = {
                n: str(r.get("type")) for n, r in raw_fields[form].items() if isinstance(r, dict)
            }
            machine = compile_machine(ctx, doc, scopes, form_fields[form], kinds)
            if machine is None:
                machine = _stand_in_machine(ctx, doc, scopes, form_fields[form], kinds)
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
    for doc in checked.all("approval"):
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
    for doc in checked.all("dashboard"):
        name = ws.name_of(doc)
        dashboard = compile_dashboard(ctx, doc, name, scopes, machines, by_form)
        if dashboard is not None:
            dashboards[name] = dashboard
            warn_unindexed_filters(ctx, doc, dashboard, forms, form_docs)
    ref_targets = {
        n: {f: r["form"] for f, r in fields.items() if r.get("type") == "ref"}
        for n, fields in raw_fields.items()
    }
    tests = []
    for doc in checked.all("test"):
        tests.extend(compile_tests(ctx, doc, form_fields, ref_targets, machines, approvals))
    tracking = (
        compile_tracking(ctx, app_doc, raw_fields, machines, raw_connectors, templates)
        if app_doc
        else None
    )
    insights = compile_insights(ctx, app_doc, raw_fields) if app_doc else {}
    suppress_follow_ons(diags, checked.done())
    if diags.has_errors() or app_doc is None or calendar is None:
        return None
    data: dict[str, Any] = app_doc.data
    return App(
        name=data["name"],
        title=data["title"],
        version=str(data.get("version", "0")),
        locale=data.get("locale", "en"),
        timezone=data.get("timezone", "Asia/Shanghai"),
        currency=data.get("currency"),
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
