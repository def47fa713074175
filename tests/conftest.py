"""Shared fixtures: build an app folder from YAML strings and compile it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.compile import CompileResult, compile_app

MINIMAL_APP = """\
name: t
title: Test app
locale: en
calendar: cn
roles:
  clerk: {label: Clerk}
  boss: {label: Boss}
"""

MINIMAL_FORM = """\
title: Item
fields:
  name: {type: text, label: Name, required: true}
  qty: {type: integer, label: Qty, min: 0}
"""


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., CompileResult]:
    """``make_app({"forms/x.yaml": "..."})`` writes a workspace and compiles it.

    app.yaml defaults to a minimal valid app; pass ``"app.yaml": ...`` to replace it.
    """

    def build(files: dict[str, str], *, with_app: bool = True) -> CompileResult:
        root = tmp_path / "app"
        root.mkdir(exist_ok=True)
        all_files = {"app.yaml": MINIMAL_APP} if with_app else {}
        all_files.update(files)
        for rel, text in all_files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text), encoding="utf-8")
        return compile_app(root)

    return build


def codes(result: CompileResult) -> list[tuple[str, int, int, str]]:
    """(file name, line, col, code) of every diagnostic, sorted."""
    return [(Path(d.path).name, d.line, d.col, d.code) for d in result.diagnostics.sorted()]


# ---------------------------------------------------------------------------- databases
import os  # noqa: E402
import uuid  # noqa: E402

PG_URL = os.environ.get("SEAMLINE_TEST_PG_URL")
DB_KINDS = ["sqlite", "postgresql"]


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A URL to a fresh, empty database: a SQLite file, and (when SEAMLINE_TEST_PG_URL is
    set) a new PostgreSQL database created for this test and dropped after it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not PG_URL:
        pytest.skip("SEAMLINE_TEST_PG_URL is not set")
    import sqlalchemy as sa

    name = f"sl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = sa.engine.make_url(PG_URL)
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
