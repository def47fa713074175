"""Deploy: plan and apply schema changes without losing data, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from engine.cli.deploy import deploy_command, plan_command
from engine.compile import CompileResult
from engine.deploy.apply import (
    DestructiveChange,
    bundle_sources,
    deploy,
    latest_deployment,
)
from engine.deploy.plan import plan_schema
from engine.model.spec import App
from engine.store.events import EventIn, append_events, verify_chain
from engine.store.storage import create_db_engine
from engine.store.tables import build_metadata

MakeApp = Callable[..., CompileResult]
NOW = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)

ORDER_V1 = """\
title: Order
fields:
  customer: {type: text, label: Customer, max_length: 40}
  qty: {type: integer, label: Qty}
  kind:
    type: select
    label: Kind
    options: [normal, rush]
  due: {type: date, label: Due}
  log:
    type: table
    label: Log
    append_only: true
    fields:
      note: {type: text, label: Note}
"""

ORDER_V2 = """\
title: Sales order
fields:
  customer: {type: text, label: Customer name, max_length: 80}
  quantity: {type: integer, label: Quantity, renamed_from: qty}
  kind:
    type: select
    label: Kind
    options: [normal, rush, trial]
  due: {type: date, label: Due}
  remarks: {type: long_text, label: Remarks}
  log:
    type: table
    label: Log
    append_only: true
    fields:
      note: {type: text, label: Note}
