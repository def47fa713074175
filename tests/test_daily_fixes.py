"""Small fixes people meet every day (issue 16): robot Markdown keeps headings apart from the
lines below, message templates format money like the record page."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import jinja2

from engine.flows.messages import message_environment, render_message
from engine.outbox.connectors import Message
from engine.outbox.connectors.robots import blank_after_headings, dingtalk_payload, wecom_payload

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"


def approval_context(event: str) -> dict[str, object]:
    return {
        "event": event,
        "record": {
            "order_no": "SO-1",
            "amount": Decimal("1234567.5"),
            "customer": {"name": "华东机电", "tier": "A"},
            "product": {"code": "P-1", "name": "轴承"},
            "quantity": 3,
        },
        "approval": {"route_label": "大额", "sla_hours": 8},
        "task": {"step_label": "财务", "due_local": "2025-03-05 17:00", "escalated_from": "王"},
    }


def pack_environment() -> jinja2.Environment:
    templates = PACK / "templates"
    bundle = {
        f"templates/{p.relative_to(templates).as_posix()}": p.read_text(encoding="utf-8")
        for p in templates.rglob("*.md")
    }
    return message_environment(bundle)


def test_pack_approval_message_has_its_heading_apart_and_money_formatted() -> None:
    env = pack_environment()
    for event, heading in (
        ("opened", "待您审批：SO-1"),
        ("reminder", "审批即将超时：SO-1"),
        ("escalated", "审批已升级给您：SO-1"),
    ):
        message = render_message(env, "messages/approval_task.md", approval_context(event))
        assert message.title == heading  # the first bullet is no longer part of the title
        assert message.text.splitlines()[0] == "- 客户：华东机电（A 级）"
        assert "- 金额：1,234,567.50 元" in message.text
        text = dingtalk_payload(message)["markdown"]["text"]
        assert text.startswith(f"#### {heading}\n\n- 客户")
    escalated = render_message(env, "messages/approval_task.md", approval_context("escalated"))
    assert "- 原审批人 王 超过 8 个业务小时未处理" in escalated.text


def test_money_and_number_filters_read_like_the_record_page() -> None:
    env = message_environment(
        {
            "templates/m.md": "# t\n{{ a|money }} | {{ a|money('CNY') }} | {{ n|number }}"
            " | {{ n|number(1) }} | [{{ none|money }}]"
        }
    )
    message = render_message(env, "m.md", {"a": 1234567.5, "n": 12345.67, "none": None})
    assert message.text == "1,234,567.50 | ¥1,234,567.50 | 12,345.67 | 12,345.7 | []"


def test_robots_put_a_blank_line_after_every_heading() -> None:
    body = "### 缺料\n- 客户：A\n#### 明细\n\n- x\n```\n# not a heading\ncode\n```\n\\# 文本"
    assert blank_after_headings(body) == (
        "### 缺料\n\n- 客户：A\n#### 明细\n\n- x\n```\n# not a heading\ncode\n```\n\\# 文本"
    )
    message = Message(title="待办", text=body)
    assert "### 缺料\n\n- 客户：A" in dingtalk_payload(message)["markdown"]["text"]
    assert "### 缺料\n\n- 客户：A" in wecom_payload(message)["markdown"]["content"]


# ---------------------------------------------------------------------------- dashboards
def test_kpi_status_and_display_round_the_same_way() -> None:
    from engine.dashboards.compute import kpi_decimals, status_of
    from engine.model.spec import KpiSpec, ThresholdSpec
    from engine.web.pages_dashboards import shown

    kpi = KpiSpec("k", "K", "f", "per_record", green=ThresholdSpec("<=", 0.2))
    assert kpi_decimals(kpi) == 1
    for value in (0.2, 0.2049, 0.15, 0.25, 0.2501):
        d = kpi_decimals(kpi)
        on_page = float(shown(value, d))
        assert (status_of(kpi, value) == "green") == (on_page <= 0.2), value
    assert shown(0.2049, 1) == "0.2" and status_of(kpi, 0.2049) == "green"
    fine = KpiSpec("k", "K", "f", "per_record", green=ThresholdSpec("<=", 0.25))
    assert kpi_decimals(fine) == 2
    assert shown(0.2549, 2) == "0.25" and status_of(fine, 0.2549) == "green"
    assert status_of(fine, 0.255) == "red"


def test_bucket_unfinished() -> None:
    from datetime import UTC, date, datetime

    from engine.model.periods import bucket_unfinished

    monday = date(2025, 3, 3)
    wed = datetime(2025, 3, 5, 4, 0, tzinfo=UTC)
    assert bucket_unfinished(monday, "week", wed, "Asia/Shanghai")
    # Sunday 23:59:59 in Shanghai: the week is complete
    end = datetime(2025, 3, 9, 15, 59, 59, tzinfo=UTC)
    assert not bucket_unfinished(monday, "week", end, "Asia/Shanghai")
    assert bucket_unfinished(date(2025, 2, 1), "month", datetime(2025, 2, 28, 3, tzinfo=UTC), "UTC")
    assert not bucket_unfinished(date(2025, 3, 4), "day", wed, "Asia/Shanghai")
