"""Issue 15, types and semantic lints: mistakes that used to pass `seamline validate` with
exit 0 and silently change behaviour. Each is made once in a copy of the pack; it must give
exactly one diagnostic, at the exact file:line:col, with a hint, in English and Chinese. The
pack as shipped is clean."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.compile import compile_app
from engine.compile.approvals import meant_number
from engine.model.diagnostics import Diagnostic

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"
# the pack's working-day calendar warning depends on today's date (issue 15, calendar
# coverage): it is not one of these mistakes
DATED = {"calendar-ends-soon"}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(PACK, root, ignore=shutil.ignore_patterns("schemas", "tests"))
    return root


def found(root: Path) -> list[Diagnostic]:
    result = compile_app(root)
    return [d for d in result.diagnostics.sorted() if d.code not in DATED]


def edit(root: Path, rel: str, old: str, new: str) -> tuple[int, str]:
    """Replace ``old`` by ``new`` once in ``rel``; returns (line, text of that line)."""
    file = root / rel
    text = file.read_text(encoding="utf-8")
    assert text.count(old) >= 1, (rel, old)
    at = text.index(old)
    file.write_text(text.replace(old, new, 1), encoding="utf-8")
    line = text[:at].count("\n") + 1
    return line, (text[:at] + new).splitlines()[line - 1 :][0]


def at(line_text: str, token: str) -> int:
    """1-based column of ``token`` on the line."""
    assert token in line_text, (line_text, token)
    return line_text.index(token) + 1


def only(root: Path, severity: str = "error") -> Diagnostic:
    items = found(root)
    assert len(items) == 1, [(Path(d.path).name, d.line, d.col, d.code) for d in items]
    (item,) = items
    assert item.severity == severity
    assert item.hint is not None, item
    for text in (item.message, item.hint):
        assert CJK.search(text.zh) and text.en != text.zh, text
        for leak in ("datetime.", "Traceback", "{'", "\\d", "^("):
            assert leak not in text.en and leak not in text.zh, text
    return item


def where(item: Diagnostic) -> tuple[str, int, int, str]:
    return (Path(item.path).name, item.line, item.col, item.code)


def test_the_pack_as_shipped_is_clean(pack: Path) -> None:
    assert found(pack) == []


# ---------------------------------------------------------------------------- types
def test_param_with_thousands_separator(pack: Path) -> None:
    line, text = edit(
        pack, "approvals/order.yaml", "large_order_amount: 500000", "large_order_amount: 500,000"
    )
    item = only(pack)
    assert where(item) == ("order.yaml", line, at(text, "500,000"), "number-as-text")
    assert "500000" in item.hint.en and "500000" in item.hint.zh


@pytest.mark.parametrize(
    ("text", "number"),
    [("500,000", "500000"), ("50万", "500000"), ("5e5", "500000"), ("¥1,000.50", "1000.5"),
     ("east", None), ("VIP", None), ("2026-12-31", None)],
)  # fmt: skip
def test_what_a_param_was_meant_to_be(text: str, number: str | None) -> None:
    assert meant_number(text) == number


def test_date_field_compared_with_text(pack: Path) -> None:
    line, text = edit(
        pack,
        "forms/order.yaml",
        "desired_date >= add_workdays(today(), 3)",
        "desired_date >= '2026-12-31'",
    )
    item = only(pack)
    assert where(item) == ("order.yaml", line, at(text, "'2026-12-31'"), "expr-type-mismatch")
    assert "date('2026-12-31')" in item.hint.en


def test_number_compared_with_quoted_param(pack: Path) -> None:
    edit(pack, "approvals/order.yaml", "large_order_amount: 500000", 'large_order_amount: "500000"')
    item = only(pack)
    # the quoted value is plain text ("500000" cannot be meant as anything else) …
    assert item.code == "expr-type-mismatch"
    # … and the error is where it is compared with a number: class D's condition
    rule = (pack / "approvals/order.yaml").read_text(encoding="utf-8").splitlines()
    row = next(i for i, r in enumerate(rule, 1) if "amount >= params.large_order_amount" in r)
    assert (item.line, item.col) == (row, at(rule[row - 1], "params.large_order_amount"))


def test_thousands_separator_inside_an_expression(pack: Path) -> None:
    line, text = edit(
        pack,
        "approvals/order.yaml",
        '"amount >= params.large_order_amount"',
        '"amount >= 500,000"',
    )
    item = only(pack)
    assert where(item) == ("order.yaml", line, at(text, "amount"), "expr-thousands-separator")
    assert "amount >= 500000" in item.hint.en


def test_select_compared_with_a_value_not_among_its_options(pack: Path) -> None:
    line, text = edit(
        pack, "approvals/order.yaml", "customer.tier == 'VIP'", "customer.tier == 'vip'"
    )
    item = only(pack)
    assert where(item) == ("order.yaml", line, at(text, "'vip'"), "expr-unknown-option")
    assert "'VIP'" in item.hint.en


def test_state_typo_in_a_kpi_filter_is_an_error(pack: Path) -> None:
    line, text = edit(
        pack, "dashboards/outcomes.yaml", "state not in ('draft'", "state not in ('draf'"
    )
    item = only(pack)
    assert where(item) == ("outcomes.yaml", line, at(text, "'draf'"), "expr-unknown-option")
    assert "'draft'" in item.hint.en


# ---------------------------------------------------------------------------- templates
def test_approval_template_uses_a_field_the_form_lacks(pack: Path) -> None:
    line, text = edit(
        pack,
        "templates/messages/approval_task.md",
        "record.order_no }}\n\n",
        "record.order_number }}\n\n",
    )
    item = only(pack)
    assert where(item) == (
        "approval_task.md", line, at(text, "order_number"), "template-unknown-field"
    )  # fmt: skip
    assert "'order_no'" in item.hint.en


def test_automation_template_uses_a_field_the_ref_form_lacks(pack: Path) -> None:
    line, text = edit(
        pack,
        "templates/messages/progress.md",
        "{{ record.customer.name }}",
        "{{ record.customer.nmae }}",
    )
    item = only(pack)
    assert where(item) == ("progress.md", line, at(text, "nmae"), "template-unknown-field")
    assert "'name'" in item.hint.en


def test_template_uses_a_name_the_message_is_not_given(pack: Path) -> None:
    line, text = edit(
        pack, "templates/messages/progress.md", "stage.get(entered, state_label) }}\n您好",
        "stage.get(entered, stage_label) }}\n您好",
    )  # fmt: skip
    item = only(pack)
    assert where(item) == ("progress.md", line, at(text, "stage_label"), "template-unknown-name")
    assert "'state_label'" in item.hint.en


# ---------------------------------------------------------------------------- routes, people
def test_overlapping_routes_warn_with_an_example_record(pack: Path) -> None:
    line, text = edit(
        pack,
        "approvals/order.yaml",
        "when: \"order_type == 'trial'\"",
        "when: \"order_type == 'trial' or amount > 100000\"",
    )
    item = only(pack, "warning")
    assert where(item) == ("order.yaml", line, at(text, '"order_type'), "routes-overlap")
    message = item.message.en
    assert "'class_c'" in message and "'class_a'" in message
    assert "amount = 100001" in message and "customer.tier = 'VIP'" in message
    assert "order_type = 'rush'" in message


def test_approver_role_nobody_holds(pack: Path) -> None:
    edit(
        pack, "data/people.csv", "wang.gm,王建国,general_manager,", "wang.gm,王建国,sales_manager,"
    )
    item = only(pack)
    approval = (pack / "approvals/order.yaml").read_text(encoding="utf-8").splitlines()
    row = next(i for i, r in enumerate(approval, 1) if "{role: general_manager}" in r)
    assert where(item) == (
        "order.yaml", row, at(approval[row - 1], "general_manager"), "role-not-held"
    )  # fmt: skip
    assert "data/people.csv" in item.hint.en


# ---------------------------------------------------------------------------- dashboards, money
def test_kpi_thresholds_reversed(pack: Path) -> None:
    line, _ = edit(
        pack,
        "dashboards/outcomes.yaml",
        'green: "<= 2.5"\n    amber: "<= 8"',
        'green: "<= 8"\n    amber: "<= 2.5"',
    )
    item = only(pack)
    amber = (pack / "dashboards/outcomes.yaml").read_text(encoding="utf-8").splitlines()[line]
    assert where(item) == ("outcomes.yaml", line + 1, at(amber, '"<= 2.5"'), "thresholds-reversed")
    assert 'green: "<= 2.5", amber: "<= 8"' in item.hint.en


def test_rate_threshold_written_as_a_fraction(pack: Path) -> None:
    line, text = edit(pack, "dashboards/outcomes.yaml", 'green: ">= 99"', 'green: ">= 0.99"')
    item = only(pack)
    assert where(item) == ("outcomes.yaml", line, at(text, '">= 0.99"'), "rate-as-fraction")
    assert '">= 99"' in item.hint.en


def test_rate_threshold_outside_0_to_100(pack: Path) -> None:
    line, text = edit(pack, "dashboards/outcomes.yaml", 'amber: ">= 95"', 'amber: ">= 950"')
    item = only(pack)
    assert where(item) == ("outcomes.yaml", line, at(text, '">= 950"'), "rate-out-of-range")


def test_currency_that_is_not_an_iso_code(pack: Path) -> None:
    line, _ = edit(pack, "forms/product.yaml", "type: money\n", "type: money\n    currency: RMB\n")
    item = only(pack)
    assert where(item) == ("product.yaml", line + 1, 15, "unknown-currency")
    assert "CNY" in item.hint.en


# ---------------------------------------------------------------------------- seamline eval
def test_eval_never_prints_a_python_error() -> None:
    runner = CliRunner()
    for lang in ("en", "zh"):
        checked = runner.invoke(
            main,
            ["--lang", lang, "--app", str(PACK), "eval", "--form", "order",
             "desired_date < '2026-12-31'", "--values", '{"desired_date": "2026-11-01"}'],
        )  # fmt: skip
        assert checked.exit_code == 1
        assert "date('2026-12-31')" in checked.stderr
        # a value of the wrong type only known at run time: plain words, no Python names
        ran = runner.invoke(
            main,
            ["--lang", lang, "--app", str(PACK), "eval", "--form", "order",
             "desired_date < today()", "--values", '{"desired_date": "soon"}'],
        )  # fmt: skip
        assert ran.exit_code == 1
        for output in (checked.stderr, ran.stderr):
            assert "datetime" not in output and "'str'" not in output, output
            assert "instances of" not in output, output
        if lang == "zh":
            assert CJK.search(ran.stderr), ran.stderr
