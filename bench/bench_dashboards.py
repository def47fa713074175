"""The pack's order-health dashboard at scale: ``dashboard_values`` (six KPIs, two of them with
an 8-week trend) against the best hand-written SQL for the same six numbers, on a history made
by examples/manufacturing_pack/data/make_history.py.

    python bench/bench_dashboards.py [--db URL] [--orders 1000000] [--seed 1] [--reuse]
        [--indexes]

Default database: a SQLite file in the temporary folder named after --orders (so --reuse finds
it). With --db, the database must be empty unless --reuse (then an existing history is used
as it is). The dashboard's clock is the newest event of the history.

Cold: ANALYZE, dispose every pooled connection, then time the first call on a new engine (the
OS page cache and PostgreSQL's shared buffers cannot be dropped from here, so "cold" means no
warm connection, no SQLAlchemy statement cache and no SQLite page cache). Warm: median of 5.
``--indexes`` creates the indexes listed in INDEXES first (labelled bench_*; not part of the
engine) to show their effect.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "manufacturing_pack" / "data"))

from make_history import PACK, generate  # noqa: E402

from engine.compile import compile_app  # noqa: E402
from engine.dashboards.compute import dashboard_values  # noqa: E402
from engine.dashboards.periods import window  # noqa: E402
from engine.forms.tables import build_metadata  # noqa: E402
from engine.spec import App  # noqa: E402
from engine.storage import create_db_engine  # noqa: E402
from engine.system_tables import TS  # noqa: E402

DASHBOARD = "order_health"
INDEXES = {
    "postgresql": [
        "CREATE INDEX IF NOT EXISTS bench_ix_events_transition_record "
        "ON sl_events (record_id, at) WHERE form = 'order' AND kind = 'transition'",
    ],
    "sqlite": [
        "CREATE INDEX IF NOT EXISTS bench_ix_events_transition_record "
        "ON sl_events (record_id, at) WHERE form = 'order' AND kind = 'transition'",
    ],
}

# ---------------------------------------------------------------------------- hand-written SQL
FIRST_RESPONSE = """
SELECT {hours}(o.created_at, (
    SELECT min(e.at) FROM sl_events e
    WHERE e.form = 'order' AND e.record_id = o.id AND e.kind = 'transition'
      AND e.payload LIKE '%"to":"stock_checked"%' AND e.at >= o.created_at)) AS h
FROM f_order o WHERE o.created_at >= :s30 AND o.created_at <= :now
"""
APPROVAL = """
SELECT {hours}(f.at, (
    SELECT min(e.at) FROM sl_events e
    WHERE e.form = 'order' AND e.record_id = f.record_id AND e.kind = 'transition'
      AND e.payload LIKE '%"to":"approved"%' AND e.at >= f.at)) AS h
FROM (SELECT record_id, min(at) AS at FROM sl_events
      WHERE kind = 'transition' AND at >= :s30 AND at <= :now AND form = 'order'
        AND payload LIKE '%"to":"approving"%'
      GROUP BY record_id) f
WHERE NOT EXISTS (
    SELECT 1 FROM sl_events b
    WHERE b.form = 'order' AND b.record_id = f.record_id AND b.kind = 'transition'
      AND b.at < :s30 AND b.payload LIKE '%"to":"approving"%')
"""
RECORDS = """
SELECT
  count(*) FILTER (WHERE state <> 'draft'),
  count(*) FILTER (WHERE state <> 'draft' AND atp_date IS NOT NULL AND atp_date <= desired_date),
  count(*) FILTER (WHERE promised_date IS NOT NULL AND atp_date IS NOT NULL),
  count(*) FILTER (WHERE promised_date IS NOT NULL AND atp_date IS NOT NULL
                   AND promise_gap_days <= 2)
