"""Every kind of diagnostic, at its exact line and column, through the whole compile stage."""

from __future__ import annotations

from conftest import codes

FORM_OK = """\
title: Order
fields:
  customer: {type: ref, label: Customer, form: customer}
  qty: {type: integer, label: Qty}
  kind: {type: select, label: Kind, options: [normal, rush, trial]}
"""
CUSTOMER = """\
title: Customer
fields:
  name: {type: text, label: Name}
  tier: {type: select, label: Tier, options: [VIP, A, B]}
"""
FLOW = """\
form: order
states:
  draft: {label: Draft, initial: true}
  waiting: {label: Waiting}
  done: {label: Done, final: true}
  rejected: {label: Rejected, final: true}
transitions:
  submit: {label: Submit, from: draft, to: waiting, roles: [clerk]}
  approve: {label: Approve, from: waiting, to: done, by: system}
  reject: {label: Reject, from: waiting, to: rejected, by: system}
"""


def approval(routes: str) -> str:
    return (
        "form: order\nstart: {transition: submit}\non_approved: approve\n"
        "on_rejected: reject\nroutes:\n" + routes
    )


DEFAULT_ROUTE = (
    "  - name: fallback\n    default: true\n    steps:\n"
    "      - {name: s1, approver: {role: boss}}\n"
)


def test_clean_app_has_no_diagnostics(make_app) -> None:
    result = make_app(
        {"forms/order.yaml": FORM_OK, "forms/customer.yaml": CUSTOMER, "flows/order.yaml": FLOW}
    )
    assert codes(result) == []
    assert result.ok and result.app is not None
    assert [f.name for f in result.app.forms["order"].fields] == ["customer", "qty", "kind"]


def test_yaml_syntax_error(make_app) -> None:
    result = make_app({"forms/order.yaml": "title: Order\nfields:\n  qty: {type: integer\n"})
    assert codes(result) == [("order.yaml", 4, 1, "yaml-syntax")]
    assert result.app is None


def test_duplicate_key(make_app) -> None:
    text = FORM_OK + "  qty: {type: decimal, label: Qty again}\n"
    result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
    assert codes(result) == [("order.yaml", 6, 3, "yaml-duplicate-key")]


def test_unknown_field_type_with_suggestion(make_app) -> None:
    result = make_app(
        {"forms/order.yaml": "title: Order\nfields:\n  qty: {type: integr, label: Q}\n"}
    )
    assert codes(result) == [("order.yaml", 3, 15, "bad-value")]
    hint = result.diagnostics.items[0].hint
    assert hint is not None and "integer" in hint.en


def test_unknown_key_did_you_mean(make_app) -> None:
    result = make_app(
        {"forms/order.yaml": "title: Order\nfields:\n  qty: {type: integer, lable: Q}\n"}
    )
    assert ("order.yaml", 3, 24, "unknown-key") in codes(result)
    d = next(d for d in result.diagnostics.items if d.code == "unknown-key")
    assert d.hint is not None and "'label'" in d.hint.en


def test_ref_to_missing_form(make_app) -> None:
    result = make_app({"forms/order.yaml": FORM_OK})
    assert codes(result) == [("order.yaml", 3, 48, "unknown-form")]


def test_rule_naming_missing_field_with_did_you_mean(make_app) -> None:
    text = FORM_OK + "rules:\n  - {name: r, check: 'qty > 0', field: qtty, message: m}\n"
    result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
    assert codes(result) == [("order.yaml", 7, 40, "unknown-field")]
    hint = result.diagnostics.items[0].hint
    assert hint is not None and "did you mean 'qty'" in hint.en


def test_expression_unknown_name_points_inside_expression(make_app) -> None:
    text = FORM_OK + 'rules:\n  - name: r\n    check: "qty > 0 and quantty < 5"\n    message: m\n'
    result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
    # the expression starts at col 13 (after the quote); "quantty" is 12 characters in
    assert codes(result) == [("order.yaml", 8, 25, "expr-unknown-name")]


def test_expression_syntax_error_position(make_app) -> None:
    text = FORM_OK + "rules:\n  - name: r\n    check: qty > \n    message: m\n"
    result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
    [(name, line, col, code)] = codes(result)
    assert (name, line, code) == ("order.yaml", 8, "expr-syntax")
    assert 12 <= col <= 18


