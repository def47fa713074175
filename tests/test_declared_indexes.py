"""Indexes declared in YAML (issue 17): ``index: true`` on a field and ``indexes:`` on a form
are checked at their positions, planned and deployed like columns on SQLite and PostgreSQL
(rows kept), read by a filtered list; ``validate`` suggests one where a KPI filters on a
field without it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import codes
from test_deploy import _group, compiled

from engine.compile import CompileResult, compile_app
from engine.deploy.apply import deploy
from engine.deploy.plan import live_index_names, plan_schema
from engine.forms.records import SYSTEM_ACTOR, RecordService
from engine.store.tables import build_metadata

MakeApp = Callable[..., CompileResult]
ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 5, 6, 9, 30, tzinfo=UTC)

ORDER = """\
title: Order
fields:
  customer: {type: text, label: Customer}
  region: {type: select, label: Region, options: [north, south]}
  kind: {type: select, label: Kind, options: [normal, rush]}
  qty: {type: integer, label: Qty}
  due: {type: date, label: Due}
  lines:
    type: table
    label: Lines
    fields:
      sku: {type: text, label: SKU}
"""
INDEXED = ORDER.replace(
    "customer: {type: text, label: Customer}",
    "customer: {type: text, label: Customer, index: true}",
).replace("sku: {type: text, label: SKU}", "sku: {type: text, label: SKU, index: true}") + (
    "indexes:\n  - [region, kind, due]\n  - [state, qty]\n"
)
WANTED = {
    "f_order": {"ix_f_order_customer", "ix_f_order_region_kind_due", "ix_f_order_state_qty"},
    "f_order__lines": {"ix_f_order__lines_sku"},
}


def _messages(result: CompileResult, code: str) -> list[str]:
    return [d.headline() for d in result.diagnostics.sorted() if d.code == code]


# ---------------------------------------------------------------------------- compile


def test_declared_indexes_reach_the_spec_and_the_tables(make_app: MakeApp) -> None:
    app, _ = compiled(make_app, {"forms/order.yaml": INDEXED})
    form = app.forms["order"]
    assert form.by_name["customer"].index and not form.by_name["kind"].index
    assert form.indexes == (("region", "kind", "due"), ("state", "qty"))
    assert form.leads_index("customer") and form.leads_index("region")
    assert form.leads_index("due")  # dates always have one
    assert not form.leads_index("kind")  # second in a composite: not a lead
    metadata = build_metadata(app)
    for table, names in WANTED.items():
        have = {str(i.name) for i in metadata.tables[table].indexes}
        assert names <= have, have
    composite = next(
        i for i in metadata.tables["f_order"].indexes if i.name == "ix_f_order_region_kind_due"
    )
    assert [c.name for c in composite.columns] == ["region", "kind", "due"]  # in order


@pytest.mark.parametrize(
    ("field", "words"),
    [
        ("photos: {type: files, label: Photos, index: true}", "a files field cannot"),
        ("tags: {type: multiselect, label: Tags, options: [a, b], index: true}", "a multiselect"),
        ("note: {type: long_text, label: Note, index: true}", "a long_text field cannot"),
        ("big: {type: text, label: Big, max_length: 2000, index: true}", "up to 2000 characters"),
    ],
)
def test_index_on_a_type_without_a_fitting_column_is_refused_at_the_key(
    make_app: MakeApp, field: str, words: str
) -> None:
    form = ORDER.replace("  qty: {type: integer, label: Qty}\n", f"  {field}\n")
    result = make_app({"forms/order.yaml": form})
    assert result.app is None
    (found,) = [c for c in codes(result) if c[3] == "no-index"]
    line = form.splitlines().index(f"  {field}") + 1
    assert found[:3] == ("order.yaml", line, f"  {field}".index("index: true") + 1)
    (message,) = _messages(result, "no-index")
    assert words in message
    fix = "max_length: 800 or less" if "max_length" in field else "remove `index: true`"
    assert fix in message


def test_index_on_a_child_table_itself_is_refused(make_app: MakeApp) -> None:
    form = ORDER.replace("    label: Lines\n", "    label: Lines\n    index: true\n")
    result = make_app({"forms/order.yaml": form})
    (message,) = _messages(result, "no-index")
    assert "a table field cannot have an index" in message and "a field of its rows" in message


def test_composite_index_mistakes_are_reported_at_the_entry(make_app: MakeApp) -> None:
    form = ORDER.replace("  qty: {type: integer, label: Qty}\n", "").replace(
        "  due:",
        "  photos: {type: files, label: Photos}\n  region_kind: {type: text, label: R, "
        "index: true}\n  due:",
    ) + (
        "indexes:\n"
        "  - [regoin, due]\n"  # line +1: unknown field
        "  - [kind]\n"  # +2: one field
        "  - [photos, due]\n"  # +3: not indexable
        "  - [region, kind]\n"  # +4: named like region_kind's own index
        "  - [created_by, due]\n"  # +5: fine, built-in fields may be listed
    )
    result = make_app({"forms/order.yaml": form})
    first = form.splitlines().index("indexes:") + 2
    found = [c for c in codes(result) if c[3] != "unknown-field" or c[1] >= first]
    assert found == [
        ("order.yaml", first, 6, "unknown-field"),
        ("order.yaml", first + 1, 5, "index-one-field"),
        ("order.yaml", first + 2, 6, "no-index"),
        ("order.yaml", first + 3, 5, "index-name-clash"),
    ]
    text = "\n".join(d.headline() for d in result.diagnostics.sorted())
    assert "did you mean 'region'" in text
    assert "write `index: true` on field 'kind' instead" in text
    assert "'photos' cannot be in an index: it holds a list of files" in text


def test_messages_come_in_chinese_too(make_app: MakeApp) -> None:
    form = ORDER.replace("  qty: {type: integer, label: Qty}\n", "") + "indexes:\n  - [kind]\n"
    result = make_app({"forms/order.yaml": form})
    (diag,) = [d for d in result.diagnostics.sorted() if d.code == "index-one-field"]
    assert "请改为在字段 'kind' 下写 `index: true`" in diag.headline("zh")


# ---------------------------------------------------------------------------- suggestions

BOARD = """\
title: Board
kpis:
  rush:
    title: Rush orders
    form: order
    measure: count
    where: "kind == 'rush' and region in ('north',) and due != None and state != 'draft'"
