"""The pack's order-health dashboard at scale: ``dashboard_values`` (the seed's six KPIs, two
with an 8-week trend, one grouped per order type) against the best hand-written SQL for the
same six numbers, on a history made by examples/manufacturing_pack/data/make_history.py.

    python bench/bench_dashboards.py [--db URL] [--orders 1000000] [--seed 1] [--reuse]

Default database: a SQLite file in the temporary folder named after --orders (so --reuse finds
it). With --db, the database must be empty unless --reuse (then an existing history is used
as it is). The dashboard's clock is the newest event of the history.

Before measuring: ANALYZE (SQLite) / VACUUM ANALYZE (PostgreSQL — what autovacuum does to an
insert-only table soon after a load; it lets the KPI indexes answer without the heap).
Cold: a new engine (no pooled connection, no statement cache, no SQLite page cache), first
call; the OS page cache and PostgreSQL's shared buffers cannot be dropped from here.
"Cold, snapshots": the same after the worker's snapshot refresh (closed trend buckets
stored; the dashboard computes values, groups and the current bucket). Warm: median of 5.
The hand-written SQL uses the same KPI indexes deploy made (a developer would).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "manufacturing_pack" / "data"))

from make_history import PACK, generate  # noqa: E402

from engine.compile import compile_app  # noqa: E402
from engine.dashboards.compute import dashboard_values  # noqa: E402
from engine.dashboards.refresh import refresh  # noqa: E402
from engine.model.periods import window  # noqa: E402
from engine.model.spec import App  # noqa: E402
from engine.store.storage import create_db_engine  # noqa: E402
from engine.store.system_tables import TS  # noqa: E402
from engine.store.tables import build_metadata  # noqa: E402

DASHBOARD = "order_health"

# ---------------------------------------------------------------------------- hand-written SQL
# {to}: the transition's target state, spelled as the KPI indexes spell it (their WHERE)
TO = {
    "postgresql": "(CAST({e}.payload AS JSONB) ->> 'to')",
    "sqlite": "json_extract({e}.payload, '$.to')",
}
CHANGES = {
    "postgresql": "(CAST({e}.payload AS JSONB) -> 'changes' -> '{f}')",
    "sqlite": "json_extract({e}.payload, '$.changes.{f}')",
}
ENTERED = """EXISTS (SELECT 1 FROM sl_events {e} WHERE {e}.form = 'order'
    AND {e}.kind = 'transition' AND {to} = '{state}' AND {e}.record_id = o.id)"""
FIRST_RESPONSE = """
SELECT {hours}(o.created_at, (
    SELECT min(e.at) FROM sl_events e
    WHERE e.form = 'order' AND e.kind = 'transition' AND {to_e} = 'stock_checked'
      AND e.record_id = o.id AND e.at >= o.created_at)) AS h
FROM f_order o WHERE o.created_at >= :s30 AND o.created_at <= :now
"""
RECORDS = """
SELECT
  sum(CASE WHEN state <> 'draft' THEN 1 ELSE 0 END),
  sum(CASE WHEN state <> 'draft' AND atp_date IS NOT NULL AND atp_date <= desired_date
      THEN 1 ELSE 0 END),
  sum(CASE WHEN scheduled_date IS NOT NULL THEN 1 ELSE 0 END),
  sum(CASE WHEN scheduled_date IS NOT NULL AND scheduled_date <= promised_date
      THEN 1 ELSE 0 END)
FROM f_order WHERE created_at >= :s30 AND created_at <= :now
"""
FIRST_PASS = """
SELECT count(*), sum(CASE WHEN {approved} AND (
    SELECT count(*) FROM sl_events c WHERE c.form = 'order' AND c.kind = 'transition'
      AND {to_c} = 'approving' AND c.record_id = o.id AND c.at <= :now) = 1 THEN 1 ELSE 0 END)
FROM f_order o
WHERE o.created_at >= :s30 AND o.created_at <= :now AND ({approved2} OR {rejected})
"""
TRACKING = """
SELECT count(*), sum(CASE WHEN {hours}(s.at, o.tracking_at) <= 2 THEN 1 ELSE 0 END)
FROM (SELECT e.record_id, e.at FROM sl_events e{shipped_index}
      WHERE e.form = 'order' AND e.kind = 'transition' AND {to_e} = 'shipped'
        AND e.at >= :s30 AND e.at <= :now
        AND NOT EXISTS (SELECT 1 FROM sl_events b WHERE b.form = 'order'
            AND b.kind = 'transition' AND {to_b} = 'shipped' AND b.record_id = e.record_id
            AND (b.at, b.id) < (e.at, e.id))) s
JOIN f_order o ON o.id = s.record_id
WHERE o.tracking_at IS NOT NULL OR s.at <= :late
"""
CHANGED = """
SELECT avg((SELECT count(*) FROM sl_events c WHERE c.form = 'order' AND c.kind = 'changed'
    AND c.record_id = o.id AND c.at <= :now AND ({fields})))
