"""The record page's timeline for people: what happened to a record in plain words.

Business events (created, changes, transitions, confirmations, approval decisions, messages to
the customer) read as sentences in the app's language, with people's names; the engine's own
actors read as "System (automation after 'Submit order')", never ``flow`` or ``system``. The
steps of one automation run fold into one line that says what the run changed, with the
details behind a ``<details>``. Technical events (run starts and ends, step results, queued
messages, failures with their raw text) are shown only when asked for (operators).

Every event kind the engine writes has a wording here or is technical: :data:`GROUPS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.model.i18n import Text
from engine.model.spec import App, AutomationSpec, FormSpec
from engine.web.templating import Formatter, translate

__all__ = ["FILTERS", "GROUPS", "Entry", "build_timeline", "timeline_filter"]

Group = Literal["changes", "approvals", "messages", "technical"]
FILTERS: tuple[str, ...] = ("all", "changes", "approvals", "messages")

# event kind -> the filter it belongs to; "technical" ones only with the operators' toggle
GROUPS: dict[str, Group] = {
    "created": "changes",
    "changed": "changes",
    "child_added": "changes",
    "todo_done": "changes",
    "transition": "changes",
    "confirmed": "approvals",
    "confirm_reopened": "approvals",
    "approval_started": "approvals",
    "approval_step_opened": "approvals",
    "approval_decided": "approvals",
    "approval_finished": "approvals",
    "approval_cancelled": "approvals",
    "approval_restarted": "approvals",
    "approval_overdue": "approvals",
    "approval_escalated": "approvals",
    "approval_reminded": "approvals",
    "approval_record": "technical",
    "notify_sent": "messages",
    "notify_dead": "messages",
    "track_code_requested": "messages",
    "track_verified": "messages",
    "track_locked": "messages",
    "flow_started": "technical",
    "flow_step": "technical",
    "flow_waiting": "technical",
    "flow_done": "technical",
    "flow_failed": "technical",
    "notify_queued": "technical",
}
_RUN_STEPS = {"flow_step", "flow_waiting", "notify_queued"}
_SUMMARY_FIELDS = 4  # field changes named in a run's line; the rest are in its details

W: dict[str, Text] = {
    "auto": Text("System (automation {what})", "系统（{what}自动流程）"),
    "on_transition": Text("after '{names}'", "“{names}”后的"),
    "on_state": Text("on entering {names}", "进入“{names}”时的"),
    "on_field": Text("when {names} changes", "“{names}”变更时的"),
    "on_created": Text("on creation", "新建时的"),
    "on_updated": Text("on changes", "修改时的"),
    "on_schedule": Text("on schedule", "定时"),
    "created": Text("created the record", "创建了记录"),
    "changed": Text("changed", "修改了"),
    "child_added": Text("added a row to {child}", "在“{child}”中添加了一行"),
    "todo_done": Text("marked the to-do “{title}” done", "将待办“{title}”标记为已完成"),
    "transition": Text("{label}: {from_} → {to}", "{label}：{from_} → {to}"),
    "run_done": Text("done", "已完成"),
    "run_running": Text("in progress", "进行中"),
    "run_waiting": Text("waiting until {until}", "等待至 {until}"),
    "run_failed": Text("could not finish", "未能完成"),
    "run_state": Text("now {state}", "状态变为“{state}”"),
    "run_sent": Text("message queued: {title}", "待发送消息：{title}"),
    "run_more": Text("{n} more changes", "另有 {n} 项修改"),
    "approval_started": Text("approval started: {route}", "发起审批：{route}"),
    "approval_step_opened": Text(
        "approval step '{step}' waits for {names}", "审批环节“{step}”等待 {names} 处理"
    ),
    "approve": Text("approved '{step}'", "同意（{step}）"),
    "reject": Text("rejected '{step}'", "驳回（{step}）"),
    "return": Text("returned '{step}' for changes", "退回修改（{step}）"),
    "decided": Text("decided '{step}': {decision}", "处理“{step}”：{decision}"),
    "on_behalf": Text(" for {name}", "（代 {name}）"),
    "approval_finished": Text("approval finished: {outcome}", "审批结束：{outcome}"),
    "approval_cancelled": Text("approval cancelled", "审批已取消"),
    "approval_restarted": Text("approval started again after a change", "单据已修改，审批重新开始"),
    "approval_overdue": Text("approval step '{step}' is overdue", "审批环节“{step}”已超时"),
    "approval_escalated": Text(
        "approval step '{step}' overdue: passed on to {names}",
        "审批环节“{step}”超时，已转交 {names}",
    ),
    "approval_reminded": Text("{names} reminded of '{step}'", "已提醒 {names} 处理“{step}”"),
    "approval_record": Text("approval record (PDF) sealed", "审批记录 PDF 已生成"),
    "notify_sent": Text("message sent via {via}: {title}", "已通过{via}发送消息：{title}"),
    "notify_dead": Text(
        "a message could not be sent; an operator has been told",
        "有一条消息未能发送，已转交管理员处理",
    ),
    "track_code_requested": Text(
        "asked for a tracking code on the tracking page", "在查询页申请了验证码"
    ),
    "track_verified": Text("opened the tracking page", "在查询页验证成功并查看了进度"),
    "track_locked": Text(
        "tracking page locked after too many wrong codes", "查询页因验证码错误次数过多已锁定"
    ),
    "flow_started": Text("automation '{automation}' started", "自动流程“{automation}”开始"),
    "flow_step": Text("step {step}: {action}", "第 {step} 步：{action}"),
    "flow_call": Text(
        "step {step}: asked {connector} — {operation} ({ms} ms)",
        "第 {step} 步：调用{connector}——{operation}（{ms} 毫秒）",
    ),
    "flow_waiting": Text("automation '{automation}' waits", "自动流程“{automation}”等待"),
    "flow_done": Text("automation '{automation}' finished", "自动流程“{automation}”结束"),
    "flow_failed": Text(
        "automation '{automation}' failed: {error}", "自动流程“{automation}”失败：{error}"
    ),
    "notify_queued": Text("message queued via {via}: {title}", "消息已排队（{via}）：{title}"),
    "notify_dead_tech": Text("message given up: {error}", "消息已放弃：{error}"),
    "other": Text("{kind}", "{kind}"),
}


@dataclass
class Entry:
    """One line of the timeline."""

    at: str
    actor: str
    title: str
    kind: str  # the event kind, or "run" for a folded automation run
    group: Group
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # behind <details>
    comment: str = ""
    technical: bool = False


def timeline_filter(value: str | None) -> str:
    """The ``?show=`` of the record page: one of :data:`FILTERS` (anything else is all)."""
    return value if value in FILTERS else "all"


class _Words:
    def __init__(self, fmt: Formatter, form: FormSpec, titles: Mapping[str, Mapping[int, str]]):
        self.fmt, self.form, self.titles = fmt, form, titles
        self.app: App = fmt.app
        self.lang = fmt.lang
        self.sep = "、" if fmt.lang == "zh" else ", "
        machine = self.app.state_machines.get(form.name)
        self.states = {s.name: s.label for s in machine.states} if machine else {}
        self.transitions = {t.name: t.label for t in machine.transitions} if machine else {}
        self.automations = {a.name: a for a in self.app.automations}

    def t(self, key: str, **params: Any) -> str:
        return translate(self.lang, W[key], **params)

    def names(self, users: Any) -> str:
        flat: list[str] = []
        for item in users if isinstance(users, list) else [users]:
            flat.extend(item if isinstance(item, list) else [item])
        return self.sep.join(self.fmt.person(str(u)) for u in flat if u)

    def automation(self, name: str | None) -> str:
        """The engine's actor for an automation, named by what starts it."""
        spec: AutomationSpec | None = self.automations.get(name or "")
        if spec is None:
            return self.fmt.person("system")
        on, names = spec.on.kind, spec.on.names
        if on == "transition":
            what = self.t(
                "on_transition", names=self.sep.join(self.transitions.get(n, n) for n in names)
            )
        elif on == "state_entered":
            what = self.t("on_state", names=self.sep.join(self.states.get(n, n) for n in names[:2]))
            what = what.replace("”", "”等", 1) if len(names) > 2 and self.lang == "zh" else what
        elif on == "field_changed":
            what = self.t("on_field", names=self.sep.join(self.label(n) for n in names))
        elif on in ("created", "updated", "schedule"):
            what = self.t(f"on_{on}")
        else:
            what = ""
        return self.t("auto", what=what)

    def actor(self, event: Mapping[str, Any], automation: str | None = None) -> str:
        who = str(event.get("actor") or "")
        if who == "flow":
            return self.automation(automation or (event.get("payload") or {}).get("automation"))
        if who == "system":
            return self.automation(automation) if automation else self.fmt.person("system")
        return self.fmt.person(who)

    def label(self, name: str) -> str:
        if name == "state":
            return translate(self.lang, "state")
        spec = self.form.by_name.get(name)
        return spec.label if spec else name

    def position(self, name: str) -> int:
        """Where a field comes in the form (changes are listed in that order)."""
        return next((i for i, f in enumerate(self.form.fields) if f.name == name), 999)

    def changes(self, found: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        out = []
        for name, pair in sorted(found.items(), key=lambda c: self.position(c[0])):
            old, new = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
            out.append(
                (
                    self.label(name),
                    self.fmt.change(self.form, name, old, self.titles),
                    self.fmt.change(self.form, name, new, self.titles),
                )
            )
        return out

    def transition(self, payload: Mapping[str, Any]) -> str:
        name, before, after = (str(payload.get(k) or "") for k in ("name", "from", "to"))
        return self.t(
            "transition",
            label=self.transitions.get(name, name),
            from_=self.states.get(before, before),
            to=self.states.get(after, after),
        )

    def connector(self, name: Any) -> str:
        spec = self.app.connectors.get(str(name))
        return (spec.title or spec.name) if spec is not None else str(name or "")

    def technical(self, kind: str, payload: Mapping[str, Any]) -> str:
        automation = str(payload.get("automation") or "")
        if kind == "flow_step" and payload.get("action") == "call":
            spec = self.app.connectors.get(str(payload.get("connector")))
            operation = spec.operations.get(str(payload.get("operation"))) if spec else None
            return self.t(
                "flow_call",
                step=payload.get("step"),
                connector=self.connector(payload.get("connector")),
                operation=(operation.description or operation.name)
                if operation
                else payload.get("operation"),
                ms=payload.get("elapsed_ms"),
            )
        if kind == "flow_step":
            return self.t("flow_step", step=payload.get("step"), action=payload.get("action"))
        if kind == "notify_queued":
            return self.t(kind, via=self.connector(payload.get("via")), title=payload.get("title"))
        if kind == "notify_dead":
            return self.t("notify_dead_tech", error=payload.get("error"))
        if kind in ("flow_started", "flow_waiting", "flow_done"):
            return self.t(kind, automation=automation)
        if kind == "flow_failed":
            return self.t(kind, automation=automation, error=payload.get("error"))
        if kind == "approval_record":
            return self.t(kind)
        return self.t("other", kind=kind)

    def approval(self, kind: str, payload: Mapping[str, Any]) -> str:
        step = payload.get("label") or payload.get("step") or ""
        if kind == "approval_started":
            return self.t(kind, route=payload.get("route_label") or payload.get("route") or "")
        if kind == "approval_step_opened":
            return self.t(kind, step=step, names=self.names(payload.get("slots") or []))
        if kind == "approval_decided":
            decision = str(payload.get("decision") or "")
            key = {"approved": "approve", "rejected": "reject", "returned": "return"}.get(decision)
            said = (
                self.t(key, step=step)
                if key
                else self.t("decided", step=step, decision=translate(self.lang, f"st_{decision}"))
            )
            behalf = payload.get("on_behalf_of")
            return said + (self.t("on_behalf", name=self.fmt.person(behalf)) if behalf else "")
        if kind == "approval_finished":
            return self.t(kind, outcome=translate(self.lang, f"st_{payload.get('outcome')}"))
        if kind == "approval_escalated":
            return self.t(kind, step=step, names=self.names(payload.get("to") or []))
        if kind == "approval_reminded":
            return self.t(kind, step=step, names=self.names(payload.get("to") or []))
        return self.t(kind, step=step)


@dataclass
class _Run:
    entry: Entry
    automation: str
    changes: dict[str, list[Any]] = field(default_factory=dict)
    state: str | None = None
    sent: list[str] = field(default_factory=list)
    status: str = "run_running"
    until: str = ""


def _finish(words: _Words, run: _Run) -> None:
    """The run's line: what it changed (a few fields, the state it left the record in)."""
    entry = run.entry
    entry.changes = words.changes(run.changes)
    short = [
        (words.label(name), entry.changes[i][2])
        for i, name in enumerate(sorted(run.changes, key=words.position))
        if getattr(words.form.by_name.get(name), "type", "") not in ("long_text", "table")
    ]
    parts = [f"{label} {new}" for label, new in short[:_SUMMARY_FIELDS]]
    if len(entry.changes) > len(parts):
        parts.append(words.t("run_more", n=len(entry.changes) - len(parts)))
    if run.state:
        parts.append(words.t("run_state", state=words.states.get(run.state, run.state)))
    entry.details = [words.t("run_sent", title=t) for t in run.sent] + entry.details
    status = words.t(run.status, until=run.until)
    colon = "：" if words.lang == "zh" else ": "
    entry.title = status + (colon + words.sep.join(parts) if parts else "")


def build_timeline(
    fmt: Formatter,
    form: FormSpec,
    events: list[dict[str, Any]],
    titles: Mapping[str, Mapping[int, str]],
    *,
    show: str = "all",
    technical: bool = False,
) -> list[Entry]:
    """The record's events as the page shows them, oldest first: ``show`` one of
    :data:`FILTERS`; ``technical`` adds the engine's own steps (for operators)."""
    words = _Words(fmt, form, titles)
    out: list[Entry] = []
    runs: dict[str, _Run] = {}  # open runs by automation
    every: list[_Run] = []
    last_run: _Run | None = None
    for event in events:
        kind, payload = str(event["kind"]), event.get("payload") or {}
        at = fmt.datetime(event["at"])
        automation = str(payload.get("automation") or "")
        group: Group = GROUPS.get(kind, "technical")
        if kind == "flow_started":
            entry = Entry(at, words.automation(automation), "", "run", "changes")
            runs[automation] = last_run = _Run(entry, automation)
            every.append(last_run)
            out.append(entry)
        elif kind in ("flow_done", "flow_failed") and automation in runs:
            run = runs.pop(automation)
            run.status = "run_done" if kind == "flow_done" else "run_failed"
        elif kind == "flow_waiting" and automation in runs:
            runs[automation].status = "run_waiting"
            runs[automation].until = fmt.datetime(payload.get("until"))
        # a system change inside a run belongs to the run's line (the latest open run)
        open_run = runs.get(automation) or (last_run if last_run in runs.values() else None)
        if event.get("actor") == "system" and open_run is not None and kind == "changed":
            for name, pair in (payload.get("changes") or {}).items():
                old = pair[0] if isinstance(pair, list) and len(pair) == 2 else None
                new = pair[1] if isinstance(pair, list) and len(pair) == 2 else pair
                open_run.changes[name] = [open_run.changes.get(name, [old])[0], new]
            continue
        if event.get("actor") == "system" and open_run is not None and kind == "transition":
            open_run.state = str(payload.get("to") or "")
            open_run.entry.details.append(words.transition(payload))
            continue
        if kind == "notify_queued" and automation in runs:
            runs[automation].sent.append(str(payload.get("title") or ""))
        if group == "technical":
            if technical:
                out.append(
                    Entry(
                        at,
                        words.actor(event),
                        words.technical(kind, payload),
                        kind,
                        group,
                        technical=True,
                    )
                )
            continue
        entry = Entry(at, words.actor(event), "", kind, group)
        if kind == "created":
            entry.title = words.t("created")
        elif kind == "changed":
            entry.title, entry.changes = (
                words.t("changed"),
                words.changes(payload.get("changes") or {}),
            )
        elif kind == "child_added":
            child = form.by_name.get(str(payload.get("child") or ""))
            entry.title = words.t(
                "child_added", child=child.label if child else payload.get("child")
            )
        elif kind == "todo_done":
            entry.title = words.t(kind, title=payload.get("title") or "")
        elif kind == "transition":
            entry.title = words.transition(payload)
        elif kind in ("confirmed", "confirm_reopened"):
            entry.title = fmt.gate_event(form, kind, payload)
        elif kind.startswith("approval_"):
            entry.title = words.approval(kind, payload)
            entry.comment = str(payload.get("comment") or "") if kind == "approval_decided" else ""
        elif kind == "notify_sent":
            entry.actor = words.automation(automation)
            entry.title = words.t(
                kind, via=words.connector(payload.get("via")), title=payload.get("title")
            )
        else:
            entry.title = words.t(kind)
        if technical and kind == "notify_dead":
            entry.details.append(words.technical(kind, payload))
        out.append(entry)
    for run in every:
        _finish(words, run)
        quiet = not run.changes and not run.state and run.status == "run_done"
        if quiet and not technical:  # e.g. a run that only sent a message: that line says it
            out.remove(run.entry)
    if show != "all":
        out = [e for e in out if e.group == show or (e.technical and technical)]
    return out
