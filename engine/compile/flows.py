"""Compile flows: state machines (states, transitions, reachability) and automations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.compile.context import CompileContext
from engine.compile.message_templates import (
    AUTOMATION_NAMES,
    check_template_names,
    track_link_names,
)
from engine.config.formats import cron_words
from engine.config.loader import LoadedYaml, YamlPath
from engine.expressions import NameInfo, Scope
from engine.expressions.form_scopes import FieldShape, ScopeBuilder
from engine.model.i18n import Text
from engine.model.spec import (
    AutomationSpec,
    ConfirmSpec,
    EventKind,
    EventSpec,
    StateMachineSpec,
    StateSpec,
    StepSpec,
    TransitionSpec,
    WhoSpec,
    frozen_map,
)

STATE = Text("state", "状态")
TRANSITION = Text("transition", "流转")
FIELD = Text("field", "字段")
FORM = Text("form", "表单")


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def machine_docs(
    ctx: CompileContext, docs: list[LoadedYaml], forms: set[str]
) -> dict[str, LoadedYaml]:
    """The one flow file per form that defines its states."""
    out: dict[str, LoadedYaml] = {}
    for doc in docs:
        form = doc.data["form"]
        if form not in forms:
            ctx.unknown(doc, ("form",), form, forms, FORM, "unknown-form")
            continue
        if "states" not in doc.data:
            if "transitions" in doc.data:
                ctx.error(
                    doc,
                    ("transitions",),
                    "no-states",
                    Text("transitions without states", "有流转但没有定义状态"),
                    Text("add states: to this file", "请在此文件中添加 states:"),
                    key=True,
                )
            continue
        if form in out:
            ctx.error(
                doc,
                ("states",),
                "duplicate-machine",
                Text(
                    f"form '{form}' already has states in {out[form].path}",
                    f"表单 '{form}' 已在 {out[form].path} 中定义了状态",
                ),
                Text("keep one state machine per form", "每个表单只能有一套状态"),
                key=True,
            )
            continue
        out[form] = doc
    return out


def compile_machine(
    ctx: CompileContext,
    doc: LoadedYaml,
    scopes: ScopeBuilder,
    fields: list[str],
    kinds: Mapping[str, str] | None = None,
) -> StateMachineSpec | None:
    """The form's states and transitions; ``kinds`` are the fields' types as written (a
    transition's ``set:`` may not target computed, autonumber, table or files fields)."""
    data = doc.data
    form = data["form"]
    raw_states: dict[str, Any] = data["states"]
    initials = [n for n, s in raw_states.items() if s.get("initial")]
    if len(initials) > 1:
        first, *others = initials
        shown = ", ".join(f"'{n}'" for n in others)
        ctx.error(
            doc,
            ("states", others[0]),
            "initial-state",
            Text(
                f"'{first}' and {shown} are {'both' if len(others) == 1 else 'all'} marked "
                "initial; a new record starts in one state",
                f"'{first}' 和 {shown} 都标为 initial；新记录只能从一个状态开始",
            ),
            Text(
                f"keep 'initial: true' on the state new records start in (e.g. '{first}') and "
                f"remove it from {shown}",
                f"只在新记录的起始状态（例如 '{first}'）保留 'initial: true'，去掉 {shown} 上的",
            ),
            key=True,
        )
    elif not initials:
        ctx.error(
            doc,
            ("states",),
            "initial-state",
            Text("no state is marked initial", "没有状态标为 initial"),
            Text(
                "mark the state new records start in with 'initial: true'",
                "请给新记录的起始状态加上 'initial: true'",
            ),
            key=True,
        )
    if len(initials) != 1:
        return None
    initial = initials[0]
    states = tuple(
        StateSpec(
            n,
            s["label"],
            n == initial,
            bool(s.get("final")),
            bool(s.get("editable", n == initial)),
            s.get("color", "grey"),
        )
        for n, s in raw_states.items()
    )
    scope = scopes.form_scope(form)
    transitions = []
    for tname, raw in (data.get("transitions") or {}).items():
        path: YamlPath = ("transitions", tname)
        ctx.check_names(doc, (*path, "from"), raw_states, STATE, "unknown-state")
        ctx.check_names(doc, (*path, "to"), raw_states, STATE, "unknown-state")
        if "roles" in raw:
            ctx.check_roles(doc, (*path, "roles"))
            if raw.get("by") == "system":
                ctx.error(
                    doc,
                    (*path, "roles"),
                    "system-with-roles",
                    Text(
                        f"'{tname}' is fired by the system only, so roles cannot fire it",
                        f"'{tname}' 只由系统执行，角色无法执行它",
                    ),
                    Text(
                        "remove 'roles:' (or remove 'by: system' to let these roles fire it)",
                        "请删除 'roles:'（或删除 'by: system'，让这些角色可以执行）",
                    ),
                    key=True,
                )
        if "require" in raw:
            ctx.check_names(doc, (*path, "require"), fields, FIELD, "unknown-field")
        guard = ctx.expr(doc, (*path, "guard"), scope) if "guard" in raw else None
        sets = []
        for target in raw.get("set") or {}:
            if target not in fields:
                ctx.unknown(
                    doc, (*path, "set", target), target, fields, FIELD, "unknown-field", key=True
                )
                continue
            kind = (kinds or {}).get(target)
            if kind in ("computed", "autonumber", "table", "files"):
                ctx.error(
                    doc,
                    (*path, "set", target),
                    "set-not-settable",
                    Text(
                        f"'{target}' is a {kind} field: a transition cannot set it",
                        f"'{target}' 是 {kind} 字段，流转不能给它赋值",
                    ),
                    Text(
                        "set a plain field (text, number, money, date, select, ref …); computed "
                        "fields follow from the fields they read",
                        "请给普通字段赋值（文本、数字、金额、日期、选项、引用……）；计算字段会随所读字段自动更新",
                    ),
                    key=True,
                )
                continue
            compiled = ctx.expr(doc, (*path, "set", target), scope)
            if compiled is not None:
                sets.append((target, compiled))
        confirm = (
            compile_confirm(ctx, doc, (*path, "confirm"), scopes.forms.get(form) or {})
            if "confirm" in raw
            else None
        )
        for source in as_list(raw["from"]):
            if raw_states.get(source, {}).get("final"):
                ctx.error(
                    doc,
                    (*path, "from"),
                    "leaves-final",
                    Text(
                        f"'{source}' is final; nothing may leave it",
                        f"'{source}' 是终止状态，不能再流转出去",
                    ),
                    Text(
                        "remove 'final: true' from that state or this transition",
                        "请去掉该状态的 'final: true' 或删除此流转",
                    ),
                )
        transitions.append(
            TransitionSpec(
                tname,
                raw["label"],
                tuple(as_list(raw["from"])),
                raw["to"],
                tuple(raw.get("roles") or ()),
                guard,
                raw.get("guard_message"),
                tuple(raw.get("require") or ()),
                confirm,
                raw.get("by") == "system",
                tuple(sets),
            )
        )
    _check_reachability(ctx, doc, initial, raw_states, transitions)
    return StateMachineSpec(form, states, tuple(transitions), initial)


def warn_open_transitions(ctx: CompileContext, doc: LoadedYaml, machine: StateMachineSpec) -> None:
    """In a form with an approval, a transition without ``roles:`` is open to everyone who may
    update the form: say so, so nobody walks around the approval by accident."""
    for transition in machine.transitions:
        if transition.roles or transition.by_system:
            continue
        ctx.warning(
            doc,
            ("transitions", transition.name),
            "transition-open",
            Text(
                f"'{transition.name}' has no roles: everyone who may update '{machine.form}' "
                "records may fire it, and this form has an approval",
                f"'{transition.name}' 没有 roles：凡能修改 '{machine.form}' 记录的人都能执行它，"
                "而此表单有审批",
            ),
            Text(
                "list who may fire it with 'roles: [...]', or 'by: system' if only automations "
                "and approvals fire it",
                "请用 'roles: [...]' 写明谁能执行；若只由自动化或审批执行，写 'by: system'",
            ),
            key=True,
        )


def compile_confirm(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, fields: Mapping[str, FieldShape]
) -> ConfirmSpec | None:
    """A transition's confirmation gate: a field of the form, roles that exist."""
    raw: dict[str, Any] = doc.get(path)
    ctx.check_names(doc, (*path, "field"), fields, FIELD, "unknown-field")
    ctx.check_roles(doc, (*path, "by"))
    if "reopen_on" in raw:
        ctx.check_names(doc, (*path, "reopen_on"), fields, FIELD, "unknown-field")
    shape = fields.get(raw["field"])
    kind = shape.type if shape is not None else None
    if kind in ("table", "files"):
        ctx.error(
            doc,
            (*path, "field"),
            "bad-confirm-field",
            Text(
                f"'{raw['field']}' is a {kind} field; a gate confirms one value",
                f"'{raw['field']}' 是 {kind} 字段；确认闸门只能确认单个值",
            ),
            Text(
                "confirm a date, number, text or choice field",
                "请确认日期、数字、文本或选项字段",
            ),
        )
        return None
    return ConfirmSpec(raw["field"], tuple(raw["by"]), tuple(raw.get("reopen_on") or ()))


def _check_reachability(
    ctx: CompileContext,
    doc: LoadedYaml,
    initial: str,
    raw_states: dict[str, Any],
    transitions: list[TransitionSpec],
) -> None:
    reached = {initial}
    frontier = [initial]
    while frontier:
        current = frontier.pop()
        for t in transitions:
            if current in t.sources and t.target not in reached:
                reached.add(t.target)
                frontier.append(t.target)
    for name, raw in raw_states.items():
        if name not in reached:
            ctx.warning(
                doc,
                ("states", name),
                "unreachable-state",
                Text(
                    f"state '{name}' can never be reached from '{initial}'",
                    f"从 '{initial}' 出发永远到不了状态 '{name}'",
                ),
                Text(
                    "add a transition into it, or remove it", "请添加一个流转进入该状态，或删除它"
                ),
                key=True,
            )
        elif not raw.get("final") and not any(name in t.sources for t in transitions):
            ctx.warning(
                doc,
                ("states", name),
                "dead-end-state",
                Text(
                    f"state '{name}' has no way out and is not final",
                    f"状态 '{name}' 没有出口，也不是终止状态",
                ),
                Text(
                    "add a transition out of it, or mark it 'final: true'",
                    "请添加流出的流转，或标记为 'final: true'",
                ),
                key=True,
            )


# ---------------------------------------------------------------------- automations


def compile_event(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    machine: StateMachineSpec | None,
    fields: list[str],
) -> EventSpec | None:
    raw: dict[EventKind, Any] = doc.get(path)  # the schema lets one event kind through
    kind, value = next(iter(raw.items()))
    if kind in ("state_entered", "transition"):
        if machine is None:
            ctx.error(
                doc,
                (*path, kind),
                "no-states",
                Text("the form has no states", "该表单没有定义状态"),
                Text("define states for it in a flows/ file", "请在 flows/ 文件中为它定义状态"),
            )
            return None
        pool = (
            [s.name for s in machine.states]
            if kind == "state_entered"
            else [t.name for t in machine.transitions]
        )
        ctx.check_names(
            doc,
            (*path, kind),
            pool,
            STATE if kind == "state_entered" else TRANSITION,
            f"unknown-{'state' if kind == 'state_entered' else 'transition'}",
        )
        return EventSpec(kind, tuple(as_list(value)))
    if kind == "field_changed":
        ctx.check_names(doc, (*path, kind), fields, FIELD, "unknown-field")
        return EventSpec(kind, tuple(as_list(value)))
    if kind == "schedule":
        from datetime import datetime

        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime(2026, 1, 1))
        except CronSimError:
            what, fix = cron_words(str(value))
            ctx.error(doc, (*path, kind), "bad-cron", what, fix)
            return None
        return EventSpec(kind, cron=value)
    if value is not True:
        ctx.error(
            doc,
            (*path, kind),
            "bad-value",
            Text(f"'{kind}' takes true", f"'{kind}' 的值应为 true"),
            Text(f"write '{kind}: true'", f"请写 '{kind}: true'"),
        )
        return None
    return EventSpec(kind)


