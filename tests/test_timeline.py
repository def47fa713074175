"""The record page's timeline for people (engine/web/timeline.py): every event kind the engine
writes has a plain wording or is technical; an automation run folds into one line by a named
actor (never ``flow``/``system``); technical records only for operators who ask; the filter by
kind works as a plain link. On SQLite and PostgreSQL, with the pack's mock warehouse."""

from __future__ import annotations

import re
from pathlib import Path

from packservices import submit_order
from test_live_record import FAR, World, _client, world  # noqa: F401  (the fixture)

from engine.web.templating import Formatter
from engine.web.timeline import GROUPS, W, build_timeline

ENGINE = Path(__file__).resolve().parents[1] / "engine"
KIND = re.compile(r'"((?:approval|flow|notify|track|confirm|todo)_[a-z_]+)"')


def test_every_event_kind_the_engine_writes_has_words() -> None:
    written = {"created", "changed", "child_added", "transition", "confirmed"}
    for source in ("flows", "tracking", "forms"):
        for path in (ENGINE / source).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "EventIn(" in text or "_event(" in text:
                written |= set(KIND.findall(text))
    written |= {"approval_cancelled", "approval_restarted"}  # f"approval_{why}"
    written -= {"approval_id", "approval_status", "confirm_gate", "todo_id"}  # not event kinds
    unknown = {
        k for k in written if k.startswith(("approval_", "flow_", "notify_", "track_", "todo_"))
    }
    missing = sorted(k for k in unknown | written if k not in GROUPS)
    assert not missing, f"event kinds with no timeline wording: {missing}"
    for kind, group in GROUPS.items():
        assert (
            group == "technical"
            or kind in W
            or kind
            in (
                "changed",
                "created",
                "child_added",
                "transition",
                "confirmed",
                "confirm_reopened",
                "approval_decided",
            )
        ), kind


def test_a_stock_check_reads_as_one_line_for_people(world: World) -> None:  # noqa: F811
    live = world.api.live
    order = submit_order(live.records, world.customer, world.product, 5, FAR)
    world.worker.run_until_idle()
    events = live.records.events("order", order)
    form = live.records.form("order")
    fmt = Formatter(live.app, "zh")
    people = build_timeline(fmt, form, events, {})
    assert len(people) < len(events) / 2, [e.title for e in people]
    actors = {e.actor for e in people}
    assert not actors & {"flow", "system", "approval"}, actors
    run = next(e for e in people if e.kind == "run")
    assert run.actor == "系统（“提交订单”后的自动流程）"
    assert run.title.startswith("已完成：") and "已从库存预留数量 5" in run.title
    assert "状态变为“库存已校验”" in run.title
    assert not any(re.search(r"[a-z]+_[a-z]+", e.title) for e in people), [e.title for e in people]
    message = next(e for e in people if e.kind == "notify_sent")
    assert message.group == "messages" and "企业微信客户群" in message.title
    technical = build_timeline(fmt, form, events, {}, technical=True)
    assert any("调用仓储管理系统（WMS）" in e.title for e in technical if e.technical)
    assert {e.group for e in build_timeline(fmt, form, events, {}, show="messages")} == {"messages"}
    english = build_timeline(Formatter(live.app, "en"), form, events, {})
    assert next(e for e in english if e.kind == "run").title.startswith("done: ")


def test_the_toggle_is_for_operators_and_the_filter_a_plain_link(world: World) -> None:  # noqa: F811
    order = submit_order(world.api.live.records, world.customer, world.product, 5, FAR)
    world.worker.run_until_idle()
    sales = _client(world, "li.sales")
    page = sales.get(f"/forms/order/{order}").text
    assert "显示技术记录" not in page
    assert f'href="/forms/order/{order}?show=approvals#history"' in page
    sneaky = sales.get(f"/forms/order/{order}?tech=1").text.split('id="history"')[1]
    assert "第 1 步" not in sneaky and "调用" not in sneaky  # tech=1 without the right: ignored
    messages = sales.get(f"/forms/order/{order}?show=messages").text.split('id="history"')[1]
    assert "已通过企业微信客户群发送消息" in messages and "提交订单：草稿 → 已提交" not in messages
    operator = _client(world, "qian.it")
    assert "显示技术记录" in operator.get(f"/forms/order/{order}").text
    tech = operator.get(f"/forms/order/{order}?tech=1").text.split('id="history"')[1]
    assert "隐藏技术记录" in tech and "调用仓储管理系统（WMS）" in tech
    swap = operator.get(
        f"/forms/order/{order}?show=changes",
        headers={"HX-Request": "true", "HX-Target": "history"},
    )
    assert swap.status_code == 200 and swap.text.lstrip().startswith("{#") is False
    assert swap.text.lstrip().startswith('<section class="timeline" id="history"')
    assert "<html" not in swap.text
