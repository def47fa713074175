"""A filtered list with and without a declared index (issue 17): a 10-field form, 100,000 rows,
``GET /api/forms/orders/records?customer=X&limit=50`` (``customer`` a text field) through the
HTTP API in-process, before and after ``index: true`` on the field is deployed; the baseline is
the same page read by a hand-written SQLAlchemy query (``WHERE customer = X ORDER BY id DESC
LIMIT 50``) on the same table, with and without the index, in the same run.

    python bench/bench_indexes.py [--db URL] [--rows 100000] [--requests 200]

Default database: a fresh SQLite file in a temporary folder. With --db, the database must be
empty (the benchmark creates its tables).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from engine.accounts.auth import create_token, create_user
from engine.compile import compile_app
from engine.deploy.apply import bundle_sources, deploy
from engine.deploy.plan import live_index_names
from engine.runtime import Deployments, LiveApp
from engine.store.storage import create_db_engine
from engine.web.server import create_web_app

APP = """\
name: bench
title: Index bench
locale: en
calendar: weekends
roles:
  clerk: {label: Clerk}
"""
FORM = """\
title: Orders
title_field: product
fields:
  customer: {{type: text, label: Customer{index}}}
  region: {{type: select, label: Region, options: [east, west, north, south]}}
  product: {{type: text, label: Product}}
  quantity: {{type: integer, label: Quantity}}
  unit_price: {{type: money, label: Unit price}}
  due: {{type: date, label: Due}}
  priority: {{type: select, label: Priority, options: [low, normal, high]}}
  contact: {{type: phone, label: Contact}}
  email: {{type: email, label: Email}}
  note: {{type: text, label: Note}}
"""
CUSTOMERS = 2000  # ~50 rows each at 100,000: one page per customer


def write_app(root: Path, indexed: bool) -> None:
    (root / "forms").mkdir(parents=True, exist_ok=True)
    (root / "app.yaml").write_text(APP, encoding="utf-8")
    form = FORM.format(index=", index: true" if indexed else "")
    (root / "forms" / "orders.yaml").write_text(form, encoding="utf-8")


def deployed(root: Path, engine: sa.Engine, indexed: bool) -> tuple[LiveApp, float]:
    """Compile the app with or without the index and deploy it; the deploy's seconds."""
    write_app(root, indexed)
    result = compile_app(root)
    assert result.app is not None, [d.headline() for d in result.diagnostics.sorted()]
    bundle = bundle_sources(result.workspace)
    start = time.perf_counter()
    deploy(engine, result.app, bundle)
    seconds = time.perf_counter() - start
    return LiveApp.of(result.app, engine, bundle), seconds


def fill(engine: sa.Engine, table: sa.Table, rows: int) -> None:
    start = datetime.now(UTC) - timedelta(days=400)
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for i in range(rows):
            batch.append(
                {
                    "state": None,
                    "version": 1,
                    "created_at": start + timedelta(minutes=5 * i),
                    "updated_at": start + timedelta(minutes=5 * i),
                    "created_by": "bench",
                    "customer": f"客户-{(i * 7919) % CUSTOMERS:05d}",
                    "region": ("east", "west", "north", "south")[i % 4],
                    "product": f"P-{i % 12000:05d}",
                    "quantity": 1 + i % 50,
                    "unit_price": Decimal("12.50"),
                    "due": date(2026, 1, 1) + timedelta(days=i % 365),
                    "priority": ("low", "normal", "high")[i % 3],
                    "contact": f"0575-{i % 10_000_000:07d}",
                    "email": f"buyer{i % 5000}@example.com",
                    "note": f"order note {i}",
                }
            )
            if len(batch) == 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"ANALYZE {table.name}")


def client(engine: sa.Engine, live: LiveApp) -> TestClient:
    """An API client with a token; used as a context manager, so one event loop serves every
    request (without it TestClient starts a thread and a loop per request: ~5 ms each)."""
    with engine.begin() as conn:
        token = create_token(conn, "bench")
    web = create_web_app(engine, Deployments(engine, live))
    return TestClient(web, headers={"Authorization": f"Bearer {token}"})


