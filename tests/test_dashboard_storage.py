"""What dashboards keep in the database, on SQLite and PostgreSQL: the expression indexes
plan/deploy add for duration KPIs (and that the compiled queries really use them), and the
trend snapshots the worker refreshes (read back, current bucket live, stale, redefined, as
of a past day, one refresh per period across workers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from engine.compile import CompileResult
from engine.dashboards import snapshots
from engine.dashboards.compute import _Context, dashboard_values
from engine.dashboards.refresh import refresh_if_due
from engine.deploy.apply import bundle_sources, deploy
from engine.deploy.plan import live_index_names, plan_schema
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR, RecordService
from engine.model.spec import App
from engine.store.tables import build_metadata

MakeApp = Callable[..., CompileResult]
NOW = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # Friday 10:00 in Shanghai

TICKET = """\
title: 工单
fields:
  subject: {type: text, label: 主题}
"""
FLOW = """\
form: ticket
states:
  open: {label: 打开, initial: true}
  working: {label: 处理中}
  closed: {label: 关闭, final: true}
transitions:
  start: {label: 开始, from: open, to: working}
  close: {label: 关闭, from: working, to: closed}
"""
BOARD = """\
title: 工单看板
kpis:
  close_hours:
    title: 关闭时长
    form: ticket
    measure: median_hours
    from: {state_entered: working}
    to: {state_entered: closed}
    window: 30d
    unit: 小时
    trend: week
  tickets:
    title: 工单数
    form: ticket
    measure: count
    window: 30d
    trend: week