"""


def test_a_kpi_filtering_on_an_unindexed_field_gets_a_warning_with_the_fix(
    make_app: MakeApp,
) -> None:
    result = make_app({"forms/order.yaml": ORDER, "dashboards/board.yaml": BOARD})
    assert result.ok  # a suggestion, not an error
    line = BOARD.splitlines().index(BOARD.splitlines()[-1]) + 1
    col = BOARD.splitlines()[-1].index("kind") + 1
    found = [c for c in codes(result) if c[3] == "unindexed-filter"]
    region = BOARD.splitlines()[-1].index("region") + 1
    # kind and region: a select each; due (a date) and state are indexed already
    assert found == [
        ("board.yaml", line, col, "unindexed-filter"),
        ("board.yaml", line, region, "unindexed-filter"),
    ]
    diag = next(d for d in result.diagnostics.sorted() if d.code == "unindexed-filter")
    assert diag.severity == "warning"
    assert "field 'kind' of form 'order' has no index" in diag.headline("en")
    assert "add `index: true` to field 'kind' in" in diag.headline("en")
    assert "forms/order.yaml" in diag.headline("en")
    assert "请在" in diag.headline("zh") and "添加 `index: true`" in diag.headline("zh")


def test_an_index_or_a_composite_led_by_the_field_silences_it(make_app: MakeApp) -> None:
    form = ORDER.replace(
        "kind: {type: select, label: Kind, options: [normal, rush]}",
        "kind: {type: select, label: Kind, options: [normal, rush], index: true}",
    ) + ("indexes:\n  - [region, due]\n")
    result = make_app({"forms/order.yaml": form, "dashboards/board.yaml": BOARD})
    assert result.ok and _messages(result, "unindexed-filter") == []


def test_refs_and_paths_through_them_get_no_warning(make_app: MakeApp) -> None:
    customer = "title: Customer\ntitle_field: name\nfields:\n  name: {type: text, label: Name}\n"
    form = ORDER.replace(
        "customer: {type: text, label: Customer}",
        "customer: {type: ref, label: Customer, form: customer}",
    )
    board = BOARD.replace(
        "where: \"kind == 'rush' and region in ('north',) and due != None and state != 'draft'\"",
        "where: \"customer != None and customer.name == 'ACME'\"",
    )
    result = make_app(
        {
            "forms/order.yaml": form,
            "forms/customer.yaml": customer,
            "dashboards/board.yaml": board,
        }
    )
    assert result.ok and _messages(result, "unindexed-filter") == []


def test_no_suggestion_for_a_form_whose_file_has_errors(make_app: MakeApp) -> None:
    form = ORDER.replace(  # the misspelt key may be the index being declared
        "kind: {type: select, label: Kind, options: [normal, rush]}",
        "kind: {type: select, label: Kind, options: [normal, rush], indx: true}",
    )
    result = make_app({"forms/order.yaml": form, "dashboards/board.yaml": BOARD})
    assert [c[3] for c in codes(result)] == ["unknown-key"]


@pytest.mark.parametrize("app", ["examples/manufacturing_pack", "configs"])
def test_the_shipped_apps_validate_without_index_warnings(app: str) -> None:
    result = compile_app(ROOT / app)
    assert result.ok
    assert _messages(result, "unindexed-filter") == []


# ---------------------------------------------------------------------------- deploy


def _rows(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text("SELECT id, customer, region, kind, qty, due FROM f_order ORDER BY id")
            )
        ]


def test_declare_deploy_remove_deploy_on_a_table_with_rows(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER})
    deploy(engine, app, sources)
    records = RecordService(app, engine, build_metadata(app))
    for i in range(30):
        values = {
            "customer": f"C{i % 7}",
            "region": ("north", "south")[i % 2],
            "kind": ("normal", "rush")[i % 3 == 0],
            "qty": i,
            "due": date(2026, 6, 1 + i % 28).isoformat(),
            "lines": [{"sku": f"S{i}"}],
        }
        records.create("order", values, SYSTEM_ACTOR)
    before = _rows(engine)

    indexed, sources2 = compiled(make_app, {"forms/order.yaml": INDEXED})
    with engine.connect() as conn:
        plan = plan_schema(conn, indexed)
    assert {s.target for s in plan.steps if s.kind == "add_index"} == set().union(*WANTED.values())
    assert all(s.kind == "add_index" and not s.destructive for s in plan.steps), plan.render()
    assert "+ add index ix_f_order_region_kind_due on f_order (region, kind, due)" in plan.render()
    deploy(engine, indexed, sources2)
    with engine.connect() as conn:
        for table, names in WANTED.items():
            assert names <= live_index_names(conn, table)
        assert plan_schema(conn, indexed).up_to_date
    assert _rows(engine) == before

    removed, sources3 = compiled(make_app, {"forms/order.yaml": ORDER})
    with engine.connect() as conn:
        plan = plan_schema(conn, removed)
    assert {s.target for s in plan.steps} == set().union(*WANTED.values())
    assert all(s.kind == "drop_index" and not s.destructive for s in plan.steps), plan.render()
    assert "- drop index ix_f_order_customer on f_order" in plan.render()
    deploy(engine, removed, sources3)
    with engine.connect() as conn:
        for table, names in WANTED.items():
            assert not names & live_index_names(conn, table)
        assert "ix_f_order_due" in live_index_names(conn, "f_order")  # the engine's own stay
        assert plan_schema(conn, removed).up_to_date
        skus = conn.execute(sa.text("SELECT count(*) FROM f_order__lines")).scalar_one()
    assert _rows(engine) == before and skus == 30


LONG = """\
title: Complaint
fields:
  responsible_department_of_the_plant: {type: text, label: Department, index: true}
  promised_response_date_for_the_customer: {type: date, label: Promised}
