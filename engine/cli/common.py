"""What every command shares: the default app folder, the language of messages, opening an app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from engine.model.i18n import Lang, default_lang

__all__ = ["DEFAULT_APP", "app_locale", "cli_lang", "open_app", "say"]

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


def say(ctx: click.Context, en: str, zh: str, err: bool = False) -> None:
    click.echo(zh if cli_lang(ctx) == "zh" else en, err=err)


def open_app(ctx: click.Context) -> tuple[Any, Any]:
    """Compile the app folder (exit 1 with the diagnostics when it has errors) and connect."""
    from engine.compile import compile_app
    from engine.model.diagnostics import render_text, summary
    from engine.store.storage import create_db_engine, database_url

    result = compile_app(ctx.obj["app_dir"])
    if result.app is None:
        items = result.diagnostics.sorted()
        click.echo(render_text(items, result.workspace.sources, cli_lang(ctx)), err=True)
        click.echo(summary(items, cli_lang(ctx)), err=True)
        sys.exit(1)
    url = database_url(result.app.root, ctx.obj.get("db_url"), result.app.database)
    engine = create_db_engine(url)
    ctx.call_on_close(engine.dispose)
    return result, engine
