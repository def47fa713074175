"""Jinja2 for the pages: one environment per configuration, the page chrome's own words in
Chinese and English, and how values are shown (numbers, dates in the app's time zone).

Templates are looked up first in the app folder's ``templates/`` (from the deployed bundle, so
an app may replace any page template by name), then in the engine's own (package data,
:mod:`engine.assets`).
Templates run sandboxed and autoescaped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.assets import PAGE_TEMPLATES
from engine.flows.links import public_url
from engine.model.display import currency_of, datetime_text, money_text, number_text, value_text
from engine.model.i18n import Lang, Text
from engine.model.permissions import Action, Resource, allowed
from engine.model.spec import App, FieldSpec, FormSpec
from engine.runtime import LiveApp
from engine.web.current import live, request_lang
from engine.web.security import csrf_token

__all__ = [
    "CATALOG",
    "SECURITY_HEADERS",
    "TEMPLATES_DIR",
    "Formatter",
    "environment",
    "render",
    "translate",
]

TEMPLATES_DIR = PAGE_TEMPLATES
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], SandboxedEnvironment] = OrderedDict()
_lock = threading.Lock()
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

CATALOG: dict[str, Text] = {
    "sign_in": Text("Sign in", "登录"),
    "sign_out": Text("Sign out", "退出登录"),
    # the engine's own actors (records it created, events it wrote), as people read them
    "actor_system": Text("System", "系统"),
    "actor_flow": Text("System", "系统"),
    "actor_approval": Text("System (approvals)", "系统（审批）"),
    "actor_tracking-page": Text("Customer (tracking page)", "客户（查询页）"),
    "username": Text("User name", "用户名"),
    "password": Text("Password", "密码"),
    "bad_login": Text("Wrong user name or password", "用户名或密码错误"),
    "home": Text("Home", "首页"),
    "forms": Text("Forms", "表单"),
    "new": Text("New", "新建"),
    "save": Text("Save", "保存"),
    "cancel": Text("Cancel", "取消"),
    "edit": Text("Edit", "修改"),
    "back_to_list": Text("Back to the list", "返回列表"),
    "history": Text("Change history", "修改记录"),
    # the record page's timeline (engine/web/timeline.py) and its live status line
    "tl_filter": Text("Show", "显示"),
    "tl_all": Text("All", "全部"),
    "tl_changes": Text("Changes", "变更"),
    "tl_approvals": Text("Approvals", "审批"),
    "tl_messages": Text("Messages", "消息"),
    "tl_show_technical": Text("Show technical records", "显示技术记录"),
    "tl_hide_technical": Text("Hide technical records", "隐藏技术记录"),
    "tl_details": Text("Details", "详情"),
    "search": Text("Search", "搜索"),
    "search_hint": Text("Type to search", "输入关键字搜索"),
    "all_states": Text("All states", "全部状态"),
    "state": Text("State", "状态"),
    "id": Text("No.", "编号"),
    "created_at": Text("Created", "创建时间"),
    "updated_at": Text("Updated", "更新时间"),
    "created_by": Text("Created by", "创建人"),
    "next_page": Text("Next page", "下一页"),
    "first_page": Text("First page", "第一页"),
    "no_records": Text("No records yet", "暂无记录"),
    "related_records": Text("Related records", "相关记录"),
    "related_all": Text("All {n} →", "全部 {n} 条 →"),
    "choose": Text("Please choose", "请选择"),
    "required": Text("required", "必填"),
    "add_row": Text("Add a row", "添加一行"),
    "remove": Text("Remove", "删除"),
    "add_entry": Text("Add entry", "添加记录"),
    "upload": Text("Upload files", "上传文件"),
    "uploading": Text("Uploading…", "正在上传…"),
    "yes": Text("Yes", "是"),
    "no": Text("No", "否"),
    "system_filled": Text("Filled in by the system", "由系统自动填写"),
    "fix_errors": Text("Please correct the marked fields.", "请修正标出的字段。"),
    "nothing_editable": Text(
        "Nothing on this record can be changed by you now.", "当前没有您可以修改的字段。"
    ),
    "ev_created": Text("created the record", "创建了记录"),
    "ev_changed": Text("changed", "修改了"),
    "ev_child_added": Text("added a row to {child}", "在“{child}”中添加了一行"),
    "ev_other": Text("{kind}", "{kind}"),
    "ev_transition": Text("{label}: {from_} → {to}", "执行“{label}”：{from_} → {to}"),
    "ev_flow_started": Text("automation '{automation}' started", "自动流程“{automation}”开始"),
    "ev_flow_step": Text(
        "automation '{automation}': {action} done", "自动流程“{automation}”：完成 {action}"
    ),
    "ev_flow_waiting": Text(
        "automation '{automation}' waits until {until}", "自动流程“{automation}”等待至 {until}"
    ),
    "ev_flow_done": Text("automation '{automation}' finished", "自动流程“{automation}”完成"),
    "ev_flow_failed": Text(
        "automation '{automation}' failed: {error}", "自动流程“{automation}”失败：{error}"
    ),
    "ev_notify_queued": Text("message queued via {via}: {title}", "消息已排队（{via}）：{title}"),
    "ev_notify_sent": Text("message sent via {via}: {title}", "消息已发送（{via}）：{title}"),
    "ev_notify_dead": Text("a message could not be sent: {error}", "消息发送失败：{error}"),
    "not_found": Text("There is no such page or record.", "没有这个页面或记录。"),
    "runs": Text("Flows", "流程运行"),
    "runs_title": Text("Flow runs and outbox", "流程运行与消息发送"),
    "dead_letters": Text("Dead letters (gave up)", "发送失败（已放弃）"),
    "retry_now": Text("Retry now", "立即重试"),
    "recent_runs": Text("Recent runs", "最近的运行"),
    "none_yet": Text("Nothing yet.", "暂无。"),
    # the operators' /runs page
    "run_automation": Text("Automation", "自动流程"),
    "run_status": Text("Status", "状态"),
    "run_inputs": Text("Started by", "触发"),
    "run_outputs": Text("Results", "结果"),
    "run_error": Text("Error", "错误"),
    "run_jobs": Text("Attempts", "执行记录"),
    "run_more": Text("{n} more", "另外 {n} 项"),
    "run_running": Text("running", "运行中"),
    "run_waiting": Text("waiting", "等待中"),
    "run_done": Text("done", "完成"),
    "run_failed": Text("failed", "失败"),
    "job_ready": Text("queued", "待执行"),
    "job_running": Text("running", "执行中"),
    "job_done": Text("done", "完成"),
    "job_dead": Text("gave up", "已放弃"),
    "job_flow": Text("flow step", "流程步骤"),
    "job_effect": Text("message", "消息"),
    "job_via": Text("Sent via", "发送渠道"),
    "job_title": Text("Message", "消息"),
    "job_attempts": Text("Attempts", "尝试次数"),
    "job_to": Text("To", "接收人"),
    "job_text": Text("Text", "内容"),
    "forbidden": Text("Refused", "操作被拒绝"),
    "csrf": Text(
        "The form is out of date or was not sent from this site; reload the page and try again.",
        "表单已过期或不是从本站提交的；请刷新页面后重试。",
    ),
    "too_large": Text("The submitted form is too large.", "提交的内容过大。"),
    "bad_request": Text("The request could not be processed.", "请求无法处理。"),
    "error": Text("Error", "出错了"),
    "page_title_new": Text("New {form}", "新建{form}"),
    "page_title_edit": Text("Edit {form}", "修改{form}"),
    "n_files": Text("{n} files", "{n} 个文件"),
    "no_match": Text("(nothing found)", "（没有匹配的记录）"),
    "picker_loading": Text("Searching…", "正在搜索…"),
    "picker_failed": Text("The search failed; type again to retry.", "搜索失败，请重新输入再试。"),
    "picker_count": Text("{n} found", "找到 {n} 条"),
    "picker_more": Text(
        "Only the first {n} are shown; type more to narrow them.",
        "仅显示前 {n} 条，请输入更多关键字缩小范围。",
    ),
    "my_tasks": Text("My tasks", "我的待办"),
    "no_tasks": Text("Nothing waits for you.", "暂无待办。"),
    "work_approvals": Text("Approvals to decide", "待我审批"),
    "work_gates": Text("Confirmations waiting for me", "待我确认"),
    "work_todos": Text("To-dos", "待办事项"),
    "work_actions": Text("Records waiting for me to act", "待我处理的单据"),
    "work_none_approvals": Text("No approval waits for your decision.", "没有等您审批的单据。"),
    "work_none_gates": Text("Nothing waits for your confirmation.", "没有等您确认的事项。"),
    "work_none_todos": Text("No to-do is open for you.", "没有未完成的待办。"),
    "work_none_actions": Text("No record waits for you to act.", "没有等您处理的单据。"),
    "work_gate": Text("{action} (as {role})", "{action}（以{role}身份）"),
    "work_action": Text("{form}: {action}", "{form}：{action}"),
    "work_all": Text("All {n} →", "全部 {n} 条 →"),
    "work_in_state": Text("{state}: {n} →", "{state} {n} 条 →"),
    "work_since": Text("since {at}", "{at} 起"),
    "work_for_role": Text("for every {role}", "发给全体{role}"),
    "work_mark_done": Text("Mark done", "标记完成"),
    "todo_done": Text("To-do marked done.", "待办已标记完成。"),
    "new_record": Text("New {form}", "新建{form}"),
    "record": Text("Record", "单据"),
    "route": Text("Route", "审批路线"),
    "step": Text("Step", "审批环节"),
    "waited": Text("Waiting", "已等待"),
    "waited_hours": Text(
        "{hours} h ({business} business hours)", "{hours} 小时（工作时间 {business} 小时）"
    ),
    "due_at": Text("Due", "截止时间"),
    "sla": Text("SLA", "时效"),
    "sla_green": Text("On time", "正常"),
    "sla_amber": Text("Due soon", "即将超时"),
    "sla_red": Text("Overdue", "已超时"),
    "sla_none": Text("No deadline", "无时限"),
    "on_behalf_of": Text("for {name}", "代 {name}"),
    "escalated": Text("escalated {n}×", "已升级 {n} 次"),
    "comment": Text("Comment", "审批意见"),
    "comment_hint": Text("Required to reject or return", "驳回或退回时必填"),
    "decide": Text("Decision", "审批操作"),
    "approve": Text("Approve", "同意"),
    "reject": Text("Reject", "驳回"),
    "return": Text("Return for changes", "退回修改"),
    "decided_approve": Text("Approved.", "已同意。"),
    "decided_reject": Text("Rejected.", "已驳回。"),
    "decided_return": Text("Returned for changes.", "已退回修改。"),
    "approvals": Text("Approvals", "审批"),
    "assignees": Text("Assignees", "审批人"),
    "decision": Text("Decision", "审批结果"),
    "decided_by": Text("Decided by", "处理人"),
    "decided_at": Text("Time", "处理时间"),
    "started_by": Text("submitted by {name} · {at}", "{name} 提交 · {at}"),
    "download_pdf": Text("Download the approval record (PDF)", "下载审批记录 PDF"),
    "st_active": Text("In progress", "审批中"),
    "st_open": Text("Waiting", "待处理"),
    "st_approved": Text("Approved", "已同意"),
    "st_rejected": Text("Rejected", "已驳回"),
    "st_returned": Text("Returned", "已退回"),
    "st_skipped": Text("Not needed", "无需处理"),
    "st_cancelled": Text("Cancelled", "已取消"),
    "ev_confirmed": Text("confirmed {field} {value} as {role}", "以{role}身份确认{field}：{value}"),
    "ev_confirm_reopened": Text(
        "{changed} changed: the confirmations of {field} lapsed ({lapsed}); confirm again",
        "{changed}已变更，{field}的确认作废（{lapsed}），须重新确认",
    ),
    "gates": Text("Confirmations", "双方确认"),
    "gate_passed": Text("confirmed by everyone", "各方均已确认"),
    "gate_waiting": Text("waiting for: {roles}", "等待确认：{roles}"),
    "not_confirmed": Text("not confirmed", "未确认"),
    "confirm_as": Text("Confirm {value} as {role}", "以{role}身份确认 {value}"),
    "compared_with": Text("{label}: {value}", "{label}：{value}"),
    "ev_approval_started": Text("approval started", "发起审批"),
    "ev_approval_decided": Text("approval decision", "审批处理"),
    "ev_approval_finished": Text("approval finished", "审批结束"),
    "dashboards": Text("Dashboards", "看板"),
    "insight_summary": Text(
        "{n} templates cover {share} of custom demands ({covered} of {demands}).",
        "{n} 个模板覆盖 {share} 的定制需求（{covered} / {demands}）。",
    ),
    "insight_basis": Text(
        "{form}, {field}: {records} records, {combinations} distinct combinations; a "
        "combination asked for exactly at least {support} times is a candidate; a template "
        "covers a demand whose choices are equal to or a subset of it.",
        "{form}·{field}：共 {records} 条记录，{combinations} 种不同组合；被完全相同地要求至少 "
        "{support} 次的组合才是候选；需求的选项与模板相同或是其子集即算覆盖。",
    ),
    "insight_template": Text("Template", "模板"),
    "hint_days": Text("Days", "相差天数"),
    "insight_exact": Text("Asked for exactly", "完全相同"),
    "insight_covers": Text("Covers", "可覆盖"),
    "insight_added": Text("Adds", "新增覆盖"),
    "insight_cumulative": Text("Cumulative coverage", "累计覆盖"),
    "insight_none": Text("No combination is frequent enough yet.", "暂无足够频繁的组合。"),
    "no_dashboards": Text("No dashboard is open to your roles.", "暂无您可以查看的看板。"),
    "n_kpis": Text("{n} indicators", "{n} 项指标"),
    "light_green": Text("Green", "绿灯"),
    "light_amber": Text("Amber", "黄灯"),
    "light_red": Text("Red", "红灯"),
    "light_none": Text("No light", "无灯"),
    "light_label": Text("Status: {word}", "状态：{word}"),
    "rule_green": Text("green {rule}", "绿灯 {rule}"),
    "rule_amber": Text("amber {rule}", "黄灯 {rule}"),
    "rule_red": Text("otherwise red", "其余红灯"),
    "no_thresholds": Text("No thresholds", "未设阈值"),
    "win_all": Text("all time", "全部时间"),
    "win_today": Text("today", "今天"),
    "win_this_month": Text("this month", "本月"),
    "win_days": Text("last {n} days", "近 {n} 天"),
    "trend_day": Text("Trend by day", "按日趋势"),
    "trend_week": Text("Trend by week", "按周趋势"),
    "trend_month": Text("Trend by month", "按月趋势"),
    "show_records": Text("Show the records", "查看明细"),
    "as_of": Text("As of", "截至日期"),
    "show": Text("Show", "查看"),
    "back_to_now": Text("Back to now", "回到当前"),
    "computed_at": Text("Computed {at}", "计算时间 {at}"),
    "auto_refresh": Text("refreshes every {n} s", "每 {n} 秒自动刷新"),
    "export_csv": Text("Export CSV", "导出 CSV"),
    "export_xlsx": Text("Export Excel", "导出 Excel"),
    "exports": Text("Export these records", "导出这些记录"),
    "records_behind": Text("Records behind “{kpi}”", "“{kpi}”的明细"),
    "value": Text("Value", "数值"),
    "unit_hours": Text("h", "小时"),
    "back_to_dashboard": Text("Back to the dashboard", "返回看板"),
    "drill_first": Text("The first {n} records are shown.", "仅显示前 {n} 条。"),
    "drill_csv_now": Text("The export is as of now.", "导出的是当前数据。"),
    "target": Text("target {value}", "目标 {value}"),
    "groups_worst": Text("Worst {by} first", "按{by}，最差在前"),
    "ev_track_code_requested": Text(
        "a tracking code was requested on /track", "客户在查询页申请了验证码"
    ),
    "ev_track_verified": Text("verified on /track", "客户在查询页验证成功"),
    "ev_track_locked": Text(
        "/track locked after too many wrong tries", "查询页因错误次数过多已锁定"
    ),
    "track_codes": Text("Tracking codes (outbox)", "查询验证码（待发送消息）"),
    "track_box_title": Text("Customer tracking page", "客户查询页"),
    "track_box_text": Text(
        "The customer sees this record's progress here after confirming their mobile number; "
        "customer messages carry this link. Print or show the QR code.",
        "客户验证手机号后可在此查看本单进度；客户消息里附有这个链接。可打印或出示二维码。",
    ),
    "track_box_qr": Text("QR code of the tracking page", "订单查询页二维码"),
    "track_box_no_public_url": Text(
        "SEAMLINE_PUBLIC_URL is not set: the address is this server's, and customer messages "
        "carry no link (docs/operations.md).",
        "未设置 SEAMLINE_PUBLIC_URL：这里显示的是本服务器地址，客户消息里不带链接"
        "（见 docs/operations.md）。",
    ),
}


def translate(lang: Lang, key: str | Text, **params: Any) -> str:
    """A catalog entry (or a :class:`Text`) in ``lang``; unknown keys come back as they are."""
    text = key if isinstance(key, Text) else CATALOG.get(key)
    if text is None:
        return str(key)
    return (text.format(**params) if params else text)(lang)


class Formatter:
    """Shows stored values the way people read them, in the app's time zone."""

    def __init__(self, app: App, lang: Lang) -> None:
        self.app = app
        self.lang = lang
        self.tz = ZoneInfo(app.timezone)

    def datetime(self, value: Any) -> str:
        return datetime_text(value, self.tz)  # stored UTC; SQLite gives it back without a zone

    def number(self, value: Any, scale: int | None = None) -> str:
        return number_text(value, scale)

    def money(self, value: Any, spec: FieldSpec | None = None) -> str:
        """An amount with separators and the field's (else the app's) currency: ¥1,234.00."""
        scale = spec.scale if spec is not None and spec.scale is not None else 2
        return money_text(value, scale, currency_of(self.app, spec))

    def value(self, spec: FieldSpec | None, value: Any) -> str:
        """A field value as text ("—" when blank). Refs show as ``#id`` (pages link titles).
        The same text as the sealed approval PDF prints (:mod:`engine.model.display`)."""
        return value_text(self.app, spec, value, self.lang, self.tz)

    def input(self, spec: FieldSpec, value: Any) -> Any:
        """The value as a form input holds it: text, or a list of text for multi-valued
        fields (also used to tell whether a posted value differs from the stored one)."""
        if spec.type in ("multiselect", "files"):
            items = value if isinstance(value, list) else ([] if value is None else [value])
            return [str(v.get("id") if isinstance(v, Mapping) else v) for v in items]
        if value is None:
            return ""
        if spec.type == "boolean":
            return "true" if value else "false"
        if spec.type == "datetime" and isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return moment.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return format(value, "f")
        return str(value)

    def default_input(self, spec: FieldSpec, env: Any) -> Any:
        """The input value a new record (or row) starts with: the field's default."""
        value = spec.default
        if spec.default_expr is not None:
            try:
                value = spec.default_expr({}, env)
            except Exception:  # a default that cannot be computed leaves the input blank
                value = None
        return self.input(spec, value)

    def record_inputs(self, form: FormSpec, record: Mapping[str, Any] | None, env: Any) -> dict:
        """Input values of every field: the record's, or the defaults for a new record."""
        out: dict[str, Any] = {}
        for spec in form.fields:
            if spec.type == "table":
                rows = (record or {}).get(spec.name) or []
                out[spec.name] = [
                    {c.name: self.input(c, r.get(c.name)) for c in spec.children} for r in rows
                ]
            elif record is None:
                out[spec.name] = self.default_input(spec, env)
            else:
                out[spec.name] = self.input(spec, record.get(spec.name))
        return out

    def row_defaults(self, form: FormSpec, env: Any) -> dict[str, dict[str, Any]]:
        """Starting input values of a new child row, per table."""
        return {
            f.name: {c.name: self.default_input(c, env) for c in f.children}
            for f in form.fields
            if f.type == "table"
        }

    def person(self, username: str | None) -> str:
        """A person's name from the org chart; the engine's own actors (``system``, ``flow``,
        ``approval``, ``tracking-page``) in words; anyone else by their user name."""
        person = self.app.people.get(username or "")
        if person is not None:
            return person.name
        engine_actor = CATALOG.get(f"actor_{username}")
        return translate(self.lang, engine_actor) if engine_actor else (username or "")

    def state_label(self, form: FormSpec, state: str | None) -> str:
        machine = self.app.state_machines.get(form.name)
        if machine is None or state is None:
            return state or ""
        return next((s.label for s in machine.states if s.name == state), state)

    def state_color(self, form: FormSpec, state: str | None) -> str:
        machine = self.app.state_machines.get(form.name)
        if machine is None or state is None:
            return "grey"
        return next((s.color for s in machine.states if s.name == state), "grey")

    def change(
        self, form: FormSpec, name: str, value: Any, titles: Mapping[str, Mapping[int, str]]
    ) -> str:
        """One side of a change in the timeline (refs by their title, states by label)."""
        spec = form.by_name.get(name)
        if spec is None:
            return self.state_label(form, value) if name == "state" else self.value(None, value)
        if spec.value_type == "ref" and value is not None:
            return titles.get(name, {}).get(value) or f"#{value}"
        return self.value(spec, value)

    def gate_event(self, form: FormSpec, kind: str, payload: Mapping[str, Any]) -> str:
        """A confirmation at a gate, or its re-opening, in words."""
        spec = form.by_name.get(payload.get("field", ""))
        field = spec.label if spec else str(payload.get("field"))
        if kind == "confirmed":
            return translate(
                self.lang,
                "ev_confirmed",
                field=field,
                value=self.value(spec, payload.get("value")),
                role=self.role(payload.get("role")),
            )
        changed = [
            form.by_name[n].label if n in form.by_name else n for n in payload.get("changed") or ()
        ]
        lapsed = [
            " ".join(
                (
                    self.role(c.get("role")),
                    self.person(c.get("user")),
                    self.value(spec, c.get("value")),
                )
            )
            for c in payload.get("lapsed") or ()
        ]
        sep = "、" if self.lang == "zh" else ", "
        return translate(
            self.lang,
            "ev_confirm_reopened",
            changed=sep.join(changed),
            field=field,
            lapsed=sep.join(lapsed),
        )

    def role(self, name: Any) -> str:
        role = self.app.roles.get(str(name))
        return role.label if role is not None else str(name)


