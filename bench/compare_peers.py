"""Seamline side by side with a hand-written endpoint and Directus (issue 17): the same 10-field
orders workload against each, printed in one table with ratios from the same sitting.

    python bench/compare_peers.py [--seconds 15] [--rows 100000] [--db URL]
        [--directus URL --directus-token TOKEN [--directus-create] [--directus-index]]

Workload, identical on every side, every request sent by the same driver (:func:`drive`, one
``httpx.AsyncClient``, ``--concurrency`` workers, 8 by default):

1. create: POST one order of the 10 fields of ``bench_indexes.FORM`` for ``--seconds`` after a
   short warm-up; orders/s, p50, p99 and max latency.
2. fill the table to ``--rows`` rows over 2,000 customers (~50 each): Seamline's table directly
   with SQLAlchemy Core (``bench_indexes.fill``); Directus through its batch create (a JSON array
   of 1,000 items per ``POST /items/orders``).
3. filtered list: the newest 50 rows of a random customer for ``--seconds`` — Seamline
   ``GET /api/forms/orders/records?customer=X&limit=50`` (``customer`` declared ``index: true``),
   Directus ``GET /items/orders?filter[customer][_eq]=X&limit=50&sort=-id``; req/s, p50, p99.

Seamline runs as a real uvicorn server in a subprocess on a tmp app deployed to a SQLite file, or
with ``--db`` (a PostgreSQL server URL) to a fresh database created there and dropped afterwards.
The same process serves the baseline: a hand-written Starlette + SQLAlchemy Core endpoint on the
same table doing the same insert (the row plus one hash-chained event, as ``bench_api_server.py``,
no checks) and the same filtered select.

Directus is measured only when ``--directus URL --directus-token TOKEN`` (a static admin token)
are given; ``--directus-create`` creates the ``orders`` collection and its 10 fields through
``POST /collections`` when it does not exist (``--directus-index`` declares ``customer`` indexed).
``bench/directus.sh`` installs and starts Directus 12 here (Node.js 22 from the npm registry,
since Debian's is 20; SQLite; the token ``bench-admin-token``): it ran against it on 2026-12-07.
Without ``--directus`` the Directus column shows the figures measured earlier on this machine
kind, marked as not measured in this sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api_server import free_port
from bench_flows import fresh_database, pct
from bench_indexes import CUSTOMERS, customer, deployed, fill

from engine.accounts.auth import create_token, create_user
from engine.store.storage import create_db_engine

RequestFactory = Callable[[int], httpx.Request]

#: Directus 12 on this machine kind, from issue 17 (Node + SQLite): create at concurrency 8,
#: and the filtered list at 100,000 rows without / with an index on ``customer``.
DIRECTUS_EARLIER = {
    "create": {"rate": 82.0, "p50": 98.0},
    "list": {"rate": 104.0},
}
DIRECTUS_LIST_NO_INDEX = 63.0

SERVER = textwrap.dedent("""
    import sqlalchemy as sa
    import uvicorn
    from datetime import UTC, date, datetime
    from decimal import Decimal
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from engine.forms.rows import plain
    from engine.runtime import Deployments, newest_live
    from engine.store.events import EventIn, append_events
    from engine.store.storage import create_db_engine
    from engine.web.server import create_web_app

    engine = create_db_engine({url!r})
    live = newest_live(engine)
    table = live.metadata.tables["f_orders"]

    def insert(body):
        now = datetime.now(UTC)
        row = {{**body, "unit_price": Decimal(body["unit_price"]),
                "due": date.fromisoformat(body["due"]), "state": None, "version": 1,
                "created_at": now, "updated_at": now, "created_by": "bench"}}
        with engine.begin() as conn:
            rid = conn.execute(table.insert(), row).inserted_primary_key[0]
            event = EventIn("bench", "orders", rid, "created", {{"values": plain(body)}})
            append_events(conn, live.metadata, [event], now)
        return rid

    def page(who, limit):
        query = (sa.select(table).where(table.c.customer == who)
                 .order_by(table.c.id.desc()).limit(limit))
        with engine.connect() as conn:
            return [plain(dict(r._mapping)) for r in conn.execute(query)]

    async def orders(request):
        if request.method == "POST":
            rid = await run_in_threadpool(insert, await request.json())
            return JSONResponse({{"id": rid}}, status_code=201)
        who, limit = request.query_params["customer"], int(request.query_params["limit"])
        return JSONResponse({{"items": await run_in_threadpool(page, who, limit)}})

    route = Route("/baseline/orders", orders, methods=["GET", "POST"])
    web = create_web_app(engine, Deployments(engine, live), extra_routes=[route])
    uvicorn.run(web, host="127.0.0.1", port={port}, log_level="warning")
