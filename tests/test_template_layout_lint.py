"""The ``template-tag-joins-lines`` warning (issue 16): a line of a message template that prints
text and ends in a ``{% … %}`` tag runs into the next line, because messages drop the line
break after a tag that ends a line. Made once in a copy of the pack: one warning at the tag's
file:line:col, in English and Chinese; the fix it names really keeps the lines apart; the
track link (``track_url``) is a name the tracked form's messages may use, and only they."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_semantic_lints import at, edit, found, only, pack, where

from engine.compile.message_templates import LAYOUT, _tags_joining_lines
from engine.flows.messages import message_environment, render_message

__all__ = ["pack"]  # the fixture, shared with test_semantic_lints

HEADING = "### 订单 {{ record.order_no }} 进度：{{ stage.get(entered, state_label) }}"


def test_the_lint_reads_templates_the_way_messages_render_them() -> None:
    env = message_environment({})
    assert {key: getattr(env, key) for key in LAYOUT} == LAYOUT


def test_a_heading_ending_in_a_tag_warns_at_the_tag(pack: Path) -> None:
    line, text = edit(
        pack,
        "templates/messages/progress.md",
        HEADING + "\n",
        HEADING + "{% if agreed.promised_date %}\n（已确认）\n{% endif %}\n",
    )
    item = only(pack, "warning")
    assert where(item) == ("progress.md", line, at(text, "{% if"), "template-tag-joins-lines")
    assert "{% if %}" in item.message.en and "{% if %}" in item.message.zh
    assert "+%}" in item.hint.en and "+%}" in item.hint.zh


@pytest.mark.parametrize(
    "source, expected",
    [
        ("### 标题{% if x %}\n- a\n{% endif %}\n- b", [(1, 0, "{% if %}")]),  # the heading joins
        ("- a {{ y }}{% endif %}\n- b", [(1, 0, "{% endif %}")]),
        ("- {{ a }} {% if b -%}\n- c{% endif %}\n- d", [(1, 0, "{% if %}"), (2, 0, "{% endif %}")]),
        ("- a {# note #}\n- b", [(1, 0, "{# #}")]),
        ("{% if x %}{% set y = 1 %}{% endif %}\n- b", []),  # nothing printed on the line
        ("  {% if x %}\n- a\n{% endif %}\n", []),  # tags on lines of their own
        ("{% if q %}- 物流：{{ q }}\n{% endif %}如有", []),  # tags at the start of a line
        ("### 标题{% if x +%}\n- a\n{% endif %}", []),  # +%} keeps the line break
        ("- a {% if x %}b{% endif %}", []),  # the last line: no line break to lose
        ("{%- set s = {\n 'a': 1,\n} -%}\n### 标题", []),  # a tag over several lines, alone
        ("a {% if x %}{% if y %}\nb", [(1, 1, "{% if %}")]),  # the second tag on the line
    ],
)
def test_which_tags_join_lines(source: str, expected: list[tuple[int, int, str]]) -> None:
    assert list(_tags_joining_lines(source)) == expected


def test_what_the_warning_says_is_what_messages_do() -> None:
    """Rendered by the message environment itself: the flagged line runs into the next one,
    the fix the hint names keeps them apart."""
    joined = "### 待审批{% if urgent %}\n- 金额：100\n{% endif %}\n- 客户：甲"
    fixed = "### 待审批{% if urgent +%}\n- 金额：100\n{% endif %}\n- 客户：甲"
    env = message_environment({"templates/a.md": joined, "templates/b.md": fixed})
    bad = render_message(env, "a.md", {"urgent": True})
    good = render_message(env, "b.md", {"urgent": True})
    assert bad.title == "待审批- 金额：100"  # the heading swallowed the first bullet
    assert (good.title, good.text) == ("待审批", "- 金额：100\n- 客户：甲")
    assert list(_tags_joining_lines(joined)) == [(1, 0, "{% if %}")]
    assert list(_tags_joining_lines(fixed)) == []


def test_track_url_is_given_to_the_tracked_forms_messages_only(pack: Path) -> None:
    edit(
        pack,
        "templates/messages/progress.md",
        "如有疑问",
        "{{ track_url }}\n如有疑问",
    )
    assert found(pack) == []  # progress messages are about orders: the tracked form
    edit(
        pack,
        "templates/messages/stock_shortage.md",
        "请采购确认补料计划。",
        "请采购确认补料计划。\n{{ track_url }}",
    )
    assert found(pack) == []  # also about orders
    app_yaml = pack / "app.yaml"
    text = app_yaml.read_text(encoding="utf-8")
    start, end = text.index("\ntracking:\n"), text.index("\n# 洞察报告")
    app_yaml.write_text(text[:start] + text[end:], encoding="utf-8")  # no tracking page
    (item,) = found(pack)  # the same mistake in both templates: one report naming both
    assert where(item)[0::3] == ("progress.md", "template-unknown-name")
    assert "'track_url'" in item.message.en and "stock_shortage.md" in str(item.hint)
