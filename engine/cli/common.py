"""What every command shares: the default app folder, the language of messages, opening an app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from engine.model.extras import SetupError
from engine.model.i18n import Lang, default_lang

__all__ = ["DEFAULT_APP", "SeamlineGroup", "app_locale", "cli_lang", "open_app", "say"]

DEFAULT_APP = "./configs"


def app_locale(app_dir: Path) -> str | None:
    """The app's locale, read cheaply, so messages can follow it before compiling."""
    try:
        for line in (app_dir / "app.yaml").read_text(encoding="utf-8").splitlines():
            if line.startswith("locale:"):
                return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        return None
    return None


def cli_lang(ctx: click.Context, locale: str | None = None) -> Lang:
    """The language of messages: ``--lang``, else ``SEAMLINE_LANG``, else ``locale`` (or the
    app folder's), else English."""
    obj = ctx.obj or {}
    chosen = obj.get("lang")
    if chosen:
        return "zh" if str(chosen).startswith("zh") else "en"
    if locale is None and obj.get("app_dir") is not None:
        locale = app_locale(Path(obj["app_dir"]))
    return default_lang(locale)


class SeamlineGroup(click.Group):
    """The command group: a :class:`SetupError` (a missing extra, an unsupported database URL)
    from any command is printed in the command's language, exit 2, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SetupError as problem:
            click.echo(problem.text(cli_lang(ctx)), err=True)
            ctx.exit(2)


def say(ctx: click.Context, en: str, zh: str, err: bool = False) -> None:
    click.echo(zh if cli_lang(ctx) == "zh" else en, err=err)


def open_app(ctx: click.Context, *, deployed_ok: bool = False) -> tuple[Any, Any]:
    """Compile the app folder (exit 1 with the diagnostics when it has errors) and connect.

    ``deployed_ok``: a command that runs the deployed app (serve, worker, audit, import,
    export) also runs without an app folder when the database is named (``--db`` or
    ``SEAMLINE_DB``): then the compile result is None and the newest deployment is used."""
    import os

    from engine.compile import compile_app
    from engine.model.diagnostics import render_text, summary
    from engine.store.storage import create_db_engine, database_url

    app_dir = Path(ctx.obj["app_dir"])
    named = ctx.obj.get("db_url") or os.environ.get("SEAMLINE_DB")
    if deployed_ok and named and not (app_dir / "app.yaml").exists():
        engine = create_db_engine(named)
        ctx.call_on_close(engine.dispose)
        return None, engine
    result = compile_app(app_dir)
    if result.app is None:
        items = result.diagnostics.sorted()
        click.echo(render_text(items, result.workspace.sources, cli_lang(ctx)), err=True)
        click.echo(summary(items, cli_lang(ctx)), err=True)
        sys.exit(1)
    url = database_url(result.app.root, ctx.obj.get("db_url"), result.app.database)
    engine = create_db_engine(url)
    ctx.call_on_close(engine.dispose)
    return result, engine
