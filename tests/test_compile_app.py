"""The compiled App: immutable, complete, and built without a database or network library."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from engine.compile import compile_app
from engine.expressions import EvalEnv

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"


def test_compile_imports_no_database_or_network_library() -> None:
    code = (
        "import sys; from engine.compile import compile_app; "
        f"r = compile_app({str(PACK)!r}); assert r.ok; "
        "bad = [m for m in ('sqlalchemy', 'httpx', 'starlette', 'psycopg') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_pack_app_is_complete_and_frozen() -> None:
    result = compile_app(PACK)
    app = result.app
    assert app is not None
    assert app.locale == "zh-CN" and app.calendar.base == "cn"
    assert set(app.roles) >= {
        "sales",
        "customer_service",
        "warehouse",
        "finance",
        "procurement",
        "engineering",
        "production_director",
        "general_manager",
        "logistics",
    }
    order = app.forms["order"]
    assert order.field("communication_log").append_only
    assert order.field("special_process").type == "multiselect"
    approval = app.approvals["order"]
    assert [r.name for r in approval.routes] == ["class_a", "class_c", "class_b"]
    assert [r.name for r in approval.add_steps] == ["class_d"]
    assert approval.params["large_order_amount"] == 500000
    assert app.people["li.sales"].manager == "sun.sales"
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.name = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        app.forms["x"] = order  # type: ignore[index]
    assert len(app.content_hash) == 64


def test_pack_rule_uses_the_holiday_calendar() -> None:
    from engine.model.calendar import WorkCalendar

    app = compile_app(PACK).app
    assert app is not None
    rule = app.forms["order"].rules[0]
    env = EvalEnv(
        calendar=WorkCalendar(app.calendar),
        now=lambda: __import__("datetime").datetime(2026, 9, 30, 10, 0),
    )
    assert rule.check({"desired_date": date(2026, 10, 9)}, env) is False
    assert rule.check({"desired_date": date(2026, 10, 10)}, env) is True


def test_config_tests_route_names_are_checked(tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "pack"
    shutil.copytree(PACK, root)
    tests = root / "tests" / "approval_routes.yaml"
    tests.write_text(
        tests.read_text(encoding="utf-8").replace("route: class_a", "route: class_x", 1),
        encoding="utf-8",
    )
    result = compile_app(root)
    [d] = result.diagnostics.errors
    assert d.code == "unknown-route" and d.line == 13
    assert d.hint is not None and "did you mean" in d.hint.en


def test_same_content_same_hash(tmp_path: Path) -> None:
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(PACK, a)
    shutil.copytree(PACK, b)
    assert compile_app(a).app.content_hash == compile_app(b).app.content_hash  # type: ignore[union-attr]
    (b / "forms" / "order.yaml").write_text(
        (b / "forms" / "order.yaml").read_text(encoding="utf-8") + "\n# note\n", encoding="utf-8"
    )
    assert compile_app(a).app.content_hash != compile_app(b).app.content_hash  # type: ignore[union-attr]
