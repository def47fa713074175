"""The three kinds of trouble an expression can report.

* :class:`ExpressionError` — the expression cannot be compiled (raised by ``compile_expression``);
* :class:`ExpressionWarning` — it compiles but looks wrong (returned in ``CompiledExpr.warnings``);
* :class:`EvaluationError` — evaluating it failed for the values at hand (raised at run time).

Positions are inside the expression text: ``line`` is 1-based, ``col``/``end_col`` are 0-based
character offsets on that line, so the caller can add the expression's own place in the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine.model.i18n import Text

__all__ = ["EvaluationError", "ExpressionError", "ExpressionWarning"]


class ExpressionError(Exception):
    """A compile-time problem: bad syntax, a forbidden construct, an unknown name, …"""

    def __init__(
        self,
        code: str,
        message: Text,
        *,
        hint: Text | None = None,
        line: int = 1,
        col: int = 0,
        end_col: int | None = None,
        suggestion: str | None = None,
    ) -> None:
        super().__init__(code, message.en)
        self.code = code
        self.message = message
        self.hint = hint
        self.line = line
        self.col = col
        self.end_col = end_col
        self.suggestion = suggestion

    def __str__(self) -> str:
        text = f"{self.line}:{self.col}: {self.code}: {self.message.en}"
        if self.hint is not None:
            text += f" — {self.hint.en}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:  # keep every field when pickled
        return (type(self), (self.code, self.message), dict(self.__dict__))


@dataclass(frozen=True, slots=True)
class ExpressionWarning:
    """A compile-time finding that does not stop the expression from running."""

    code: str
    message: Text
    hint: Text | None = None
    line: int = 1
    col: int = 0
    end_col: int | None = None
    suggestion: str | None = None
    severity: Literal["warning"] = "warning"

    def __str__(self) -> str:
        text = f"{self.line}:{self.col}: {self.code}: {self.message.en}"
        if self.hint is not None:
            text += f" — {self.hint.en}"
        return text


class EvaluationError(Exception):
    """Evaluating a compiled expression failed (wrong types, a limit was hit, …)."""

    def __init__(
        self, code: str, message: Text, source: str = "", hint: Text | None = None
    ) -> None:
        super().__init__(code, message.en)
        self.code = code
        self.message = message
        self.source = source
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.source, self.hint))

    def __str__(self) -> str:
        if self.source:
            return f"{self.code}: {self.message.en} (in: {self.source})"
        return f"{self.code}: {self.message.en}"
