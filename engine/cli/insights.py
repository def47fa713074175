"""``seamline insights``: reports that read the app's records and suggest something.

``seamline insights clusters FORM FIELD`` clusters the combinations of any multiselect field;
``seamline insights NAME`` runs a report named under ``insights:`` in app.yaml with its form,
field and limits; a hyphen in NAME stands for an underscore (the manufacturing pack's
``special_processes`` runs as ``seamline insights special-processes``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.cli.common import cli_lang, open_app, say

if TYPE_CHECKING:
    from engine.insights.clusters import ClusterReport

__all__ = ["insights_group"]

_MIN_SUPPORT = click.option(
    "--min-support",
    type=click.IntRange(min=1),
    default=None,
    help="A combination becomes a candidate when at least N records ask for exactly it "
    "(default 2, or the report's min_support).",
)
_TOP = click.option(
    "--top",
    type=click.IntRange(min=1),
    default=None,
    help="Suggest at most K templates (default 7, or the report's top).",
)
_CSV = click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the templates to this CSV file.",
)


class _Insights(click.Group):
    """Built-in subcommands, and any other name is looked up in app.yaml's ``insights:``."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = super().get_command(ctx, cmd_name)
        return known if known is not None else _named(cmd_name)


@click.group("insights", cls=_Insights)
def insights_group() -> None:
    """Reports from the records: `clusters FORM FIELD`, or a report named in app.yaml."""


@insights_group.command("clusters")
@click.argument("form")
@click.argument("field")
@_MIN_SUPPORT
@_TOP
@_CSV
@click.pass_context
def clusters_command(
    ctx: click.Context,
    form: str,
    field: str,
    min_support: int | None,
    top: int | None,
    csv_file: Path | None,
) -> None:
    """Cluster the combinations of a multiselect FIELD of FORM into candidate templates."""
    _run(ctx, form, field, min_support or 2, top or 7, csv_file, None)


def _named(name: str) -> click.Command:
    @click.command(name)
    @_MIN_SUPPORT
    @_TOP
    @_CSV
    @click.pass_context
    def named(
        ctx: click.Context, min_support: int | None, top: int | None, csv_file: Path | None
    ) -> None:
        result, _ = open_app(ctx)
        spec = result.app.insights.get(name.replace("-", "_"))
        if spec is None:
            names = ", ".join(sorted(result.app.insights)) or "-"
            say(
                ctx,
                f"no insight report named '{name}' (app.yaml insights: {names}; "
                "or use `insights clusters FORM FIELD`)",
                f"没有名为 '{name}' 的洞察报告（app.yaml insights：{names}；"
                "或使用 `insights clusters 表单 字段`）",
                err=True,
            )
            sys.exit(1)
        _run(
            ctx,
            spec.form,
            spec.field,
            min_support or spec.min_support,
            top or spec.top,
            csv_file,
            spec.title,
        )

    named.help = "Run the insight report named in app.yaml."
    return named


def _run(
    ctx: click.Context,
    form: str,
    field: str,
    min_support: int,
    top: int,
    csv_file: Path | None,
    title: str | None,
) -> None:
    from engine.insights.clusters import NotAMultiselect, cluster_report

    result, engine = open_app(ctx)
    lang = cli_lang(ctx)
    try:
        report = cluster_report(engine, result.app, form, field, min_support=min_support, top=top)
    except NotAMultiselect as exc:
        click.echo(exc.message(lang), err=True)
        sys.exit(1)
    _print(report, title, lang)
    if csv_file is not None:
        write_csv(report, csv_file)
        say(ctx, f"wrote {csv_file}", f"已写入 {csv_file}")


def _print(report: ClusterReport, title: str | None, lang: str) -> None:
    from rich.console import Console
    from rich.table import Table

    zh = lang == "zh"
    table = Table(title=title or f"{report.form}.{report.field}")
    for header in (
        ("#", "#"),
        ("template", "模板"),
        ("exactly", "完全相同"),
        ("covers", "可覆盖"),
        ("added", "新增覆盖"),
        ("cumulative", "累计覆盖"),
    ):
        table.add_column(
            header[1] if zh else header[0], justify="left" if header[0] == "template" else "right"
        )
    for i, t in enumerate(report.templates, 1):
        table.add_row(
            str(i),
            " + ".join(t.choices),
            str(t.exact),
            str(t.covers),
            str(t.added),
            f"{t.cumulative} ({report.share(t.cumulative):.0%})",
        )
    console = Console()
    console.print(table)
    n, share = len(report.templates), report.share(report.covered)
    console.print(
        f"{n} 个模板覆盖 {share:.0%} 的定制需求（{report.covered}/{report.demands}；"
        f"共 {report.records} 条记录，{report.combinations} 种组合，"
        f"候选至少 {report.min_support} 次）"
        if zh
        else f"{n} templates cover {share:.0%} of custom demands ({report.covered}/"
        f"{report.demands}; {report.records} records, {report.combinations} combinations, "
        f"candidates asked for at least {report.min_support} times)"
    )


def write_csv(report: ClusterReport, target: Path) -> None:
    from engine.insights.clusters import csv_text

    target.write_text(csv_text(report), encoding="utf-8")
