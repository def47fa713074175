"""``seamline test``: config tests judged like the running app judges a record, without a
database — against the manufacturing pack and against small apps built in tmp_path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli.config_tests import run_config_tests, same_value
from engine.cli.main import main
from engine.compile import compile_app

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "examples" / "manufacturing_pack"

APP = """\
name: shop
title: Shop
locale: en
timezone: Asia/Shanghai
calendar: {base: cn}
roles:
  clerk: {label: Clerk}
  boss: {label: Boss}
  buyer: {label: Buyer}
people: data/people.csv
"""

PEOPLE = """\
user,name,roles,manager
ann,Ann,clerk,bob
cid,Cid,clerk,bob
bob,Bob,boss,
eve,Eve,buyer,bob
"""

SUPPLIER = """\
title: Supplier
title_field: name
fields:
  name: {type: text, label: Name, required: true}
  grade: {type: select, label: Grade, options: [gold, plain], default: plain}
"""

ORDER = """\
title: Purchase
fields:
  supplier: {type: ref, label: Supplier, form: supplier, required: true}
  qty: {type: integer, label: Qty, required: true, min: 1}
  price: {type: money, label: Price, required: true}
  needed_by: {type: date, label: Needed by}
  reason: {type: text, label: Reason}
  total:
    type: computed
    label: Total
    expr: "qty * price"
    result: money
rules:
  - name: lead_time
    check: "needed_by >= add_workdays(today(), 3)"
    when: "needed_by != None"
    field: needed_by
    message: Needed by must be at least 3 working days away.
"""

FLOW = """\
form: purchase
states:
  draft: {label: Draft, initial: true, editable: true}
  sent: {label: Sent}
  done: {label: Done, final: true}
transitions:
  send:
    label: Send
    from: draft
    to: sent
    roles: [clerk]
    require: [reason]
  close:
    label: Close
    from: sent
    to: done
    roles: [boss]
    guard: "total < 1000"
    guard_message: Big purchases cannot be closed here.
  decided:
    label: Decided
    from: sent
    to: done
    by: system
"""

APPROVAL = """\
form: purchase
start: {state_entered: sent}
on_approved: decided
on_rejected: decided
params: {big: 1000}
routes:
  - name: gold
    when: "supplier.grade == 'gold'"
    steps:
      - name: clerks
        any_of: [{role: clerk}]
  - name: normal
    default: true
    steps:
      - name: clerks
        all_of: [{role: clerk}, {role: buyer}]
add_steps:
  - name: big_money
    when: "total >= params.big"
    steps:
      - name: boss
        approver: {role: boss}