def test_expression_through_ref_checks_subfield(make_app) -> None:
    text = FORM_OK + "rules:\n  - {name: r, check: \"customer.teir == 'VIP'\", message: m}\n"
    result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
    [(name, line, col, code)] = codes(result)
    assert (name, line, code) == ("order.yaml", 7, "expr-unknown-field")
    assert col >= 23
    assert "tier" in result.diagnostics.items[0].hint.en


def test_hostile_expression_is_refused(make_app) -> None:
    for hostile in ("().__class__", "__import__('os')", "(lambda: 1)()", "[x for x in 'ab']"):
        text = FORM_OK + f'rules:\n  - name: r\n    check: "{hostile}"\n    message: m\n'
        result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
        [(_, line, _, code)] = codes(result)
        assert line == 8
        assert code in ("expr-forbidden", "expr-unknown-name", "expr-unknown-function")


def test_missing_template(make_app) -> None:
    flow = FLOW + (
        "automations:\n  tell:\n    on: {state_entered: done}\n    steps:\n"
        "      - notify: {via: chat, to: [{role: clerk}], template: messages/gone.txt}\n"
    )
    app = (
        "name: t\ntitle: T\nroles:\n  clerk: {label: C}\n  boss: {label: B}\n"
        "connectors:\n  chat: {type: wecom, url_env: CHAT_URL}\n"
    )
    result = make_app(
        {
            "app.yaml": app,
            "forms/order.yaml": FORM_OK,
            "forms/customer.yaml": CUSTOMER,
            "flows/order.yaml": flow,
            "templates/messages/done.txt": "done",
        }
    )
    assert codes(result) == [("order.yaml", 15, 60, "missing-template")]
    assert "messages/done.txt" in result.diagnostics.items[0].hint.en


def test_route_that_can_never_match(make_app) -> None:
    routes = (
        '  - name: impossible\n    when: "qty > 10 and qty < 5"\n    steps:\n'
        "      - {name: s1, approver: {role: boss}}\n" + DEFAULT_ROUTE
    )
    result = make_app(
        {
            "forms/order.yaml": FORM_OK,
            "forms/customer.yaml": CUSTOMER,
            "flows/order.yaml": FLOW,
            "approvals/order.yaml": approval(routes),
        }
    )
    assert codes(result) == [("order.yaml", 7, 11, "route-never-matches")]


def test_route_on_missing_option_never_matches(make_app) -> None:
    routes = (
        "  - name: urgent\n    when: \"kind == 'urgent'\"\n    steps:\n"
        "      - {name: s1, approver: {role: boss}}\n" + DEFAULT_ROUTE
    )
    result = make_app(
        {
            "forms/order.yaml": FORM_OK,
            "forms/customer.yaml": CUSTOMER,
            "flows/order.yaml": FLOW,
            "approvals/order.yaml": approval(routes),
        }
    )
    found = [c for c in codes(result) if c[3] != "calendar-ends-soon"]
    # the value the select can never hold is the one error (the route cannot match because of it)
    assert found == [("order.yaml", 7, 20, "expr-unknown-option")]


def test_shadowed_route_and_missing_default(make_app) -> None:
    routes = (
        '  - name: big\n    when: "qty >= 100"\n    steps:\n'
        "      - {name: s1, approver: {role: boss}}\n"
        "  - name: huge\n    when: \"qty >= 1000 and kind == 'rush'\"\n    steps:\n"
        "      - {name: s1, approver: {role: boss}}\n"
    )
    result = make_app(
        {
            "forms/order.yaml": FORM_OK,
            "forms/customer.yaml": CUSTOMER,
            "flows/order.yaml": FLOW,
            "approvals/order.yaml": approval(routes),
        }
    )
    assert codes(result) == [
        ("order.yaml", 5, 1, "no-default-route"),
        ("order.yaml", 11, 11, "unreachable-route"),
    ]