def timed(call: Callable[[int], int], n: int) -> tuple[float, float]:
    """Median latency (ms) and requests per second of ``n`` sequential calls (a few warm-up
    calls first); ``call(i)`` returns how many rows it got."""
    for i in range(5):
        call(i)
    samples = []
    begin = time.perf_counter()
    for i in range(n):
        start = time.perf_counter()
        got = call(i)
        samples.append((time.perf_counter() - start) * 1000)
        assert got > 0
    return statistics.median(samples), n / (time.perf_counter() - begin)


def customer(i: int) -> str:
    return f"客户-{(i * 37) % CUSTOMERS:05d}"


def api_call(http: TestClient) -> Callable[[int], int]:
    def call(i: int) -> int:
        r = http.get("/api/forms/orders/records", params={"customer": customer(i), "limit": 50})
        assert r.status_code == 200, r.text
        return len(r.json()["items"])

    return call


def service_call(live: LiveApp) -> Callable[[int], int]:
    """The records service in-process (filters checked, rows as the API returns them)."""

    def call(i: int) -> int:
        filters = {"customer": customer(i)}
        return len(live.records.list_page("orders", filters=filters, limit=50).items)

    return call


def hand_call(engine: sa.Engine, table: sa.Table) -> Callable[[int], int]:
    """The hand-written baseline: the same page, rows as dicts."""

    def call(i: int) -> int:
        query = (
            sa.select(table)
            .where(table.c.customer == customer(i))
            .order_by(table.c.id.desc())
            .limit(50)
        )
        with engine.connect() as conn:
            return len([dict(r._mapping) for r in conn.execute(query)])

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / "app"
    url = args.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = create_db_engine(url)
    plain, _ = deployed(root, engine, indexed=False)
    with engine.begin() as conn:
        create_user(conn, "bench", ["clerk"], app=plain.app)
    table = plain.metadata.tables["f_orders"]
    start = time.perf_counter()
    fill(engine, table, args.rows)
    filled = time.perf_counter() - start
    n = args.requests
    print(
        f"database: {engine.dialect.name}; {args.rows:,} rows of a 10-field form, filled in "
        f"{filled:.1f} s; {n} sequential requests per figure, load {os.getloadavg()[0]:.2f}"
    )

    figures: dict[str, list[tuple[float, float]]] = {}
    for live, count in ((plain, max(n // 4, 20)), (None, n)):
        if live is None:  # now declare the index and deploy it on the filled table
            live, seconds = deployed(root, engine, indexed=True)
            with engine.connect() as conn:
                assert "ix_f_orders_customer" in live_index_names(conn, "f_orders")
            print(f"  deploy adding ix_f_orders_customer to {args.rows:,} rows: {seconds:.2f} s")
        with client(engine, live) as http:
            measured = [
                timed(api_call(http), count),
                timed(service_call(live), count),
                timed(hand_call(engine, table), count),
            ]
        figures["index: true" if live is not plain else "no index"] = measured
    for label, ((api_p50, api_rps), (svc_p50, svc_rps), (hand_p50, hand_rps)) in figures.items():
        print(f"  {label}:")
        print(
            f"    GET ?customer=X&limit=50 (HTTP API in-process)  p50 {api_p50:7.2f} ms  "
            f"{api_rps:6.0f} req/s  {api_p50 / hand_p50:5.1f}x the hand-written time"
        )
        print(
            f"    records service list_page                        p50 {svc_p50:7.2f} ms  "
            f"{svc_rps:6.0f} /s      {svc_p50 / hand_p50:5.1f}x"
        )
        print(
            f"    hand-written SQLAlchemy query (baseline)         p50 {hand_p50:7.2f} ms  "
            f"{hand_rps:6.0f} /s      1.0x"
        )
    before, after = figures["no index"][0], figures["index: true"][0]
    print(
        f"  index: true makes the request {before[0] / after[0]:.1f}x faster (p50), "
        f"{after[1] / before[1]:.1f}x the req/s; load {os.getloadavg()[0]:.2f}"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
