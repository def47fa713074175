"""Compile one KPI of a dashboard: which keys its measure needs, the names it uses (fields,
states, transitions, automations, child tables) and its conditions, which must run in the
database. Every unknown name is reported at its position with a fix hint in both languages.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.compile.context import CompileContext, node_mark
from engine.compile.flows import FIELD, STATE, TRANSITION, compile_event
from engine.config.loader import LoadedYaml, YamlPath
from engine.expressions import CompiledExpr, Scope
from engine.expressions.form_scopes import SYSTEM_FIELDS, FieldShape, ScopeBuilder
from engine.expressions.sql import EVENT_FUNCTIONS, condition_events, sql_refusal
from engine.model.diagnostics import suggestion_hint
from engine.model.i18n import Text
from engine.model.spec import CountSpec, EventSpec, KpiSpec, StateMachineSpec, ThresholdSpec

__all__ = ["DURATIONS", "KpiNames", "compile_kpi_spec"]

DURATIONS = ("median_hours", "percentile_hours", "on_time_rate")
_NEEDS = {
    "rate": ("numerator",),
    "sum": ("field",),
    "avg": ("field",),
    "distinct_count": ("field",),
    "median_hours": ("from", "to"),
    "percentile_hours": ("from", "to", "percentile"),
    "on_time_rate": ("from", "to", "within_hours"),
    "per_record": ("count",),
}
_ONLY_FOR = {  # keys that mean something for these measures only
    "numerator": ("rate",),
    "field": ("sum", "avg", "distinct_count"),
    "from": DURATIONS,
    "to": DURATIONS,
    "percentile": ("percentile_hours",),
    "within_hours": ("on_time_rate",),
    "count": ("per_record",),
}
_NUMERIC = ("integer", "decimal", "money")
_DATES = ("date", "datetime")
_NOT_A_GROUP = ("table", "multiselect", "files", "long_text")
_COUNTED = ("state_entered", "transition", "field_changed", "notified", "rows")
AUTOMATION = Text("automation", "自动化")
CHILD = Text("child table", "子表")


@dataclass
class KpiNames:
    """What a KPI may name: the forms' field shapes and scopes, state machines, automations."""

    ctx: CompileContext
    doc: LoadedYaml
    scopes: ScopeBuilder
    machines: Mapping[str, StateMachineSpec]
    automations: Mapping[str, list[str]]  # form → its automations

    def fields(self, form: str) -> Mapping[str, FieldShape]:
        return self.scopes.forms.get(form) or {}


def _threshold(raw: str | None) -> ThresholdSpec | None:
    if raw is None:
        return None
    op = raw[:2] if raw[:2] in ("<=", ">=") else raw[:1]
    return ThresholdSpec(op, float(raw[len(op) :].strip()))


# ---------------------------------------------------------------------------- keys
def _check_keys(k: KpiNames, path: YamlPath, raw: dict[str, Any]) -> bool:
    """The measure has what it needs, and nothing meant for another measure."""
    ok = True
    measure = raw["measure"]
    for key in _NEEDS.get(measure, ()):
        if key not in raw:
            ok = False
            k.ctx.error(
                k.doc,
                (*path, "measure"),
                "missing-key",
                Text(f"measure '{measure}' needs '{key}'", f"度量 '{measure}' 需要 '{key}'"),
                Text(f"add '{key}: …' to this KPI", f"请为此指标添加 '{key}: …'"),
            )
    for key, measures in _ONLY_FOR.items():
        if key in raw and measure not in measures:
            ok = False
            k.ctx.error(
                k.doc,
                (*path, key),
                "kpi-key-unused",
                Text(
                    f"'{key}' has no effect on measure '{measure}'",
                    f"'{key}' 对度量 '{measure}' 不起作用",
                ),
                Text(
                    f"'{key}' is for {', '.join(measures)}: remove it or change the measure",
                    f"'{key}' 只用于 {', '.join(measures)}：请删除它或更换度量",
                ),
                key=True,
            )
    if "top" in raw and "group_by" not in raw:
        ok = False
        k.ctx.error(
            k.doc,
            (*path, "top"),
            "kpi-key-unused",
            Text("'top' has no effect without 'group_by'", "没有 'group_by' 时 'top' 不起作用"),
            Text(
                "add 'group_by: <field>' or remove 'top'", "请添加 'group_by: <字段>' 或删除 'top'"
            ),
            key=True,
        )
    return ok