FROM f_order WHERE created_at >= :s30 AND created_at <= :now
"""
OPEN = """
SELECT count(*) FROM f_order
WHERE state NOT IN ('draft', 'delivered', 'rejected', 'cancelled')
"""
AMOUNT = "SELECT sum(amount) FROM f_order WHERE created_at >= :month AND created_at <= :now"
PG_HOURS = "extract(epoch FROM ({1}) - {0}) / 3600.0"
SQLITE_HOURS = "(julianday({1}) - julianday({0})) * 24.0"


def _hours(dialect: str, query: str) -> str:
    template = PG_HOURS if dialect == "postgresql" else SQLITE_HOURS
    marker = "{hours}("
    start = query.index(marker) + len(marker)
    depth, i = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(query[i], 0)
        i += 1
    first, second = query[start : i - 1].split(", ", 1)
    return query[: query.index(marker)] + template.format(first, second) + query[i:]


def _median(conn: sa.Connection, inner: str, params: dict[str, Any]) -> float | None:
    durations = _hours(conn.dialect.name, inner)
    if conn.dialect.name == "postgresql":
        sql = f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY h) FROM ({durations}) d"
        sql += " WHERE h IS NOT NULL"
    else:
        sql = (
            f"WITH d AS (SELECT h FROM ({durations}) WHERE h IS NOT NULL), "
            "n AS (SELECT count(*) AS c FROM d) "
            "SELECT avg(h) FROM (SELECT h FROM d ORDER BY h "
            "LIMIT 2 - (SELECT c FROM n) % 2 OFFSET ((SELECT c FROM n) - 1) / 2)"
        )
    if conn.dialect.name == "sqlite":  # its planner prefers (kind, at) for the correlated rows
        sql = sql.replace("sl_events e\n", "sl_events e INDEXED BY ix_sl_events_record\n")
        sql = sql.replace("sl_events b\n", "sl_events b INDEXED BY ix_sl_events_record\n")
    value = conn.execute(_typed(sql), params).scalar()
    return None if value is None else float(value)


def _typed(sql: str) -> sa.TextClause:
    """Timestamps bound as the engine binds them (UTC text on SQLite)."""
    clause = sa.text(sql)
    names = [n for n in ("s30", "now", "month") if f":{n}" in sql]
    return clause.bindparams(*(sa.bindparam(n, type_=TS) for n in names))


def _rate(hits: int, population: int) -> float | None:
    return hits / population * 100 if population else None


def hand_written(engine: sa.Engine, app: App, now: datetime) -> dict[str, Any]:
    params = {
        "s30": window("30d", now, app.timezone).start,
        "month": window("this_month", now, app.timezone).start,
        "now": now,
    }
    with engine.connect() as conn:
        not_draft, passed, promised, aligned = conn.execute(_typed(RECORDS), params).one()
        return {
            "first_response_hours": _median(conn, FIRST_RESPONSE, params),
            "stock_check_pass_rate": _rate(passed, not_draft),
            "approval_hours": _median(conn, APPROVAL, params),
            "promise_alignment": _rate(aligned, promised),
            "open_orders": conn.execute(sa.text(OPEN)).scalar_one(),
            "order_amount": float(conn.execute(_typed(AMOUNT), params).scalar() or 0),
        }


# ---------------------------------------------------------------------------- measuring
def engine_values(engine: sa.Engine, app: App, meta: sa.MetaData, now: datetime) -> dict:
    result = dashboard_values(engine, app, DASHBOARD, now=now, metadata=meta)
    return {k["id"]: k["value"] for k in result["kpis"]}


def same(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The KPIs whose values differ (durations to the millisecond, others to 1e-4)."""
    out = []
    for name, value in ours.items():
        other = theirs[name]
        if value is None or other is None:
            if value is not other:
                out.append(name)
        elif abs(float(value) - float(other)) > 1e-3 * max(1.0, abs(float(other))) * 1e-1:
            out.append(name)
    return out