def test_unknown_state_role_and_unreachable_state(make_app) -> None:
    flow = FLOW.replace("to: done, by", "to: dnoe, by").replace("roles: [clerk]", "roles: [clerc]")
    flow = flow.replace(
        "  rejected: {label: Rejected, final: true}\n",
        "  rejected: {label: Rejected, final: true}\n  limbo: {label: L}\n",
    )
    result = make_app(
        {"forms/order.yaml": FORM_OK, "forms/customer.yaml": CUSTOMER, "flows/order.yaml": flow}
    )
    found = codes(result)
    assert ("order.yaml", 7, 3, "unreachable-state") in found
    assert ("order.yaml", 9, 61, "unknown-role") in found
    assert ("order.yaml", 10, 48, "unknown-state") in found
    severities = {d.code: d.severity for d in result.diagnostics.items}
    assert severities["unreachable-state"] == "warning"
    assert severities["unknown-state"] == "error"


def test_yaml11_boolean_where_text_is_meant_is_reported(make_app) -> None:
    text = "title: T\nfields:\n  ok: {type: select, label: OK, options: [yes, no]}\n"
    result = make_app({"forms/order.yaml": text})
    assert codes(result) == [
        ("order.yaml", 3, 43, "yaml11-boolean"),
        ("order.yaml", 3, 48, "yaml11-boolean"),
    ]
    assert all(d.severity == "warning" for d in result.diagnostics.items)


def test_yaml11_boolean_where_boolean_is_meant_is_an_error(make_app) -> None:
    text = "title: T\nfields:\n  ok: {type: boolean, label: OK, default: yes}\n"
    result = make_app({"forms/order.yaml": text})
    assert codes(result) == [("order.yaml", 3, 43, "yaml11-boolean")]
    assert result.diagnostics.items[0].severity == "error"


def test_people_file_checks(make_app) -> None:
    app = "name: t\ntitle: T\nroles:\n  clerk: {label: C}\npeople: data/people.csv\n"
    people = "user,name,roles,manager\na,A,clerk,b\nb,B,clerc,a\nc,C,clerk,zz\n"
    result = make_app({"app.yaml": app, "data/people.csv": people})
    found = codes(result)
    assert ("people.csv", 3, 5, "unknown-role") in found
    assert ("people.csv", 4, 11, "unknown-person") in found
    assert any(c[3] == "manager-loop" for c in found)


def test_all_problems_reported_at_once_sorted(make_app) -> None:
    result = make_app(
        {
            "forms/b.yaml": "title: B\nfields:\n  x: {type: strng, label: X}\n",
            "forms/a.yaml": "title: A\nfields:\n  r: {type: ref, label: R, form: nope}\n",
        }
    )
    found = codes(result)
    assert [c[0] for c in found] == ["a.yaml", "b.yaml"]


def test_stray_folder_is_reported(make_app) -> None:
    result = make_app({"form/x.yaml": "title: X\n"})
    [(_name, _, _, code)] = codes(result)
    assert code == "stray-folder"
    assert "forms" in result.diagnostics.items[0].hint.en


def test_unknown_field_as_a_key_points_at_the_key(make_app) -> None:
    flow = FLOW + (
        "automations:\n  fix:\n    on: {created: true}\n    steps:\n      - set: {qtty: '1'}\n"
    )
    tests = (
        "cases:\n  - name: c\n    form: order\n    given: {kind: rush, customer: {teir: A}}\n"
        "    expect: {valid: true}\n"
    )
    result = make_app(
        {
            "forms/order.yaml": FORM_OK,
            "forms/customer.yaml": CUSTOMER,
            "flows/order.yaml": flow,
            "tests/t.yaml": tests,
        }
    )
    assert codes(result) == [
        ("order.yaml", 15, 15, "unknown-field"),
        ("t.yaml", 4, 36, "unknown-field"),
    ]


def test_duplicate_names_are_reported(make_app) -> None:
    text = FORM_OK + (
        "rules:\n  - {name: r, check: 'qty > 0', message: m}\n"
        "  - {name: r, check: 'qty < 9', message: m}\n"
    )
    result = make_app({"forms/order.yaml": text, "forms/customer.yaml": CUSTOMER})
    assert codes(result) == [("order.yaml", 8, 12, "duplicate-name")]
    assert "two rules are named 'r'" in result.diagnostics.items[0].message.en
