"""``seamline user ...`` and ``seamline token ...``: accounts and API tokens from the shell.

Every command compiles the app, opens its database (which ``seamline deploy`` must have
set up), brings ``sl_users`` in line with the org chart, and then does its one job.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from engine.cli.common import cli_lang
from engine.model.i18n import Lang, Text

if TYPE_CHECKING:
    import sqlalchemy as sa

    from engine.model.spec import App
__all__ = ["token", "user"]

ACTOR = "cli"


def _fail(ctx: click.Context, message: Text, lang: Lang | None = None) -> NoReturn:
    click.echo(message(lang or cli_lang(ctx)), err=True)
    sys.exit(1)


def _sqlite_missing(url: str) -> bool:
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return False
    database = parsed.database
    if not database or database == ":memory:":
        return False
    return not Path(database).is_file()


_NOT_DEPLOYED = Text(
    "the database has no Seamline tables yet; run seamline deploy first",
    "数据库里还没有 Seamline 的表；请先运行 seamline deploy",
)


def _load(ctx: click.Context) -> tuple[App, Lang]:
    """The compiled app and the language of messages; prints the errors and exits if any."""
    from engine.compile import compile_app
    from engine.model.diagnostics import render_text

    result = compile_app(ctx.obj["app_dir"])
    lang = cli_lang(ctx, result.app.locale if result.app is not None else None)
    if result.app is None or result.diagnostics.has_errors():
        items = result.diagnostics.sorted()
        click.echo(render_text(items, result.workspace.sources, lang), err=True)
        _fail(
            ctx,
            Text(
                "the app has errors; fix them first (seamline validate)",
                "应用配置有错误，请先修正（seamline validate）",
            ),
            lang,
        )
    return result.app, lang


@contextmanager
def _errors(ctx: click.Context, lang: Lang) -> Iterator[None]:
    """Refusals and database failures become a message and exit status 1."""
    import sqlalchemy as sa

    from engine.accounts.auth import AuthError

    try:
        yield
    except AuthError as exc:
        _fail(ctx, exc.message, lang)
    except sa.exc.OperationalError as exc:
        _fail(
            ctx, Text(f"cannot use the database: {exc.orig}", f"无法使用数据库：{exc.orig}"), lang
        )


@contextmanager
def _transaction(ctx: click.Context, app: App, lang: Lang) -> Iterator[sa.Connection]:
    """A connection inside a transaction on the deployed database, org chart synced."""
    import sqlalchemy as sa

    from engine.accounts.auth import sync_org_chart
    from engine.store.storage import create_db_engine, database_url

    url = database_url(app.root, ctx.obj.get("db_url"), app.database)
    if _sqlite_missing(url):
        _fail(ctx, _NOT_DEPLOYED, lang)
    engine = create_db_engine(url)
    try:
        with _errors(ctx, lang):
            if not sa.inspect(engine).has_table("sl_users"):
                _fail(ctx, _NOT_DEPLOYED, lang)
            with engine.begin() as conn:
                sync_org_chart(conn, app, actor=ACTOR)
                yield conn
    finally:
        engine.dispose()


def _ask_password(ctx: click.Context, lang: Lang, given: str | None, from_stdin: bool) -> str:
    if given is not None:
        return given
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        _fail(
            ctx,
            Text(
                "no terminal to ask for the password on: give --password-stdin (or --password)",
                "无法在终端输入密码：请使用 --password-stdin（或 --password）",
            ),
            lang,
        )
    return click.prompt(
        "Password" if lang == "en" else "密码",
        hide_input=True,
        confirmation_prompt="Repeat the password" if lang == "en" else "再次输入密码",
    )


_password_option = click.option(
    "--password",
    default=None,
    help="The password (visible in shell history; prefer the prompt or --password-stdin).",
)
_stdin_option = click.option(
    "--password-stdin",
    "password_stdin",
    is_flag=True,
    help="Read the password from the first line of standard input.",
)


@click.group()
def user() -> None:
    """Sign-in accounts (people of the org chart are added automatically)."""


@user.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="A role; repeat for more.")
@click.option("--name", default=None, help="Display name (default: the user name).")
@_password_option
@_stdin_option
@click.option("--no-password", is_flag=True, help="No password: this user signs in by token only.")
@click.pass_context
def create_user_command(
    ctx: click.Context,
    username: str,
    roles: tuple[str, ...],
    name: str | None,
    password: str | None,
    password_stdin: bool,
    no_password: bool,
) -> None:
    """Add a user who is not in the org chart."""
    from engine.accounts.auth import (
        check_password_rules,
        check_roles,
        check_username,
        create_user,
        get_user,
    )

    if no_password and (password is not None or password_stdin):
        _fail(
            ctx, Text("--no-password cannot go with a password", "--no-password 不能和密码一起使用")
        )
    app, lang = _load(ctx)
    with _errors(ctx, lang):
        check_username(username)
        check_roles(app, roles)
    with _transaction(ctx, app, lang) as conn:  # answer "exists" before asking for a password
        if get_user(conn, username) is not None:
            _fail(ctx, _exists(username), lang)
    chosen = None if no_password else _ask_password(ctx, lang, password, password_stdin)
    with _errors(ctx, lang):
        if chosen is not None:
            check_password_rules(chosen)
    with _transaction(ctx, app, lang) as conn:
        create_user(conn, username, roles, name, chosen, app=app, actor=ACTOR)
    click.echo(f"✓ {username}" if lang == "en" else f"✓ 已创建用户 {username}")


def _exists(username: str) -> Text:
    return Text(
        f"user '{username}' already exists; use set-password to change the password",
        f"用户 '{username}' 已存在；修改密码请用 set-password",
    )


@user.command("set-password")
@click.argument("username")
@_password_option
@_stdin_option
@click.pass_context
def set_password_command(
    ctx: click.Context, username: str, password: str | None, password_stdin: bool
) -> None:
    """Set or change a user's password (signs them out of open sessions)."""
    from engine.accounts.auth import check_password_rules, get_user, set_password

    app, lang = _load(ctx)
    with _transaction(ctx, app, lang) as conn:
        if get_user(conn, username) is None:
            _fail(ctx, Text(f"there is no user '{username}'", f"没有用户 '{username}'"), lang)
    chosen = _ask_password(ctx, lang, password, password_stdin)
    with _errors(ctx, lang):
        check_password_rules(chosen)
    with _transaction(ctx, app, lang) as conn:
        set_password(conn, username, chosen, actor=ACTOR)
    click.echo("✓ password set" if lang == "en" else "✓ 密码已设置")


