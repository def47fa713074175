"""Compile app.yaml's ``tracking:`` section: the public tracking page's forms, fields and limits.

Every name is checked against the forms that exist (a stage is a list of states or
``{states: [...], color: blue}``); fields that must never reach people
outside (money, long text, child tables, files, the contact ref itself) are refused in
``show``; the code mode needs a connector that sends messages and a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.compile.context import CompileContext
from engine.compile.flows import check_message
from engine.compile.message_templates import TRACKING_NAMES
from engine.config.loader import LoadedYaml
from engine.model.i18n import Text
from engine.model.spec import RateSpec, StateMachineSpec, TrackingSpec

__all__ = ["compile_tracking"]

# What people outside never see: prices, remarks and internal notes, logs, attachments.
_HIDDEN_TYPES = frozenset({"money", "long_text", "table", "files"})
_NUMBER_TYPES = frozenset({"text", "autonumber"})
_PHONE_TYPES = frozenset({"phone", "text"})
_FIELD = Text("field", "字段")
_FORM = Text("form", "表单")
_STATE = Text("state", "状态")


def compile_tracking(
    ctx: CompileContext,
    doc: LoadedYaml,
    raw_fields: Mapping[str, Mapping[str, Any]],
    machines: Mapping[str, StateMachineSpec],
    connectors: Mapping[str, Any],
    templates: list[Path],
) -> TrackingSpec | None:
    raw = doc.data.get("tracking")
    if raw is None:
        return None
    errors_before = _error_count(ctx)
    contacts, records = raw["contacts"], raw["records"]
    contact_form = _form(ctx, doc, ("tracking", "contacts", "form"), raw_fields)
    record_form = _form(ctx, doc, ("tracking", "records", "form"), raw_fields)
    if contact_form is not None:
        path = ("tracking", "contacts")
        _field(ctx, doc, (*path, "phone"), raw_fields[contact_form], _PHONE_TYPES)
        for key in ("channel", "name"):
            if key in contacts:
                _field(ctx, doc, (*path, key), raw_fields[contact_form], None)
    if record_form is not None:
        _check_records(ctx, doc, raw_fields[record_form], contact_form)
        machine = machines.get(record_form)
        states = [s.name for s in machine.states] if machine else []
        if "hide_states" in records:
            ctx.check_names(
                doc, ("tracking", "records", "hide_states"), states, _STATE, "unknown-state"
            )
        if "stages" in records:
            _check_stages(ctx, doc, records, states)
    verify = raw.get("verify", "code")
    code = raw.get("code") or {}
    if verify == "code":
        _check_code(ctx, doc, raw, connectors, templates)
    if _error_count(ctx) > errors_before or contact_form is None or record_form is None:
        return None
    limits = raw.get("rate_limits") or {}
    defaults = TrackingSpec.__dataclass_fields__
    return TrackingSpec(
        contact_form=contact_form,
        phone_field=contacts["phone"],
        record_form=record_form,
        contact_ref=records["contact"],
        number_field=records["number"],
        show=tuple(records.get("show") or ()),
        verify=verify,
        channel_field=contacts.get("channel"),
        name_field=contacts.get("name"),
        via=code.get("via"),
        template=code.get("template"),
        visible_to=tuple(code.get("visible_to") or ()),
        code_length=int(code.get("length", 6)),
        code_minutes=float(code.get("minutes", 5)),
        suffix_length=int(raw.get("suffix_length", 4)),
        session_minutes=float(raw.get("session_minutes", 15)),
        max_attempts=int(raw.get("max_attempts", 5)),
        max_attempts_ip=int(raw.get("max_attempts_ip", 20)),
        lockout_minutes=float(raw.get("lockout_minutes", 15)),
        per_phone=_rate(limits.get("per_phone"), defaults["per_phone"].default),
        per_ip=_rate(limits.get("per_ip"), defaults["per_ip"].default),
        hide_states=tuple(records.get("hide_states") or ()),
        limit=int(records.get("limit", 20)),
        title=raw.get("title"),
        stages=tuple(
            (str(stage), tuple(_stage_states(value)))
            for stage, value in (records.get("stages") or {}).items()
        ),
        company=raw.get("company"),
        stage_colors=tuple(
            (str(stage), str(value["color"]))
            for stage, value in (records.get("stages") or {}).items()
            if isinstance(value, Mapping) and "color" in value
        ),
    )


def _stage_states(value: Any) -> list[str]:
    """A stage's states: ``[a, b]`` or ``{states: [a, b], color: …}``."""
    states = value.get("states") if isinstance(value, Mapping) else value
    return list(states or [])


def _check_stages(
    ctx: CompileContext, doc: LoadedYaml, records: Mapping[str, Any], states: list[str]
) -> None:
    """Every state in exactly one stage or in hide_states; no stage names an unknown state."""
    path = ("tracking", "records", "stages")
    placed: dict[str, str] = {name: "hide_states" for name in records.get("hide_states") or ()}
    for stage, value in records["stages"].items():
        at = (*path, stage, "states") if isinstance(value, Mapping) else (*path, stage)
        for i, name in enumerate(_stage_states(value)):
            if name not in states:
                ctx.unknown(doc, (*at, i), name, states, _STATE, "unknown-state")
                continue
            if name in placed:
                ctx.error(
                    doc,
                    (*at, i),
                    "duplicate-state",
                    Text(
                        f"state '{name}' is already shown as '{placed[name]}'",
                        f"状态 '{name}' 已经归入 '{placed[name]}'",
                    ),
                    Text(
                        "list each state in one stage only (or in hide_states)",
                        "每个状态只能归入一个阶段（或写在 hide_states 中）",
                    ),
                )
                continue
            placed[name] = stage
    missing = [name for name in states if name not in placed]
    if missing:
        listed = ", ".join(missing)
        ctx.error(
            doc,
            path,
            "unmapped-state",
            Text(
                f"states not in any stage: {listed}; people would not know what they mean",
                f"以下状态没有归入任何阶段：{listed}；客户看不懂内部状态",
            ),
            Text(
                f"add {missing[0]} to a stage (e.g. 已接单: [..., {missing[0]}]) or to hide_states",
                f"请把 {missing[0]} 加入某个阶段（例如 已接单: [..., {missing[0]}]）或 hide_states",
            ),
            key=True,
        )