FROM f_order o WHERE o.created_at >= :s30 AND o.created_at <= :now
"""
CHANGE_FIELDS = ("product", "quantity", "desired_date", "order_type", "special_process")
PG_HOURS = "extract(epoch FROM ({1}) - {0}) / 3600.0"
SQLITE_HOURS = "(julianday({1}) - julianday({0})) * 24.0"


def _sql(dialect: str, query: str) -> str:
    """Fill in the dialect's JSON tests and hours."""
    to = TO[dialect]
    fields = " OR ".join(
        CHANGES[dialect].format(e="c", f=f) + " IS NOT NULL" for f in CHANGE_FIELDS
    )
    query = query.format(
        hours="{hours}",
        to_e=to.format(e="e"),
        to_b=to.format(e="b"),
        to_c=to.format(e="c"),
        approved=ENTERED.format(e="a", to=to.format(e="a"), state="approved"),
        approved2=ENTERED.format(e="a2", to=to.format(e="a2"), state="approved"),
        rejected=ENTERED.format(e="r", to=to.format(e="r"), state="rejected"),
        fields=fields,
        # SQLite picks (kind, at) for the window unless told (so does the engine)
        shipped_index=" INDEXED BY ix_sl_events_kpi_in_order_shipped_at"
        if dialect == "sqlite"
        else "",
    )
    while "{hours}(" in query:
        query = _hours(dialect, query)
    return query


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
    durations = _sql(conn.dialect.name, inner)
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
    value = conn.execute(_typed(sql), params).scalar()
    return None if value is None else float(value)


def _typed(sql: str) -> sa.TextClause:
    """Timestamps bound as the engine binds them (UTC text on SQLite)."""
    clause = sa.text(sql)
    names = [n for n in ("s30", "now", "late") if f":{n}" in sql]
    return clause.bindparams(*(sa.bindparam(n, type_=TS) for n in names))


def _rate(hits: int | None, population: int | None) -> float | None:
    return (hits or 0) / population * 100 if population else None


def hand_written(engine: sa.Engine, app: App, now: datetime) -> dict[str, Any]:
    params = {
        "s30": window("30d", now, app.timezone).start,
        "now": now,
        "late": now - timedelta(hours=2),
    }
    with engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")
        not_draft, passed, scheduled, matched = conn.execute(_typed(RECORDS), params).one()
        judged, first_pass = conn.execute(_typed(_sql(dialect, FIRST_PASS)), params).one()
        shipped, on_time = conn.execute(_typed(_sql(dialect, TRACKING)), params).one()
        changes = conn.execute(_typed(_sql(dialect, CHANGED)), params).scalar()
        return {
            "first_response_hours": _median(conn, FIRST_RESPONSE, params),
            "stock_check_pass_rate": _rate(passed, not_draft),
            "first_pass_approval_rate": _rate(first_pass, judged),
            "schedule_match_rate": _rate(matched, scheduled),
            "tracking_on_time_rate": _rate(on_time, shipped),
            "customer_changes_per_order": None if changes is None else float(changes),
        }


# ---------------------------------------------------------------------------- measuring
def engine_values(
    engine: sa.Engine, app: App, meta: sa.MetaData, now: datetime, cached: bool = False
) -> dict:
    result = dashboard_values(engine, app, DASHBOARD, now=now, metadata=meta, cached=cached)
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


def analyze(url: str) -> None:
    engine = create_db_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("VACUUM ANALYZE")
            else:
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
    result = generate(url, orders, seed=seed, bulk=True)
    print(
        f"generated {result.orders:,} orders, {result.events:,} events in {result.seconds:.0f} s "
        f"({result.orders / result.seconds:,.0f} orders/s, "
        f"{result.events / result.seconds:,.0f} events/s)"
    )
    _, _, last = history_size(url)
    assert last is not None
    return result.orders, result.events, last


def run(url: str, orders: int, seed: int, reuse: bool) -> None:
    compiled = compile_app(PACK)
    assert compiled.app is not None
    app = compiled.app
    meta = build_metadata(app)
    count, events, now = prepare(url, orders, seed, reuse)
    dialect = sa.make_url(url).get_backend_name()
    analyze(url)
    ours_cold = cold(url, lambda e: engine_values(e, app, meta, now))
    base_cold = cold(url, lambda e: hand_written(e, app, now))
    engine = create_db_engine(url)
    try:
        refresh(engine, app, meta, now)  # what the worker does every 10 minutes
    finally:
        engine.dispose()
    snap_cold = cold(url, lambda e: engine_values(e, app, meta, now, cached=True))
    engine = create_db_engine(url)
    try:
        ours, theirs = engine_values(engine, app, meta, now), hand_written(engine, app, now)
        ours_warm = warm(engine, lambda e: engine_values(e, app, meta, now))
        snap_warm = warm(engine, lambda e: engine_values(e, app, meta, now, cached=True))
        base_warm = warm(engine, lambda e: hand_written(e, app, now))
    finally:
        engine.dispose()
    print(f"database {dialect}: {count:,} orders, {events:,} events, now = {now}")
    for name, value in ours.items():
        print(f"  {name:28s} engine {value!s:>22s}   hand-written {theirs[name]!s:>22s}")
    differ = same(ours, theirs)
    print("  values agree" if not differ else f"  VALUES DIFFER: {', '.join(differ)}")
    rows = [
        ("dashboard_values (6 KPIs, 2 trends, groups)", ours_cold, ours_warm),
        ("  … with the worker's trend snapshots", snap_cold, snap_warm),
        ("hand-written SQL (6 numbers)", base_cold, base_warm),
    ]
    for label, c, w in rows:
        print(f"  {label:44s} cold {c * 1000:8.1f} ms  warm {w * 1000:8.1f} ms")
    print(
        f"  {'ratio engine / hand-written':44s} cold {ours_cold / base_cold:8.2f}x   "
        f"warm {ours_warm / base_warm:8.2f}x"
    )
    print(
        f"  {'ratio with snapshots / hand-written':44s} cold {snap_cold / base_cold:8.2f}x   "
        f"warm {snap_warm / base_warm:8.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    default = Path(tempfile.gettempdir()) / f"seamline_bench_dashboards_{args.orders}.db"
    run(args.db or f"sqlite:///{default}", args.orders, args.seed, args.reuse)


if __name__ == "__main__":
    main()
