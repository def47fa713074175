"""``seamline plan`` and ``seamline deploy``: show and apply the database changes of the app.

Both compile the app first (errors are shown as ``validate`` shows them, exit 1), then connect
to the database chosen by ``--db``, ``SEAMLINE_DB``, app.yaml's ``database`` or the default
``seamline.db`` in the app folder.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, NoReturn

import click

from engine.cli.common import cli_lang

if TYPE_CHECKING:
    import sqlalchemy as sa

from engine.model.i18n import Lang, Text
from engine.model.spec import App

__all__ = ["deploy_command", "plan_command"]


def _fail(message: Text, lang: Lang) -> NoReturn:
    click.echo(message(lang), err=True)
    sys.exit(1)


def _compile(ctx: click.Context) -> tuple[App, dict[str, str], Lang]:
    from engine.compile import compile_app
    from engine.deploy.apply import bundle_sources
    from engine.model.diagnostics import render_text, summary

    result = compile_app(ctx.obj["app_dir"])
    if not result.ok:
        lang = cli_lang(ctx)
        items = result.diagnostics.sorted()
        click.echo(render_text(items, result.workspace.sources, lang), err=True)
        click.echo(summary(items, lang), err=True)
        _fail(
            Text(
                "the app has errors; fix them first (seamline validate)",
                "应用配置有错误，请先修正（seamline validate）",
            ),
            lang,
        )
    assert result.app is not None
    return result.app, bundle_sources(result.workspace), cli_lang(ctx, result.app.locale)


def _engine(ctx: click.Context, app: App) -> sa.Engine:
    from engine.store.storage import create_db_engine, database_url

    return create_db_engine(database_url(app.root, ctx.obj.get("db_url"), app.database))


def _db_failure(exc: Exception) -> Text:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return Text(f"database error: {reason}", f"数据库错误：{reason}")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (OSError, KeyError):
        return "cli"


@click.command(name="plan")
@click.pass_context
def plan_command(ctx: click.Context) -> None:
    """Show what deploy would change in the database (changes nothing)."""
    import sqlalchemy as sa

    from engine.deploy.plan import plan_schema

    app, _sources, lang = _compile(ctx)
    engine = _engine(ctx, app)
    try:
        with engine.connect() as conn, conn.begin():
            plan = plan_schema(conn, app)
    except sa.exc.SQLAlchemyError as exc:
        _fail(_db_failure(exc), lang)
    finally:
        engine.dispose()
    click.echo(plan.render(lang))


@click.command(name="deploy")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Apply changes that lose data (dropped columns and tables, narrowed types).",
)
@click.pass_context
def deploy_command(ctx: click.Context, allow_destructive: bool) -> None:
    """Change the database to match the app and record the deployment (one transaction)."""
    import sqlalchemy as sa

    from engine.deploy.apply import DeployError, deploy

    app, sources, lang = _compile(ctx)
    engine = _engine(ctx, app)
    try:
        result = deploy(engine, app, sources, allow_destructive=allow_destructive, actor=_actor())
    except DeployError as exc:
        _fail(exc.message, lang)
    except sa.exc.SQLAlchemyError as exc:
        _fail(_db_failure(exc), lang)
    finally:
        engine.dispose()
    name = f"{app.name} v{result.version} ({result.content_hash[:12]})"
    if not result.changed:
        click.echo(
            Text(
                f"Nothing to do: the database already runs {name}.",
                f"无需变更：数据库已是 {name}。",
            )(lang)
        )
        return
    for step in result.steps:
        click.echo(f"  {step.line(lang)}")
    count = len(result.steps)
    click.echo(
        Text(f"✓ deployed {name}: {count} change(s)", f"✓ 已部署 {name}：{count} 项变更")(lang)
    )
