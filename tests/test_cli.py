"""The command line: validate (text and json), schema, eval — as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from engine.cli.main import main
from engine.config.schema_docs import render_reference
from engine.config.schemas import KINDS, schema_file_name, schema_for, schema_json

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "examples" / "manufacturing_pack"
STARTER = ROOT / "configs"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_pack_and_starter_validate_clean() -> None:
    for app in (PACK, STARTER):
        code, out, err = run("--app", str(app), "validate")
        assert code == 0, out + err
        assert "0 " in out


def test_validate_reports_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "forms").mkdir()
    (tmp_path / "app.yaml").write_text("name: x\ntitle: X\nroles: {a: {label: A}}\n")
    (tmp_path / "forms" / "f.yaml").write_text("title: F\nfields:\n  q: {type: integr, label: Q}\n")
    code, out, err = run("--app", str(tmp_path), "--lang", "en", "validate")
    assert code == 1
    assert "f.yaml:3:13: error: 'integr' is not allowed here — did you mean 'integer'?" in err
    assert "  3 |   q: {type: integr, label: Q}" in err
    assert "^~~~~~" in err
    assert "Traceback" not in out + err


def test_validate_json_format(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        "name: x\ntitle: X\nroles: {a: {label: A}}\nlocale: zh-CN\ntimezone: 1\n"
    )
    code, out, _ = run("--app", str(tmp_path), "validate", "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    [d] = report["diagnostics"]
    assert (d["line"], d["col"], d["code"], d["severity"]) == (5, 11, "wrong-type", "error")
    assert "应为文本" in d["message"]  # the app's locale picks Chinese


def test_eval_prints_the_calendar_example() -> None:
    code, out, _ = run("--app", str(PACK), "eval", "add_workdays(date(2026, 9, 30), 3)")
    assert (code, out.strip()) == (0, "2026-10-10")


def test_eval_with_form_and_values() -> None:
    code, out, _ = run(
        "--app",
        str(PACK),
        "eval",
        "quantity * product.unit_price",
        "--form",
        "order",
        "--values",
        '{"quantity": 3, "product": {"unit_price": 12.5}}',
    )
    assert (code, out.strip()) == (0, "37.5")


def test_eval_rule_with_fixed_today() -> None:
    code, out, _ = run(
        "--app",
        str(PACK),
        "eval",
        "desired_date >= add_workdays(today(), 3)",
        "--form",
        "order",
        "--values",
        '{"desired_date": "2026-10-09"}',
        "--today",
        "2026-09-30",
    )
    assert (code, out.strip()) == (0, "false")


def test_eval_reports_unknown_field_with_caret() -> None:
    code, _, err = run(
        "--app",
        str(PACK),
        "--lang",
        "en",
        "eval",
        "quantity * product.unit_prise",
        "--form",
        "order",
    )
    assert code == 1
    assert "did you mean 'unit_price'" in err
    lines = err.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.strip() == "^")
    assert lines[caret].index("^") == lines[caret - 1].index("unit_prise") - 1 or lines[
        caret
    ].index("^") == lines[caret - 1].index(".unit_prise")


def test_eval_warns_about_unknown_calendar_year() -> None:
    code, out, err = run(
        "--app", str(PACK), "--lang", "en", "eval", "add_workdays(date(2027, 3, 1), 3)"
    )
    assert code == 0
    assert out.strip() == "2027-03-04"
    assert "2027" in err and "outside the working-day calendar" in err


def test_eval_refuses_hostile_input() -> None:
    for hostile in (
        "__import__('os').system('true')",
        "().__class__.__bases__",
        "9**9**9",
        "'a' * 10**9",
    ):
        code, out, err = run("--app", str(PACK), "eval", hostile)
        assert code == 1, (hostile, out)
        assert "Traceback" not in err


def test_schema_writes_every_kind(tmp_path: Path) -> None:
    code, _, _ = run("schema", "--out", str(tmp_path))
    assert code == 0
    for kind in KINDS:
        written = json.loads((tmp_path / schema_file_name(kind)).read_text())
        assert written["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_shipped_schemas_and_reference_are_current() -> None:
    for folder in (STARTER / "schemas", PACK / "schemas"):
        for kind in KINDS:
            assert (folder / schema_file_name(kind)).read_text() == schema_json(kind), (
                f"{folder} is stale: run seamline schema --out {folder}"
            )
    assert (ROOT / "docs" / "yaml-reference.md").read_text() == render_reference(), (
        "docs/yaml-reference.md is stale: run seamline schema --docs docs/yaml-reference.md"
    )


def _undocumented(schema: object, path: str = "") -> list[str]:
    missing = []
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if isinstance(prop, dict) and "description" not in prop and "const" not in prop:
                missing.append(f"{path}.{name}")
        for key, value in schema.items():
            if key != "if":
                missing += _undocumented(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, item in enumerate(schema):
            missing += _undocumented(item, f"{path}[{i}]")
    return missing


def test_every_schema_key_is_documented() -> None:
    for kind in KINDS:
        assert _undocumented(schema_for(kind)) == [], kind


def test_every_schema_object_is_closed() -> None:
    def walk(node: object) -> list[str]:
        bad = []
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and "allOf" not in node
            ):
                bad.append(str(sorted(node["properties"]))[:80])
            for key, value in node.items():
                if key not in ("if",):
                    bad += walk(value)
        elif isinstance(node, list):
            for item in node:
                bad += walk(item)
        return bad

    for kind in KINDS:
        assert walk(schema_for(kind)) == [], kind


def test_console_script_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "--app", str(PACK), "validate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
