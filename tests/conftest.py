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
