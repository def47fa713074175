"""One mistake gives one error: error recovery and follow-on suppression (issue 15).

Each case copies the manufacturing pack, makes one realistic one-line mistake and checks that
the first error is at the exact file:line of the mistake and that it is the only one (or one
of at most three) — not the 28 to 59 follow-on errors a dropped file used to cause.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.compile import CompileResult, compile_app
from engine.model.diagnostics import Diagnostic

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"


def copy_pack(tmp_path: Path) -> Path:
    root = tmp_path / "pack"
    shutil.copytree(PACK, root, ignore=shutil.ignore_patterns("schemas"))
    return root


def edit(root: Path, rel: str, old: str, new: str) -> int:
    """Replace the first ``old`` in ``rel`` by ``new``; the line the edit starts on."""
    file = root / rel
    text = file.read_text(encoding="utf-8")
    at = text.index(old)
    file.write_text(text[:at] + new + text[at + len(old) :], encoding="utf-8")
    return text.count("\n", 0, at) + 1 + new[: len(new) - len(new.lstrip("\n"))].count("\n")


def errors(result: CompileResult) -> list[Diagnostic]:
    return [d for d in result.diagnostics.sorted() if d.severity == "error"]


def where(d: Diagnostic, root: Path) -> tuple[str, int]:
    return (Path(d.path).resolve().relative_to(root.resolve()).as_posix(), d.line)


# (id, file, text, mistake, how many errors at most, line offset of the error from the edit)
CASES = [
    (
        "misspelt-required",
        "forms/order.yaml",
        "    required: true\n    min: 1",
        "    requird: true\n    min: 1",
        1,
        0,
    ),
    ("holiday-with-slashes", "app.yaml", "  holidays: []", "  holidays: [2026/12/31]", 1, 0),
    (
        "cron-with-4-fields",
        "flows/order.yaml",
        "on: {field_changed: tracking_no}",
        'on: {schedule: "0 9 * *"}',
        1,
        0,
    ),
    (
        "two-initial-states",
        "flows/order.yaml",
        "submitted: {label: 已提交, color: blue}",
        "submitted: {label: 已提交, color: blue, initial: true}",
        1,
        0,  # reported at the second state marked initial
    ),
    ("unknown-field-type", "forms/order.yaml", "    type: integer", "    type: integr", 1, 0),
    ("misspelt-label", "app.yaml", "sales: {label: 销售}", "sales: {lable: 销售}", 1, 0),
    ("unknown-app-key", "app.yaml", "  holidays: []", "  holidays: []\n  bogus: 1", 1, 1),
    (
        "misspelt-transition-key",
        "flows/order.yaml",
        "    to: submitted\n",
        "    too: submitted\n",
        1,
        0,
    ),
    ("approval-form-typo", "approvals/order.yaml", "form: order", "form: ordr", 1, 0),
    (
        "approval-route-name-misspelt",
        "approvals/order.yaml",
        "  - name: class_b",
        "  - naem: class_b",
        1,
        0,
    ),
    (
        "approval-role-typo",
        "approvals/order.yaml",
        "approver: {role: production_director}",
        "approver: {role: production_directr}",
        1,
        0,
    ),
    (
        "connector-operation-without-path",
        "app.yaml",
        "        path: /api/stock/{sku}\n",
        "",
        1,
        -2,  # reported at the operation that lacks it
    ),
    ("state-renamed", "flows/order.yaml", "  approved: {label", "  approvd: {label", 3, None),
    ("role-deleted", "app.yaml", "  warehouse: {label: 仓储}\n", "", 3, None),
    ("org-chart-missing", "app.yaml", "people: data/people.csv\n", "", 3, None),
]


@pytest.mark.parametrize(
    ("rel", "old", "new", "most", "offset"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_one_mistake_one_error(
    tmp_path: Path, rel: str, old: str, new: str, most: int, offset: int | None
) -> None:
    root = copy_pack(tmp_path)
    line = edit(root, rel, old, new)
    found = errors(compile_app(root))
    assert found, "the mistake must be reported"
    assert len(found) <= most, [d.headline() for d in found]
    if offset is not None:
        assert where(found[0], root) == (rel, line + offset), found[0].headline()


def test_two_initial_states_is_reported_at_the_second(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    line = edit(root, "flows/order.yaml", "color: blue}", "color: blue, initial: true}")
    (only,) = errors(compile_app(root))
    assert where(only, root) == ("flows/order.yaml", line)
    assert only.code == "initial-state"
    assert "'draft' and 'submitted' are both marked initial" in only.headline()
    assert "remove it from 'submitted'" in only.headline()
    assert "都标为 initial" in only.headline("zh")


def test_the_pack_itself_is_clean(tmp_path: Path) -> None:
    result = compile_app(copy_pack(tmp_path))
    assert errors(result) == []
    assert result.ok


def test_root_cause_comes_first(tmp_path: Path) -> None:
    """A dashboard mistake and a form mistake: the form (what the dashboard refers to) is
    listed first, though 'dashboards/' sorts before 'forms/'; errors before warnings."""
    root = copy_pack(tmp_path)
    edit(root, "dashboards/order_health.yaml", "roles: [sales,", "roles: [slaes,")
    form_line = edit(root, "forms/order.yaml", "    type: integer", "    type: integr")
    found = errors(compile_app(root))
    assert [where(d, root)[0] for d in found] == [
        "forms/order.yaml",
        "dashboards/order_health.yaml",
    ]
    assert where(found[0], root) == ("forms/order.yaml", form_line)
    items = compile_app(root).diagnostics.sorted()
    severities = [d.severity for d in items]
    assert severities == sorted(severities, key=lambda s: s != "error")


def test_a_renamed_name_is_one_error_that_says_where_else(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    edit(root, "app.yaml", "  logistics: {label: 物流}", "  logistic: {label: 物流}")
    found = errors(compile_app(root))
    assert len(found) == 1
    (only,) = found
    assert only.code == "unknown-role" and "'logistics'" in only.message.en
    assert only.hint is not None
    assert "did you mean 'logistic'?" in only.hint.en and "also at" in only.hint.en
    assert "另见" in only.hint.zh


def test_validate_ends_with_a_true_summary(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    line = edit(root, "forms/order.yaml", "    required: true\n    min: 1", "    requird: true\n")
    result = CliRunner().invoke(main, ["--app", str(root), "--lang", "en", "validate"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    headlines = [x for x in lines if re.match(r"^\S.*:\d+:\d+: (error|warning): ", x)]
    assert headlines[0].split(": error:")[0].endswith(f"forms/order.yaml:{line}:5")
    errors_shown = sum(": error: " in x for x in headlines)
    warnings_shown = sum(": warning: " in x for x in headlines)
    assert errors_shown == 1
    assert re.fullmatch(r"1 error, \d+ warnings?", lines[-1])
    assert lines[-1].startswith(f"{errors_shown} error")
    assert lines[-1].endswith(f"{warnings_shown} warning" + ("" if warnings_shown == 1 else "s"))


def test_a_form_that_cannot_be_read_does_not_cascade(tmp_path: Path) -> None:
    """A YAML syntax error loses the whole file: the names it would define are not
    reported again everywhere they are used."""
    root = copy_pack(tmp_path)
    line = edit(root, "forms/product.yaml", "title:", "title:\t[")
    found = errors(compile_app(root))
    assert where(found[0], root) == ("forms/product.yaml", line)
    assert len(found) <= 3, [d.headline() for d in found]


# ---------------------------------------------------------------------------- property
_KEY = re.compile(r"^(\s*(?:- )?)([a-z_][a-z0-9_]*):(\s|$)")
_FILES = ("app.yaml", "forms/order.yaml", "flows/order.yaml", "approvals/order.yaml")


def _mutations() -> list[tuple[str, int, str]]:
    """Every 23rd key line of the four files the issue names: misspelt, or (a leaf) deleted."""
    out = []
    for rel in _FILES:
        lines = (PACK / rel).read_text(encoding="utf-8").splitlines()
        keyed = [i for i, x in enumerate(lines) if _KEY.match(x)]
        for n, i in enumerate(keyed[::23]):
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            indent = len(lines[i]) - len(lines[i].lstrip())
            leaf = not nxt.strip() or len(nxt) - len(nxt.lstrip()) <= indent
            out.append((rel, i, "delete" if leaf and n % 2 else "misspell"))
    return out


def test_single_key_mistakes_give_at_most_three_errors(tmp_path: Path) -> None:
    root = copy_pack(tmp_path)
    worst = []
    for rel, i, how in _mutations():
        file = root / rel
        original = file.read_text(encoding="utf-8")
        lines = original.splitlines(keepends=True)
        if how == "delete":
            del lines[i]
        else:
            key = _KEY.match(lines[i]).group(2)  # type: ignore[union-attr]
            wrong = key[:-2] + key[-1] + key[-2] if len(key) > 2 else key + "x"
            lines[i] = lines[i].replace(f"{key}:", f"{wrong}:", 1)
        file.write_text("".join(lines), encoding="utf-8")
        try:
            found = errors(compile_app(root))
        finally:
            file.write_text(original, encoding="utf-8")
        if len(found) > 3:
            worst.append((rel, i + 1, how, [d.headline() for d in found[:5]]))
    assert worst == []
