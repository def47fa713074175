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
    # The name an "unknown …" diagnostic is about: when that name's own definition is broken,
    # the diagnostic only repeats that error and is suppressed (engine/compile/recover.py).
    subject: str | None = None

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
    """A collector: checks append to it; nobody stops at the first problem.

    ``file_order`` ranks files in the order a person fixes them (what others refer to
    first); ``suppressed`` keeps the follow-on errors taken out of ``items``.
    """

    items: list[Diagnostic] = field(default_factory=list)
    file_order: dict[str, int] = field(default_factory=dict)
    suppressed: list[Diagnostic] = field(default_factory=list)

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
        subject: str | None = None,
    ) -> None:
        self.items.append(
            Diagnostic(
                path,
                mark.line,
                mark.col,
                severity,
                code,
                message,
                hint,
                yaml_path,
                width,
                subject=subject,
            )
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
        """Without repeats, in the order a person fixes them: errors before warnings, file by
        file in ``file_order`` (what others refer to first; then by path), each by line."""
        rank = self.file_order
        last = max(rank.values(), default=0) + 1

        def order(d: Diagnostic) -> tuple[Any, ...]:
            return (d.severity != "error", rank.get(d.path, last), *d.sort_key)

        seen: set[tuple[Any, ...]] = set()
        unique = []
        for d in sorted(self.items, key=order):
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
        src = lines[d.line - 1] if d.line <= len(lines) else ""
        caret_col = max(1, d.col)
        start, end = _window(src.rstrip(), caret_col - 1)
        for n in range(first, d.line + 1):
            shown = lines[n - 1].rstrip() if n <= len(lines) else ""
            # A line above the caret's: from the same column, as much of it as fits.
            stop = end if n == d.line else start + _fits(shown[start:])
            out.append(f"  {n:>{width}} | {_cut(shown, start, stop)}")
        lead = "…" if start > 0 else ""
        pad = lead.replace("…", " ") + "".join(_pad(ch) for ch in src[start : caret_col - 1])
        room = max(1, min(len(src), end) - caret_col + 1)
        carets = "^" + "~" * max(0, min(d.width, room) - 1)
        out.append(f"  {' ' * width} | {pad}{carets}")
    return "\n".join(out)


# A source line wider than this many cells is shown as a window around the caret.
MAX_SHOWN_CELLS = 100


def _cells(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _window(src: str, at: int) -> tuple[int, int]:
    """Characters [start, end) of ``src`` to show so that index ``at`` is visible and the
    shown part fits in MAX_SHOWN_CELLS cells (the whole line when it fits)."""
    if sum(_cells(ch) for ch in src) <= MAX_SHOWN_CELLS:
        return 0, len(src)
    budget = MAX_SHOWN_CELLS - 2  # one cell for each "…"
    at = min(at, len(src))
    start = at
    used = 0
    # About a third of the window before the caret, the rest after it.
    while start > 0 and used + _cells(src[start - 1]) <= budget // 3:
        start -= 1
        used += _cells(src[start])
    end = at
    while end < len(src) and used + _cells(src[end]) <= budget:
        used += _cells(src[end])
        end += 1
    while start > 0 and used + _cells(src[start - 1]) <= budget:  # the line ended early
        start -= 1
        used += _cells(src[start])
    return start, end


def _fits(text: str) -> int:
    """How many leading characters of ``text`` to show (all of them when the line fits)."""
    if sum(_cells(ch) for ch in text) <= MAX_SHOWN_CELLS:
        return len(text)
    used = count = 0
    for ch in text:
        if used + _cells(ch) > MAX_SHOWN_CELLS - 2:
            break
        used += _cells(ch)
        count += 1
    return count


def _cut(line: str, start: int, end: int) -> str:
    """``line`` cut to characters [start, end), with "…" where something was left out."""
    if start == 0 and end >= len(line):
        return line
    return ("…" if start > 0 else "") + line[start:end] + ("…" if end < len(line) else "")


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