""")


@dataclass(frozen=True)
class Figures:
    """One side's figures for one workload: per second, and latencies in ms."""

    rate: float
    p50: float
    p99: float
    max: float
    requests: int


@dataclass(frozen=True)
class Side:
    """How one system is asked for the two workloads."""

    name: str
    create: RequestFactory
    list: RequestFactory


async def drive(factory: RequestFactory, seconds: float, concurrency: int) -> Figures:
    """Send ``factory(i)`` requests, ``concurrency`` at a time, for ``seconds``; every response
    must be a 2xx (the shared driver of every side)."""
    latencies: list[float] = []
    serial = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                request = factory(next(serial))
                start = time.perf_counter()
                response = await client.send(request)
                latencies.append((time.perf_counter() - start) * 1000)
                if not response.is_success:
                    raise RuntimeError(
                        f"{request.method} {request.url}: {response.status_code} "
                        f"{response.text[:300]}"
                    )

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - begin
    return Figures(
        len(latencies) / elapsed,
        statistics.median(latencies),
        pct(latencies, 0.99),
        max(latencies),
        len(latencies),
    )


def measure(factory: RequestFactory, seconds: float, concurrency: int) -> Figures:
    """A warm-up of a fifth of ``seconds`` (at most 2 s), then the measured run."""
    asyncio.run(drive(factory, min(2.0, seconds / 5), concurrency))
    return asyncio.run(drive(factory, seconds, concurrency))


def order(rng: random.Random) -> dict[str, Any]:
    """One order of the 10 fields, for a random customer of the filled table's 2,000."""
    i = rng.randrange(100_000)
    return {
        "customer": customer(rng.randrange(CUSTOMERS)),
        "region": ("east", "west", "north", "south")[i % 4],
        "product": f"P-{i % 12000:05d}",
        "quantity": 1 + i % 50,
        "unit_price": "12.50",
        "due": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "priority": ("low", "normal", "high")[i % 3],
        "contact": f"0575-{i:07d}",
        "email": f"buyer{i % 5000}@example.com",
        "note": f"order note {i}",
    }


def poster(url: str, headers: dict[str, str], seed: int = 1) -> RequestFactory:
    rng = random.Random(seed)
    return lambda _: httpx.Request("POST", url, json=order(rng), headers=headers)


def getter(
    url: str, headers: dict[str, str], params: Callable[[str], dict[str, Any]], seed: int = 2
) -> RequestFactory:
    rng = random.Random(seed)
    return lambda _: httpx.Request(
        "GET", url, params=params(customer(rng.randrange(CUSTOMERS))), headers=headers
    )


def seamline_params(who: str) -> dict[str, Any]:
    return {"customer": who, "limit": 50}


def directus_params(who: str) -> dict[str, Any]:
    return {"filter[customer][_eq]": who, "limit": 50, "sort": "-id"}


