"""Compile a stored bundle (:mod:`engine.config.bundle`): what every server and worker runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from engine.compile import CompileResult, compile_app


def compile_bundle(bundle: dict[str, str]) -> CompileResult:
    """Compile a stored bundle (written to a temporary folder, then loaded as usual)."""
    with tempfile.TemporaryDirectory(prefix="seamline-") as tmp:
        root = Path(tmp)
        for rel, text in bundle.items():
            target = (root / rel).resolve()
            if not target.is_relative_to(root.resolve()):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        return compile_app(root)
