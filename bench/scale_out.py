"""Scale-out on one machine: 1 web + 1 worker against 2 webs + 2 workers, in the same run.

compose.yaml's services as local processes on the local PostgreSQL (tests/composehelp.py: one
``seamline deploy``, then ``serve --no-worker`` × W on free ports and ``worker`` × W), a fresh
database for every round. Two figures per round:

* order creation through the JSON API (``POST /api/forms/order/records``, every check and the
  history event), N orders at concurrency 8, requests handed round-robin to the webs;
* outbox delivery: M WeCom messages queued in one transaction (the transactional outbox, each
  dispatched to procrastinate), delivered by the workers to a local fake WeCom robot; the time
  from the commit until every job is done. ``--latency MS`` makes the robot answer after MS
  milliseconds, as a remote API does: then delivery waits on the network, not on the CPU,
  and the ratio shows whether the workers share the work without getting in each other's way.

Medians over the rounds (configurations alternate, so drift hits both) and the ratio
2+2 / 1+1. The client, the fake robot and PostgreSQL share the machine with the processes
measured: on 2 cores expect modest scaling.

    python bench/scale_out.py [--pg URL] [--orders 600] [--messages 1000] [--rounds 3]
                               [--latency MS]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from composehelp import Cluster, postgres_database  # noqa: E402
from fakes import fake_wecom  # noqa: E402

from engine.outbox import jobs  # noqa: E402

PACK = ROOT / "examples" / "manufacturing_pack"
FAR = (date.today() + timedelta(days=60)).isoformat()
CONFIGS = (1, 2)  # webs = workers


@dataclass
class Round:
    webs: int
    orders_per_s: float
    p50_ms: float
    messages_per_s: float


async def drive(
    urls: list[str], headers: dict[str, str], body: dict[str, object], n: int, concurrency: int
) -> tuple[float, float]:
    """n order creations, ``concurrency`` at a time, round-robin over ``urls``."""
    latencies: list[float] = []
    targets = itertools.cycle(urls)
    queue = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def one_at_a_time() -> None:
            for _ in queue:
                url = next(targets)
                start = time.perf_counter()
                answer = await client.post(f"{url}/api/forms/order/records", json=body)
                latencies.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 201, answer.text

        start = time.perf_counter()
        await asyncio.gather(*(one_at_a_time() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return n / elapsed, statistics.median(latencies)


def setup_records(web: str, sales: str, finance: str) -> dict[str, object]:
    with httpx.Client(base_url=web, timeout=30) as client:
        customer = client.post(
            "/api/forms/customer/records",
            json={"code": "C00001", "name": "绍兴星辰机械"},
            headers={"Authorization": f"Bearer {sales}"},
        )
        product = client.post(
            "/api/forms/product/records",
            json={"code": "SD-100000", "name": "座椅面套", "unit_price": "12.50", "lead_days": 5},
            headers={"Authorization": f"Bearer {finance}"},
        )
    assert customer.status_code == 201, customer.text
    assert product.status_code == 201, product.text
    return {
        "customer": customer.json()["id"],
        "product": product.json()["id"],
        "quantity": 3,
        "desired_date": FAR,
        "order_type": "normal",
    }


def deliver(engine: sa.Engine, first: int, m: int, wecom: Any, latency: float) -> float:
    """Queue m messages in one transaction; seconds until all are done. ``latency``: seconds
    the robot takes to answer each (a remote API's round trip; 0 on loopback)."""
    if latency > 0:
        wecom.slow_next(m, seconds=latency)
    with engine.begin() as conn:
        for i in range(first, first + m):
            payload = {
                "connector": "wecom",
                "title": f"#{i}",
                "text": f"进度 {i}",
                "todo": False,
                "to": [],
            }
            jobs.enqueue(conn, "effect", f"effect:bench:{i}", payload, max_attempts=20)
    start = time.perf_counter()
    done_query = (
        sa.select(sa.func.count())
        .select_from(jobs.JOBS)
        .where(jobs.JOBS.c.status == "done", jobs.JOBS.c.key.like("effect:bench:%"))
    )
    deadline = start + 600
    while True:
        with engine.connect() as conn:
            done = conn.execute(done_query).scalar_one()
        if done >= first + m:
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {done} of {first + m} messages delivered in 600 s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    received = len(wecom.messages)  # type: ignore[attr-defined]
    assert received >= first + m, (received, first + m)
    return elapsed


def one_round(admin_url: str, width: int, args: argparse.Namespace, tmp: Path) -> Round:
    with postgres_database(admin_url, prefix="sl_bench") as db_url, fake_wecom() as wecom:
        env = {
            "SEAMLINE_SECRET_KEY": "bench-" + "k" * 40,
            "WECOM_WEBHOOK": wecom.url,
            "SEAMLINE_LOG_LEVEL": "warning",
        }
        workdir = tmp / f"w{width}-{time.monotonic_ns()}"
        workdir.mkdir()
        with Cluster(PACK, db_url, env, workdir) as cluster:
            cluster.deploy()
            sales, finance = cluster.token("li.sales"), cluster.token("huang.fin")
            cluster.start(webs=width, workers=width)
            urls = [w.url for w in cluster.webs if w.url]
            body = setup_records(urls[0], sales, finance)
            headers = {"Authorization": f"Bearer {sales}"}
            asyncio.run(drive(urls, headers, body, 40 * width, args.concurrency))  # warm up
            rate, p50 = asyncio.run(drive(urls, headers, body, args.orders, args.concurrency))
            engine = sa.create_engine(db_url, pool_size=2)
            try:
                # warm up every worker's connections
                deliver(engine, 0, 20 * width, wecom, args.latency / 1000)
                seconds = deliver(engine, 20 * width, args.messages, wecom, args.latency / 1000)
            finally:
                engine.dispose()
            stopped = cluster.stop()
            if stopped.killed or stopped.leftovers:
                print(f"  warning: {stopped}", file=sys.stderr)
    return Round(width, rate, p50, args.messages / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "SEAMLINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL database to connect to; each round creates and drops its own",
    )
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="ms the fake robot waits before each answer (a remote API's round trip)",
    )
    args = parser.parse_args()
    results: dict[int, list[Round]] = {w: [] for w in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for width in CONFIGS if r % 2 == 0 else reversed(CONFIGS):
                got = one_round(args.pg, width, args, Path(tmp))
                results[width].append(got)
                print(
                    f"  round {r + 1}, {width} web + {width} worker: "
                    f"{got.orders_per_s:6.0f} orders/s (p50 {got.p50_ms:5.1f} ms), "
                    f"{got.messages_per_s:6.0f} messages/s",
                    flush=True,
                )
    cores = os.cpu_count()
    print(
        f"\nPostgreSQL, {cores} cores, {args.orders} orders at concurrency {args.concurrency} "
        f"(round-robin over the webs), {args.messages} outbox messages (the robot answers "
        f"after {args.latency:g} ms); median of "
        f"{args.rounds} rounds"
    )
    medians = {}
    for width in CONFIGS:
        rounds = results[width]
        medians[width] = (
            statistics.median(x.orders_per_s for x in rounds),
            statistics.median(x.p50_ms for x in rounds),
            statistics.median(x.messages_per_s for x in rounds),
        )
        orders, p50, messages = medians[width]
        print(
            f"  {width} web + {width} worker   orders {orders:6.0f}/s  p50 {p50:6.1f} ms   "
            f"outbox {messages:6.0f} messages/s"
        )
    (o1, _, m1), (o2, _, m2) = medians[1], medians[2]
    print(f"  ratio 2+2 / 1+1         orders {o2 / o1:.2f}x              outbox {m2 / m1:.2f}x")


if __name__ == "__main__":
    main()
