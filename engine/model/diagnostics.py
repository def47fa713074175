"""Diagnostics: every problem found in a workspace, as data.

A :class:`Diagnostic` carries the file, line and column (1-based), the severity, a stable
code, a bilingual message and an optional hint. The same object renders as compiler-style
text (with the source line and a caret), as JSON for tools, or later as an HTML page.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.model.i18n import Lang, Text, counted

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in a source file: 1-based line and column."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Diagnostic:
    path: str
    line: int
    col: int
    severity: Severity
    code: str
    message: Text
    hint: Text | None = None
    yaml_path: tuple[str | int, ...] = ()
    width: int = 1
    context_before: int = 0

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.col, self.code)

    def headline(self, lang: Lang = "en") -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message(lang)}"
        if self.hint is not None:
            text += f" — {self.hint(lang)}"
        return text

    def to_json(self, lang: Lang = "en") -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message(lang),
            "hint": self.hint(lang) if self.hint is not None else None,
            "yaml_path": list(self.yaml_path),
        }


@dataclass
class Diagnostics:
    """A collector: checks append to it; nobody stops at the first problem."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.items.extend(diagnostics)

    def report(
        self,
        severity: Severity,
        path: str,
        mark: Mark,
        code: str,
        message: Text,
        hint: Text | None = None,
        *,
        yaml_path: tuple[str | int, ...] = (),
        width: int = 1,
    ) -> None:
        self.items.append(
            Diagnostic(path, mark.line, mark.col, severity, code, message, hint, yaml_path, width)
        )

    def error(
        self,
        path: str,
        mark: Mark,
        code: str,
        message: Text,
        hint: Text | None = None,
        **where: Any,
    ) -> None:
        self.report("error", path, mark, code, message, hint, **where)

    def warning(
        self,
        path: str,
        mark: Mark,
        code: str,
        message: Text,
        hint: Text | None = None,
        **where: Any,
    ) -> None:
        self.report("warning", path, mark, code, message, hint, **where)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        seen: set[tuple[Any, ...]] = set()
        unique = []
        for d in sorted(self.items, key=lambda d: d.sort_key):
            key = (d.path, d.line, d.col, d.code, d.message.en)
            if key not in seen:
                seen.add(key)
                unique.append(d)
        return unique


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word``, if one is close enough to be a likely typo."""
    pool = [c for c in candidates if c]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {c.lower(): c for c in pool}
    return lowered.get(word.lower())


def suggestion_hint(word: str, candidates: Sequence[str] | Iterable[str], what: Text) -> Text:
    """ "did you mean 'x'?" when a candidate is close, else the list of valid ``what``."""
    pool = sorted(set(candidates))
    best = did_you_mean(word, pool)
    if best is not None:
        return Text(f"did you mean '{best}'?", f"您是不是想写 '{best}'？")
    shown = ", ".join(pool[:12]) + (", …" if len(pool) > 12 else "")
    if not pool:
        return Text(f"there are no {what.en} to choose from", f"目前没有可用的{what.zh}")
    return Text(f"valid {what.en}: {shown}", f"可用的{what.zh}：{shown}")


def render_text(
    diagnostics: Sequence[Diagnostic],
    sources: dict[str, str],
    lang: Lang = "en",
    *,
    context: int = 0,
) -> str:
    """Compiler-style text: headline, then the source line(s) and a caret under the column."""
    out: list[str] = []
    for d in diagnostics:
        out.append(d.headline(lang))
        text = sources.get(d.path)
        if text is None or d.line < 1:
            continue
        lines = text.splitlines()
        if d.line > len(lines) + 1:
            continue
        before = max(context, d.context_before)
        first = max(1, d.line - before)
        width = len(str(d.line))
        for n in range(first, d.line + 1):
            src = lines[n - 1] if n <= len(lines) else ""
            out.append(f"  {n:>{width}} | {src.rstrip()}")
        src = lines[d.line - 1] if d.line <= len(lines) else ""
        caret_col = max(1, d.col)
        pad = "".join(_pad(ch) for ch in src[: caret_col - 1])
        carets = "^" + "~" * max(0, min(d.width, max(1, len(src) - caret_col + 1)) - 1)
        out.append(f"  {' ' * width} | {pad}{carets}")
    return "\n".join(out)


def _pad(ch: str) -> str:
    """Blank of the same display width as ``ch`` (CJK characters take two cells)."""
    if ch == "\t":
        return "\t"
    return "  " if unicodedata.east_asian_width(ch) in ("W", "F") else " "


def summary(diagnostics: Sequence[Diagnostic], lang: Lang = "en") -> str:
    errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = len(diagnostics) - errors
    sep = "，" if lang == "zh" else ", "
    return (
        counted(errors, "error", "个错误")(lang)
        + sep
        + counted(warnings, "warning", "个警告")(lang)
    )
