"""What makes the pages fast at 42,000 orders, on SQLite and PostgreSQL: the indexes deploy
adds for them (records by state, newest change first; the state a hint looks back on) and that
the queries read through them; the live dashboard computed once while nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from test_dashboard_storage import BOARD, NOW, _files, _tickets
from test_hints import FILES as HINTED

from engine.compile import CompileResult
from engine.dashboards import recent
from engine.deploy.apply import bundle_sources, deploy
from engine.deploy.plan import live_index_names, plan_schema
from engine.forms.records import SYSTEM_ACTOR, RecordService
from engine.insights.hints import record_hints
from engine.store.tables import build_metadata

MakeApp = Callable[..., CompileResult]
HINT_INDEX = "ix_sl_events_kpi_in_job_delivered_rec"


def _deployed(make_app: MakeApp, engine: sa.Engine, files: dict[str, str]) -> CompileResult:
    result = make_app(files)
    assert result.app is not None, result.diagnostics.sorted()
    deploy(engine, result.app, bundle_sources(result.workspace))
    return result


def test_deploy_adds_the_state_and_hint_indexes_once(make_app: MakeApp, engine: sa.Engine) -> None:
    result = _deployed(make_app, engine, HINTED)
    assert result.app is not None
    with engine.connect() as conn:
        assert "ix_f_job_state_updated" in live_index_names(conn, "f_job")
        assert "ix_f_customer_state_updated" in live_index_names(conn, "f_customer")
        events = live_index_names(conn, "sl_events")
        again = plan_schema(conn, result.app)
    assert HINT_INDEX in events  # the hint's state, record-ordered only
    assert "ix_sl_events_kpi_in_job_delivered_at" not in events
    assert again.up_to_date, again.render()  # both are recognised as they are


def test_a_hint_reads_its_index(make_app: MakeApp, engine: sa.Engine) -> None:
    result = _deployed(make_app, engine, HINTED)
    app = result.app
    assert app is not None
    metadata = build_metadata(app)
    records = RecordService(app, engine, metadata)
    customer = records.create("customer", {"name": "A"}, SYSTEM_ACTOR)
    product = records.create("product", {"name": "P", "family": "seat"}, SYSTEM_ACTOR)
    job = records.create(
        "job",
        {"number": "J1", "customer": customer["id"], "product": product["id"]},
        SYSTEM_ACTOR,
    )
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, params: object, *rest: object) -> None:
        statements.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        assert record_hints(engine, metadata, app, app.forms["job"], job) == []
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    hinted = [(s, p) for s, p in statements if "max(e_last.at)" in s]
    assert len(hinted) == 1, statements
    statement, params = hinted[0]
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":  # named: SQLite picked (kind, at) by itself
            assert f"INDEXED BY {HINT_INDEX}" in statement
            explain = f"EXPLAIN QUERY PLAN {statement}"
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: scans are cheaper
            explain = f"EXPLAIN {statement}"
        plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(explain, params))  # type: ignore[arg-type]
    assert HINT_INDEX in plan, plan  # one seek per matching job, not every transition
    if engine.dialect.name == "sqlite":
        assert "ix_f_job_customer" in plan, plan  # driven from the customer's jobs


def test_records_by_state_newest_change_first_read_the_index(
    make_app: MakeApp, engine: sa.Engine
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL picks by its statistics: a tiny table is scanned")
    result = _deployed(make_app, engine, HINTED)
    assert result.app is not None
    table = build_metadata(result.app).tables["f_job"]
    query = (
        sa.select(table.c.id)
        .where(table.c.state.in_(["open"]))
        .order_by(table.c.updated_at.desc(), table.c.id.desc())
        .limit(10)
    )
    with engine.connect() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        plan = "\n".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "ix_f_job_state_updated" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort of every record in the state


# ---------------------------------------------------------------------------- dashboards


def test_the_live_dashboard_is_computed_again_only_after_a_write_or_a_minute(
    make_app: MakeApp, engine: sa.Engine
) -> None:
    result = _deployed(make_app, engine, _files(BOARD))
    app = result.app
    assert app is not None
    metadata = build_metadata(app)
    _tickets(app, engine, [(NOW - timedelta(days=3), 1.0, 2.0)])
    recent.forget()

    def count(now: datetime) -> tuple[float, str]:
        got = recent.recent_values(engine, app, "tickets", now, metadata)
        tickets = next(k for k in got["kpis"] if k["id"] == "tickets")
        got["kpis"].clear()  # a caller changing its copy changes nothing kept
        return tickets["value"], got["computed_at"]

    first = count(NOW)
    assert first[0] == 1
    assert count(NOW + timedelta(seconds=30)) == first  # kept: nothing written since

    records = RecordService(app, engine, metadata, now=lambda: NOW)
    records.create("ticket", {"subject": "new"}, SYSTEM_ACTOR)  # a write moves the chain head
    second = count(NOW + timedelta(seconds=31))
    assert second[0] == 2
    assert second[1] != first[1]

    later = count(NOW + timedelta(seconds=31 + 61))  # older than a minute: computed again
    assert later[0] == 2
    assert later[1] != second[1]
    earlier = count(NOW)  # a clock that went back: computed again
    assert earlier[1] == NOW.isoformat()


def test_the_live_drill_down_is_kept_the_same_way(make_app: MakeApp, engine: sa.Engine) -> None:
    result = _deployed(make_app, engine, _files(BOARD))
    app = result.app
    assert app is not None
    metadata = build_metadata(app)
    _tickets(app, engine, [(NOW - timedelta(days=3), 1.0, 2.0)])
    recent.forget()

    def listed(now: datetime) -> list[int]:
        found = recent.recent_drill(engine, app, "tickets", "tickets", now, 50, metadata)
        ids = [r["id"] for r in found["records"]]
        found["records"].clear()  # a caller changing its copy changes nothing kept
        return ids

    first = listed(NOW)
    assert len(first) == 1
    assert listed(NOW + timedelta(seconds=10)) == first
    records = RecordService(app, engine, metadata, now=lambda: NOW)
    records.create("ticket", {"subject": "new"}, SYSTEM_ACTOR)
    assert len(listed(NOW + timedelta(seconds=20))) == 2