def compile_automations(
    ctx: CompileContext,
    doc: LoadedYaml,
    scopes: ScopeBuilder,
    machine: StateMachineSpec | None,
    form_fields: dict[str, list[str]],
    connectors: dict[str, Any],
    templates: list[Path],
) -> list[AutomationSpec]:
    form = doc.data["form"]
    if form not in form_fields:
        return []
    out = []
    for name, raw in (doc.data.get("automations") or {}).items():
        path: YamlPath = ("automations", name)
        on = compile_event(ctx, doc, (*path, "on"), machine, form_fields[form])
        base = scopes.form_scope(form)
        when = ctx.expr(doc, (*path, "when"), base) if "when" in raw else None
        walker = _StepCompiler(ctx, doc, scopes, form, machine, form_fields, connectors, templates)
        steps = walker.steps((*path, "steps"))
        if on is not None and steps is not None:
            out.append(AutomationSpec(name, form, on, steps, when, doc.path))
    return out


class _StepCompiler:
    def __init__(
        self,
        ctx: CompileContext,
        doc: LoadedYaml,
        scopes: ScopeBuilder,
        form: str,
        machine: StateMachineSpec | None,
        form_fields: dict[str, list[str]],
        connectors: dict[str, Any],
        templates: list[Path],
    ) -> None:
        self.ctx, self.doc, self.scopes, self.form = ctx, doc, scopes, form
        self.machine, self.form_fields = machine, form_fields
        self.connectors, self.templates = connectors, templates
        self.step_ids: list[str] = []  # ids of steps already compiled: in scope
        self.seen_ids: set[str] = set()
        self.ok = True

    def scope(self) -> Any:
        steps = NameInfo(
            "record", "any", fields={i: NameInfo("record", "any", open=True) for i in self.step_ids}
        )
        return self.scopes.form_scope(self.form, {"steps": steps})

    def expr(self, path: YamlPath) -> Any:
        compiled = self.ctx.expr(self.doc, path, self.scope())
        if compiled is None:
            self.ok = False
        return compiled

    def steps(self, path: YamlPath) -> tuple[StepSpec, ...] | None:
        out = [self.step((*path, i), raw) for i, raw in enumerate(self.doc.get(path))]
        return tuple(s for s in out if s is not None) if self.ok else None

    def step(self, path: YamlPath, raw: dict[str, Any]) -> StepSpec | None:
        ctx, doc = self.ctx, self.doc
        when = self.expr((*path, "when")) if "when" in raw else None
        step_id = raw.get("id")
        if step_id:
            ctx.check_unique(doc, (*path, "id"), self.seen_ids, Text("steps", "步骤"))
        spec: StepSpec | None = None
        if "call" in raw:
            spec = self.call(path, raw["call"], step_id, when)
        elif "if" in raw:
            cond = self.expr((*path, "if"))
            then = self.steps((*path, "then"))
            other = self.steps((*path, "else")) if "else" in raw else ()
            spec = StepSpec(
                "if", step_id, when, condition=cond, then=then or (), otherwise=other or ()
            )
        elif "set" in raw:
            fields = self.form_fields[self.form]
            values = {}
            for fname in raw["set"]:
                if fname not in fields:
                    ctx.unknown(
                        doc, (*path, "set", fname), fname, fields, FIELD, "unknown-field", key=True
                    )
                values[fname] = self.expr((*path, "set", fname))
            spec = StepSpec("set", step_id, when, values=frozen_map(values))
        elif "create" in raw:
            target = raw["create"]["form"]
            values = {}
            if target not in self.form_fields:
                ctx.unknown(
                    doc, (*path, "create", "form"), target, self.form_fields, FORM, "unknown-form"
                )
            for fname in raw["create"]["values"]:
                if target in self.form_fields and fname not in self.form_fields[target]:
                    ctx.unknown(
                        doc,
                        (*path, "create", "values", fname),
                        fname,
                        self.form_fields[target],
                        FIELD,
                        "unknown-field",
                        key=True,
                    )
                values[fname] = self.expr((*path, "create", "values", fname))
            spec = StepSpec("create", step_id, when, form=target, values=frozen_map(values))
        elif "notify" in raw:
            spec = self.notify(path, raw["notify"], step_id, when)
        elif "transition" in raw:
            names = [t.name for t in self.machine.transitions] if self.machine else []
            ctx.check_names(doc, (*path, "transition"), names, TRANSITION, "unknown-transition")
            spec = StepSpec("transition", step_id, when, transition=raw["transition"])
        elif "wait" in raw:
            unit, amount = next(iter(raw["wait"].items()))
            spec = StepSpec("wait", step_id, when, wait_unit=unit, wait_amount=amount)
        if step_id:
            self.step_ids.append(step_id)
        return spec

    def call(self, path: YamlPath, raw: dict[str, Any], step_id: str | None, when: Any) -> StepSpec:
        ctx, doc = self.ctx, self.doc
        connector = self.connectors.get(raw["connector"])
        if connector is None:
            ctx.unknown(
                doc,
                (*path, "call", "connector"),
                raw["connector"],
                self.connectors,
                Text("connector", "连接器"),
                "unknown-connector",
            )
        elif raw["operation"] not in (connector.get("operations") or {}):
            ctx.unknown(
                doc,
                (*path, "call", "operation"),
                raw["operation"],
                connector.get("operations") or {},
                Text("operation", "操作"),
                "unknown-operation",
            )
        if "pending_state" in raw:
            states = [s.name for s in self.machine.states] if self.machine else []
            ctx.check_names(doc, (*path, "call", "pending_state"), states, STATE, "unknown-state")
        values = {n: self.expr((*path, "call", "with", n)) for n in raw.get("with") or {}}
        return StepSpec(
            "call",
            step_id,
            when,
            connector=raw["connector"],
            operation=raw["operation"],
            with_values=frozen_map(values),
            keep=frozen_map(raw.get("keep") or {}),
            pending_state=raw.get("pending_state"),
        )

    def notify(
        self, path: YamlPath, raw: dict[str, Any], step_id: str | None, when: Any
    ) -> StepSpec:
        ctx, doc = self.ctx, self.doc
        check_message(
            ctx,
            doc,
            (*path, "notify"),
            self.connectors,
            self.templates,
            form=self.form,
            record=NameInfo.record(self.scopes.record_fields(self.form)),
            names=(*AUTOMATION_NAMES, *track_link_names(ctx, self.form)),
        )
        to = check_who_list(
            ctx, doc, (*path, "notify", "to"), self.form_fields[self.form], self.scope()
        )
        return StepSpec(
            "notify",
            step_id,
            when,
            via=raw["via"],
            to=to,
            template=raw["template"],
            todo=bool(raw.get("todo", False)),
        )


