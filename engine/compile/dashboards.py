"""Compile dashboards (KPIs) and config tests: references to forms, fields, routes."""

from __future__ import annotations

from typing import Any

from engine.compile.context import CompileContext, expression_mark
from engine.compile.flows import FIELD, compile_event
from engine.compile.scopes import ScopeBuilder
from engine.dashboards.sql_expr import sql_refusal
from engine.expressions import CompiledExpr, Scope
from engine.expressions.check import node_position
from engine.i18n import Text
from engine.loader import LoadedYaml, YamlPath
from engine.spec import (
    ApprovalSpec,
    ConfigTestSpec,
    DashboardSpec,
    KpiSpec,
    StateMachineSpec,
    ThresholdSpec,
    frozen_map,
)

FORM = Text("form", "表单")
_NEEDS = {
    "rate": ("numerator",),
    "sum": ("field",),
    "avg": ("field",),
    "median_hours": ("from", "to"),
    "percentile_hours": ("from", "to", "percentile"),
}
_NUMERIC = ("integer", "decimal", "money")
_NEEDS_EVENTS = ("median_hours", "percentile_hours")
_ENDPOINTS = ("created", "state_entered", "transition")


def _sql_expr(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, scope: Scope
) -> CompiledExpr | None:
    """A KPI condition: a valid expression that can also run in the database (as SQL)."""
    compiled = ctx.expr(doc, path, scope)
    if compiled is None:
        return None
    refusal = sql_refusal(compiled.tree, scope)
    if refusal is None:
        return compiled
    where = node_position(compiled.source, refusal.node)
    mark = expression_mark(doc, path, compiled.source, where["line"], where["col"])
    width = max(1, (where["end_col"] or where["col"] + 1) - where["col"])
    ctx.diags.report(
        "error",
        doc.path,
        mark,
        "not-sql",
        Text(
            f"this expression cannot run in the database: {refusal.reason.en}",
            f"此表达式无法在数据库中运行：{refusal.reason.zh}",
        ),
        Text(
            "dashboards compute in SQL: use comparisons, and/or/not, 'in' lists, == None, "
            "+ - * /, ref paths (customer.tier) and today()/date(...) constants",
            "看板在数据库中计算：请使用比较、and/or/not、'in' 列表、== None、加减乘除、"
            "引用路径（customer.tier）以及 today()/date(...) 常量",
        ),
        yaml_path=path,
        width=width,
    )
    return None


def _check_endpoints(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, raw: dict[str, Any]
) -> bool:
    """Durations run between created / state_entered / transition events."""
    ok = True
    for end in ("from", "to"):
        kinds = list(raw.get(end) or {})
        if kinds and kinds[0] not in _ENDPOINTS:
            ok = False
            ctx.error(
                doc,
                (*path, end, kinds[0]),
                "bad-kpi-event",
                Text(
                    f"a duration cannot {'start' if end == 'from' else 'end'} at '{kinds[0]}'",
                    f"时长不能以 '{kinds[0]}' 作为{'起点' if end == 'from' else '终点'}",
                ),
                Text(
                    "use created, state_entered or transition",
                    "请使用 created、state_entered 或 transition",
                ),
                key=True,
            )
    return ok


def _threshold(raw: str | None) -> ThresholdSpec | None:
    if raw is None:
        return None
    op = raw[:2] if raw[:2] in ("<=", ">=") else raw[:1]
    return ThresholdSpec(op, float(raw[len(op) :].strip()))


def compile_dashboard(
    ctx: CompileContext,
    doc: LoadedYaml,
    name: str,
    scopes: ScopeBuilder,
    machines: dict[str, StateMachineSpec],
    form_fields: dict[str, list[str]],
    field_types: dict[str, dict[str, str]],
) -> DashboardSpec | None:
    data = doc.data
    if "roles" in data:
        ctx.check_roles(doc, ("roles",))
    kpis = []
    ok = True
    for kname, raw in data["kpis"].items():
        path: YamlPath = ("kpis", kname)
        form = raw["form"]
        if form not in form_fields:
            ctx.unknown(doc, (*path, "form"), form, form_fields, FORM, "unknown-form")
            ok = False
            continue
        for key in _NEEDS.get(raw["measure"], ()):
            if key not in raw:
                ok = False
                ctx.error(
                    doc,
                    (*path, "measure"),
                    "missing-key",
                    Text(
                        f"measure '{raw['measure']}' needs '{key}'",
                        f"度量 '{raw['measure']}' 需要 '{key}'",
                    ),
                    Text(f"add '{key}: …' to this KPI", f"请为此指标添加 '{key}: …'"),
                )
        if "field" in raw:
            ctx.check_names(doc, (*path, "field"), form_fields[form], FIELD, "unknown-field")
            ftype = field_types[form].get(raw["field"])
            if ftype is not None and ftype not in _NUMERIC:
                ctx.error(
                    doc,
                    (*path, "field"),
                    "not-numeric",
                    Text(
                        f"'{raw['field']}' is not a number field", f"'{raw['field']}' 不是数值字段"
                    ),
                    Text(
                        "sum and avg need an integer, decimal or money field",
                        "sum 和 avg 需要整数、小数或金额字段",
                    ),
                )
        scope = scopes.form_scope(form)
        where = _sql_expr(ctx, doc, (*path, "where"), scope) if "where" in raw else None
        numerator = _sql_expr(ctx, doc, (*path, "numerator"), scope) if "numerator" in raw else None
        machine = machines.get(form)
        start = (
            compile_event(ctx, doc, (*path, "from"), machine, form_fields[form])
            if "from" in raw
            else None
        )
        end = (
            compile_event(ctx, doc, (*path, "to"), machine, form_fields[form])
            if "to" in raw
            else None
        )
        if raw["measure"] in _NEEDS_EVENTS:
            ok = _check_endpoints(ctx, doc, path, raw) and ok
        kpis.append(
            KpiSpec(
                name=kname,
                title=raw["title"],
                form=form,
                measure=raw["measure"],
                where=where,
                numerator=numerator,
                field=raw.get("field"),
                start=start,
                end=end,
                percentile=raw.get("percentile"),
                window=raw.get("window", "all"),
                unit=raw.get("unit", ""),
                green=_threshold(raw.get("green")),
                amber=_threshold(raw.get("amber")),
                trend=raw.get("trend"),
            )
        )
    if not ok:
        return None
    return DashboardSpec(
        name, data["title"], tuple(kpis), tuple(data.get("roles") or ()), data.get("description")
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