def _check_field(k: KpiNames, path: YamlPath, form: str, measure: str) -> bool:
    name = k.doc.get(path)
    shape = k.fields(form).get(name)
    if shape is None:
        k.ctx.unknown(k.doc, path, name, k.fields(form), FIELD, "unknown-field")
        return False
    if measure in ("sum", "avg") and shape.type not in _NUMERIC:
        k.ctx.error(
            k.doc,
            path,
            "not-numeric",
            Text(f"'{name}' is not a number field", f"'{name}' 不是数值字段"),
            Text(
                "sum and avg need an integer, decimal or money field",
                "sum 和 avg 需要整数、小数或金额字段",
            ),
        )
        return False
    if shape.type in _NOT_A_GROUP:
        _not_a_group(k, path, name)
        return False
    return True


# ---------------------------------------------------------------------------- end points
def _endpoint(k: KpiNames, path: YamlPath, form: str) -> EventSpec | None:
    """``from``/``to``: created, state_entered, transition, notified (an automation's
    message delivered) or field (a date/datetime field's value); the schema allows no other
    kind."""
    raw: dict[str, Any] = k.doc.get(path)
    kind, value = next(iter(raw.items()))
    if kind == "notified":
        k.ctx.check_names(
            k.doc, (*path, kind), k.automations.get(form, []), AUTOMATION, "unknown-automation"
        )
        return EventSpec("notified", tuple(value if isinstance(value, list) else [value]))
    if kind == "field":
        shape = k.fields(form).get(value)
        if value in ("created_at", "updated_at"):
            return EventSpec("field", (value,))
        if shape is None:
            k.ctx.unknown(k.doc, (*path, kind), value, k.fields(form), FIELD, "unknown-field")
            return None
        if shape.type not in _DATES:
            k.ctx.error(
                k.doc,
                (*path, kind),
                "not-a-date",
                Text(f"'{value}' is not a date or datetime field", f"'{value}' 不是日期或时间字段"),
                Text("a duration ends at a date or datetime field", "时长的端点须为日期或时间字段"),
            )
            return None
        return EventSpec("field", (value,))
    fields = list(k.fields(form))
    return compile_event(k.ctx, k.doc, path, k.machines.get(form), fields)


def _is_date(k: KpiNames, form: str, spec: EventSpec | None) -> bool:
    if spec is None or spec.kind != "field":
        return False
    shape = k.fields(form).get(spec.names[0])
    return shape is not None and shape.type == "date"


def _check_dates(
    k: KpiNames, path: YamlPath, form: str, start: EventSpec | None, end: EventSpec | None
) -> bool:
    """A date (no time of day) can only be measured against another date."""
    if _is_date(k, form, start) == _is_date(k, form, end) or start is None or end is None:
        return True
    k.ctx.error(
        k.doc,
        (*path, "to" if _is_date(k, form, start) else "from"),
        "date-vs-time",
        Text(
            "a date field can only be measured against another date field",
            "日期字段只能与另一个日期字段计算时长",
        ),
        Text(
            "use a date field at both ends, or datetime fields and events",
            "请两端都用日期字段，或都用时间字段与事件",
        ),
    )
    return False


