"""Compile approvals: routes (with never-matching and shadowed routes found), steps, SLAs."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from engine.compile.context import CompileContext
from engine.compile.flows import (
    TRANSITION,
    check_message,
    check_who,
    check_who_list,
    compile_event,
)
from engine.compile.message_templates import APPROVAL_NAMES
from engine.compile.routes import Box, boxes_of, example
from engine.config.loader import LoadedYaml, YamlPath
from engine.expressions import NameInfo
from engine.expressions.form_scopes import ScopeBuilder
from engine.model.i18n import Text
from engine.model.spec import (
    ApprovalSpec,
    ApprovalStepSpec,
    MessageSpec,
    RouteSpec,
    SlaSpec,
    StateMachineSpec,
    WhoSpec,
    frozen_map,
)

StepKind = Literal["approver", "any_of", "all_of", "n_of"]

FORM = Text("form", "表单")


def compile_approval(
    ctx: CompileContext,
    doc: LoadedYaml,
    scopes: ScopeBuilder,
    machines: dict[str, StateMachineSpec],
    form_fields: dict[str, list[str]],
    connectors: dict[str, Any],
    templates: list[Path],
) -> ApprovalSpec | None:
    data = doc.data
    form = data["form"]
    if form not in form_fields:
        ctx.unknown(doc, ("form",), form, form_fields, FORM, "unknown-form")
        return None
    machine = machines.get(form)
    if machine is None:
        ctx.error(
            doc,
            ("form",),
            "no-states",
            Text(
                f"form '{form}' has no states to move on approval",
                f"表单 '{form}' 没有定义状态，审批结果无法推进",
            ),
            Text(
                "define its states and transitions in a flows/ file",
                "请在 flows/ 文件中定义它的状态和流转",
            ),
        )
        return None
    fields = form_fields[form]
    start = compile_event(ctx, doc, ("start",), machine, fields)
    transitions = [t.name for t in machine.transitions]
    for key in ("on_approved", "on_rejected", "on_returned"):
        if key in data:
            ctx.check_names(doc, (key,), transitions, TRANSITION, "unknown-transition")
            _check_outcome_closed(ctx, doc, key, machine)
    params = dict(data.get("params") or {})
    bad = _check_params(ctx, doc, params)
    scope = scopes.form_scope(
        form,
        {
            "submitter": NameInfo("value", "text"),
            "params": NameInfo.record(
                {k: NameInfo.value(None if k in bad else _param_type(v)) for k, v in params.items()}
            ),
        },
    )
    routes = _compile_routes(ctx, doc, scope, fields, params)
    extras = _compile_extras(ctx, doc, scope, fields)
    if "notify" in data:
        check_message(
            ctx,
            doc,
            ("notify",),
            connectors,
            templates,
            form=form,
            record=NameInfo.record(scopes.record_fields(form)),
            names=APPROVAL_NAMES,
        )
    if start is None or routes is None or extras is None:
        return None
    return ApprovalSpec(
        name=doc.path.rsplit("/", 1)[-1].rsplit(".", 1)[0],
        form=form,
        start=start,
        on_approved=data["on_approved"],
        on_rejected=data["on_rejected"],
        routes=routes,
        on_returned=data.get("on_returned"),
        sla=_sla(data.get("sla")),
        if_record_changes=data.get("if_record_changes", "lock"),
        self_approval=_self_approval(ctx, doc),
        add_steps=extras,
        params=frozen_map(params),
        notify=_message(data.get("notify")),
        description=data.get("description"),
    )


SELF_APPROVAL = ("forbid_creator_and_starter", "forbid_starter", "allow")


def _self_approval(ctx: CompileContext, doc: LoadedYaml) -> str:
    """``self_approval`` (the schema checks its values); the older ``allow_self_approval:
    true`` still means ``allow`` (false: the default), with a warning to write the new key."""
    data = doc.data
    if "allow_self_approval" not in data:
        return str(data.get("self_approval", SELF_APPROVAL[0]))
    if "self_approval" in data:
        ctx.error(
            doc,
            ("allow_self_approval",),
            "self-approval-twice",
            Text(
                "give either self_approval or allow_self_approval, not both",
                "self_approval 与 allow_self_approval 只能写一个",
            ),
            Text("remove allow_self_approval", "请删除 allow_self_approval"),
            key=True,
        )
        return str(data["self_approval"])
    allowed = bool(data["allow_self_approval"])
    ctx.warning(
        doc,
        ("allow_self_approval",),
        "deprecated-key",
        Text(
            "allow_self_approval is replaced by self_approval",
            "allow_self_approval 已由 self_approval 取代",
        ),
        Text(
            f"write 'self_approval: {'allow' if allowed else SELF_APPROVAL[0]}'",
            f"请写 'self_approval: {'allow' if allowed else SELF_APPROVAL[0]}'",
        ),
        key=True,
    )
    return "allow" if allowed else SELF_APPROVAL[0]


def _check_outcome_closed(
    ctx: CompileContext, doc: LoadedYaml, key: str, machine: StateMachineSpec
) -> None:
    """An approval's outcome transition fires when the approval decides; if people could fire
    it too, anyone allowed could approve (or reject) around the approvers."""
    name = doc.data[key]
    transition = next((t for t in machine.transitions if t.name == name), None)
    if transition is None or transition.by_system:
        return
    ctx.error(
        doc,
        (key,),
        "outcome-open-to-people",
        Text(
            f"transition '{name}' is this approval's outcome, but people may fire it by hand "
            "(they would skip the approval)",
            f"流转 '{name}' 是本审批的结果，但人可以手动执行它（等于绕过审批）",
        ),
        Text(
            f"add 'by: system' to transition '{name}' in the flows/ file of form "
            f"'{machine.form}' (and remove its roles:)",
            f"请在表单 '{machine.form}' 的 flows/ 文件中给流转 '{name}' 加上 'by: system'"
            "（并去掉 roles:）",
        ),
    )


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    return "decimal" if isinstance(value, int | float) else "text"


def _check_params(ctx: CompileContext, doc: LoadedYaml, params: dict[str, Any]) -> set[str]:
    """Params that YAML read as text but were meant as numbers (``500,000``, ``50万``,
    ``5e5``); each is an error with the number to write. Returns their names."""
    bad: set[str] = set()
    for name, value in params.items():
        number = meant_number(value) if isinstance(value, str) else None
        if number is None:
            continue
        bad.add(name)
        ctx.error(
            doc,
            ("params", name),
            "number-as-text",
            Text(
                f"'{value}' is read as text, not as a number, so comparisons with "
                f"params.{name} never hold",
                f"'{value}' 被读成了文本而不是数字，与 params.{name} 的比较永远不成立",
            ),
            Text(
                f"write {number} (digits only, no thousands separators or units)",
                f"请写成 {number}（只写数字，不要千位分隔符或单位）",
            ),
        )
    return bad


_GROUPED = re.compile(r"^[+-]?\d{1,3}([,，_ \u00a0']\d{3})+(\.\d+)?$")
_EXPONENT = re.compile(r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$")
_UNITS = {"万": 10_000, "亿": 100_000_000, "k": 1_000, "K": 1_000, "千": 1_000}
_DECORATION = re.compile(r"^[¥￥$€£]\s*|\s*(元|块|CNY|RMB|USD)$")


def meant_number(text: str) -> str | None:
    """The number ``text`` was meant to be, written the YAML way, or None if it is not one."""
    raw = _DECORATION.sub("", text.strip().translate(_FULL_WIDTH))
    unit = 1
    if raw[-1:] in _UNITS:
        unit, raw = _UNITS[raw[-1]], raw[:-1].strip()
    grouped = _GROUPED.match(raw) is not None
    if not (grouped or _EXPONENT.match(raw) or (unit != 1 or raw != text.strip())):
        return None
    digits = re.sub(r"[,，_ \u00a0']", "", raw) if grouped else raw
    try:
        number = Decimal(digits) * unit
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return format(number.normalize(), "f") if number != number.to_integral() else str(int(number))


_FULL_WIDTH = str.maketrans("０１２３４５６７８９．，", "0123456789.,")


def _message(raw: dict[str, Any] | None) -> MessageSpec | None:
    if raw is None:
        return None
    return MessageSpec(raw["via"], raw["template"], bool(raw.get("todo", False)))


def _compile_extras(
    ctx: CompileContext, doc: LoadedYaml, scope: Any, fields: list[str]
) -> tuple[RouteSpec, ...] | None:
    out: list[RouteSpec] = []
    names: set[str] = set()
    ok = True
    for i, raw in enumerate(doc.data.get("add_steps") or []):
        path: YamlPath = ("add_steps", i)
        ctx.check_unique(doc, (*path, "name"), names, Text("rules", "规则"))
        when = ctx.expr(doc, (*path, "when"), scope)
        ok = ok and when is not None
        steps = _compile_steps(ctx, doc, (*path, "steps"), fields, scope)
        out.append(RouteSpec(raw["name"], steps, when, False, raw.get("label")))
    return tuple(out) if ok else None


def _sla(raw: dict[str, Any] | None) -> SlaSpec | None:
    if raw is None:
        return None
    return SlaSpec(
        raw["business_hours"],
        raw.get("escalate_to", "manager"),
        raw.get("max_escalations", 3),
        raw.get("remind_before_hours"),
    )


def _compile_routes(
    ctx: CompileContext, doc: LoadedYaml, scope: Any, fields: list[str], params: dict[str, Any]
) -> tuple[RouteSpec, ...] | None:
    raw_routes = doc.data["routes"]
    options = {n: i.options for n, i in _flat_options(scope.names).items()}
    routes: list[RouteSpec] = []
    boxes: list[tuple[str, Any]] = []
    default_at: int | None = None
    names: set[str] = set()
    ok = True
    for i, raw in enumerate(raw_routes):
        path: YamlPath = ("routes", i)
        name = raw["name"]
        ctx.check_unique(doc, (*path, "name"), names, Text("routes", "路线"))
        is_default = bool(raw.get("default"))
        if "when" not in raw and not is_default:
            ctx.error(
                doc,
                path,
                "route-no-condition",
                Text(
                    f"route '{name}' has neither 'when' nor 'default: true'",
                    f"路线 '{name}' 既没有 'when' 也没有 'default: true'",
                ),
                Text(
                    "add when: <condition>, or mark the catch-all route default: true",
                    "请添加 when: 条件，或把兜底路线标为 default: true",
                ),
            )
        if is_default and "when" in raw:
            ctx.error(
                doc,
                (*path, "when"),
                "route-default-when",
                Text("a default route takes no 'when'", "默认路线不能有 'when'"),
                Text("remove 'when' or 'default'", "请删除 'when' 或 'default'"),
                key=True,
            )
        if default_at is not None:
            ctx.error(
                doc,
                (*path, "name"),
                "unreachable-route",
                Text(
                    f"route '{name}' comes after the default route and can never be taken",
                    f"路线 '{name}' 位于默认路线之后，永远不会被选中",
                ),
                Text("move the default route to the end", "请把默认路线移到最后"),
            )
        when = ctx.expr(doc, (*path, "when"), scope) if "when" in raw else None
        if "when" in raw and when is None:
            ok = False
        if is_default and default_at is None:
            default_at = i
        if when is not None:
            consts = {f"params.{k}": v for k, v in params.items()}
            mine, complete = boxes_of(when.tree, consts)
            live = [b for b in mine if not b.empty(options)]
            covering = [_covered_by(b, boxes) for b in live]
            if complete and not live:
                ctx.error(
                    doc,
                    (*path, "when"),
                    "route-never-matches",
                    Text(
                        f"route '{name}' can never match: its condition is impossible",
                        f"路线 '{name}' 永远不会匹配：条件不可能成立",
                    ),
                    Text(
                        "check the values and comparisons in 'when' (a select field "
                        "compared to a value that is not one of its options?)",
                        "请检查 'when' 中的取值和比较（是否把下拉字段和不存在的选项比较？）",
                    ),
                )
            elif complete and all(c is not None for c in covering):
                earlier = covering[0]
                ctx.error(
                    doc,
                    (*path, "when"),
                    "unreachable-route",
                    Text(
                        f"route '{name}' is never reached: every record it "
                        f"matches is taken by route '{earlier}' first",
                        f"路线 '{name}' 永远不会被选中：它匹配的记录都会先被路线 '{earlier}' 选走",
                    ),
                    Text(
                        "reorder the routes or narrow the earlier one",
                        "请调整路线顺序，或缩小前面那条路线的条件",
                    ),
                )
            else:
                _warn_overlap(ctx, doc, (*path, "when"), name, live, boxes, options)
            boxes.append((name, live))
        steps = _compile_steps(ctx, doc, (*path, "steps"), fields, scope)
        routes.append(RouteSpec(name, steps, when, is_default, raw.get("label")))
    if default_at is None:
        ctx.error(
            doc,
            ("routes",),
            "no-default-route",
            Text(
                "no default route: a record that matches no route would wait forever",
                "没有默认路线：不匹配任何路线的记录将永远无人审批",
            ),
            Text(
                "end the list with a route marked 'default: true'",
                "请在最后添加一条 'default: true' 的路线",
            ),
            key=True,
        )
    return tuple(routes) if ok else None


def _covered_by(box: Box, earlier: list[tuple[str, list[Box]]]) -> str | None:
    """The first earlier route that takes every record ``box`` matches, if any."""
    for other, other_boxes in earlier:
        if any(box.within(e) for e in other_boxes):
            return other
    return None


def _warn_overlap(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    name: str,
    mine: list[Box],
    earlier: list[tuple[str, list[Box]]],
    options: dict[str, Any],
) -> None:
    """Warn when some record matches both this route and earlier ones (the earlier wins),
    naming them and one such record."""
    others: list[str] = []
    record: list[str] | None = None
    for other, other_boxes in earlier:
        found = next(
            (ex for b in mine for e in other_boxes if (ex := example(b, e, options)) is not None),
            None,
        )
        if found is not None:
            others.append(other)
            record = record if record is not None else found
    if not others or record is None:
        return
    listed = ", ".join(f"'{o}'" for o in others)
    values = ", ".join(record) or "…"
    ctx.warning(
        doc,
        path,
        "routes-overlap",
        Text(
            f"route '{name}' overlaps route {listed}: a record with {values} matches both "
            f"'{others[0]}' and '{name}', and takes the earlier '{others[0]}'",
            f"路线 '{name}' 与路线 {listed} 有重叠：例如 {values} 的记录同时满足 "
            f"'{others[0]}' 和 '{name}'，会走排在前面的 '{others[0]}'",
        ),
        Text(
            "if that is intended, keep the order; otherwise make the conditions exclusive "
            "(e.g. add 'and not (…)' for the earlier route's condition)",
            "如果这是有意为之，保持顺序即可；否则请让条件互斥"
            "（例如加上 'and not (…)'，括号里写前面路线的条件）",
        ),
    )


def _flat_options(names: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in names.items():
        path = f"{prefix}{name}"
        if info.kind == "value" and info.type == "select":
            out[path] = info
        elif info.kind == "record" and info.fields and depth < 3:
            out.update(_flat_options(info.fields, path + ".", depth + 1))
    return out


def _compile_steps(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, fields: list[str], scope: Any
) -> tuple[ApprovalStepSpec, ...]:
    steps = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get(path)):
        spath = (*path, i)
        ctx.check_unique(doc, (*spath, "name"), seen, Text("steps", "步骤"))
        kind: StepKind
        approvers: tuple[WhoSpec, ...]
        if "approver" in raw:
            who = doc.get((*spath, "approver"))
            kind = "approver"
            approvers = (check_who(ctx, doc, (*spath, "approver"), who, fields, scope),)
            _check_held(ctx, doc, (*spath, "approver"), approvers)
            needed = 1
        elif "n_of" in raw:
            kind = "n_of"
            approvers = check_who_list(ctx, doc, (*spath, "n_of", "of"), fields, scope)
            _check_held(ctx, doc, (*spath, "n_of", "of"), approvers, listed=True)
            needed = raw["n_of"]["n"]
            if needed > len(approvers):
                ctx.error(
                    doc,
                    (*spath, "n_of", "n"),
                    "bad-range",
                    Text(
                        f"needs {needed} approvals from {len(approvers)} approvers",
                        f"需要 {needed} 个同意，但只有 {len(approvers)} 个审批人",
                    ),
                    Text("lower n or add approvers", "请减小 n 或增加审批人"),
                )
        else:
            kind = "all_of" if "all_of" in raw else "any_of"
            approvers = check_who_list(ctx, doc, (*spath, kind), fields, scope)
            _check_held(ctx, doc, (*spath, kind), approvers, listed=True)
            needed = len(approvers) if kind == "all_of" else 1
        steps.append(
            ApprovalStepSpec(
                raw["name"],
                kind,
                approvers,
                needed,
                raw.get("label"),
                _sla(raw.get("sla")),
            )
        )
    return tuple(steps)


def _check_held(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    approvers: tuple[WhoSpec, ...],
    *,
    listed: bool = False,
) -> None:
    """An approver role that nobody in the org chart holds: the step could never be decided
    (approvers come from the org chart only). Checked when the app has an org chart."""
    holders: dict[str, list[str]] | None = ctx.extras.get("role_holders")
    if holders is None:
        return
    for i, who in enumerate(approvers):
        role = who.value
        if who.kind != "role" or role not in ctx.roles or holders.get(role):
            continue
        chart = ctx.extras.get("people_file", "the org chart")
        ctx.error(
            doc,
            (*path, i, "role") if listed else (*path, "role"),
            "role-not-held",
            Text(
                f"nobody in the org chart holds role '{role}': this step could never be decided",
                f"组织架构中没有人担任角色 '{role}'：这一步将永远无人审批",
            ),
            Text(
                f"give the role to someone in {chart} (the roles column), or choose a role "
                "someone holds",
                f"请在 {chart} 的 roles 列中把该角色分配给某人，或改用有人担任的角色",
            ),
        )
