"""validate on who may fire what (issue 12): an approval's outcome open to people is an error
at its line, a transition without roles in a form with an approval is a warning, ``roles: []``
and ``by: system`` with roles are errors; ``set:`` names fields of the form."""

from __future__ import annotations

from conftest import codes

FORM = """\
title: Request
fields:
  amount: {type: money, label: Amount}
  price: {type: money, label: Price, readonly: true}
"""

APPROVAL = """\
form: request
start: {state_entered: waiting}
on_approved: approve
on_rejected: reject
routes:
  - name: all
    default: true
    steps:
      - name: boss
        approver: {role: boss}
"""


def flow(approve: str = "by: system", reject: str = "by: system", extra: str = "") -> str:
    return f"""\
form: request
states:
  draft: {{label: Draft, initial: true, editable: true}}
  waiting: {{label: Waiting}}
  done: {{label: Done, final: true}}
  refused: {{label: Refused, final: true}}
transitions:
  send:
    label: Send
    from: draft
    to: waiting
    roles: [clerk]
{extra}
  approve:
    label: Approve
    from: waiting
    to: done
    {approve}
  reject:
    label: Reject
    from: waiting
    to: refused
    {reject}
"""


def build(make_app, flow_text: str):  # type: ignore[no-untyped-def]
    return make_app(
        {
            "forms/request.yaml": FORM,
            "flows/request.yaml": flow_text,
            "approvals/request.yaml": APPROVAL,
        }
    )


def test_closed_outcomes_are_clean(make_app) -> None:  # type: ignore[no-untyped-def]
    result = build(make_app, flow())
    assert codes(result) == [], result.diagnostics.sorted()
    approve = next(
        t for t in result.app.state_machines["request"].transitions if t.name == "approve"
    )
    assert approve.by_system and approve.roles == ()


def test_an_outcome_open_to_people_is_an_error_at_its_line(make_app) -> None:  # type: ignore[no-untyped-def]
    result = build(make_app, flow(approve="roles: [boss]", reject="roles: [clerk]"))
    found = codes(result)
    assert ("request.yaml", 3, 14, "outcome-open-to-people") in found
    assert ("request.yaml", 4, 14, "outcome-open-to-people") in found
    assert result.app is None
    text = next(d for d in result.diagnostics.sorted() if d.code == "outcome-open-to-people")
    assert "by: system" in str(text.hint)


def test_a_roleless_transition_next_to_an_approval_is_a_warning(make_app) -> None:  # type: ignore[no-untyped-def]
    extra = """\
  withdraw:
    label: Withdraw
    from: waiting
    to: draft"""
    result = build(make_app, flow(extra=extra))
    found = [c for c in codes(result) if c[3] == "transition-open"]
    assert found == [("request.yaml", 13, 3, "transition-open")]
    assert result.app is not None  # a warning, not an error


def test_empty_roles_and_system_with_roles_are_errors(make_app) -> None:  # type: ignore[no-untyped-def]
    empty = build(make_app, flow(approve="by: system", extra="    roles: []"))
    assert empty.app is None
    both = build(make_app, flow(approve="by: system\n    roles: [boss]"))
    assert any(c[3] == "system-with-roles" for c in codes(both))


def test_set_names_fields_of_the_form(make_app) -> None:  # type: ignore[no-untyped-def]
    good = build(make_app, flow(extra="    set: {price: amount * 2}"))
    assert codes(good) == [], good.diagnostics.sorted()
    send = good.app.state_machines["request"].transitions[0]
    assert [name for name, _ in send.sets] == ["price"]
    bad = build(make_app, flow(extra="    set: {prise: amount * 2}"))
    assert any(c[3] == "unknown-field" for c in codes(bad))
    bad_expr = build(make_app, flow(extra="    set: {price: amout * 2}"))
    assert bad_expr.app is None


def test_set_refuses_computed_and_table_targets(make_app) -> None:  # type: ignore[no-untyped-def]
    form = FORM + "  total: {type: computed, label: Total, expr: 'amount * 2', result: money}\n"
    result = make_app(
        {
            "forms/request.yaml": form,
            "flows/request.yaml": flow(extra="    set: {total: amount}"),
            "approvals/request.yaml": APPROVAL,
        }
    )
    assert any(c[3] == "set-not-settable" for c in codes(result))
    assert result.app is None


def test_config_tests_judge_who_may_edit(make_app) -> None:  # type: ignore[no-untyped-def]
    from engine.cli.config_tests import run_config_tests

    form = FORM.replace(
        "  price: {type: money, label: Price, readonly: true}",
        "  price: {type: money, label: Price, editable_by: [boss]}",
    )
    cases = """\
cases:
  - name: the clerk may not set the price
    form: request
    as_role: clerk
    given: {amount: 1}
    expect: {refused_edit: [price], editable: [amount]}
  - name: wrongly expected
    form: request
    as_role: clerk
    given: {amount: 1}
    expect: {editable: [price]}
  - name: the boss may
    form: request
    as_role: boss
    given: {amount: 1}
    expect: {editable: [price]}
"""
    result = make_app(
        {
            "forms/request.yaml": form,
            "flows/request.yaml": flow(),
            "approvals/request.yaml": APPROVAL,
            "tests/edits.yaml": cases,
        }
    )
    assert result.app is not None, result.diagnostics.sorted()
    outcome = {r.spec.name: r.passed for r in run_config_tests(result.app)}
    assert outcome == {
        "the clerk may not set the price": True,
        "wrongly expected": False,
        "the boss may": True,
    }