def cold(url: str, call: Callable[[sa.Engine], object]) -> float:
    engine = create_db_engine(url)
    try:
        start = time.perf_counter()
        call(engine)
        return time.perf_counter() - start
    finally:
        engine.dispose()


def warm(engine: sa.Engine, call: Callable[[sa.Engine], object], n: int = 5) -> float:
    call(engine)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call(engine)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def analyze(url: str, extra: list[str]) -> None:
    engine = create_db_engine(url)
    try:
        with engine.begin() as conn:
            for sql in extra:
                conn.exec_driver_sql(sql)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()


def history_size(url: str) -> tuple[int, int, datetime | None]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("f_order"):
                return 0, 0, None
            orders = conn.execute(sa.text("SELECT count(*) FROM f_order")).scalar_one()
            events = conn.execute(sa.text("SELECT count(*) FROM sl_events")).scalar_one()
            last = conn.execute(
                sa.select(sa.func.max(sa.column("at", TS))).select_from(sa.table("sl_events"))
            ).scalar()
        return orders, events, last
    finally:
        engine.dispose()


def prepare(url: str, orders: int, seed: int, reuse: bool) -> tuple[int, int, datetime]:
    have, events, last = history_size(url)
    if reuse and have and last is not None:
        print(f"reusing {have:,} orders, {events:,} events")
        return have, events, last
    if have:
        raise SystemExit(f"{url} already holds {have:,} orders; pass --reuse or an empty db")
    result = generate(url, orders, seed=seed)
    print(
        f"generated {result.orders:,} orders, {result.events:,} events in {result.seconds:.0f} s "
        f"({result.orders / result.seconds:,.0f} orders/s, "
        f"{result.events / result.seconds:,.0f} events/s)"
    )
    _, _, last = history_size(url)
    assert last is not None
    return result.orders, result.events, last


def run(url: str, orders: int, seed: int, reuse: bool, indexes: bool) -> None:
    compiled = compile_app(PACK)
    assert compiled.app is not None
    app = compiled.app
    meta = build_metadata(app)
    count, events, now = prepare(url, orders, seed, reuse)
    dialect = sa.make_url(url).get_backend_name()
    analyze(url, INDEXES[dialect] if indexes else [])
    ours_cold = cold(url, lambda e: engine_values(e, app, meta, now))
    base_cold = cold(url, lambda e: hand_written(e, app, now))
    engine = create_db_engine(url)
    try:
        ours, theirs = engine_values(engine, app, meta, now), hand_written(engine, app, now)
        ours_warm = warm(engine, lambda e: engine_values(e, app, meta, now))
        base_warm = warm(engine, lambda e: hand_written(e, app, now))
    finally:
        engine.dispose()
    label = " (with the bench_* indexes)" if indexes else ""
    print(f"database {dialect}{label}: {count:,} orders, {events:,} events, now = {now}")
    for name, value in ours.items():
        print(f"  {name:24s} engine {value!s:>22s}   hand-written {theirs[name]!s:>22s}")
    differ = same(ours, theirs)
    print("  values agree" if not differ else f"  VALUES DIFFER: {', '.join(differ)}")
    print(
        f"  dashboard_values (6 KPIs + 2 trends)  cold {ours_cold * 1000:8.1f} ms  "
        f"warm {ours_warm * 1000:8.1f} ms"
    )
    print(
        f"  hand-written SQL (6 numbers)          cold {base_cold * 1000:8.1f} ms  "
        f"warm {base_warm * 1000:8.1f} ms"
    )
    print(
        f"  ratio engine / hand-written           cold {ours_cold / base_cold:8.2f}x   "
        f"warm {ours_warm / base_warm:8.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--indexes", action="store_true")
    args = parser.parse_args()
    default = Path(tempfile.gettempdir()) / f"seamline_bench_dashboards_{args.orders}.db"
    run(args.db or f"sqlite:///{default}", args.orders, args.seed, args.reuse, args.indexes)


if __name__ == "__main__":
    main()