indexes:
  - [responsible_department_of_the_plant, promised_response_date_for_the_customer]
"""


def test_long_index_names_are_shortened_and_recognised_after_deploy(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    name = "customer_complaint_follow_up_record"
    app, sources = compiled(make_app, {f"forms/{name}.yaml": LONG})
    deploy(engine, app, sources)
    with engine.connect() as conn:
        live = {n for n in live_index_names(conn, f"f_{name}") if n.startswith("ix_")}
        assert plan_schema(conn, app).up_to_date  # the shortened names are known as they are
    assert len(live) == 6  # state, created_at, state_updated, the two fields, the composite
    if engine.dialect.name == "postgresql":  # 76, 80 and 117 characters: shortened, all kept
        assert all(len(n) <= 63 for n in live), live
        assert sum(bool(re.fullmatch(rf"ix_f_{name}_\w+_[0-9a-f]{{4}}", n)) for n in live) == 3
    else:
        assert (
            f"ix_f_{name}_responsible_department_of_the_plant_promised_response_date_for_the_customer"
            in live
        )


def test_a_filtered_list_reads_the_declared_index(engine: sa.Engine, make_app: MakeApp) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": INDEXED})
    deploy(engine, app, sources)
    records = RecordService(app, engine, build_metadata(app))
    for i in range(20):
        records.create("order", {"customer": f"C{i % 4}", "qty": i}, SYSTEM_ACTOR)
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, params: object, *rest: object) -> None:
        statements.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        page = records.list_page("order", filters={"customer": "C1"}, limit=50)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert [r["qty"] for r in page.items] == [17, 13, 9, 5, 1]
    statement, params = next((s, p) for s, p in statements if "FROM f_order" in s)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            explain = f"EXPLAIN QUERY PLAN {statement}"
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: scans are cheaper
            explain = f"EXPLAIN {statement}"
        plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(explain, params))  # type: ignore[arg-type]
    assert "ix_f_order_customer" in plan, plan


def test_cli_plan_lists_the_index_steps(db_url: str, make_app: MakeApp) -> None:
    app, _ = compiled(make_app, {"forms/order.yaml": ORDER})
    cli, runner = _group(), CliRunner()
    base = ["--app", app.root, "--db", db_url]
    assert runner.invoke(cli, [*base, "deploy"]).exit_code == 0
    compiled(make_app, {"forms/order.yaml": INDEXED})  # the same folder, now with the indexes
    planned = runner.invoke(cli, [*base, "plan"])
    assert planned.exit_code == 0, planned.output
    assert "+ add index ix_f_order_customer on f_order (customer)" in planned.stdout
    assert "+ add index ix_f_order__lines_sku on f_order__lines (sku)" in planned.stdout
    zh = runner.invoke(cli, [*base, "--lang", "zh", "plan"])
    assert "新增索引 ix_f_order_region_kind_due，表 f_order（region, kind, due）" in zh.stdout
    assert runner.invoke(cli, [*base, "deploy"]).exit_code == 0
    compiled(make_app, {"forms/order.yaml": ORDER})
    dropped = runner.invoke(cli, [*base, "plan"])
    assert "- drop index ix_f_order_state_qty on f_order" in dropped.stdout
