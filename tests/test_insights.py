"""Insights: a multiselect field's combinations clustered into candidate templates (greedy set
cover over the combinations asked for at least min_support times), on a small data set whose
templates and coverage are computed by hand below, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import html
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from apihelp import start_api
from click.testing import CliRunner
from conftest import codes
from test_pages import PASSWORD, browser, sign_in

from engine.accounts.auth import set_password
from engine.cli.main import main
from engine.compile import CompileResult
from engine.insights.clusters import cluster_report, pick_templates
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata

FORM = """\
title: Job
fields:
  name: {type: text, label: Name}
  steps:
    type: multiselect
    label: Steps
    options: [cut, glue, paint, seal]
"""

APP = """\
name: t
title: Test app
locale: en
calendar: cn
roles:
  clerk: {label: Clerk}
  boss: {label: Boss}
insights:
  step_sets:
    title: Step sets
    form: job
    field: steps
    roles: [boss]
"""

# 20 records: 14 ask for at least one step, 4 for none, 2 leave the field blank.
ROWS = (
    [["cut"]] * 5
    + [["cut", "glue"]] * 2
    + [["glue", "cut"]]  # the same combination stored in another order
    + [["glue"]] * 2
    + [["paint"]] * 2
    + [["paint", "seal"]]
    + [["seal"]]
    + [[]] * 4
    + [None] * 2
)
# Hand computation with min_support 2: the candidates are {cut} 5, {cut, glue} 3, {glue} 2
# and {paint} 2 ({paint, seal} and {seal} are asked for once). {cut, glue} covers cut,
# glue and both (5 + 3 + 2 = 10 of 14); then {paint} adds 2 (12 of 14); {paint, seal} and
# {seal} are no candidates, so nothing adds more.


def _build(make_app: Callable[..., CompileResult], db_url: str) -> tuple[CompileResult, sa.Engine]:
    result = make_app({"app.yaml": APP, "forms/job.yaml": FORM})
    assert result.app is not None, result.diagnostics.sorted()
    engine = create_db_engine(db_url)
    metadata = build_metadata(result.app)
    metadata.create_all(engine)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            metadata.tables["f_job"].insert(),
            [
                {
                    "name": f"job {i}",
                    "steps": steps,
                    "state": None,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                    "created_by": "test",
                }
                for i, steps in enumerate(ROWS)
            ],
        )
    return result, engine


def test_templates_and_coverage(make_app: Callable[..., CompileResult], db_url: str) -> None:
    result, engine = _build(make_app, db_url)
    try:
        report = cluster_report(engine, result.app, "job", "steps")
        one = cluster_report(engine, result.app, "job", "steps", top=1)
        loose = cluster_report(engine, result.app, "job", "steps", min_support=1)
    finally:
        engine.dispose()
    assert (report.records, report.demands, report.combinations) == (20, 14, 6)
    assert [(t.choices, t.exact, t.covers, t.added, t.cumulative) for t in report.templates] == [
        (("cut", "glue"), 3, 10, 10, 10),
        (("paint",), 2, 2, 2, 12),
    ]
    assert report.covered == 12
    assert report.to_json()["coverage"] == round(12 / 14, 4)
    assert [t.choices for t in one.templates] == [("cut", "glue")]
    assert one.covered == 10
    # every combination is a candidate: {paint, seal} covers paint, seal and both
    assert [(t.choices, t.added) for t in loose.templates] == [
        (("cut", "glue"), 10),
        (("paint", "seal"), 4),
    ]
    assert loose.covered == 14


def test_ties_go_to_fewer_choices_then_option_order() -> None:
    counts = Counter({frozenset({"b"}): 2, frozenset({"a"}): 2, frozenset({"a", "b"}): 0})
    picked = pick_templates(counts, min_support=2, top=5, order=("a", "b"))
    assert [(t.choices, t.added, t.cumulative) for t in picked] == [
        (("a",), 2, 2),
        (("b",), 2, 4),
    ]


def test_cli_named_report_and_csv(
    make_app: Callable[..., CompileResult], db_url: str, tmp_path: Path
) -> None:
    result, engine = _build(make_app, db_url)
    engine.dispose()
    out = tmp_path / "templates.csv"
    base = ["--app", result.app.root, "--db", db_url]
    run = CliRunner().invoke(
        main,
        [*base, "insights", "step-sets", "--csv", str(out)],
    )
    assert run.exit_code == 0, run.output
    assert "2 templates cover 86% of custom demands (12/14" in run.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["rank", "template", "exact", "covers", "added", "cumulative", "coverage"],
        ["1", "cut + glue", "3", "10", "10", "10", "0.7143"],
        ["2", "paint", "2", "2", "2", "12", "0.8571"],
    ]
    generic = CliRunner().invoke(
        main,
        [*base, "--lang", "zh", "insights", "clusters", "job", "steps", "--top", "1"],
    )
    assert generic.exit_code == 0, generic.output
    assert "1 个模板覆盖 71% 的定制需求" in generic.output
    wrong = CliRunner().invoke(main, [*base, "insights", "clusters", "job", "name"])
    unknown = CliRunner().invoke(main, [*base, "insights", "nope"])
    assert wrong.exit_code == 1
    assert "job.name is not a multiselect field" in wrong.output
    assert unknown.exit_code == 1
    assert "no insight report named 'nope' (app.yaml insights: step_sets" in unknown.output


def test_report_must_name_a_multiselect(make_app: Callable[..., CompileResult]) -> None:
    result = make_app(
        {"app.yaml": APP.replace("field: steps", "field: name"), "forms/job.yaml": FORM}
    )
    typo = make_app({"app.yaml": APP.replace("form: job", "form: jobs"), "forms/job.yaml": FORM})
    assert result.app is None
    assert codes(result) == [("app.yaml", 12, 12, "wrong-type")]
    assert codes(typo) == [("app.yaml", 11, 11, "unknown-form")]


def test_page_and_csv_with_roles(make_app: Callable[..., CompileResult], db_url: str) -> None:
    result, engine = _build(make_app, db_url)
    engine.dispose()
    api = start_api(db_url, Path(result.app.root))
    try:
        api.add_user("bo", "boss")
        api.add_user("cl", "clerk")
        with api.engine.begin() as conn:
            set_password(conn, "bo", PASSWORD)
            set_password(conn, "cl", PASSWORD)
        boss, clerk = browser(api), browser(api)
        sign_in(boss, "bo")
        sign_in(clerk, "cl")
        page = boss.get("/insights/step-sets")
        download = boss.get("/insights/step_sets/templates.csv")
        refused = clerk.get("/insights/step_sets")
        refused_csv = clerk.get("/insights/step_sets/templates.csv")
        missing = boss.get("/insights/nope")
    finally:
        api.engine.dispose()
    assert page.status_code == 200
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())
    assert "2 templates cover 86% of custom demands (12 of 14)." in text
    assert "1 cut + glue 3 10 10 10 (71%) 2 paint 2 2 2 12 (86%)" in text
    assert "<script" not in page.text.split("<main", 1)[-1]  # nothing inline for the CSP
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
    assert download.text.splitlines()[1:] == [
        "1,cut + glue,3,10,10,10,0.7143",
        "2,paint,2,2,2,12,0.8571",
    ]
    assert (refused.status_code, refused_csv.status_code, missing.status_code) == (403, 403, 404)