def _error_count(ctx: CompileContext) -> int:
    return sum(1 for d in ctx.diags.items if d.severity == "error")


def _rate(raw: Mapping[str, Any] | None, default: Any) -> RateSpec:
    if raw is None:
        return default  # type: ignore[no-any-return]
    return RateSpec(int(raw["count"]), float(raw["minutes"]))


def _form(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: tuple[str, ...],
    raw_fields: Mapping[str, Mapping[str, Any]],
) -> str | None:
    name = doc.get(path)
    if name in raw_fields:
        return str(name)
    ctx.unknown(doc, path, name, raw_fields, _FORM, "unknown-form")
    return None


def _field(
    ctx: CompileContext,
    doc: LoadedYaml,
    path: tuple[str | int, ...],
    fields: Mapping[str, Any],
    types: frozenset[str] | None,
) -> dict[str, Any] | None:
    name = doc.get(path)
    spec = fields.get(name)
    if spec is None:
        ctx.unknown(doc, path, name, fields, _FIELD, "unknown-field")
        return None
    if types is not None and spec["type"] not in types:
        wanted = " / ".join(sorted(types))
        ctx.error(
            doc,
            path,
            "wrong-type",
            Text(
                f"field '{name}' is of type {spec['type']}; it must be {wanted}",
                f"字段 '{name}' 的类型是 {spec['type']}，这里需要 {wanted}",
            ),
            Text(f"name a field of type {wanted}", f"请填写类型为 {wanted} 的字段"),
        )
        return None
    return dict(spec)


def _check_records(
    ctx: CompileContext,
    doc: LoadedYaml,
    fields: Mapping[str, Any],
    contact_form: str | None,
) -> None:
    path = ("tracking", "records")
    ref = _field(ctx, doc, (*path, "contact"), fields, frozenset({"ref"}))
    if ref is not None and contact_form is not None and ref.get("form") != contact_form:
        ctx.error(
            doc,
            (*path, "contact"),
            "wrong-ref",
            Text(
                f"'{doc.get((*path, 'contact'))}' points at form '{ref.get('form')}', "
                f"not at the contact form '{contact_form}'",
                f"'{doc.get((*path, 'contact'))}' 指向表单 '{ref.get('form')}'，"
                f"而不是联系人表单 '{contact_form}'",
            ),
            Text(
                "name the ref field that points at the contact form",
                "请填写指向联系人表单的引用字段",
            ),
        )
    _field(ctx, doc, (*path, "number"), fields, _NUMBER_TYPES)
    for i, name in enumerate(doc.get((*path, "show")) or []):
        spec = _field(ctx, doc, (*path, "show", i), fields, None)
        if spec is None:
            continue
        kind = spec.get("result") if spec["type"] == "computed" else spec["type"]
        if kind in _HIDDEN_TYPES or name == doc.get((*path, "contact")):
            ctx.error(
                doc,
                (*path, "show", i),
                "not-public",
                Text(
                    f"field '{name}' ({kind}) may not be shown on the public tracking page",
                    f"字段 '{name}'（{kind}）不能显示在对外的追踪页面上",
                ),
                Text(
                    "people outside never see prices, remarks, logs, files or the contact "
                    "itself; remove it from show",
                    "对外页面不显示价格、备注、沟通日志、附件或联系人本身；请从 show 中删除",
                ),
            )


def _check_code(
    ctx: CompileContext,
    doc: LoadedYaml,
    raw: Mapping[str, Any],
    connectors: Mapping[str, Any],
    templates: list[Path],
) -> None:
    if "code" not in raw:
        ctx.error(
            doc,
            ("tracking",),
            "missing-key",
            Text(
                "verify: code needs 'code:' (the connector and template that send it)",
                "verify: code 需要 'code:'（发送验证码的连接器和模板）",
            ),
            Text(
                "add 'code: {via: wecom, template: messages/tracking_code.md}', or set "
                "'verify: order_suffix'",
                "请添加 'code: {via: wecom, template: messages/tracking_code.md}'，"
                "或设置 'verify: order_suffix'",
            ),
            key=True,
        )
        return
    check_message(ctx, doc, ("tracking", "code"), dict(connectors), templates, names=TRACKING_NAMES)
    if "channel" not in raw["contacts"]:
        ctx.error(
            doc,
            ("tracking", "contacts"),
            "missing-key",
            Text(
                "verify: code needs 'channel:', the contact field the code is sent to",
                "verify: code 需要 'channel:'，即接收验证码的联系人字段",
            ),
            Text("add e.g. 'channel: wecom_id'", "请添加例如 'channel: wecom_id'"),
            key=True,
        )
    if "visible_to" in raw["code"]:
        ctx.check_roles(doc, ("tracking", "code", "visible_to"))
