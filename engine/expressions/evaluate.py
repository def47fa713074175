"""Evaluate an expression against a compiled App, as ``seamline eval`` and config tests do.

Values arrive as JSON; they are coerced to the field types (dates, decimals, refs as nested
mappings) before evaluation. Calendar warnings (a date outside the known years) are returned
to the caller, never swallowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from engine.expressions import (
    CompiledExpr,
    EvalEnv,
    EvaluationError,
    ExpressionError,
    FunctionSpec,
    compile_expression,
)
from engine.expressions.form_scopes import EMPTY_SCOPE, FieldShape, ScopeBuilder, shapes_from_specs
from engine.model.calendar import UnknownDateWarning, WorkCalendar
from engine.model.diagnostics import suggestion_hint
from engine.model.i18n import Lang, Text
from engine.model.spec import App


class EvalFailure(Exception):
    """The expression could not be compiled or evaluated; ``render`` explains it."""

    def __init__(
        self, source: str, message: Text, hint: Text | None = None, col: int | None = None
    ) -> None:
        super().__init__(message.en)
        self.source, self.message, self.hint, self.col = source, message, hint, col

    def render(self, lang: Lang = "en") -> str:
        head = ("error: " if lang == "en" else "错误：") + self.message(lang)
        if self.hint is not None:
            head += " — " + self.hint(lang)
        if self.col is None:
            return head
        return f"{head}\n  {self.source}\n  {' ' * self.col}^"


@dataclass
class AppRuntime:
    """What evaluation needs from an App: a calendar, an env, scopes (built once)."""

    app: App
    warnings: list[Text]
    calendar: WorkCalendar
    scopes: ScopeBuilder

    @classmethod
    def of(cls, app: App) -> AppRuntime:
        warnings: list[Text] = []

        def collect(w: UnknownDateWarning) -> None:
            warnings.append(w.message)

        states = {f: tuple(s.name for s in m.states) for f, m in app.state_machines.items()}
        return cls(
            app,
            warnings,
            WorkCalendar(app.calendar, on_unknown=collect),
            ScopeBuilder(shapes_from_specs(app.forms), states),
        )

    def env(self, today: str | None = None) -> EvalEnv:
        if today is None:
            return EvalEnv(calendar=self.calendar, timezone=self.app.timezone)
        fixed = pretend_now(today, self.app.timezone)
        return EvalEnv(calendar=self.calendar, now=lambda: fixed, timezone=self.app.timezone)


def pretend_now(today: str, timezone: str) -> datetime:
    """The moment ``--today`` and config tests pretend it is: 9:00 that day in the app's zone."""
    return datetime.combine(date.fromisoformat(today), time(9, 0), tzinfo=ZoneInfo(timezone))


def coerce_values(
    shapes: Mapping[str, Mapping[str, FieldShape]],
    form: str,
    values: Mapping[str, Any],
    tz: str = "Asia/Shanghai",
) -> dict[str, Any]:
    """JSON values → Python values of the form's field types (unknown names are kept)."""
    fields = shapes.get(form, {})
    out: dict[str, Any] = {}
    for name, value in values.items():
        shape = fields.get(name)
        out[name] = _coerce(shapes, shape, value, tz) if shape is not None else value
    return out


def _coerce(
    shapes: Mapping[str, Mapping[str, FieldShape]], shape: FieldShape, value: Any, tz: str
) -> Any:
    if value is None:
        return None
    try:
        if shape.type == "date" and isinstance(value, str):
            return date.fromisoformat(value)
        if shape.type == "datetime" and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            # Naive times are wall-clock times in the app's zone, like now() and datetime().
            return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(tz))
        if shape.type in ("decimal", "money") and isinstance(value, int | float | str):
            return Decimal(str(value))
    except (ValueError, InvalidOperation):
        return value
    if shape.type == "ref" and isinstance(value, Mapping) and shape.ref_form:
        return coerce_values(shapes, shape.ref_form, value, tz)
    if shape.type == "table" and isinstance(value, list):
        return [
            {
                k: _coerce(shapes, shape.children[k], v, tz) if k in shape.children else v
                for k, v in row.items()
            }
            if isinstance(row, Mapping)
            else row
            for row in value
        ]
    return value


def compile_for(
    runtime: AppRuntime,
    source: str,
    form: str | None,
    functions: Mapping[str, FunctionSpec] | None = None,
) -> CompiledExpr:
    app = runtime.app
    if form is not None and form not in app.forms:
        raise EvalFailure(
            source,
            Text(f"unknown form '{form}'", f"未知的表单 '{form}'"),
            suggestion_hint(form, app.forms, Text("forms", "表单")),
        )
    scope = runtime.scopes.form_scope(form) if form else EMPTY_SCOPE
    try:
        return compile_expression(source, scope, extra_functions=functions)
    except ExpressionError as exc:
        col = exc.col if exc.line == 1 else None
        raise EvalFailure(source, exc.message, exc.hint, col) from None


def run_expression(
    app: App,
    source: str,
    form: str | None,
    values: Mapping[str, Any],
    today: str | None = None,
    functions: Mapping[str, FunctionSpec] | None = None,
) -> tuple[Any, list[Text]]:
    """Compile and evaluate once (``functions``: the domain functions besides the language's
    own); returns the value and any calendar warnings."""
    runtime = AppRuntime.of(app)
    compiled = compile_for(runtime, source, form, functions)
    typed = (
        coerce_values(shapes_from_specs(app.forms), form, values, app.timezone)
        if form
        else dict(values)
    )
    try:
        value = compiled(typed, runtime.env(today))
    except EvaluationError as exc:
        raise EvalFailure(source, exc.message) from None
    return value, [*(w.message for w in compiled.warnings), *runtime.warnings]