def check_who_list(
    ctx: CompileContext, doc: LoadedYaml, path: YamlPath, fields: list[str], scope: Scope
) -> tuple[WhoSpec, ...]:
    out = []
    for i, who in enumerate(doc.get(path) or []):
        out.append(check_who(ctx, doc, (*path, i), who, fields, scope))
    return tuple(out)


def check_who(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    who: dict[str, str],
    fields: list[str],
    scope: Scope,
) -> WhoSpec:
    kind, value = next(iter(who.items()))
    if kind == "role":
        ctx.check_roles(doc, (*path, "role"))
    elif kind == "person" and ctx.people and value not in ctx.people:
        ctx.unknown(
            doc, (*path, "person"), value, ctx.people, Text("person", "人员"), "unknown-person"
        )
    elif kind == "field":
        ctx.check_names(doc, (*path, "field"), fields, FIELD, "unknown-field")
    elif kind == "expr":
        return WhoSpec("expr", value, ctx.expr(doc, (*path, "expr"), scope))
    return WhoSpec(kind, value)  # type: ignore[arg-type]


def check_message(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    connectors: dict[str, Any],
    templates: list[Path],
    *,
    form: str | None = None,
    record: NameInfo | None = None,
    names: Iterable[str] = (),
) -> None:
    """The connector at ``path/via`` can send messages and ``path/template`` exists (and
    uses only the fields of ``record`` and the ``names`` the message is rendered with)."""
    via = doc.get((*path, "via"))
    connector = connectors.get(via)
    if connector is None:
        ctx.unknown(
            doc, (*path, "via"), via, connectors, Text("connector", "连接器"), "unknown-connector"
        )
    elif connector.get("type") == "http":
        ctx.error(
            doc,
            (*path, "via"),
            "bad-connector",
            Text(
                f"'{via}' is an http connector and cannot send messages",
                f"'{via}' 是 http 连接器，不能发送消息",
            ),
            Text(
                "use a dingtalk, wecom, email or webhook connector",
                "请使用 dingtalk、wecom、email 或 webhook 连接器",
            ),
        )
    check_template(ctx, doc, (*path, "template"), templates, form, record, names)


def check_template(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: YamlPath,
    template_dirs: list[Path],
    form: str | None = None,
    record: NameInfo | None = None,
    names: Iterable[str] = (),
) -> None:
    name = doc.get(path)
    found = next((d / name for d in template_dirs if (d / name).is_file()), None)
    if found is not None:
        if names:
            check_template_names(ctx, found, form, record, names)
        return
    existing = sorted(
        {
            str(p.relative_to(d))
            for d in template_dirs
            if d.is_dir()
            for p in d.rglob("*")
            if p.is_file()
        }
    )
    ctx.unknown(doc, path, name, existing, Text("template", "模板"), "missing-template")
