"""Shared helpers of the compile stage: reporting at YAML positions, compiling expressions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.config.loader import LoadedYaml, YamlPath
from engine.config.workspace import Workspace
from engine.expressions import (
    CompiledExpr,
    ExpressionError,
    FunctionSpec,
    Scope,
    compile_expression,
)
from engine.expressions.check import node_position
from engine.functions import DOMAIN_FUNCTIONS
from engine.model.diagnostics import Diagnostics, Mark, Severity, suggestion_hint
from engine.model.i18n import Text


@dataclass
class CompileContext:
    ws: Workspace
    diags: Diagnostics
    roles: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    extras: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ reporting
    def report(
        self,
        severity: Severity,
        doc: LoadedYaml,
        path: YamlPath,
        code: str,
        message: Text,
        hint: Text | None = None,
        *,
        key: bool = False,
        subject: str | None = None,
    ) -> None:
        """Report at the value at ``path`` (or at its key with ``key``), underlining it;
        ``subject``: the name the report is about (see :mod:`engine.compile.recover`)."""
        mark = doc.key_mark(path) if key else doc.mark(path)
        width = len(str(path[-1])) if key and path else len(str(doc.get(path, "")) or " ")
        self.diags.report(
            severity,
            doc.path,
            mark,
            code,
            message,
            hint,
            yaml_path=path,
            width=min(width, 80),
            subject=subject,
        )

    def error(
        self,
        doc: LoadedYaml,
        path: YamlPath,
        code: str,
        message: Text,
        hint: Text | None = None,
        *,
        key: bool = False,
    ) -> None:
        self.report("error", doc, path, code, message, hint, key=key)

    def warning(
        self,
        doc: LoadedYaml,
        path: YamlPath,
        code: str,
        message: Text,
        hint: Text | None = None,
        *,
        key: bool = False,
    ) -> None:
        self.report("warning", doc, path, code, message, hint, key=key)

    def unknown(
        self,
        doc: LoadedYaml,
        path: YamlPath,
        name: str,
        candidates: Iterable[str],
        what: Text,
        code: str,
        *,
        key: bool = False,
    ) -> None:
        """``name`` (the value at ``path``, or with ``key`` the key) does not exist.

        With nothing to choose from, every such report has one cause (the list is missing),
        so they share one subject and are shown once."""
        pool = list(candidates)
        self.report(
            "error",
            doc,
            path,
            code,
            Text(f"unknown {what.en} '{name}'", f"未知的{what.zh} '{name}'"),
            suggestion_hint(name, pool, what),
            key=key,
            subject=str(name) if pool else f"{name}\0{code}",
        )

    def check_names(
        self, doc: LoadedYaml, path: YamlPath, candidates: Iterable[str], what: Text, code: str
    ) -> None:
        """Every name in the list (or the single name) at ``path`` must be a candidate."""
        value = doc.get(path)
        pool = set(candidates)
        items = (
            [(path, value)]
            if isinstance(value, str)
            else [((*path, i), v) for i, v in enumerate(value or [])]
        )
        for p, name in items:
            if name not in pool:
                self.unknown(doc, p, name, pool, what, code)

    def check_unique(self, doc: LoadedYaml, path: YamlPath, seen: set[str], what: Text) -> None:
        """The name at ``path`` must not be in ``seen`` (it is added to it)."""
        name = doc.get(path)
        if name in seen:
            self.error(
                doc,
                path,
                "duplicate-name",
                Text(f"two {what.en} are named '{name}'", f"有两个{what.zh}都叫 '{name}'"),
                Text("give each its own name", "请分别使用不同的名称"),
            )
        seen.add(name)

    def check_roles(self, doc: LoadedYaml, path: YamlPath) -> None:
        self.check_names(doc, path, self.roles, Text("role", "角色"), "unknown-role")

    # ------------------------------------------------------------------ expressions
    def expr(
        self,
        doc: LoadedYaml,
        path: YamlPath,
        scope: Scope,
        functions: Mapping[str, FunctionSpec] | None = None,
    ) -> CompiledExpr | None:
        """The checked expression at ``path`` (``functions``: allowed besides the built-in
        ones), or None after reporting why not."""
        source = doc.get(path)
        if not isinstance(source, str):
            return None
        try:
            extra = {**DOMAIN_FUNCTIONS, **functions} if functions else DOMAIN_FUNCTIONS
            compiled = compile_expression(source, scope, extra_functions=extra)
        except ExpressionError as exc:
            self._expr_diag(doc, path, source, exc, "error")
            return None
        for warning in compiled.warnings:
            self._expr_diag(doc, path, source, warning, "warning")
        return compiled

    def _expr_diag(
        self, doc: LoadedYaml, path: YamlPath, source: str, exc: Any, severity: Severity
    ) -> None:
        mark = expression_mark(doc, path, source, exc.line, exc.col)
        width = max(1, (exc.end_col - exc.col) if getattr(exc, "end_col", None) else 1)
        self.diags.report(
            severity, doc.path, mark, exc.code, exc.message, exc.hint, yaml_path=path, width=width
        )


def expression_mark(doc: LoadedYaml, path: YamlPath, source: str, line: int, col: int) -> Mark:
    """The file position of (``line``, ``col``) inside the expression at ``path``.

    ``line`` is 1-based and ``col`` 0-based within the expression text, as Python's parser
    reports them.
    """
    start = doc.mark(path)
    style = doc.styles.get(tuple(path))
    lines = doc.source.text.splitlines()
    if style in ("|", ">"):
        physical = start.line + line  # block content starts on the line after | or >
        if physical - 1 < len(lines):
            text = lines[physical - 1]
            indent = len(text) - len(text.lstrip(" "))
            return Mark(physical, indent + col + 1)
        return start
    quote = 1 if style in ("'", '"') else 0
    if line == 1:
        physical_line = lines[start.line - 1] if start.line - 1 < len(lines) else ""
        column = start.col + quote + col
        if column <= len(physical_line) + 1:
            return Mark(start.line, column)
    return start


def node_mark(
    doc: LoadedYaml, path: YamlPath, compiled: CompiledExpr, node: Any
) -> tuple[Mark, int]:
    """The file position of ``node`` (of ``compiled.tree``) inside the expression at ``path``,
    and its width."""
    where = node_position(compiled.source, node)
    mark = expression_mark(doc, path, compiled.source, where["line"], where["col"])
    return mark, max(1, (where["end_col"] or where["col"] + 1) - where["col"])
