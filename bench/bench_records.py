"""Records created per second: the records service and the HTTP API, each against hand-written
SQLAlchemy Core doing the same inserts (the order row, plus one hash-chained event row, in one
transaction), measured in the same run on the same database. Also list-page latency with
100,000 orders.

    python bench/bench_records.py [--db URL] [--n 2000] [--list-rows 100000]

Default database: a fresh SQLite file in a temporary folder. With --db, the database must be
empty (the benchmark creates and drops its tables).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from apihelp import start_api

from engine.forms.records import SYSTEM_ACTOR
from engine.store.events import EventIn, append_events
from engine.store.system_tables import system_metadata

_SERIAL = itertools.count()
FAR = (date.today() + timedelta(days=60)).isoformat()


def order_values(i: int, customer: int, product: int) -> dict[str, object]:
    return {
        "customer": customer,
        "product": product,
        "quantity": 1 + i % 50,
        "desired_date": FAR,
        "order_type": "normal",
    }


def hand_written(
    engine: sa.Engine, table: sa.Table, n: int, customer: int, product: int, price: Decimal
) -> float:
    """What a programmer would write by hand: insert the row and an audit event."""
    metadata = system_metadata()
    start = time.perf_counter()
    for i in range(n):
        now = datetime.now(UTC)
        quantity = 1 + i % 50
        with engine.begin() as conn:
            rid = conn.execute(
                table.insert().values(
                    state="draft",
                    version=1,
                    created_at=now,
                    updated_at=now,
                    created_by="bench",
                    order_no=f"HW-{next(_SERIAL):07d}",
                    customer=customer,
                    product=product,
                    quantity=quantity,
                    desired_date=date.fromisoformat(FAR),
                    order_type="normal",
                    amount=price * quantity,
                    special_process=[],
                    attachments=[],
                )
            ).inserted_primary_key[0]
            append_events(
                conn,
                metadata,
                [EventIn("bench", "order", rid, "created", {"quantity": quantity})],
                now,
            )
    return n / (time.perf_counter() - start)


def through_service(api, n: int, customer: int, product: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        api.live.records.create("order", order_values(i, customer, product), SYSTEM_ACTOR)
    return n / (time.perf_counter() - start)


def through_api(client, n: int, customer: int, product: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        r = client.post("/api/forms/order/records", json=order_values(i, customer, product))
        assert r.status_code == 201, r.text
    return n / (time.perf_counter() - start)


def fill(engine: sa.Engine, table: sa.Table, rows: int, customer: int, product: int) -> None:
    now = datetime.now(UTC)
    batch = []
    with engine.begin() as conn:
        for i in range(rows):
            batch.append(
                {
                    "state": "draft",
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                    "created_by": "bench",
                    "order_no": f"FILL-{i:08d}",
                    "customer": customer,
                    "product": product,
                    "quantity": 1 + i % 50,
                    "desired_date": date.fromisoformat(FAR),
                    "order_type": "normal",
                    "amount": Decimal(10),
                    "special_process": [],
                    "attachments": [],
                }
            )
            if len(batch) == 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)


def list_latency(client, pages: int) -> tuple[float, float]:
    samples = []
    cursor = None
    for _ in range(pages):
        url = "/api/forms/order/records?limit=50&sort=-created_at"
        start = time.perf_counter()
        r = client.get(url + (f"&cursor={cursor}" if cursor else ""))
        samples.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200
        cursor = r.json()["next_cursor"]
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--list-rows", type=int, default=100_000)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    api = start_api(url)
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00001", "name": "客户", "tier": "A"}, SYSTEM_ACTOR
    )["id"]
    product = records.create(
        "product",
        {"code": "SD-100001", "name": "面套", "unit_price": "12.50", "lead_days": 5},
        SYSTEM_ACTOR,
    )["id"]
    table = api.live.metadata.tables["f_order"]
    client = api.client("li.sales")
    n = args.n
    # warm up every path once
    hand_written(api.engine, table, 20, customer, product, Decimal("12.50"))
    through_service(api, 20, customer, product)
    through_api(client, 20, customer, product)
    rounds = {"hand": [], "service": [], "api": []}
    for _ in range(3):
        rounds["hand"].append(
            hand_written(api.engine, table, n, customer, product, Decimal("12.50"))
        )
        rounds["service"].append(through_service(api, n, customer, product))
        rounds["api"].append(through_api(client, n // 4, customer, product))
    hand = statistics.median(rounds["hand"])
    service = statistics.median(rounds["service"])
    via_api = statistics.median(rounds["api"])
    print(f"database: {api.engine.dialect.name}; {n} orders per round, median of 3 rounds")
    print(f"  hand-written SQLAlchemy Core (row + chained event)  {hand:8.0f} orders/s  1.00x")
    print(
        f"  records service (all checks, history, autonumber)  {service:8.0f} orders/s  "
        f"{hand / service:.2f}x slower"
    )
    print(
        f"  HTTP API in-process (TestClient, one at a time)   {via_api:8.0f} orders/s  "
        f"{hand / via_api:.2f}x slower"
    )
    with api.engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    if args.list_rows > have:
        fill(api.engine, table, args.list_rows - have, customer, product)
    p50, p95 = list_latency(client, 200)
    print(
        f"  list page (50 rows, newest first, cursor) at {max(args.list_rows, have):,} orders: "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p50 < 50 ms)"
    )
    api.engine.dispose()


if __name__ == "__main__":
    main()
