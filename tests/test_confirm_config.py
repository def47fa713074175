"""The YAML of confirmation gates (a transition's ``confirm:``) and compared fields
(``compare:``): a clean config compiles to the specs; each mistake is reported at its line and
column, with an English and a Chinese hint."""

from __future__ import annotations

from conftest import codes

FORM = """\
title: Order
fields:
  promised: {type: date, label: Promised}
  possible: {type: date, label: Possible}
  gap:
    type: computed
    label: Gap
    expr: "abs(workdays_between(possible, promised)) if possible and promised else 0"
    result: integer
  notes:
    type: table
    label: Notes
    fields:
      text: {type: text, label: Text}
"""
FLOW = """\
form: order
states:
  draft: {label: Draft, initial: true}
  done: {label: Done, final: true}
transitions:
  finish:
    label: Finish
    from: draft
    to: done
    confirm: {field: promised, by: [clerk, boss], reopen_on: [possible]}
"""


def _app(make_app, flow: str = FLOW, form: str = FORM):
    return make_app({"forms/order.yaml": form, "flows/order.yaml": flow})


def _at(text: str, word: str, nth: int = 0) -> tuple[int, int]:
    """(line, column), both from 1, of the ``nth`` occurrence of ``word`` in ``text``."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(word, start + 1)
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


def _compared(compare: str) -> str:
    return FORM.replace(
        "  promised: {type: date, label: Promised}\n",
        "  promised:\n    type: date\n    label: Promised\n    compare: " + compare + "\n",
    )


def test_a_gate_and_a_comparison_compile(make_app) -> None:
    result = _app(make_app, form=_compared("{with: possible, highlight: gap > 2, message: Apart}"))
    assert codes(result) == []
    assert result.app is not None
    finish = result.app.state_machines["order"].transitions[0]
    assert finish.confirm is not None
    assert (finish.confirm.field, finish.confirm.by) == ("promised", ("clerk", "boss"))
    assert finish.confirm.watched == ("promised", "possible")
    shown = result.app.forms["order"].field("promised").compare
    assert shown is not None and shown.with_field == "possible" and shown.message == "Apart"


def test_gate_mistakes_at_their_positions(make_app) -> None:
    flow = FLOW.replace(
        "confirm: {field: promised, by: [clerk, boss], reopen_on: [possible]}",
        "confirm: {field: promisd, by: [clerk, bos], reopen_on: [posible]}",
    )
    result = _app(make_app, flow)
    assert codes(result) == [
        ("order.yaml", *_at(flow, "promisd"), "unknown-field"),
        ("order.yaml", *_at(flow, "bos]"), "unknown-role"),
        ("order.yaml", *_at(flow, "posible"), "unknown-field"),
    ]
    hints = [d.hint for d in result.diagnostics.sorted()]
    assert all(h is not None for h in hints)
    assert "promised" in hints[0]("en") and "promised" in hints[0]("zh")


def test_a_gate_confirms_one_value_not_a_table(make_app) -> None:
    flow = FLOW.replace("field: promised", "field: notes")
    result = _app(make_app, flow)
    assert codes(result) == [("order.yaml", *_at(flow, "notes"), "bad-confirm-field")]
    found = result.diagnostics.sorted()[0]
    assert "notes" in found.message("en") and "确认闸门" in found.message("zh")


def test_a_gate_needs_roles_and_no_unknown_keys(make_app) -> None:
    result = _app(make_app, FLOW.replace("by: [clerk, boss]", "by: []"))
    assert [c[3] for c in codes(result)] == ["empty"]
    typo = _app(make_app, FLOW.replace("reopen_on", "reopen_when"))
    assert len(codes(typo)) == 1 and codes(typo)[0][1] == 10


def test_compare_mistakes_at_their_positions(make_app) -> None:
    compare = (
        "  promised: {type: date, label: Promised, compare: {with: posible, highlight: gapp > 2}}\n"
    )
    result = _app(
        make_app, form=FORM.replace("  promised: {type: date, label: Promised}\n", compare)
    )
    found = codes(result)
    assert ("order.yaml", 3, 59, "unknown-field") in found
    assert any(c[3].startswith("expr-") and c[1] == 3 for c in found)


def test_config_test_confirmed_by_names_roles(make_app) -> None:
    case = """\
cases:
  - name: both confirmed
    form: order
    state: draft
    confirmed_by: [clerk, bos]
    given: {promised: "2026-12-10"}
    expect: {transition: finish}
"""
    result = make_app({"forms/order.yaml": FORM, "flows/order.yaml": FLOW, "tests/t.yaml": case})
    assert codes(result) == [("t.yaml", *_at(case, "bos]"), "unknown-role")]