def _flash(request: Request) -> str | None:
    """The one-time message a redirect left in the session (kept for full pages only)."""
    if "session" not in request.scope or request.headers.get("hx-request"):
        return None
    message = request.session.pop("flash", None)
    return message if isinstance(message, str) else None


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render a page template for this request's configuration and user."""
    current = live(request)
    lang = request_lang(request)
    base: dict[str, Any] = {
        "app": current.app,
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "t": partial(translate, lang),
        "fmt": Formatter(current.app, lang),
        "csrf": csrf_token(request),
        "user": getattr(request.state, "seamline_user", None),
        "path": request.url.path,
        "open_tasks": getattr(request.state, "open_tasks", None),
        "flash": _flash(request),
        "may": partial(_may, current.app, getattr(request.state, "seamline_user", None)),
    }
    html = environment(current).get_template(name).render({**base, **(context or {})})
    return HTMLResponse(html, status, headers={**SECURITY_HEADERS, **(headers or {})})


def _may(app: App, user: Any, action: Action, name: str | None = None) -> bool:
    """For templates: whether to show a link or button (the route checks again on use)."""
    if user is None:
        return False
    resource = Resource(
        form=app.forms.get(name or "") if action not in ("dashboard", "insight") else None,
        dashboard=app.dashboards.get(name or "") if action == "dashboard" else None,
        insight=app.insights.get(name or "") if action == "insight" else None,
    )
    return allowed(app, user, action, resource, shown_only=True)


