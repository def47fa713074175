"""``seamline test``: run the app's config tests (``tests/*.yaml``) without a database.

Exit 0 when every case passes, 1 when one fails, 2 when the app does not validate (its
diagnostics are printed as ``seamline validate`` prints them). ``--json`` prints the list of
case results for CI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from engine.cli.common import cli_lang
from engine.model.i18n import Lang

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text as RichText

    from engine.cli.config_tests import CaseResult, Mismatch
    from engine.model.spec import App
__all__ = ["test_command"]

EXIT_FAILED = 1
EXIT_INVALID_APP = 2


@click.command("test")
@click.option("--json", "as_json", is_flag=True, help="Print the case results as JSON (for CI).")
@click.pass_context
def test_command(ctx: click.Context, as_json: bool) -> None:
    """Run the app's config tests (tests/*.yaml): exit 0 when all pass, 1 when one fails,
    2 when the app has errors."""
    from engine.cli.config_tests import run_config_tests

    app = _compiled_app(ctx)
    lang = cli_lang(ctx, app.locale)
    results = run_config_tests(app)
    if as_json:
        click.echo(json.dumps([r.to_json(lang) for r in results], ensure_ascii=False, indent=2))
    else:
        print_report(results, lang)
    sys.exit(EXIT_FAILED if any(not r.passed for r in results) else 0)


def _compiled_app(ctx: click.Context) -> App:
    """The compiled app; exit 2 with the diagnostics when it does not validate."""
    from engine.compile import compile_app
    from engine.model.diagnostics import render_text, summary

    result = compile_app(ctx.obj["app_dir"])
    if result.app is None or result.diagnostics.has_errors():
        lang = cli_lang(ctx)
        items = result.diagnostics.sorted()
        click.echo(render_text(items, result.workspace.sources, lang), err=True)
        click.echo(summary(items, lang), err=True)
        click.echo(
            _say(
                lang,
                "the app has errors; fix them first (seamline validate)",
                "应用配置有错误，请先修正（seamline validate）",
            ),
            err=True,
        )
        sys.exit(EXIT_INVALID_APP)
    return result.app


def _say(lang: Lang, en: str, zh: str) -> str:
    return zh if lang == "zh" else en


# ---------------------------------------------------------------------- report


def print_report(results: Sequence[CaseResult], lang: Lang) -> None:
    """One table per test file, then the summary line."""
    console = _console()
    if not results:
        console.print(
            _say(lang, "no config tests (tests/*.yaml)", "没有配置测试（tests/*.yaml）"),
            markup=False,
        )
        return
    by_file: dict[str, list[CaseResult]] = {}
    for result in results:
        by_file.setdefault(result.spec.source, []).append(result)
    for source, cases in by_file.items():
        console.print(_file_table(source, cases, lang))
    console.print(_summary(results, lang))


def _console() -> Console:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # logs and pipes: do not wrap at 80
    return console


def _file_table(source: str, cases: Sequence[CaseResult], lang: Lang) -> Table:
    from rich.table import Table
    from rich.text import Text as RichText

    failing = any(not c.passed for c in cases)
    table = Table(title=RichText(source), title_justify="left", show_lines=failing)
    table.add_column(_say(lang, "Line", "行"), justify="right")
    table.add_column(_say(lang, "Case", "用例"))
    table.add_column(_say(lang, "Form", "表单"))
    table.add_column(_say(lang, "Result", "结果"), justify="center")
    table.add_column(_say(lang, "Expected vs actual", "期望与实际"), overflow="fold")
    for case in cases:
        mark = RichText("✓", style="green") if case.passed else RichText("✗", style="bold red")
        table.add_row(
            str(case.spec.line),
            RichText(case.spec.name),
            RichText(case.spec.form),
            mark,
            _details(case, lang),
        )
    return table


def _summary(results: Sequence[CaseResult], lang: Lang) -> RichText:
    from rich.text import Text as RichText

    failed = sum(1 for r in results if not r.passed)
    passed = len(results) - failed
    text = _say(
        lang,
        f"{len(results)} case{'' if len(results) == 1 else 's'}: {passed} passed, {failed} failed",
        f"共 {len(results)} 个用例：{passed} 个通过，{failed} 个失败",
    )
    return RichText(("✓ " if not failed else "✗ ") + text, style="red" if failed else "green")


def _details(case: CaseResult, lang: Lang) -> RichText:
    """Nothing for a passing case (but calendar warnings); for a failing one each expectation
    that did not hold, then what happened: the route, the errors, the computed values."""
    from rich.text import Text as RichText

    lines = [_say(lang, "warning: ", "警告：") + w(lang) for w in case.warnings]
    if not case.passed:
        lines += [line for m in case.mismatches for line in _mismatch_lines(m, lang)]
        lines += _happened(case, lang)
    return RichText("\n".join(lines))


def _mismatch_lines(mismatch: Mismatch, lang: Lang) -> list[str]:
    if mismatch.check == "given":
        head = _say(lang, "given: a referenced record refuses ", "给定值：被引用的记录不接受 ")
        lines = [head + _plain(mismatch.actual)]
    elif mismatch.check == "run":
        lines = [_say(lang, "the case could not run:", "用例无法运行：")]
    else:
        lines = [
            _say(
                lang,
                f"{mismatch.check}: expected {_plain(mismatch.expected)}, "
                f"got {_plain(mismatch.actual)}",
                f"{mismatch.check}：期望 {_plain(mismatch.expected)}，"
                f"实际 {_plain(mismatch.actual)}",
            )
        ]
    if mismatch.check not in ("errors", "valid"):  # errors are listed under "what happened"
        lines += [f"  · {r(lang)}" for r in mismatch.reasons]
    return lines


def _happened(case: CaseResult, lang: Lang) -> list[str]:
    lines = [_say(lang, "what happened:", "实际情况：")]
    if case.route is not None:
        seen = case.route.to_json()
        steps = " → ".join(seen["steps"])
        lines.append(
            _say(lang, "  route: ", "  路线：")
            + f"{seen['route']} ({steps})"
            + (f" + {', '.join(seen['added'])}" if seen["added"] else "")
        )
    if case.errors:
        lines.append(_say(lang, "  errors:", "  错误："))
        lines += [f"    {e.field or '(record)'}: {e.message(lang)}" for e in case.errors]
    else:
        lines.append(_say(lang, "  errors: none", "  错误：无"))
    if case.values:
        shown = ", ".join(f"{k} = {_plain(v)}" for k, v in case.values.items())
        lines.append(_say(lang, "  values: ", "  计算值：") + shown)
    return lines


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