# ---------------------------------------------------------------------------- counts
def _count(k: KpiNames, path: YamlPath, form: str) -> CountSpec | None:
    """``count``: one of state_entered, transition, field_changed, notified — or ``rows`` of
    a child table with an optional ``where`` over the row's fields."""
    raw: dict[str, Any] = k.doc.get(path)
    kinds = [key for key in raw if key in _COUNTED]
    if len(kinds) != 1 or ("where" in raw and kinds != ["rows"]):
        k.ctx.error(
            k.doc,
            path,
            "bad-kpi-count",
            Text(
                "count needs exactly one of " + ", ".join(_COUNTED) + " ('where' only with rows)",
                "count 须恰好包含 " + "、".join(_COUNTED) + " 之一（'where' 只能与 rows 一起用）",
            ),
            Text(
                "e.g. count: {field_changed: [quantity]} or "
                "count: {rows: log, where: \"topic == 'x'\"}",
                "例如 count: {field_changed: [quantity]} 或 "
                "count: {rows: log, where: \"topic == 'x'\"}",
            ),
        )
        return None
    kind = kinds[0]
    if kind == "rows":
        return _count_rows(k, path, form, raw)
    if kind == "notified":
        k.ctx.check_names(
            k.doc, (*path, kind), k.automations.get(form, []), AUTOMATION, "unknown-automation"
        )
        names = raw[kind] if isinstance(raw[kind], list) else [raw[kind]]
        return CountSpec(event=EventSpec("notified", tuple(names)))
    if kind == "field_changed":
        k.ctx.check_names(k.doc, (*path, kind), list(k.fields(form)), FIELD, "unknown-field")
        names = raw[kind] if isinstance(raw[kind], list) else [raw[kind]]
        return CountSpec(event=EventSpec("field_changed", tuple(names)))
    event = compile_event(k.ctx, k.doc, path, k.machines.get(form), list(k.fields(form)))
    return None if event is None else CountSpec(event=event)


def _count_rows(k: KpiNames, path: YamlPath, form: str, raw: dict[str, Any]) -> CountSpec | None:
    children = {n: s for n, s in k.fields(form).items() if s.type == "table"}
    shape = children.get(raw["rows"])
    if shape is None:
        k.ctx.unknown(k.doc, (*path, "rows"), raw["rows"], children, CHILD, "unknown-child")
        return None
    where = None
    if "where" in raw:
        where = _sql_expr(k, (*path, "where"), k.scopes.row_scope(shape.children), {})
        if where is None:
            return None
    return CountSpec(rows=raw["rows"], where=where)


# ---------------------------------------------------------------------------- conditions
def _at_expression(
    k: KpiNames, path: YamlPath, compiled: CompiledExpr, node: ast.AST
) -> tuple[Any, int]:
    """The file position of ``node`` inside the expression at ``path`` and its width."""
    return node_mark(k.doc, path, compiled, node)


def _sql_expr(
    k: KpiNames, path: YamlPath, scope: Scope, functions: Mapping[str, Any]
) -> CompiledExpr | None:
    """A KPI condition: a valid expression that can also run in the database (as SQL)."""
    compiled = k.ctx.expr(k.doc, path, scope, dict(functions) or None)
    if compiled is None:
        return None
    refusal = sql_refusal(compiled.tree, scope)
    if refusal is None:
        return compiled
    mark, width = _at_expression(k, path, compiled, refusal.node)
    k.ctx.diags.report(
        "error",
        k.doc.path,
        mark,
        "not-sql",
        Text(
            f"this expression cannot run in the database: {refusal.reason.en}",
            f"此表达式无法在数据库中运行：{refusal.reason.zh}",
        ),
        Text(
            "dashboards compute in SQL: use comparisons, and/or/not, 'in' lists, == None, "
            "+ - * /, ref paths (customer.tier), entered()/fired() and today()/date(...) "
            "constants",
            "看板在数据库中计算：请使用比较、and/or/not、'in' 列表、== None、加减乘除、"
            "引用路径（customer.tier）、entered()/fired() 以及 today()/date(...) 常量",
        ),
        yaml_path=path,
        width=width,
    )
    return None


def _condition(
    k: KpiNames, path: YamlPath, form: str, events: list[EventSpec]
) -> CompiledExpr | None:
    """``where``/``numerator``; the states and transitions its entered()/fired() name must
    exist (their events are added to ``events``)."""
    compiled = _sql_expr(k, path, k.scopes.form_scope(form), EVENT_FUNCTIONS)
    if compiled is None:
        return None
    machine = k.machines.get(form)
    ok = True
    for call, spec in condition_events(compiled.tree):
        states = [s.name for s in machine.states] if machine else []
        transitions = [t.name for t in machine.transitions] if machine else []
        pool, what = (states, STATE) if spec.kind == "state_entered" else (transitions, TRANSITION)
        for arg, name in zip(call.args, spec.names, strict=True):
            if name in pool:
                continue
            ok = False
            mark, width = _at_expression(k, path, compiled, arg)
            code = "unknown-state" if spec.kind == "state_entered" else "unknown-transition"
            k.ctx.diags.report(
                "error",
                k.doc.path,
                mark,
                code,
                Text(f"unknown {what.en} '{name}'", f"未知的{what.zh} '{name}'"),
                suggestion_hint(name, pool, what),
                yaml_path=path,
                width=width,
            )
        events.append(spec)
    return compiled if ok else None