@click.group()
def token() -> None:
    """API tokens (sent as 'Authorization: Bearer <token>')."""


@token.command("create")
@click.argument("username")
@click.option("--label", default=None, help="What the token is for, e.g. 'ERP sync'.")
@click.pass_context
def create_token_command(ctx: click.Context, username: str, label: str | None) -> None:
    """Make a token and print it; it is shown this once only."""
    from engine.accounts.auth import create_token

    app, lang = _load(ctx)
    with _transaction(ctx, app, lang) as conn:
        made = create_token(conn, username, label, actor=ACTOR)
    click.echo(made)


@token.command("list")
@click.argument("username", required=False)
@click.pass_context
def list_tokens_command(ctx: click.Context, username: str | None) -> None:
    """Show tokens (id, user, label, created, revoked) — never the tokens themselves."""
    from engine.accounts.auth import list_tokens

    app, lang = _load(ctx)
    with _transaction(ctx, app, lang) as conn:
        infos = list_tokens(conn, username)
    for info in infos:
        state = ("revoked" if lang == "en" else "已吊销") if info.revoked else ""
        click.echo(
            f"{info.id}\t{info.username}\t{info.label or ''}\t"
            f"{info.created_at:%Y-%m-%d %H:%M}\t{state}".rstrip()
        )


@token.command("revoke")
@click.argument("token_id", type=int)
@click.pass_context
def revoke_token_command(ctx: click.Context, token_id: int) -> None:
    """Revoke a token by the id shown by 'token list'."""
    from engine.accounts.auth import revoke_token_id

    app, lang = _load(ctx)
    with _transaction(ctx, app, lang) as conn:
        done = revoke_token_id(conn, token_id, actor=ACTOR)
    if not done:
        _fail(
            ctx,
            Text(f"no active token with id {token_id}", f"没有 id 为 {token_id} 的有效令牌"),
            lang,
        )
    click.echo("✓ revoked" if lang == "en" else "✓ 已吊销")
