"""Compile dashboards (their KPIs: engine/compile/kpis.py) and config tests: references to
forms, fields, routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.compile.context import CompileContext
from engine.compile.flows import FIELD
from engine.compile.kpis import KpiNames, compile_kpi_spec
from engine.config.loader import LoadedYaml, YamlPath
from engine.expressions.form_scopes import ScopeBuilder
from engine.model.i18n import Text
from engine.model.spec import (
    ApprovalSpec,
    ConfigTestSpec,
    DashboardSpec,
    StateMachineSpec,
    frozen_map,
)

FORM = Text("form", "表单")


def compile_dashboard(
    ctx: CompileContext,
    doc: LoadedYaml,
    name: str,
    scopes: ScopeBuilder,
    machines: dict[str, StateMachineSpec],
    automations: Mapping[str, list[str]],
) -> DashboardSpec | None:
    data = doc.data
    if "roles" in data:
        ctx.check_roles(doc, ("roles",))
    names = KpiNames(ctx, doc, scopes, machines, automations)
    kpis = [compile_kpi_spec(names, kname, raw) for kname, raw in data["kpis"].items()]
    if any(kpi is None for kpi in kpis):
        return None
    return DashboardSpec(
        name,
        data["title"],
        tuple(k for k in kpis if k is not None),
        tuple(data.get("roles") or ()),
        data.get("description"),
    )


def compile_tests(
    ctx: CompileContext,
    doc: LoadedYaml,
    form_fields: dict[str, list[str]],
    ref_targets: dict[str, dict[str, str]],
    machines: dict[str, StateMachineSpec],
    approvals: dict[str, ApprovalSpec],
) -> list[ConfigTestSpec]:
    out = []
    for i, raw in enumerate(doc.data["cases"]):
        path: YamlPath = ("cases", i)
        form = raw["form"]
        if form not in form_fields:
            ctx.unknown(doc, (*path, "form"), form, form_fields, FORM, "unknown-form")
            continue
        _check_given(ctx, doc, (*path, "given"), form, form_fields, ref_targets)
        expect: dict[str, Any] = raw["expect"]
        for j, fname in enumerate(expect.get("errors") or []):
            if fname not in form_fields[form]:
                ctx.unknown(
                    doc,
                    (*path, "expect", "errors", j),
                    fname,
                    form_fields[form],
                    FIELD,
                    "unknown-field",
                )
        for key in ("editable", "refused_edit"):
            for j, fname in enumerate(expect.get(key) or []):
                if fname not in form_fields[form]:
                    ctx.unknown(
                        doc,
                        (*path, "expect", key, j),
                        fname,
                        form_fields[form],
                        FIELD,
                        "unknown-field",
                    )
        for fname in expect.get("values") or {}:
            if fname not in form_fields[form]:
                ctx.unknown(
                    doc,
                    (*path, "expect", "values", fname),
                    fname,
                    form_fields[form],
                    FIELD,
                    "unknown-field",
                    key=True,
                )
        _check_route_expectations(ctx, doc, (*path, "expect"), form, approvals)
        machine = machines.get(form)
        for key in ("transition", "refused_transition"):
            if key in expect:
                names = [t.name for t in machine.transitions] if machine else []
                ctx.check_names(
                    doc,
                    (*path, "expect", key),
                    names,
                    Text("transition", "流转"),
                    "unknown-transition",
                )
        if "state" in raw:
            states = [s.name for s in machine.states] if machine else []
            ctx.check_names(doc, (*path, "state"), states, Text("state", "状态"), "unknown-state")
        if "as_role" in raw:
            ctx.check_roles(doc, (*path, "as_role"))
        if "as_user" in raw and raw["as_user"] not in ctx.people:
            ctx.unknown(
                doc,
                (*path, "as_user"),
                raw["as_user"],
                ctx.people,
                Text("person", "人员"),
                "unknown-person",
            )
        if "confirmed_by" in raw:
            ctx.check_roles(doc, (*path, "confirmed_by"))
        out.append(
            ConfigTestSpec(
                raw["name"],
                form,
                frozen_map(raw["given"]),
                frozen_map(expect),
                raw.get("today"),
                raw.get("state"),
                raw.get("as_role"),
                doc.path,
                doc.mark(path).line,
                tuple(raw.get("confirmed_by") or ()),
                raw.get("as_user"),
            )
        )
    return out


def _check_route_expectations(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    form: str,
    approvals: dict[str, ApprovalSpec],
) -> None:
    """Route, added rules, steps and approvers expected must exist in the form's approval."""
    expect = doc.get(path)
    mine = [a for a in approvals.values() if a.form == form]
    rules = [*(r for a in mine for r in a.routes), *(r for a in mine for r in a.add_steps)]
    if "route" in expect:
        routes = [r.name for a in mine for r in a.routes]
        ctx.check_names(doc, (*path, "route"), routes, Text("route", "路线"), "unknown-route")
    for j, _ in enumerate(expect.get("added") or []):
        added = [r.name for a in mine for r in a.add_steps]
        ctx.check_names(doc, (*path, "added", j), added, Text("rule", "规则"), "unknown-rule")
    steps = sorted({s.name for r in rules for s in r.steps})
    for j, _ in enumerate(expect.get("steps") or []):
        ctx.check_names(doc, (*path, "steps", j), steps, Text("step", "步骤"), "unknown-step")
    for name in expect.get("approvers") or {}:
        if name not in steps:
            ctx.unknown(
                doc,
                (*path, "approvers", name),
                name,
                steps,
                Text("step", "步骤"),
                "unknown-step",
                key=True,
            )


def _check_given(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    form: str,
    form_fields: dict[str, list[str]],
    ref_targets: dict[str, dict[str, str]],
) -> None:
    given = doc.get(path) or {}
    for fname, value in given.items():
        if fname not in form_fields[form]:
            ctx.unknown(
                doc, (*path, fname), fname, form_fields[form], FIELD, "unknown-field", key=True
            )
            continue
        target = ref_targets[form].get(fname)
        if target is not None and isinstance(value, dict) and target in form_fields:
            _check_given(ctx, doc, (*path, fname), target, form_fields, ref_targets)