# ---------------------------------------------------------------------------- grouping, drill
def _check_columns(k: KpiNames, path: YamlPath, form: str) -> bool:
    """``group_by`` / ``drill.columns``: fields of the form with one value each."""
    value = k.doc.get(path)
    items: list[tuple[YamlPath, Any]] = (
        [(path, value)]
        if isinstance(value, str)
        else [((*path, i), name) for i, name in enumerate(value or [])]
    )
    ok = True
    pool = [*k.fields(form), *SYSTEM_FIELDS]
    for at, name in items:
        shape = k.fields(form).get(name)
        if name in SYSTEM_FIELDS:
            continue
        if shape is None:
            k.ctx.unknown(k.doc, at, name, pool, FIELD, "unknown-field")
            ok = False
        elif shape.type in _NOT_A_GROUP:
            _not_a_group(k, at, name)
            ok = False
    return ok


# ---------------------------------------------------------------------------- the KPI
def compile_kpi_spec(k: KpiNames, name: str, raw: dict[str, Any]) -> KpiSpec | None:
    """The KPI at ``kpis.<name>``, or None after reporting what is wrong."""
    path: YamlPath = ("kpis", name)
    form = raw["form"]
    if form not in k.scopes.forms:
        k.ctx.unknown(
            k.doc, (*path, "form"), form, k.scopes.forms, Text("form", "表单"), "unknown-form"
        )
        return None
    measure = raw["measure"]
    ok = _check_keys(k, path, raw)
    if "field" in raw:
        ok = _check_field(k, (*path, "field"), form, measure) and ok
    events: list[EventSpec] = []
    where = numerator = None
    if "where" in raw:
        where = _condition(k, (*path, "where"), form, events)
        ok = ok and where is not None
    if "numerator" in raw:
        numerator = _condition(k, (*path, "numerator"), form, events)
        ok = ok and numerator is not None
    start = _endpoint(k, (*path, "from"), form) if "from" in raw else None
    end = _endpoint(k, (*path, "to"), form) if "to" in raw else None
    ok = ok and ("from" not in raw or start is not None) and ("to" not in raw or end is not None)
    ok = _check_dates(k, path, form, start, end) and ok
    count = _count(k, (*path, "count"), form) if "count" in raw else None
    ok = ok and ("count" not in raw or count is not None)
    if "group_by" in raw:
        ok = _check_columns(k, (*path, "group_by"), form) and ok
    if "drill" in raw:
        ok = _check_columns(k, (*path, "drill", "columns"), form) and ok
    ok = _check_thresholds(k, path, raw) and ok
    if not ok:
        return None
    return KpiSpec(
        name=name,
        title=raw["title"],
        form=form,
        measure=measure,
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
        count=count,
        within_hours=raw.get("within_hours"),
        target=raw.get("target"),
        group_by=raw.get("group_by"),
        top=raw.get("top", 5),
        drill=tuple((raw.get("drill") or {}).get("columns") or ()),
        condition_events=tuple(events),
    )


def _not_a_group(k: KpiNames, at: YamlPath, name: str) -> None:
    """``name`` cannot be grouped by or counted distinctly (a list or a long text)."""
    k.ctx.error(
        k.doc,
        at,
        "bad-kpi-field",
        Text(f"'{name}' holds a list or long text", f"'{name}' 是列表或长文本字段"),
        Text("use a field with one short value", "请使用只有单个短值的字段"),
    )


# ---------------------------------------------------------------------------- thresholds
_LOWER = ("<", "<=")


