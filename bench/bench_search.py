"""List search across refs at 100,000 orders: `list_page(..., q=...)` against a naive scan.

Builds, by bulk insert, 2,000 customers, the pack's 12,000 products (1,761 names) and
100,000 orders (order number, ATP explanation, tracking number, some remarks) in a temporary
SQLite file, or with ``--db URL`` in an empty PostgreSQL database (tables are created and
dropped). For each kind of query it prints the median of the records service's
``list_page("order", q=..., limit=50)`` (newest first, the list page's query, titles of refs
included) and, measured in the same run, of a hand-written SQLAlchemy query doing the naive
thing: join customer and product, ``ILIKE '%term%'`` over every text column of the three
tables, newest first, LIMIT 50. The target is a median under 50 ms for every kind.

    python bench/bench_search.py [--db URL] [--orders 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from apihelp import start_api  # noqa: E402

from engine.store.search_index import build_search_index, stale_search_indexes  # noqa: E402

PRODUCTS = ROOT / "examples" / "manufacturing_pack" / "data" / "products.csv"
CITIES = ["绍兴", "宁波", "杭州", "武汉", "长春", "重庆", "广州", "天津", "合肥", "成都"]
KINDS = ["汽车工业", "汽车制造", "汽配科技", "车辆部件", "汽车内饰"]


def build(engine: sa.Engine, metadata: sa.MetaData, orders: int) -> dict[str, str]:
    """Fill the three tables; returns the query of each kind, picked from the data."""
    rng = random.Random(16)
    now = datetime.now(UTC)
    system = {"version": 1, "created_at": now, "updated_at": now, "created_by": "bench"}
    customers = [
        {
            **system,
            "state": None,
            "code": f"C{i:05d}",
            "name": f"{rng.choice(CITIES)}{rng.choice(KINDS)}有限公司{i}",
            "tier": rng.choice(["VIP", "A", "B", "C"]),
            "region": "华东",
            "contact": f"联系人{i}",
        }
        for i in range(1, 2001)
    ]
    with PRODUCTS.open(encoding="utf-8") as f:
        products = [
            {
                **system,
                "state": None,
                "code": row["code"],
                "name": row["name"],
                "category": row["category"],
                "unit_price": Decimal(row["unit_price"]),
                "lead_days": int(row["lead_days"]),
            }
            for row in csv.DictReader(f)
        ]
    tables = metadata.tables
    with engine.begin() as conn:
        conn.execute(tables["f_customer"].insert(), customers)
        conn.execute(tables["f_product"].insert(), products)
        batch: list[dict[str, Any]] = []
        start = date(2026, 1, 1)
        for i in range(orders):
            day = start + timedelta(days=i * 365 // orders)
            batch.append(
                {
                    **system,
                    "state": rng.choice(["draft", "approving", "approved", "shipped"]),
                    "order_no": f"SO-{day:%Y%m}-{i:05d}",
                    "customer": rng.randint(1, len(customers)),
                    "product": rng.randint(1, len(products)),
                    "quantity": rng.randint(1, 2000),
                    "desired_date": day + timedelta(days=20),
                    "order_type": rng.choice(["normal", "rush", "trial"]),
                    "special_process": [],
                    "attachments": [],
                    "atp_explanation": f"可用库存与在途采购可满足 {rng.randint(1, 2000)} 件，"
                    f"按生产周期最早 {day + timedelta(days=14)}",
                    "tracking_no": f"SF{rng.randint(10**11, 10**12 - 1)}",
                    "remarks": "客户要求加急，请优先排产" if i % 7 == 0 else None,
                }
            )
            if len(batch) == 5000:
                conn.execute(tables["f_order"].insert(), batch)
                batch = []
        if batch:
            conn.execute(tables["f_order"].insert(), batch)
    middle = products[len(products) // 2]
    wanted = orders // 2 + 7
    month = start + timedelta(days=wanted * 365 // orders)
    return {
        "customer name": customers[1234]["name"],
        "product name": str(middle["name"]),
        "SKU": str(middle["code"]),
        "order number": f"SO-{month:%Y%m}-{wanted:05d}",
        "no match": "无此客户XYZ",
    }


def naive(engine: sa.Engine, metadata: sa.MetaData) -> Callable[[str], int]:
    """The hand-written baseline: join the refs and ILIKE every text column."""
    order, customer, product = (metadata.tables[f"f_{n}"] for n in ("order", "customer", "product"))
    columns = [
        order.c.order_no,
        order.c.atp_explanation,
        order.c.reservation_id,
        order.c.tracking_no,
        order.c.remarks,
        customer.c.code,
        customer.c.name,
        product.c.code,
        product.c.name,
    ]
    joined = order.join(customer, order.c.customer == customer.c.id).join(
        product, order.c.product == product.c.id
    )

    def run(term: str) -> int:
        needle = f"%{term}%"
        query = (
            sa.select(order, customer.c.name, product.c.name)
            .select_from(joined)
            .where(sa.or_(*(c.ilike(needle) for c in columns)))
            .order_by(order.c.id.desc())
            .limit(50)
        )
        with engine.connect() as conn:
            return len(conn.execute(query).all())

    return run


def median_ms(run: Callable[[str], int], term: str, rounds: int) -> tuple[float, int]:
    found = run(term)  # warm up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(term)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    api = start_api(url)
    metadata = api.live.metadata
    try:
        started = time.perf_counter()
        queries = build(api.engine, metadata, args.orders)
        built = time.perf_counter() - started
        started = time.perf_counter()
        with api.engine.begin() as conn:  # what `seamline deploy` does on this database
            indexed = stale_search_indexes(conn, api.app)
            for form in indexed:
                build_search_index(conn, api.app.forms[form])
        indexing = time.perf_counter() - started
        records = api.live.records

        def seamline(term: str) -> int:
            return len(records.list_page("order", q=term, limit=50).items)

        baseline = naive(api.engine, metadata)
        print(
            f"database: {api.engine.dialect.name}; {args.orders:,} orders, 2,000 customers, "
            f"12,000 products (built in {built:.0f} s); median of {args.rounds} runs"
        )
        print(f"  search indexes built by deploy's step: {indexed or 'none'} in {indexing:.1f} s")
        print(f"  {'query':<14} {'term':<30} {'rows':>4}  {'list_page':>9}  {'naive':>9}  ratio")
        for kind, term in queries.items():
            ours, found = median_ms(seamline, term, args.rounds)
            base, base_found = median_ms(baseline, term, args.rounds)
            print(
                f"  {kind:<14} {term:<30} {found:>4}  {ours:7.1f}ms  {base:7.1f}ms  "
                f"{ours / base:.2f}x{'' if found == base_found else f' (naive: {base_found})'}"
            )
    finally:
        if args.db:
            metadata.drop_all(api.engine)
        api.engine.dispose()


if __name__ == "__main__":
    main()
