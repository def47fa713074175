"""``seamline init``: copy the starter app or a shipped pack into a folder to start from."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from engine.assets import PACKS, STARTER
from engine.cli.common import say

# What never leaves the package with a copy: databases, caches, a demo's folder.
SKIPPED = shutil.ignore_patterns("*.db", "*.db-*", "__pycache__", "*.pyc", ".seamline-demo")


@click.command("init")
@click.argument(
    "folder",
    required=False,
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--pack",
    type=click.Choice(sorted(PACKS)),
    default=None,
    help="Start from a shipped pack instead of the small starter app.",
)
@click.pass_context
def init_command(ctx: click.Context, folder: Path, pack: str | None) -> None:
    """Copy the starter app (or --pack NAME) into FOLDER (default: here) to edit and deploy.

    Refuses to write into a folder that already holds an app.yaml or any of the files it would
    copy: nothing of yours is overwritten."""
    source = PACKS[pack] if pack else STARTER
    what = f"the {pack} pack" if pack else "the starter app"
    what_zh = f"{pack} 行业包" if pack else "入门应用"
    clashes = (
        sorted(entry.name for entry in source.iterdir() if (folder / entry.name).exists())
        if folder.is_dir()
        else []
    )
    if clashes:
        shown = ", ".join(clashes[:5]) + (" …" if len(clashes) > 5 else "")
        say(
            ctx,
            f"{folder} already has {shown}: nothing copied (choose an empty or new folder)",
            f"{folder} 中已有 {shown}：未复制任何文件（请选择空文件夹或新文件夹）",
            err=True,
        )
        sys.exit(1)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, folder, ignore=SKIPPED, dirs_exist_ok=True)
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    say(
        ctx,
        f"copied {what} into {folder} ({files} files)",
        f"已将{what_zh}复制到 {folder}（{files} 个文件）",
    )
    go = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    say(
        ctx,
        f"next: {go}seamline validate && seamline deploy && seamline serve",
        f"下一步：{go}seamline validate && seamline deploy && seamline serve",
    )
    say(
        ctx,
        "to sign in: seamline user set-password USER (anyone in data/people.csv), or "
        "seamline user create NAME --role ROLE",
        "登录前：seamline user set-password 用户名（data/people.csv 中的人员），或 "
        "seamline user create 用户名 --role 角色",
    )