"""
INDEXES = {
    f"ix_sl_events_kpi_in_ticket_{state}_{suffix}"
    for state in ("working", "closed")
    for suffix in ("at", "rec")
}


def _files(board: str | None = BOARD) -> dict[str, str]:
    files = {"forms/ticket.yaml": TICKET, "flows/ticket.yaml": FLOW}
    if board is not None:
        files["dashboards/tickets.yaml"] = board
    return files


def _app(make_app: MakeApp, board: str | None = BOARD) -> CompileResult:
    result = make_app(_files(board))
    assert result.app is not None, result.diagnostics.sorted()
    return result


# ---------------------------------------------------------------------------- indexes
def test_deploy_adds_the_kpi_indexes_once(make_app: MakeApp, engine: sa.Engine) -> None:
    bare = _app(make_app, board=None)
    assert bare.app is not None
    deploy(engine, bare.app, bundle_sources(bare.workspace))
    with engine.connect() as conn:
        assert not INDEXES & live_index_names(conn, "sl_events")  # no dashboard, no index

    with_board = _app(make_app)
    assert with_board.app is not None
    with engine.connect() as conn:
        plan = plan_schema(conn, with_board.app)
    assert {s.target for s in plan.steps if s.kind == "add_index"} == INDEXES
    deploy(engine, with_board.app, bundle_sources(with_board.workspace))
    with engine.connect() as conn:
        assert live_index_names(conn, "sl_events") >= INDEXES
        again = plan_schema(conn, with_board.app)
    assert again.up_to_date, again.render()  # the live partial indexes are recognised

    # the KPI goes: its indexes go with it (the dashboard's other indexes stay)
    counted_only = BOARD[: BOARD.index("  close_hours:")] + BOARD[BOARD.index("  tickets:") :]
    fewer = _app(make_app, board=counted_only)
    assert fewer.app is not None
    with engine.connect() as conn:
        plan = plan_schema(conn, fewer.app)
    assert {s.target for s in plan.steps if s.kind == "drop_index"} == INDEXES
    deploy(engine, fewer.app, bundle_sources(fewer.workspace))
    with engine.connect() as conn:
        assert not INDEXES & live_index_names(conn, "sl_events")
        assert "ix_sl_events_record" in live_index_names(conn, "sl_events")


def test_duration_queries_use_the_kpi_indexes(make_app: MakeApp, engine: sa.Engine) -> None:
    result = _app(make_app)
    app = result.app
    assert app is not None
    deploy(engine, app, bundle_sources(result.workspace))
    _tickets(app, engine, [(NOW - timedelta(days=2), 1.0, 2.0)])
    ctx = _Context(engine, app, NOW, None)
    kpi = app.dashboards["tickets"].kpis[0]
    select = ctx.query(kpi).value_select()
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: scans are cheaper
            compiled = select.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars())
        else:
            conn.exec_driver_sql("ANALYZE")
            compiled = select.compile(conn, compile_kwargs={"literal_binds": True})
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            plan = "\n".join(str(r[-1]) for r in rows)
    # each read of sl_events (the window's starts, the earlier-start probe, the end seek)
    # goes through a KPI index: the query spells the key exactly as the index does
    for alias in ("e_from", "e_before", "e_to"):
        used = [line for line in plan.splitlines() if alias in line and "ix_sl_events_kpi_" in line]
        assert used, f"{alias} does not use a KPI index:\n{plan}"


# ---------------------------------------------------------------------------- snapshots
def _tickets(app: App, engine: sa.Engine, spans: list[tuple[datetime, float, float]]) -> list[int]:
    """Tickets created at each moment, started after ``a`` hours, closed ``b`` hours later."""
    at = {"now": NOW}
    records = RecordService(app, engine, build_metadata(app), now=lambda: at["now"])
    ids = []
    for created, start, close in spans:
        at["now"] = created
        ticket = records.create("ticket", {"subject": "x"}, SYSTEM_ACTOR)
        at["now"] = created + timedelta(hours=start)
        fire_transition(records, "ticket", ticket["id"], "start", SYSTEM_ACTOR)
        at["now"] = created + timedelta(hours=start + close)
        fire_transition(records, "ticket", ticket["id"], "close", SYSTEM_ACTOR)
        ids.append(ticket["id"])
    return ids


def _trend(app: App, engine: sa.Engine, now: datetime, cached: bool = True) -> list:
    got = dashboard_values(engine, app, "tickets", now, cached=cached)
    kpi = next(k for k in got["kpis"] if k["id"] == "close_hours")
    return [p["value"] for p in kpi["trend"]["points"]]


@pytest.fixture
def board(make_app: MakeApp, engine: sa.Engine) -> App:
    result = _app(make_app)
    assert result.app is not None
    deploy(engine, result.app, bundle_sources(result.workspace))
    # one ticket a week for three weeks (close times 1, 2, 3 h), none this week yet
    weeks = [NOW - timedelta(days=7 * n) for n in (3, 2, 1)]
    _tickets(result.app, engine, [(w, 0.5, float(i + 1)) for i, w in enumerate(weeks)])
    return result.app


def _stored(engine: sa.Engine) -> dict:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT kpi, start, value FROM sl_kpi_snapshots ORDER BY kpi, start")
        ).all()
    return {(r.kpi, str(r.start)): r.value for r in rows}


def _poke(engine: sa.Engine, value: float, **changes: object) -> None:
    """Overwrite the stored close_hours buckets (to see whether a view read them)."""
    sets = ", ".join(["value = :value", *(f"{k} = :{k}" for k in changes)])
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE sl_kpi_snapshots SET {sets} WHERE kpi = 'close_hours'"),
            {"value": value, **changes},
        )


def test_snapshots_serve_closed_buckets_and_the_current_one_live(
    board: App, engine: sa.Engine
) -> None:
    live = _trend(board, engine, NOW, cached=False)
    assert live[-4:] == [1.0, 2.0, 3.0, None]  # the newest bucket's ticket closes later
    assert _stored(engine) == {}  # a live view stores nothing

    assert _trend(board, engine, NOW) == live  # first cached view: computed, then stored
    stored = _stored(engine)
    assert len(stored) == 2 * 7  # two trends × seven closed weeks
    assert stored[("close_hours", "2026-03-09")] == 3.0

    _poke(engine, 99.0)  # the next view reads the closed buckets from the table …
    _tickets(board, engine, [(NOW - timedelta(hours=6), 0.5, 4.0)])  # … and this week live
    assert _trend(board, engine, NOW) == [99.0] * 7 + [4.0]
    assert _trend(board, engine, NOW, cached=False)[-4:] == [1.0, 2.0, 3.0, 4.0]


def test_stale_or_redefined_snapshots_are_recomputed(board: App, engine: sa.Engine) -> None:
    _trend(board, engine, NOW)
    _poke(engine, 99.0, computed_at=NOW - snapshots.MAX_AGE - timedelta(minutes=1))
    assert _trend(board, engine, NOW)[-4:-1] == [1.0, 2.0, 3.0]  # too old: recomputed
    _poke(engine, 99.0, definition="another definition")
    assert _trend(board, engine, NOW)[-4:-1] == [1.0, 2.0, 3.0]  # the KPI changed since


def test_the_worker_refreshes_once_per_period(board: App, engine: sa.Engine) -> None:
    metadata = build_metadata(board)
    assert refresh_if_due(engine, board, metadata, NOW)
    assert len(_stored(engine)) == 14
    _poke(engine, 99.0)
    soon = NOW + snapshots.REFRESH_EVERY - timedelta(seconds=1)
    assert not refresh_if_due(engine, board, metadata, soon)  # claimed already
    assert _trend(board, engine, soon)[0] == 99.0
    later = NOW + snapshots.REFRESH_EVERY
    assert refresh_if_due(engine, board, metadata, later)
    assert _trend(board, engine, later)[-4:-1] == [1.0, 2.0, 3.0]