"""


def compiled(make_app: MakeApp, files: dict[str, str]) -> tuple[App, dict[str, str]]:
    result = make_app(files)
    assert result.ok, [d.headline() for d in result.diagnostics.sorted()]
    assert result.app is not None
    return result.app, bundle_sources(result.workspace)


def tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def columns(engine: sa.Engine, table: str) -> dict[str, sa.types.TypeEngine]:
    with engine.connect() as conn:
        return {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(table)}


def insert_order(conn: sa.Connection, app: App, **values: object) -> int:
    table = build_metadata(app).tables["f_order"]
    row = {"version": 1, "created_at": NOW, "updated_at": NOW, "created_by": "amy", **values}
    record_id = conn.execute(table.insert().values(row)).inserted_primary_key[0]
    append_events(
        conn,
        build_metadata(app),
        [EventIn("amy", "order", record_id, "created", dict(values))],
        at=NOW,
    )
    return int(record_id)


def deployments(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM sl_deployments")).scalar_one())


# ------------------------------------------------------------------------- first deploy


def test_first_deploy_creates_everything_then_nothing_to_do(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    with engine.connect() as conn:
        plan = plan_schema(conn, app)
    assert {s.kind for s in plan.steps} == {"create_table", "append_only_guard", "search_index"}
    assert not plan.destructive
    first = deploy(engine, app, sources)
    assert first.changed and first.content_hash == app.content_hash
    assert set(build_metadata(app).tables) <= tables(engine)
    with engine.connect() as conn:
        row = latest_deployment(conn)
        assert row is not None
        assert row.content_hash == app.content_hash and row.version == app.version
        assert row.bundle["forms/order.yaml"].startswith("title: Order")
        assert any(s["kind"] == "create_table" for s in row.steps)
        assert plan_schema(conn, app).up_to_date
        kinds = conn.execute(sa.text("SELECT kind, form FROM sl_events")).all()
    assert kinds == [("deploy", "_app")]
    if engine.dialect.name == "sqlite":  # deploy switched them off for itself only
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    # Same content again: nothing to do, and no new deployment row is written.
    second = deploy(engine, app, sources)
    assert not second.changed and second.steps == ()
    assert deployments(engine) == 1


def test_label_only_change_records_a_deployment_without_schema_steps(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    app2, sources2 = compiled(make_app, {"forms/order.yaml": ORDER_V1.replace("Qty", "Amount")})
    with engine.connect() as conn:
        plan = plan_schema(conn, app2)
    assert plan.steps == () and not plan.up_to_date
    assert "No schema changes" in plan.render("en")
    result = deploy(engine, app2, sources2)
    assert result.changed and result.steps == ()
    assert deployments(engine) == 2


# ------------------------------------------------------------------------- the key test


def test_changing_the_form_keeps_every_row_and_value(engine: sa.Engine, make_app: MakeApp) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    log = build_metadata(app).tables["f_order__log"]
    with engine.begin() as conn:
        first = insert_order(conn, app, customer="ACME", qty=5, kind="rush")
        second = insert_order(conn, app, customer="Bolt", qty=7, kind="normal")
        conn.execute(
            log.insert().values(
                parent_id=first, position=0, created_at=NOW, created_by="amy", note="called"
            )
        )

    app2, sources2 = compiled(make_app, {"forms/order.yaml": ORDER_V2})
    with engine.connect() as conn:
        plan = plan_schema(conn, app2)
    text = plan.render("en")
    assert "~ rename f_order.qty → quantity" in text
    assert "+ add column f_order.remarks TEXT" in text
    assert "~ widen f_order.customer VARCHAR(40) → VARCHAR(80)" in text
    assert not plan.destructive
    assert "重命名 f_order.qty → quantity" in plan.render("zh")
    result = deploy(engine, app2, sources2)
    assert result.changed

    cols = columns(engine, "f_order")
    assert "qty" not in cols and {"quantity", "remarks"} <= set(cols)
    assert cols["customer"].length == 80
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, customer, quantity, kind, remarks FROM f_order ORDER BY id")
        ).all()
        assert [tuple(r) for r in rows] == [
            (first, "ACME", 5, "rush", None),
            (second, "Bolt", 7, "normal", None),
        ]
        notes = conn.execute(sa.text("SELECT parent_id, note FROM f_order__log")).all()
        assert [tuple(r) for r in notes] == [(first, "called")]
        report = verify_chain(conn, build_metadata(app2))
        assert report.ok and report.checked == 4  # 2 created + 2 deploys
        assert plan_schema(conn, app2).up_to_date
        # SQLite copied f_order (batch mode): the child's foreign key and rows are intact.
        (fk,) = sa.inspect(conn).get_foreign_keys("f_order__log")
        assert (fk["referred_table"], fk["constrained_columns"]) == ("f_order", ["parent_id"])


def test_renamed_date_field_moves_its_index(engine: sa.Engine, make_app: MakeApp) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        insert_order(conn, app, customer="ACME", due=datetime(2024, 6, 1).date())
    v2 = ORDER_V1.replace(
        "due: {type: date, label: Due}", "due_date: {type: date, label: Due, renamed_from: due}"
    )
    app2, sources2 = compiled(make_app, {"forms/order.yaml": v2})
    deploy(engine, app2, sources2)
    with engine.connect() as conn:
        names = {i["name"] for i in sa.inspect(conn).get_indexes("f_order")}
        value = conn.execute(sa.text("SELECT due_date FROM f_order")).scalar_one()
        assert plan_schema(conn, app2).up_to_date
    assert "ix_f_order_due_date" in names and "ix_f_order_due" not in names
    assert str(value).startswith("2024-06-01")


def test_new_ref_and_autonumber_fields_bring_their_constraints(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    customer = "title: Customer\nfields:\n  name: {type: text, label: Name}\n"
    app, sources = compiled(
        make_app, {"forms/order.yaml": ORDER_V1, "forms/customer.yaml": customer}
    )
    deploy(engine, app, sources)
    with engine.begin() as conn:
        insert_order(conn, app, customer="ACME")
    v2 = ORDER_V1.replace(
        "fields:\n",
        "fields:\n  buyer: {type: ref, label: Buyer, form: customer}\n"
        "  no: {type: autonumber, label: No, format: 'SO-{seq:4}'}\n",
        1,
    )
    app2, sources2 = compiled(make_app, {"forms/order.yaml": v2, "forms/customer.yaml": customer})
    result = deploy(engine, app2, sources2)
    kinds = ["add_column", "add_column", "add_index", "search_index"]  # "no" is searchable
    assert [s.kind for s in result.steps] == kinds
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        fks = {f["name"]: f["referred_table"] for f in inspector.get_foreign_keys("f_order")}
        uniques = [u["column_names"] for u in inspector.get_unique_constraints("f_order")]
        assert plan_schema(conn, app2).up_to_date
    assert fks == {"fk_f_order_buyer": "f_customer"}
    assert uniques == [["no"]]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_order(conn, app2, no="SO-1")
        insert_order(conn, app2, no="SO-1")
    # And they go again (empty columns: not destructive), constraints and index with them.
    result = deploy(engine, app, sources)
    kinds = ["drop_index", "drop_column", "drop_column", "search_index"]
    assert [s.kind for s in result.steps] == kinds
    with engine.connect() as conn:
        assert sa.inspect(conn).get_foreign_keys("f_order") == []
        assert plan_schema(conn, app).up_to_date


def test_forms_that_refer_to_each_other_deploy(engine: sa.Engine, make_app: MakeApp) -> None:
    files = {
        "forms/customer.yaml": "title: Customer\nfields:\n"
        "  last_order: {type: ref, label: Last order, form: order}\n",
        "forms/order.yaml": "title: Order\nfields:\n"
        "  buyer: {type: ref, label: Buyer, form: customer}\n",
    }
    app, sources = compiled(make_app, files)
    deploy(engine, app, sources)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        refs = {
            t: [f["referred_table"] for f in inspector.get_foreign_keys(t)]
            for t in ("f_customer", "f_order")
        }
        assert plan_schema(conn, app).up_to_date
    assert refs == {"f_customer": ["f_order"], "f_order": ["f_customer"]}


def test_renamed_child_table_keeps_its_rows(engine: sa.Engine, make_app: MakeApp) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        parent = insert_order(conn, app, customer="ACME")
        conn.execute(
            sa.text(
                "INSERT INTO f_order__log (parent_id, position, created_at, created_by, note) "
                "VALUES (:p, 0, :t, 'amy', 'kept')"
            ),
            {"p": parent, "t": NOW},
        )
    v2 = ORDER_V1.replace("  log:\n", "  calls:\n    renamed_from: log\n")
    app2, sources2 = compiled(make_app, {"forms/order.yaml": v2})
    with engine.connect() as conn:
        assert "~ rename table f_order__log → f_order__calls" in plan_schema(conn, app2).render()
    deploy(engine, app2, sources2)
    assert "f_order__log" not in tables(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT note FROM f_order__calls")).scalar_one() == "kept"
        assert plan_schema(conn, app2).up_to_date
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM f_order__calls"))


# ------------------------------------------------------------------------- destructive


def test_text_to_integer_counts_and_clears_only_values_that_do_not_convert(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        for text in ("12", " 7 ", "about 5", None):
            insert_order(conn, app, customer=text)
    v2 = ORDER_V1.replace(
        "customer: {type: text, label: Customer, max_length: 40}",
        "customer: {type: integer, label: Customer}",
    )
    app2, sources2 = compiled(make_app, {"forms/order.yaml": v2})
    with pytest.raises(DestructiveChange) as refused:
        deploy(engine, app2, sources2)
    (step,) = refused.value.steps
    assert (step.kind, step.rows_at_risk) == ("change_type", 1)
    deploy(engine, app2, sources2, allow_destructive=True)
    with engine.connect() as conn:
        values = conn.execute(sa.text("SELECT customer FROM f_order ORDER BY id")).scalars().all()
    assert values == [12, 7, None, None]


def test_dropping_a_column_with_data_is_refused_until_allowed(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        for n in range(3):
            insert_order(conn, app, customer=f"c{n}", qty=n)
    without_qty = ORDER_V1.replace("  qty: {type: integer, label: Qty}\n", "")
    app2, sources2 = compiled(make_app, {"forms/order.yaml": without_qty})
    with pytest.raises(DestructiveChange) as refused:
        deploy(engine, app2, sources2)
    message = refused.value.message("en")
    assert "drop column f_order.qty (3 rows hold data)" in message
    assert "f_order.qty（3 行有数据）" in refused.value.message("zh")
    assert [(s.table, s.column, s.rows_at_risk) for s in refused.value.steps] == [
        ("f_order", "qty", 3)
    ]
    assert "qty" in columns(engine, "f_order")  # nothing changed
    assert deployments(engine) == 1

    result = deploy(engine, app2, sources2, allow_destructive=True)
    assert [s.kind for s in result.steps] == ["drop_column"]
    assert "qty" not in columns(engine, "f_order")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM f_order")).scalar_one() == 3
        assert verify_chain(conn, build_metadata(app2)).ok


def test_dropping_an_empty_column_is_not_refused(engine: sa.Engine, make_app: MakeApp) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        insert_order(conn, app, customer="ACME")  # qty stays empty
    app2, sources2 = compiled(
        make_app, {"forms/order.yaml": ORDER_V1.replace("  qty: {type: integer, label: Qty}\n", "")}
    )
    result = deploy(engine, app2, sources2)
    assert [(s.kind, s.destructive) for s in result.steps] == [("drop_column", False)]
    assert "qty" not in columns(engine, "f_order")


def test_narrowing_below_the_longest_value_is_refused(engine: sa.Engine, make_app: MakeApp) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        insert_order(conn, app, customer="A" * 30)
        insert_order(conn, app, customer="short")
    app2, sources2 = compiled(
        make_app, {"forms/order.yaml": ORDER_V1.replace("max_length: 40", "max_length: 10")}
    )
    with pytest.raises(DestructiveChange) as refused:
        deploy(engine, app2, sources2)
    (step,) = refused.value.steps
    assert (step.kind, step.column, step.rows_at_risk) == ("narrow", "customer", 1)
    assert "narrow f_order.customer VARCHAR(40) → VARCHAR(10) (1 row" in refused.value.message()
    assert columns(engine, "f_order")["customer"].length == 40
    # Narrowing that every stored value fits is fine.
    app3, sources3 = compiled(
        make_app, {"forms/order.yaml": ORDER_V1.replace("max_length: 40", "max_length: 30")}
    )
    result = deploy(engine, app3, sources3)
    assert [(s.kind, s.destructive) for s in result.steps] == [("narrow", False)]
    assert columns(engine, "f_order")["customer"].length == 30
    # Allowed: the too-long value is shortened, the others are untouched.
    deploy(engine, app2, sources2, allow_destructive=True)
    with engine.connect() as conn:
        values = conn.execute(sa.text("SELECT customer FROM f_order ORDER BY id")).scalars()
        assert list(values) == ["A" * 10, "short"]


def test_money_scale_narrowing_rounds_when_allowed(engine: sa.Engine, make_app: MakeApp) -> None:
    form = "title: Fee\nfields:\n  fee: {type: decimal, label: Fee, scale: 4}\n"
    app, sources = compiled(make_app, {"forms/fee.yaml": form})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO f_fee (version, created_at, updated_at, created_by, fee) "
                "VALUES (1, :t, :t, 'amy', 1.2345), (1, :t, :t, 'amy', 2.5)"
            ),
            {"t": NOW},
        )
    app2, sources2 = compiled(make_app, {"forms/fee.yaml": form.replace("scale: 4", "scale: 2")})
    with pytest.raises(DestructiveChange) as refused:
        deploy(engine, app2, sources2)
    assert [(s.kind, s.rows_at_risk) for s in refused.value.steps] == [("narrow", 1)]
    deploy(engine, app2, sources2, allow_destructive=True)
    with engine.connect() as conn:
        values = conn.execute(sa.text("SELECT fee FROM f_fee ORDER BY id")).scalars().all()
        assert plan_schema(conn, app2).up_to_date
    assert [float(v) for v in values] == [1.23, 2.5]


def test_dropping_a_form_with_rows_is_refused(engine: sa.Engine, make_app: MakeApp) -> None:
    other = "title: Note\nfields:\n  body: {type: text, label: Body}\n"
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1, "forms/note.yaml": other})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        insert_order(conn, app, customer="ACME")
    (Path(app.root) / "forms" / "order.yaml").unlink()
    app2, sources2 = compiled(make_app, {"forms/note.yaml": other})
    with pytest.raises(DestructiveChange) as refused:
        deploy(engine, app2, sources2)
    assert [(s.kind, s.table) for s in refused.value.steps] == [("drop_table", "f_order")]
    deploy(engine, app2, sources2, allow_destructive=True)
    assert not {"f_order", "f_order__log"} & tables(engine)


# ------------------------------------------------------------------------- append-only


def test_append_only_child_table_refuses_update_and_delete(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    with engine.begin() as conn:
        parent = insert_order(conn, app, customer="ACME")
        conn.execute(
            sa.text(
                "INSERT INTO f_order__log (parent_id, position, created_at, created_by, note) "
                "VALUES (:p, 0, :t, 'amy', 'first call')"
            ),
            {"p": parent, "t": NOW},
        )
    for sql in ("UPDATE f_order__log SET note = 'rewritten'", "DELETE FROM f_order__log"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(sql))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT note FROM f_order__log")).scalar_one() == "first call"


def test_guards_survive_a_table_copy_and_go_when_append_only_is_removed(
    engine: sa.Engine, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    deploy(engine, app, sources)
    # Renaming a child column copies the table on SQLite (batch mode): triggers come back.
    renamed = ORDER_V1.replace(
        "note: {type: text, label: Note}", "text: {type: text, label: Note, renamed_from: note}"
    )
    app2, sources2 = compiled(make_app, {"forms/order.yaml": renamed})
    deploy(engine, app2, sources2)
    with engine.begin() as conn:
        parent = insert_order(conn, app2, customer="ACME")
        conn.execute(
            sa.text(
                "INSERT INTO f_order__log (parent_id, position, created_at, created_by, text) "
                "VALUES (:p, 0, :t, 'amy', 'hello')"
            ),
            {"p": parent, "t": NOW},
        )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM f_order__log"))
    # No longer append-only: the guard goes.
    app3, sources3 = compiled(
        make_app, {"forms/order.yaml": renamed.replace("    append_only: true\n", "")}
    )
    result = deploy(engine, app3, sources3)
    assert [s.kind for s in result.steps] == ["drop_append_only_guard"]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE f_order__log SET text = 'edited'"))


# ------------------------------------------------------------------------- CLI


def _group() -> click.Group:
    @click.group()
    @click.option("--app", "app_dir", type=click.Path(path_type=Path))
    @click.option("--db", "db_url")
    @click.option("--lang", default="en")
    @click.pass_context
    def cli(ctx: click.Context, app_dir: Path, db_url: str, lang: str) -> None:
        ctx.obj = {"app_dir": app_dir, "db_url": db_url, "lang": lang}

    cli.add_command(plan_command)
    cli.add_command(deploy_command)
    return cli


def test_cli_plan_deploy_plan(db_url: str, make_app: MakeApp) -> None:
    app, _ = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    cli, runner = _group(), CliRunner()
    base = ["--app", app.root, "--db", db_url]
    planned = runner.invoke(cli, [*base, "plan"])
    assert planned.exit_code == 0, planned.output
    assert "+ create table f_order (" in planned.stdout
    assert "+ make f_order__log append-only" in planned.stdout
    deployed = runner.invoke(cli, [*base, "deploy"])
    assert deployed.exit_code == 0, deployed.output
    assert "✓ deployed t v0" in deployed.stdout
    again = runner.invoke(cli, [*base, "plan"])
    assert again.exit_code == 0 and "Nothing to do" in again.stdout
    zh = runner.invoke(cli, [*base, "--lang", "zh", "deploy"])
    assert zh.exit_code == 0 and "无需变更" in zh.stdout


def test_cli_deploy_refuses_destructive_and_reports_compile_errors(
    db_url: str, make_app: MakeApp
) -> None:
    app, sources = compiled(make_app, {"forms/order.yaml": ORDER_V1})
    engine = create_db_engine(db_url)
    try:
        deploy(engine, app, sources)
        with engine.begin() as conn:
            insert_order(conn, app, customer="ACME", qty=1)
    finally:
        engine.dispose()
    compiled(
        make_app, {"forms/order.yaml": ORDER_V1.replace("  qty: {type: integer, label: Qty}\n", "")}
    )
    cli, runner = _group(), CliRunner()
    base = ["--app", app.root, "--db", db_url]
    refused = runner.invoke(cli, [*base, "deploy"])
    assert refused.exit_code == 1
    assert "! drop column f_order.qty (1 row holds data)" in refused.stderr
    allowed = runner.invoke(cli, [*base, "deploy", "--allow-destructive"])
    assert allowed.exit_code == 0, allowed.output
    make_app({"forms/order.yaml": "title: Order\nfields:\n  q: {type: integr, label: Q}\n"})
    broken = runner.invoke(cli, [*base, "plan"])
    assert broken.exit_code == 1 and "integr" in broken.stderr
