"""List exports at scale: ``/forms/order/export.csv`` and ``.xlsx`` of N orders (the demo's
year is 42,000), through the real page routes in-process: time to the whole file, the file's
size, and the peak Python memory while it is made (tracemalloc) — which must stay flat as N
grows (the CSV streams a page of records at a time; the XLSX is written row by row in
XlsxWriter's constant_memory mode).

    python bench/bench_exports.py [--db URL] [--rows 42000]

Default database: a fresh SQLite file in a temporary folder. With --db, the database must be
empty (the benchmark creates its tables).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from apihelp import start_api
from bench_records import fill

from engine.forms.records import SYSTEM_ACTOR


def download(client, url: str) -> int:
    with client.stream("GET", url) as answer:
        assert answer.status_code == 200, answer.read()[:300]
        return sum(len(chunk) for chunk in answer.iter_bytes())


def measure(client, url: str) -> tuple[float, int, float]:
    """(seconds, bytes, peak MB): the time without tracemalloc (which slows Python down), the
    memory in a second run with it."""
    start = time.perf_counter()
    size = download(client, url)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    download(client, url)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, size, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--rows", type=int, default=42_000)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    api = start_api(url)
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00001", "name": "华东精密机械", "tier": "A"}, SYSTEM_ACTOR
    )["id"]
    product = records.create(
        "product",
        {"code": "SD-100001", "name": "面套", "unit_price": "12.50", "lead_days": 5},
        SYSTEM_ACTOR,
    )["id"]
    table = api.live.metadata.tables["f_order"]
    client = api.browser("li.sales")[0]
    print(f"database: {api.engine.dialect.name}")
    done = 0
    for target in sorted({min(1000, args.rows), args.rows}):
        with api.engine.begin() as conn:  # fill numbers from FILL-0 again: move the earlier away
            conn.execute(table.update().values(order_no="A-" + table.c.order_no))
        fill(api.engine, table, target - done, customer, product)
        done = target
        for kind in ("csv", "xlsx"):
            seconds, size, peak = measure(client, f"/forms/order/export.{kind}")
            print(
                f"  {kind:4} {target:>7,} orders: {seconds:6.2f} s, {size / 2**20:6.1f} MB file, "
                f"peak Python memory {peak:6.1f} MB"
            )
    api.engine.dispose()


if __name__ == "__main__":
    main()
