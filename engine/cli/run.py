"""Commands that run the app against its database: serve, audit verify, import, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from engine.cli.common import cli_lang, open_app, say


def deployed_live(ctx: click.Context, result: Any, engine: Any) -> Any:
    """The newest deployment as a LiveApp; exit 1 when nothing was deployed yet. ``result``:
    the app folder compiled (a note when it differs from the deployment), or None without one."""
    from engine.runtime import NotServable, newest_live

    try:
        live = newest_live(engine)
    except NotServable as refused:
        click.echo(refused.text(cli_lang(ctx)), err=True)
        sys.exit(1)
    if result is not None and live.app.content_hash != result.app.content_hash:
        say(
            ctx,
            "note: the app folder differs from the deployed version; serving the deployed "
            "one (run `seamline deploy` to switch)",
            "提示：应用目录与已部署的版本不同；当前按已部署版本运行（运行 `seamline deploy` 切换）",
            err=True,
        )
    if live.app.approvals:
        _warn_without_pdf(ctx)
    return live


def _warn_without_public_url(ctx: click.Context) -> None:
    """Customer messages link to /track only with SEAMLINE_PUBLIC_URL: say so when it is not
    set (or not usable) as the app starts."""
    from engine.flows.links import public_url_problem

    problem = public_url_problem()
    if problem is not None:
        say(ctx, f"note: {problem.en}", f"提示：{problem.zh}", err=True)


def _warn_without_pdf(ctx: click.Context) -> None:
    """Approvals finish without the ``pdf`` extra, but their sealed PDF records wait (the jobs
    fail saying why and run again once it is installed): say so when the app starts."""
    from engine.model.extras import SetupError, require
    from engine.model.i18n import Text

    try:
        require("pdf", purpose=Text("the sealed approval record PDF", "审批记录 PDF "))
    except SetupError as missing:
        say(ctx, f"warning: {missing.text.en}", f"警告：{missing.text.zh}", err=True)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--poll", default=2.0, show_default=True, help="Seconds between checks for a newer deployment."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Web processes (N>1: each builds its own app through engine.web.asgi:create_app).",
)
@click.option(
    "--no-worker",
    is_flag=True,
    help="Do not run the outbox worker in the web process(es); run `seamline worker` instead.",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies whose X-Forwarded-For/-Proto are trusted, comma-separated, or * "
    "(default: FORWARDED_ALLOW_IPS, else 127.0.0.1).",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    host: str,
    port: int,
    poll: float,
    workers: int,
    no_worker: bool,
    forwarded_allow_ips: str | None,
) -> None:
    """Serve the web app and API on the newest deployment (switches without a restart)."""
    result, engine = open_app(ctx, deployed_ok=True)
    run_server(
        ctx,
        result,
        engine,
        host,
        port,
        poll,
        workers=workers,
        worker=not no_worker,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def run_server(
    ctx: click.Context,
    result: Any,
    engine: Any,
    host: str,
    port: int,
    poll: float,
    *,
    workers: int = 1,
    worker: bool = True,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve the newest deployment of ``engine`` until stopped: in this process, or with
    ``workers`` > 1 in that many uvicorn processes on the ASGI factory (settings by environment
    variables: SEAMLINE_DB, SEAMLINE_WORKER, SEAMLINE_POLL, SEAMLINE_LOG_*)."""
    import uvicorn

    from engine.model.logs import logger
    from engine.web.asgi import prepare_database, server_options, serving_app

    current = deployed_live(ctx, result, engine)  # refuses here, before any process starts
    if current.app.tracking is not None:
        _warn_without_public_url(ctx)
    options = server_options(forwarded_allow_ips, (ctx.obj or {}).get("log_level"))
    log = logger("engine.cli.run")
    if workers == 1:
        web = serving_app(engine, current, poll=poll, worker=worker)
        say(
            ctx,
            f"serving {current.app.title} on http://{host}:{port}",
            f"{current.app.title} 已启动：http://{host}:{port}",
        )
        uvicorn.run(web, host=host, port=port, **options)
        return
    import os
    import secrets
    import shutil
    import tempfile

    from engine.model.logs import env_log_format

    prepare_database(engine, current)  # once here, not raced by every process at its start
    obj = ctx.obj or {}
    os.environ["SEAMLINE_DB"] = engine.url.render_as_string(hide_password=False)
    os.environ["SEAMLINE_WORKER"] = "1" if worker else "0"
    os.environ["SEAMLINE_POLL"] = str(poll)
    os.environ["SEAMLINE_LOG_LEVEL"] = obj.get("log_level") or os.environ.get(
        "SEAMLINE_LOG_LEVEL", "INFO"
    )
    os.environ["SEAMLINE_LOG_FORMAT"] = obj.get("log_format") or env_log_format()
    if not os.environ.get("SEAMLINE_SECRET_KEY"):
        # one key for every process of this run, or a session signed by one is refused by another
        os.environ["SEAMLINE_SECRET_KEY"] = secrets.token_urlsafe(48)
        log.warning(
            "SEAMLINE_SECRET_KEY is not set: the %d processes share a random key for this run; "
            "sessions will not survive a restart",
            workers,
        )
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics adds up every process
        metrics_dir = tempfile.mkdtemp(prefix="seamline-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    say(
        ctx,
        f"serving {current.app.title} on http://{host}:{port} ({workers} processes)",
        f"{current.app.title} 已启动：http://{host}:{port}（{workers} 个进程）",
    )
    try:
        uvicorn.run(
            "engine.web.asgi:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **options,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


_ZH_PROBLEM = {"missing": "已丢失", "altered": "已被篡改"}


@click.group("audit")
def audit_group() -> None:
    """Check the tamper-evident event log."""


@audit_group.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Walk the hash chain; exit 1 and name the first bad event when it was tampered with."""
    from engine.flows.approvals.verify import verify_approval_records
    from engine.store.events import verify_chain
    from engine.store.system_tables import system_metadata

    _, engine = open_app(ctx, deployed_ok=True)
    with engine.connect() as conn:
        report = verify_chain(conn, system_metadata())
        pdfs, problems = verify_approval_records(conn)
    for problem in problems:
        say(
            ctx,
            f"approval record {problem.file_id} (event {problem.event_id}) is {problem.reason}: "
            "the stored PDF does not match the SHA-256 sealed in the event log",
            f"审批记录 {problem.file_id}（事件 {problem.event_id}）{_ZH_PROBLEM[problem.reason]}："
            "与事件链中封存的 SHA-256 不符",
            err=True,
        )
    if report.ok and not problems:
        say(
            ctx,
            f"event chain intact: {report.checked} events checked; "
            f"{pdfs} approval records match their sealed hashes",
            f"事件链完整：已校验 {report.checked} 条事件；{pdfs} 份审批记录与封存的哈希一致",
        )
        return
    if report.ok:
        sys.exit(1)
    say(
        ctx,
        f"event chain BROKEN at event {report.first_bad_id}: {report.reason} "
        f"({report.checked} events before it are intact)",
        f"事件链已被破坏，首个异常事件为 {report.first_bad_id}：{report.reason}"
        f"（此前 {report.checked} 条完好）",
        err=True,
    )
    sys.exit(1)


class _CliActor:
    username = "import"
    roles = frozenset({"*"})


@click.command("import")
@click.argument("form")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_command(ctx: click.Context, form: str, file: Path) -> None:
    """Import records from a CSV file (columns named by field name or label)."""
    from rich.progress import Progress

    from engine.forms.transfer import count_rows, import_csv
    from engine.model.errors import ValidationFailed

    result, engine = open_app(ctx, deployed_ok=True)
    live = deployed_live(ctx, result, engine)
    if form not in live.app.forms:
        say(ctx, f"unknown form '{form}'", f"未知的表单 '{form}'", err=True)
        sys.exit(1)
    text = file.read_text(encoding="utf-8-sig")
    lang = cli_lang(ctx)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"import {form}", total=count_rows(text))
        try:
            report = import_csv(
                live.records, form, text, _CliActor(), lambda n: progress.advance(task, n)
            )
        except ValidationFailed as failed:
            for e in failed.errors:
                click.echo(f"{file}: {e.message(lang)}", err=True)
            sys.exit(1)
    for line, errors in report.failed[:50]:
        for e in errors:
            click.echo(f"{file}:{line}: {e.field}: {e.message(lang)}", err=True)
    say(
        ctx,
        f"imported {report.created} records, {len(report.failed)} rows refused",
        f"已导入 {report.created} 条记录，{len(report.failed)} 行被拒绝",
    )
    sys.exit(1 if report.failed else 0)


@click.command("export")
@click.argument("form")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
def export_command(ctx: click.Context, form: str, out: Path | None) -> None:
    """Export all records of FORM as CSV (to --out or standard output)."""
    from engine.forms.transfer import export_csv

    result, engine = open_app(ctx, deployed_ok=True)
    live = deployed_live(ctx, result, engine)
    if form not in live.app.forms:
        say(ctx, f"unknown form '{form}'", f"未知的表单 '{form}'", err=True)
        sys.exit(1)
    stream = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
    try:
        for chunk in export_csv(live.records, form):
            stream.write(chunk)
    finally:
        if out:
            stream.close()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--dir",
    "demo_dir",
    default=".seamline-demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the demo's SQLite database and files.",
)
@click.option("--reset", is_flag=True, help="Delete the demo folder's contents and start over.")
@click.option(
    "--orders",
    default=42_000,
    show_default=True,
    type=click.IntRange(0, 2_000_000),
    help="Orders of history to generate on the first run (a year).",
)
@click.option("--no-serve", is_flag=True, help="Set everything up, print the logins, then stop.")
@click.option(
    "--scenario", is_flag=True, help="Drive a day of orders through the API, step by step."
)
@click.pass_context
def demo_command(
    ctx: click.Context,
    host: str,
    port: int,
    demo_dir: Path,
    reset: bool,
    orders: int,
    no_serve: bool,
    scenario: bool,
) -> None:
    """One command for a newcomer: the manufacturing pack on SQLite in --dir, with a year of
    history, its mock warehouse and a page for the chat messages; prints the logins and serves."""
    import os

    from engine.demo import build as demo
    from engine.deploy.apply import bundle_sources, deploy

    if not ctx.obj.get("app_chosen"):
        ctx.obj["app_dir"] = demo.PACK
    app_dir = Path(ctx.obj["app_dir"])
    folder = demo.DemoFolder(demo_dir)
    try:
        if reset:
            removed = demo.reset_folder(folder)
            for item in removed:
                say(ctx, f"removed {item}", f"已删除 {item}")
            if not removed:
                say(ctx, f"{demo_dir} is empty already", f"{demo_dir} 已经是空的")
        folder.create()
    except demo.DemoError as failed:
        tell(ctx, failed.text, err=True)
        sys.exit(1)
    if not ctx.obj.get("db_url"):  # never SEAMLINE_DB: the demo must not touch a real database
        ctx.obj["db_url"] = folder.db_url
    os.environ.setdefault("SEAMLINE_SECRET_KEY", folder.session_secret())
    result, engine = open_app(ctx)
    outcome = deploy(engine, result.app, bundle_sources(result.workspace), actor="demo")
    where = engine.url.render_as_string(hide_password=True)
    if outcome.steps:
        say(
            ctx,
            f"deployed {result.app.title} ({len(outcome.steps)} schema steps) into {where}",
            f"已部署 {result.app.title}（{len(outcome.steps)} 项结构变更）到 {where}",
        )
    else:
        say(ctx, f"reusing {where}", f"沿用已有数据库 {where}")
    live = deployed_live(ctx, result, engine)
    demo.give_demo_passwords(engine, live.app)
    try:
        loaded = demo.load_sample_data(
            engine, live, app_dir, orders, lambda t: tell(ctx, t), folder.loading
        )
    except demo.DemoError as failed:
        tell(ctx, failed.text, err=True)
        sys.exit(1)
    counts = ", ".join(f"{live.app.forms[f].title} {n:,}" for f, n in loaded.counts.items())
    say(ctx, f"in the database: {counts}", f"数据库中：{counts}")
    if no_serve and not scenario:
        _print_logins(ctx, live.app, app_dir, f"http://{host}:{port}/", None)
        return
    warehouse = demo.start_mock_warehouse(app_dir)
    if warehouse is not None:
        say(
            ctx,
            f"mock warehouse system on {warehouse.url} (WMS_URL)",
            f"模拟仓储系统已启动：{warehouse.url}（WMS_URL）",
        )
    chat, moved = demo.start_chat_sink(live.app, folder)
    if chat is not None:
        say(
            ctx,
            f"chat robots {', '.join(moved)} have no webhook set: their messages go to {chat.url}/",
            f"聊天机器人 {', '.join(moved)} 未配置 Webhook：消息改发到 {chat.url}/ 以便查看",
        )
    if scenario:
        from engine.demo.scenario import run_scenario

        ok = run_scenario(
            engine, live, app_dir, chat.url if chat else None, cli_lang(ctx), click.echo
        )
        sys.exit(0 if ok else 1)
    _print_logins(ctx, live.app, app_dir, f"http://{host}:{port}/", chat.url if chat else None)
    run_server(ctx, result, engine, host, port, 2.0)


def tell(ctx: click.Context, text: Any, err: bool = False) -> None:
    """Print an engine ``Text`` in the language of the command."""
    click.echo(text(cli_lang(ctx)), err=err)


def _print_logins(
    ctx: click.Context, app: Any, app_dir: Path, url: str, chat_url: str | None
) -> None:
    from engine.demo.build import DEMO_PASSWORD, demo_logins

    lang = cli_lang(ctx)
    click.echo("")
    say(
        ctx,
        f"Open {url} and sign in (password for everyone: {DEMO_PASSWORD}):",
        f"打开 {url} 登录（所有人的密码：{DEMO_PASSWORD}）：",
    )
    for login in demo_logins(app, app_dir):
        click.echo(f"  {login.user:<12} {login.name} · {login.role_label}")
        if login.try_this is not None:
            click.echo(f"      → {login.try_this(lang)}")
    if chat_url:
        say(
            ctx,
            f"DingTalk / WeCom messages: {chat_url}/",
            f"钉钉 / 企业微信消息：{chat_url}/",
        )


@click.command("worker")
@click.option("--poll", default=0.2, show_default=True, help="Seconds between looks for due jobs.")
@click.option("--drain", is_flag=True, help="Run what is due, then stop (for scripts and tests).")
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    help="Jobs run at once (PostgreSQL/procrastinate; threads).",
)
@click.pass_context
def worker_command(ctx: click.Context, poll: float, drain: bool, concurrency: int) -> None:
    """Run flow steps, outbox messages and timers (start any number, on any machines)."""
    import signal

    from engine.outbox.worker import Worker, procrastinate_worker, uses_procrastinate
    from engine.runtime import Deployments

    result, engine = open_app(ctx, deployed_ok=True)
    current = deployed_live(ctx, result, engine)
    if current.app.tracking is not None:  # the worker renders the messages that carry links
        _warn_without_public_url(ctx)
    deployments = Deployments(engine, current, poll_seconds=2.0)
    worker = Worker(engine, lambda: deployments.current.flows)
    if drain:
        done = worker.run_until_idle()
        say(ctx, f"{done} jobs run", f"已执行 {done} 个任务")
        return
    deployments.start()
    if uses_procrastinate(engine):
        queue = procrastinate_worker(
            engine, lambda: deployments.current.flows, concurrency, poll=poll
        )
        say(
            ctx,
            f"worker {queue.name} running on procrastinate (concurrency {concurrency})",
            f"工作进程 {queue.name} 已启动（procrastinate，并发 {concurrency}）",
        )
        try:
            queue.run_forever()  # stops on SIGINT/SIGTERM after the jobs in hand
        finally:
            deployments.stop()
        return
    signal.signal(signal.SIGTERM, lambda *_: worker.stop_event.set())
    say(ctx, f"worker {worker.name} running", f"工作进程 {worker.name} 已启动")
    try:
        worker.run_forever(poll)
    except KeyboardInterrupt:
        pass
    finally:
        deployments.stop()