@contextlib.contextmanager
def serving(url: str, tmp: Path) -> Iterator[str]:
    """A uvicorn subprocess serving the newest deployment of ``url`` and the baseline routes;
    yields its base URL and stops it afterwards."""
    port = free_port()
    script = tmp / "server.py"
    script.write_text(SERVER.format(url=url, port=port), encoding="utf-8")
    env = {**os.environ, "SEAMLINE_SECRET_KEY": "x" * 40}
    server = subprocess.Popen([sys.executable, str(script)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{base}/api/health", timeout=1)
                break
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


API_PATH, HAND_PATH = "/api/forms/orders/records", "/baseline/orders"


def seamline_sides(base: str, token: str) -> tuple[Side, Side]:
    headers = {"Authorization": f"Bearer {token}"}
    api, hand = base + API_PATH, base + HAND_PATH
    return (
        Side("Seamline", poster(api, headers), getter(api, headers, seamline_params)),
        Side("hand-written", poster(hand, headers), getter(hand, headers, seamline_params)),
    )


def same_page(base: str, token: str) -> int:
    """Seamline and the baseline return the same rows for one customer; how many."""
    headers = {"Authorization": f"Bearer {token}"}
    pages = [
        [
            item["id"]
            for item in httpx.get(base + path, params=seamline_params(customer(7)), headers=headers)
            .raise_for_status()
            .json()["items"]
        ]
        for path in (API_PATH, HAND_PATH)
    ]
    if not pages[0] or pages[0] != pages[1]:
        raise RuntimeError(f"the two pages differ: {pages}")
    return len(pages[0])


def fill_seamline(engine: sa.Engine, table: sa.Table, rows: int) -> float:
    """Top the table up to ``rows`` rows; the seconds it took."""
    with engine.connect() as conn:
        have = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    start = time.perf_counter()
    fill(engine, table, max(0, rows - have))
    return time.perf_counter() - start


def measure_seamline(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Figures]]:
    """Seamline and the hand-written baseline, create then list, on one fresh database."""
    results: dict[str, dict[str, Figures]] = {"Seamline": {}, "hand-written": {}}
    with fresh_database(args.db, tmp, "compare_peers") as url:
        engine = create_db_engine(url)
        live, _ = deployed(tmp / "app", engine, indexed=True)
        with engine.begin() as conn:
            create_user(conn, "bench", ["clerk"], app=live.app)
            token = create_token(conn, "bench")
        try:
            with serving(url, tmp) as base:
                sides = seamline_sides(base, token)
                for side in reversed(sides):  # the baseline first, as in bench_api_server.py
                    results[side.name]["create"] = measure(side.create, args.seconds, args.conc)
                seconds = fill_seamline(engine, live.metadata.tables["f_orders"], args.rows)
                print(
                    f"  Seamline table filled to {args.rows:,} rows in {seconds:.1f} s; "
                    f"both serve the same {same_page(base, token)} rows for a customer"
                )
                for side in reversed(sides):
                    results[side.name]["list"] = measure(side.list, args.seconds, args.conc)
        finally:
            engine.dispose()
    return results


DIRECTUS_TYPES = {
    "customer": "string",
    "region": "string",
    "product": "string",
    "quantity": "integer",
    "unit_price": "decimal",
    "due": "date",
    "priority": "string",
    "contact": "string",
    "email": "string",
    "note": "text",
}


def directus_collection(indexed: bool) -> dict[str, Any]:
    """``POST /collections`` body: an auto-increment ``id`` and the 10 fields."""
    primary = {
        "field": "id",
        "type": "integer",
        "meta": {"hidden": True, "readonly": True, "interface": "input"},
        "schema": {"is_primary_key": True, "has_auto_increment": True},
    }
    fields = [primary]
    for name, kind in DIRECTUS_TYPES.items():
        schema: dict[str, Any] = {"is_nullable": True}
        if kind == "decimal":
            schema |= {"numeric_precision": 12, "numeric_scale": 2}
        if name == "customer" and indexed:
            schema["is_indexed"] = True
        fields.append({"field": name, "type": kind, "meta": {}, "schema": schema})
    return {"collection": "orders", "schema": {}, "meta": {"icon": "box"}, "fields": fields}


def directus_prepare(http: httpx.Client, create: bool, indexed: bool) -> None:
    if http.get("/collections/orders").status_code == 200:
        return
    if not create:
        raise SystemExit("Directus has no orders collection: pass --directus-create")
    http.post("/collections", json=directus_collection(indexed)).raise_for_status()


def directus_fill(http: httpx.Client, rows: int, batch: int = 1000) -> float:
    """Top ``orders`` up to ``rows`` items with batch creates; the seconds it took."""
    counted = http.get("/items/orders", params={"aggregate[count]": "*"})
    counted.raise_for_status()
    have = int(counted.json()["data"][0]["count"])
    rng = random.Random(3)
    start = time.perf_counter()
    for first in range(have, rows, batch):
        items = [
            order(rng) | {"customer": customer(i)} for i in range(first, min(rows, first + batch))
        ]
        http.post("/items/orders", params={"fields": "id"}, json=items).raise_for_status()
    return time.perf_counter() - start


def measure_directus(args: argparse.Namespace) -> dict[str, Figures]:
    url = args.directus.rstrip("/")
    headers = {"Authorization": f"Bearer {args.directus_token}"}
    items = f"{url}/items/orders"
    side = Side("Directus", poster(items, headers), getter(items, headers, directus_params))
    with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
        directus_prepare(http, args.directus_create, args.directus_index)
        results = {"create": measure(side.create, args.seconds, args.conc)}
        seconds = directus_fill(http, args.rows)
    print(f"  Directus collection filled to {args.rows:,} rows in {seconds:.1f} s")
    results["list"] = measure(side.list, args.seconds, args.conc)
    return results


ROWS = (
    ("create", "rate", "create orders/s"),
    ("create", "p50", "create p50 ms"),
    ("create", "p99", "create p99 ms"),
    ("create", "max", "create max ms"),
    ("list", "rate", "list req/s"),
    ("list", "p50", "list p50 ms"),
    ("list", "p99", "list p99 ms"),
)


def number(value: float | None, mark: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}{mark}" if value >= 100 else f"{value:.1f}{mark}"


def ratio(ours: float, theirs: float | None) -> str:
    return "—" if theirs is None else f"{ours / theirs:.2f}×"


def report(
    ours: dict[str, dict[str, Figures]], directus: dict[str, Figures] | None, rows: int
) -> None:
    widths = (16, 10, 13, 10, 22, 18)
    head = ("workload", "Seamline", "hand-written", "Directus", "Seamline/hand-written")
    print(" | ".join(h.ljust(w) for h, w in zip((*head, "Seamline/Directus"), widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for workload, metric, label in ROWS:
        seam = getattr(ours["Seamline"][workload], metric)
        hand = getattr(ours["hand-written"][workload], metric)
        if directus is not None:
            peer, mark = getattr(directus[workload], metric), ""
        else:
            peer, mark = DIRECTUS_EARLIER[workload].get(metric), "*"
        cells = (
            label,
            number(seam),
            number(hand),
            number(peer, mark if peer is not None else ""),
            ratio(seam, hand),
            ratio(seam, peer),
        )
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    print(
        "ratios are Seamline's figure over the other's: above 1 means more per second, or a "
        f"longer latency; the list at {rows:,} rows"
    )
    if directus is None:
        rate = ours["Seamline"]["list"].rate
        print(
            "* Directus: not measured in this sitting (figure from the issue: Directus 12, "
            "Node + SQLite, this machine kind; list 104 req/s with an index on customer, "
            f"{DIRECTUS_LIST_NO_INDEX:.0f} without — Seamline/Directus without: "
            f"{rate / DIRECTUS_LIST_NO_INDEX:.2f}×)"
        )


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--concurrency", dest="conc", type=int, default=8)
    parser.add_argument("--db", default=None, help="a PostgreSQL server URL (default SQLite)")
    parser.add_argument("--directus", default=None, help="base URL of a running Directus")
    parser.add_argument("--directus-token", default=None)
    parser.add_argument("--directus-create", action="store_true")
    parser.add_argument("--directus-index", action="store_true")
    args = parser.parse_args()
    if args.directus and not args.directus_token:
        parser.error("--directus needs --directus-token")
    kind = (args.db or "sqlite").split(":")[0]
    print(
        f"database {kind}; one uvicorn process; concurrency {args.conc}; {args.seconds:g} s per "
        f"figure after a warm-up; load (1/5/15 min) at start {load()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        ours = measure_seamline(args, Path(folder))
    directus = measure_directus(args) if args.directus else None
    report(ours, directus, args.rows)
    print(f"load (1/5/15 min) at end {load()}")


if __name__ == "__main__":
    main()