def _check_thresholds(k: KpiNames, path: YamlPath, raw: dict[str, Any]) -> bool:
    """green and amber point the same way, amber lies beyond green (else it never shows), and
    a rate's thresholds are on its scale: 0–100 with ``unit: "%"``, else a fraction 0–1."""
    green, amber = _threshold(raw.get("green")), _threshold(raw.get("amber"))
    ok = _check_rate_scale(k, path, raw, green, amber)
    if green is None or amber is None or not ok:
        return ok
    g, a = raw["green"], raw["amber"]
    lower = green.op in _LOWER
    if lower != (amber.op in _LOWER):
        k.ctx.error(
            k.doc,
            (*path, "amber"),
            "thresholds-mixed",
            Text(
                f"green ({g}) and amber ({a}) point different ways",
                f"绿灯（{g}）和黄灯（{a}）的方向不一致",
            ),
            Text(
                "use <= for both when lower is better, >= for both when higher is better",
                "越低越好时两者都用 <=，越高越好时两者都用 >=",
            ),
        )
        return False
    reversed_ = amber.value < green.value if lower else amber.value > green.value
    if reversed_ or (amber.value == green.value and amber.op == green.op):
        better_en, better_zh = ("lower", "越低越好") if lower else ("higher", "越高越好")
        k.ctx.error(
            k.doc,
            (*path, "amber"),
            "thresholds-reversed",
            Text(
                f"amber ({a}) lies inside green ({g}), so amber never shows: {better_en} is "
                "better here, so amber must allow more than green",
                f"黄灯（{a}）落在绿灯（{g}）的范围内，黄灯永远不会亮：这里{better_zh}，"
                "黄灯的范围必须比绿灯宽",
            ),
            Text(
                f'swap them: green: "{a}", amber: "{g}"'
                if amber.value != green.value
                else "make amber wider than green",
                f'请交换：green: "{a}"，amber: "{g}"'
                if amber.value != green.value
                else "请让黄灯的范围比绿灯宽",
            ),
        )
        return False
    return True


def _check_rate_scale(
    k: KpiNames,
    path: YamlPath,
    raw: dict[str, Any],
    green: ThresholdSpec | None,
    amber: ThresholdSpec | None,
) -> bool:
    if raw["measure"] not in ("rate", "on_time_rate"):
        return True
    percent = raw.get("unit") == "%"
    given = [(key, raw[key], t.value) for key, t in (("green", green), ("amber", amber)) if t]
    if "target" in raw and isinstance(raw["target"], int | float):
        given.append(("target", raw["target"], float(raw["target"])))
    top = 100.0 if percent else 1.0
    for key, text, value in given:
        if 0 <= value <= top:
            continue
        if percent:
            message = Text(
                f"{key} ({text}) is outside 0–100: this rate is a percentage",
                f"{key}（{text}）超出了 0–100：这个比率是百分数",
            )
            hint = Text("write a percentage between 0 and 100", "请写 0 到 100 之间的百分数")
        else:
            message = Text(
                f'{key} ({text}) is outside 0–1: without unit: "%" this rate is a fraction',
                f'{key}（{text}）超出了 0–1：没有 unit: "%" 时，这个比率是 0 到 1 的小数',
            )
            hint = Text(
                'add unit: "%" to show the rate as a percentage (0–100)',
                '请添加 unit: "%"，把比率显示为百分数（0–100）',
            )
        k.ctx.error(k.doc, (*path, key), "rate-out-of-range", message, hint)
        return False
    fractions = [
        (key, raw[key], t.value)
        for key, t in (("green", green), ("amber", amber))
        if t is not None and t.op not in _LOWER and 0 < t.value <= 1
    ]
    if percent and fractions:
        key, text, value = fractions[0]
        op = text[: len(text) - len(text.lstrip("<>="))]
        fixed = f"{op} {value * 100:g}"
        k.ctx.error(
            k.doc,
            (*path, key),
            "rate-as-fraction",
            Text(
                f"{key} ({text}) looks like a fraction, but this rate is a percentage "
                '(unit: "%"): the light would be green for almost any value',
                f'{key}（{text}）看起来是小数，但这个比率是百分数（unit: "%"）：'
                "几乎任何值都会亮绿灯",
            ),
            Text(f'write "{fixed}"', f'请写成 "{fixed}"'),
        )
        return False
    return True