def _templates(bundle: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    prefix = "templates/"
    return tuple(
        sorted(
            (name[len(prefix) :], text)
            for name, text in bundle.items()
            if name.startswith(prefix) and len(name) > len(prefix)
        )
    )


class PageSandbox(SandboxedEnvironment):
    """Jinja's sandbox with its verdict on each attribute remembered per (type of the object,
    attribute name) — all that jinja2's ``is_internal_attribute`` looks at (isinstance tests
    and the name). Asking afresh for every ``row.x`` was a fifth of a list page's time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verdicts: dict[tuple[type, str], bool] = {}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = super().is_safe_attribute(obj, attr, value)
            if len(self._verdicts) < 20_000:  # bounded by the templates' names in practice
                self._verdicts[key] = verdict
        return verdict


def _build(overrides: tuple[tuple[str, str], ...]) -> SandboxedEnvironment:
    loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader(dict(overrides)), jinja2.PackageLoader("engine.assets", "templates")]
    )
    env = PageSandbox(
        loader=loader,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.Undefined,
    )
    env.globals["public_url"] = public_url  # the /track address people outside reach
    return env


def environment(live: LiveApp) -> SandboxedEnvironment:
    """The Jinja2 environment for this configuration (cached by content hash and overrides)."""
    overrides = _templates(live.bundle)
    key = (live.app.content_hash, overrides)
    with _lock:
        env = _cache.get(key)
        if env is not None:
            _cache.move_to_end(key)
            return env
    env = _build(overrides)
    with _lock:
        _cache[key] = env
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return env
