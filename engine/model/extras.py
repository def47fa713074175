"""What the installation or the settings cannot do, said plainly: which extra to install,
which database URL to write. Raised as :class:`SetupError`; the CLI prints it without a
traceback, a job that meets it fails with the same words (and runs again once fixed)."""

from __future__ import annotations

import importlib

from engine.model.i18n import Text

__all__ = ["EXTRAS", "SetupError", "require"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg", "procrastinate"),
    "pdf": ("fpdf", "fontTools"),
}
"""The optional parts of ``pip install 'seamline[...]'`` and the modules each one brings."""


class SetupError(RuntimeError):
    """The installation or the settings stop an action; ``text`` says what to change."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


def require(extra: str, *modules: str, purpose: Text) -> None:
    """Import ``modules`` (default: all of ``extra``'s); when one is missing raise a
    :class:`SetupError` naming ``purpose`` and the ``pip install`` line that brings it."""
    missing = []
    for name in modules or EXTRAS[extra]:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        shown = ", ".join(missing)
        raise SetupError(
            Text(
                f"{purpose.en} needs the '{extra}' extra, which is not installed (missing: "
                f"{shown}): pip install 'seamline[{extra}]'",
                f"{purpose.zh}需要安装可选组件 '{extra}'（缺少：{shown}）："
                f"pip install 'seamline[{extra}]'",
            )
        )
