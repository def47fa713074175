"""The ``seamline`` command line: validate, schema and eval here; the other command groups live
in their own modules (run, users, deploy, testing, insights), each loading the floors it needs
only when a command runs, so ``seamline validate`` starts fast."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from engine.cli import deploy, insights, run, testing, users
from engine.cli.common import DEFAULT_APP, SeamlineGroup, app_locale, cli_lang
from engine.cli.functions import functions_command
from engine.cli.init import init_command
from engine.model.i18n import counted
from engine.model.logs import FORMATS, LEVELS, configure_logging


@click.group(cls=SeamlineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seamline", prog_name="seamline", message="%(prog)s %(version)s")
@click.option(
    "--app",
    "app_dir",
    default=DEFAULT_APP,
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="App folder holding app.yaml (default: ./configs, or here when ./app.yaml exists).",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "zh"]),
    default=None,
    help="Language of messages (default: SEAMLINE_LANG, then the app's locale).",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    help="Database URL (default: SEAMLINE_DB, then app.yaml, then seamline.db in the app folder).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    envvar="SEAMLINE_LOG_LEVEL",
    default="INFO",
    show_default=True,
    help="Level of the seamline.* and uvicorn logs (env SEAMLINE_LOG_LEVEL).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS, case_sensitive=False),
    envvar="SEAMLINE_LOG_FORMAT",
    default="text",
    show_default=True,
    help="text, or json: one JSON object per line (env SEAMLINE_LOG_FORMAT).",
)
@click.pass_context
def main(
    ctx: click.Context,
    app_dir: Path,
    lang: str | None,
    db_url: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """Seamline: forms, rules, flows, approvals and dashboards from YAML."""
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level.upper()
    ctx.obj["log_format"] = log_format.lower()
    configure_logging(ctx.obj["log_level"], ctx.obj["log_format"])
    chosen = ctx.get_parameter_source("app_dir") is not ParameterSource.DEFAULT
    if not chosen and not (app_dir / "app.yaml").exists() and Path("app.yaml").exists():
        app_dir = Path(".")  # a folder made by `seamline init`
    ctx.obj["app_dir"] = app_dir
    ctx.obj["app_chosen"] = chosen
    ctx.obj["lang"] = lang
    ctx.obj["db_url"] = db_url


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for tools.",
)
@click.pass_context
def validate(ctx: click.Context, fmt: str) -> None:
    """Check every file of the app; exit 0 when there are no errors, 1 otherwise."""
    from engine.compile import compile_app
    from engine.model.diagnostics import render_text, summary

    app_dir: Path = ctx.obj["app_dir"]
    lang = cli_lang(ctx, app_locale(app_dir))
    result = compile_app(app_dir)
    items = result.diagnostics.sorted()
    failed = result.diagnostics.has_errors()
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "ok": not failed,
                    "diagnostics": [d.to_json(lang) for d in items],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        if items:
            click.echo(render_text(items, result.workspace.sources, lang), err=failed)
        stream_summary = summary(items, lang)
        if not failed:
            app = result.app
            assert app is not None
            sep = "，" if lang == "zh" else ", "
            parts = (
                counted(len(app.forms), "form", "个表单"),
                counted(len(app.approvals), "approval", "个审批"),
                counted(len(app.dashboards), "dashboard", "个看板"),
            )
            colon = "：" if lang == "zh" else ": "
            shown = sep.join(p(lang) for p in parts)
            click.echo(f"✓ {app.title}{colon}{shown} — {stream_summary}")
        else:
            click.echo(stream_summary, err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Folder to write into.",
)
@click.option(
    "--docs",
    "docs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the Markdown YAML reference to this file.",
)
def schema(out_dir: Path, docs_file: Path | None) -> None:
    """Write the JSON Schemas (draft-07) of every kind of file, for editors."""
    from engine.config.schema_docs import render_reference
    from engine.config.schemas import KINDS, schema_file_name, schema_json

    if docs_file is not None:
        docs_file.parent.mkdir(parents=True, exist_ok=True)
        docs_file.write_text(render_reference(), encoding="utf-8")
        click.echo(str(docs_file))
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        target = out_dir / schema_file_name(kind)
        target.write_text(schema_json(kind), encoding="utf-8")
        click.echo(str(target))


@main.command(name="eval")
@click.argument("expression")
@click.option("--form", "form_name", default=None, help="Check names against this form.")
@click.option(
    "--values", "values_json", default=None, help="Field values as JSON, e.g. '{\"quantity\": 5}'."
)
@click.option("--today", "today", default=None, help="Pretend today is YYYY-MM-DD.")
@click.pass_context
def eval_command(
    ctx: click.Context,
    expression: str,
    form_name: str | None,
    values_json: str | None,
    today: str | None,
) -> None:
    """Try an expression before putting it in a rule: prints its value or what is wrong."""
    from engine.compile import compile_app
    from engine.expressions.evaluate import EvalFailure, run_expression
    from engine.functions import DOMAIN_FUNCTIONS
    from engine.model.diagnostics import render_text, summary

    app_dir: Path = ctx.obj["app_dir"]
    lang = cli_lang(ctx, app_locale(app_dir))
    result = compile_app(app_dir)
    if result.app is None:
        items = result.diagnostics.sorted()
        click.echo(render_text(items, result.workspace.sources, lang), err=True)
        click.echo(summary(items, lang), err=True)
        click.echo(
            "the app has errors; fix them first (seamline validate)"
            if lang == "en"
            else "应用配置有错误，请先修正（seamline validate）",
            err=True,
        )
        sys.exit(1)
    try:
        values = json.loads(values_json) if values_json else {}
        if not isinstance(values, dict):
            raise ValueError("--values must be a JSON object")
    except ValueError as exc:
        click.echo(f"--values: {exc}", err=True)
        sys.exit(2)
    try:
        value, warnings = run_expression(
            result.app, expression, form_name, values, today, DOMAIN_FUNCTIONS
        )
    except EvalFailure as failure:
        click.echo(failure.render(lang), err=True)
        sys.exit(1)
    for warning in warnings:
        click.echo(("warning: " if lang == "en" else "警告：") + warning(lang), err=True)
    click.echo(_show(value))


def _show(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


for command in (
    run.serve_command,
    run.worker_command,
    run.demo_command,
    init_command,
    functions_command,
    run.audit_group,
    run.import_command,
    run.export_command,
    users.user,
    users.token,
    testing.test_command,
    insights.insights_group,
    deploy.plan_command,
    deploy.deploy_command,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