"""


def write_app(root: Path, cases: str, **extra: str) -> Path:
    files = {
        "app.yaml": APP,
        "data/people.csv": PEOPLE,
        "forms/supplier.yaml": SUPPLIER,
        "forms/purchase.yaml": ORDER,
        "flows/purchase.yaml": FLOW,
        "approvals/purchase.yaml": APPROVAL,
        "tests/cases.yaml": cases,
        **extra,
    }
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_json(app: Path) -> tuple[int, list[dict[str, Any]]]:
    code, out, err = run("--app", str(app), "test", "--json")
    assert "Traceback" not in out + err
    return code, json.loads(out)


def case(name: str, given: str, expect: str, extra: str = "") -> str:
    return f"""\
  - name: {name}
    form: purchase
    today: "2026-11-25"
    given: {given}
    expect: {expect}
{extra}"""


def cases(*items: str) -> str:
    return "cases:\n" + "".join(items)


GOOD = "{supplier: {name: Acme, grade: gold}, qty: 2, price: 300, needed_by: '2026-12-10'}"
BIG = "{supplier: {name: Acme}, qty: 10, price: 300, needed_by: '2026-12-10'}"


# ---------------------------------------------------------------------- the pack


def test_pack_cases_all_pass() -> None:
    code, out, err = run("--app", str(PACK), "test")
    assert code == 0, out + err
    app = compile_app(PACK).app
    assert app is not None and len(app.tests) >= 10
    assert "approval_routes.yaml" in out
    assert f"共 {len(app.tests)} 个用例：{len(app.tests)} 个通过，0 个失败" in out
    assert "✗" not in out


def test_pack_json_lists_every_case_with_its_route() -> None:
    code, results = run_json(PACK)
    assert code == 0
    assert all(r["passed"] for r in results)
    first = results[0]
    assert first["route"]["route"] == "class_a"
    assert first["route"]["approvers"] == {"director": ["zhou.pd"]}
    assert first["values"]["amount"] == "12000.00"
    app = compile_app(PACK).app
    assert app is not None
    wanted = {t.name: list(t.expect["errors"]) for t in app.tests if "errors" in t.expect}
    assert wanted  # the pack shows a rule refusing a date
    for result in results:
        if result["case"] in wanted:
            assert sorted({e["field"] for e in result["errors"]}) == sorted(wanted[result["case"]])


def test_pack_runs_in_english_on_request() -> None:
    code, out, _ = run("--app", str(PACK), "--lang", "en", "test")
    assert code == 0
    assert "cases:" in out and "0 failed" in out


# ---------------------------------------------------------------------- small apps


def test_passing_cases_exit_0(tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        cases(
            case("gold route", GOOD, "{valid: true, route: gold, added: [], steps: [clerks]}"),
            case(
                "big adds the boss",
                BIG,
                "{route: normal, added: [big_money], steps: [clerks, boss],"
                " approvers: {clerks: [eve, cid, ann], boss: [bob]}, values: {total: 3000}}",
            ),
        ),
    )
    code, out, err = run("--app", str(app), "test")
    assert code == 0, out + err
    assert "2 cases: 2 passed, 0 failed" in out


def test_failing_route_reports_expected_and_actual(tmp_path: Path) -> None:
    app = write_app(tmp_path, cases(case("wrong route", GOOD, "{route: normal, steps: [boss]}")))
    code, out, _ = run("--app", str(app), "test")
    assert code == 1
    assert "✗" in out
    assert "route: expected normal, got gold" in out
    assert "steps: expected [boss], got [clerks]" in out
    assert "route: gold (clerks)" in out  # what happened
    assert "1 case: 0 passed, 1 failed" in out
    code, results = run_json(app)
    assert code == 1
    [result] = results
    assert result["passed"] is False
    assert {"check": "route", "expected": "normal", "actual": "gold"} in result["failures"]
    assert result["line"] == 2 and result["file"].endswith("cases.yaml")


def test_wrong_errors_expectation_fails(tmp_path: Path) -> None:
    late = "{supplier: {name: A}, qty: 2, price: 3, needed_by: '2026-11-26'}"
    app = write_app(
        tmp_path,
        cases(
            case("right errors", late, "{valid: false, errors: [needed_by]}"),
            case("missing one", late, "{errors: [qty]}"),
            case(
                "extra one",
                "{supplier: {name: A}, price: 3, needed_by: '2026-11-26'}",
                "{errors: [needed_by]}",
            ),
            case("valid expected", late, "{valid: true}"),
        ),
    )
    code, results = run_json(app)
    assert code == 1
    passed = {r["case"]: r["passed"] for r in results}
    assert passed == {
        "right errors": True,
        "missing one": False,
        "extra one": False,
        "valid expected": False,
    }
    extra = next(r for r in results if r["case"] == "extra one")
    [failure] = extra["failures"]
    assert failure["expected"] == ["needed_by"]
    assert failure["actual"] == ["needed_by", "qty"]
    assert "Qty is required" in failure["reasons"]
    code, out, _ = run("--app", str(app), "test")
    assert "errors: expected [qty], got [needed_by]" in out
    assert "needed_by: Needed by must be at least 3 working days away." in out


def test_values_compare_numerically(tmp_path: Path) -> None:
    given = "{supplier: {name: A}, qty: 4, price: 2.5, needed_by: '2026-12-10'}"
    app = write_app(
        tmp_path,
        cases(
            case("integer", given, "{values: {total: 10}}"),
            case("float", given, "{values: {total: 10.0}}"),
            case("text", given, "{values: {total: '10.00'}}"),
            case("date", given, "{values: {needed_by: '2026-12-10'}}"),
            case("wrong", given, "{values: {total: 10.01}}"),
        ),
    )
    code, results = run_json(app)
    assert code == 1
    assert [r["passed"] for r in results] == [True, True, True, True, False]
    assert results[-1]["failures"] == [
        {"check": "values.total", "expected": 10.01, "actual": "10.00"}
    ]


def test_today_is_honoured(tmp_path: Path) -> None:
    given = "{supplier: {name: A}, qty: 1, price: 1, needed_by: '2026-10-09'}"
    holiday = case("before the holiday", given, "{errors: [needed_by]}").replace(
        "2026-11-25", "2026-09-30"
    )
    after = case("days later", given, "{valid: true}").replace("2026-11-25", "2026-09-20")
    app = write_app(tmp_path, cases(holiday, after))
    code, results = run_json(app)
    assert code == 0, results
    assert [r["passed"] for r in results] == [True, True]


def test_transitions_allowed_and_refused(tmp_path: Path) -> None:
    with_reason = "{supplier: {name: A}, qty: 1, price: 1, reason: stock}"
    no_reason = "{supplier: {name: A}, qty: 1, price: 1}"
    app = write_app(
        tmp_path,
        cases(
            case("clerk sends", with_reason, "{transition: send}", "    as_role: clerk\n"),
            case(
                "boss may not send",
                with_reason,
                "{refused_transition: send}",
                "    as_role: boss\n",
            ),
            case(
                "reason required", no_reason, "{refused_transition: send}", "    as_role: clerk\n"
            ),
            case(
                "not from sent",
                with_reason,
                "{refused_transition: send}",
                "    state: sent\n    as_role: clerk\n",
            ),
            case(
                "guard holds",
                with_reason,
                "{transition: close}",
                "    state: sent\n    as_role: boss\n",
            ),
            case(
                "wrongly expected",
                BIG,
                "{transition: close}",
                "    state: sent\n    as_role: boss\n",
            ),
            case(
                "wrongly refused", with_reason, "{refused_transition: send}", "    as_role: clerk\n"
            ),
        ),
    )
    code, results = run_json(app)
    assert code == 1
    passed = {r["case"]: r["passed"] for r in results}
    assert passed == {
        "clerk sends": True,
        "boss may not send": True,
        "reason required": True,
        "not from sent": True,
        "guard holds": True,
        "wrongly expected": False,
        "wrongly refused": False,
    }
    guard = next(r for r in results if r["case"] == "wrongly expected")["failures"][0]
    assert guard == {
        "check": "transition",
        "expected": "allowed",
        "actual": "refused",
        "reasons": ["Big purchases cannot be closed here."],
    }
    code, out, _ = run("--app", str(app), "test")
    assert "transition: expected allowed, got refused" in out
    assert "refused_transition: expected refused, got allowed" in out


def test_referenced_record_refusing_a_given_value_fails_the_case(tmp_path: Path) -> None:
    given = "{supplier: {name: A, grade: platinum}, qty: 1, price: 1}"
    app = write_app(tmp_path, cases(case("bad grade", given, "{valid: true}")))
    code, results = run_json(app)
    assert code == 1
    [failure] = results[0]["failures"]
    assert failure["check"] == "given" and failure["actual"] == ["supplier.grade"]
    assert "'platinum' is not one of the choices" in failure["reasons"][0]


def test_chinese_locale_and_no_cases(tmp_path: Path) -> None:
    app = write_app(tmp_path, cases(case("wrong", GOOD, "{route: normal}")))
    (app / "app.yaml").write_text(APP.replace("locale: en", "locale: zh-CN"), encoding="utf-8")
    code, out, _ = run("--app", str(app), "test")
    assert code == 1
    assert "route：期望 normal，实际 gold" in out
    assert "共 1 个用例：0 个通过，1 个失败" in out
    (app / "tests" / "cases.yaml").unlink()
    code, out, _ = run("--app", str(app), "test")
    assert code == 0
    assert "没有配置测试" in out
    code, results = run_json(app)
    assert (code, results) == (0, [])


def test_broken_app_exits_2_with_diagnostics(tmp_path: Path) -> None:
    app = write_app(tmp_path, cases(case("route", GOOD, "{route: golden}")))
    code, out, err = run("--app", str(app), "test")
    assert code == 2
    assert "cases.yaml:6:21: error: unknown route 'golden'" in err
    assert "golden" in err and "gold" in err
    assert "fix them first" in err
    assert "Traceback" not in out + err
    code, out, err = run("--app", str(app), "test", "--json")
    assert code == 2 and out == ""


def test_same_value_rules() -> None:
    from datetime import date, datetime
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    tz = "Asia/Shanghai"
    assert same_value(12000, Decimal("12000.00"), tz)
    assert same_value("12000", Decimal("12000.00"), tz)
    assert not same_value(12000.5, Decimal("12000.00"), tz)
    assert same_value("2026-12-10", date(2026, 12, 10), tz)
    assert same_value(date(2026, 12, 10), date(2026, 12, 10), tz)
    assert same_value("2026-12-10T09:00", datetime(2026, 12, 10, 9, 0, tzinfo=ZoneInfo(tz)), tz)
    assert same_value(None, None, tz) and not same_value(0, None, tz)
    assert not same_value("abc", Decimal(1), tz)


@pytest.mark.parametrize("app_dir", [PACK, ROOT / "configs"])
def test_library_api_matches_the_command(app_dir: Path) -> None:
    app = compile_app(app_dir).app
    assert app is not None
    assert all(r.passed for r in run_config_tests(app))


def test_ref_given_as_a_bare_id_reads_as_blanks(tmp_path: Path) -> None:
    given = "{supplier: 7, qty: 1, price: 2}"
    app = write_app(tmp_path, cases(case("bare id", given, "{route: normal, values: {total: 2}}")))
    code, results = run_json(app)
    assert code == 0, results
