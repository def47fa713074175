"""Flows: submit → stock check against the mock warehouse on loopback → state change latency,
and effects delivered per second through the outbox against sending the same requests
directly with httpx (the baseline, measured in the same run against the same receiver).
The seed's platform needed 8 s for the stock check; the target is p50 < 100 ms.

    python bench/bench_flows.py [--orders 200] [--effects 1000] [--db URL] [--concurrency 4]

Each measurement gets a fresh database: a SQLite file, or with ``--db`` (a PostgreSQL URL) a
new database on that server, dropped afterwards. Jobs are run by the table loop (``Worker``);
on PostgreSQL both figures are measured again with a procrastinate worker (its schema installed
as ``seamline deploy`` does), ``--concurrency`` jobs at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from apihelp import Api, start_api  # noqa: E402
from fakes import (  # noqa: E402
    AsgiServer,
    FakeWebhook,
    fake_dingtalk,
    fake_webhook,
    fake_wecom,
)
from packservices import mock_wms_module  # noqa: E402

from engine.flows.machine import fire_transition  # noqa: E402
from engine.flows.runner import FlowRuntime  # noqa: E402
from engine.forms.records import SYSTEM_ACTOR  # noqa: E402
from engine.model.spec import ConnectorSpec  # noqa: E402
from engine.outbox import jobs, procrastinate_queue  # noqa: E402
from engine.outbox.connectors import Connectors  # noqa: E402
from engine.outbox.procrastinate_queue import ProcrastinateWorker  # noqa: E402
from engine.outbox.worker import Worker, procrastinate_worker  # noqa: E402
from engine.store.storage import create_db_engine  # noqa: E402

Runtime = Callable[[], FlowRuntime]


@dataclass(frozen=True)
class WorkerPath:
    """Which worker runs the jobs: the table loop, or procrastinate (``concurrency`` set)."""

    concurrency: int | None = None

    @property
    def label(self) -> str:
        if self.concurrency is None:
            return "table loop, one worker"
        return f"procrastinate worker, concurrency {self.concurrency}"

    def open_api(self, url: str) -> Api:
        api = start_api(url)
        if self.concurrency is not None:
            with api.engine.begin() as conn:
                procrastinate_queue.install_schema(conn)
        return api

    def start(self, engine: sa.Engine, runtime: Runtime) -> Worker | ProcrastinateWorker:
        """The in-process worker of `seamline serve`, started in a thread."""
        if self.concurrency is None:
            table = Worker(engine, runtime)
            table.start(poll=0.005)
            return table
        queue = procrastinate_worker(engine, runtime, self.concurrency)
        queue.start()
        return queue


@contextmanager
def running(path: WorkerPath, engine: sa.Engine, runtime: Runtime) -> Iterator[None]:
    worker = path.start(engine, runtime)
    try:
        yield
    finally:
        worker.stop()


@contextmanager
def fresh_database(server: str | None, tmp: Path, name: str) -> Iterator[str]:
    """A URL to a new, empty database: a SQLite file, or one created on ``server``."""
    if server is None:
        yield f"sqlite:///{tmp / f'{name}.db'}"
        return
    database = f"bench_flows_{name}_{os.getpid()}"
    admin = create_db_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        yield admin.url.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


def pct(samples: list[float], p: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * p))]


def stock_check_latency(url: str, orders: int, path: WorkerPath) -> tuple[float, float]:
    api = path.open_api(url)
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00001", "name": "客户", "tier": "A"}, SYSTEM_ACTOR
    )["id"]
    product = records.create(
        "product",
        {"code": "SD-100000", "name": "面套", "unit_price": 10, "lead_days": 5},
        SYSTEM_ACTOR,
    )["id"]
    far = (date.today() + timedelta(days=90)).isoformat()
    samples = []
    try:
        with running(path, api.engine, lambda: api.live.flows):
            for _ in range(orders):
                order = records.create(
                    "order",
                    {
                        "customer": customer,
                        "product": product,
                        "quantity": 3,
                        "desired_date": far,
                        "order_type": "normal",
                    },
                    SYSTEM_ACTOR,
                )
                start = time.perf_counter()
                fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
                table = api.live.metadata.tables["f_order"]
                while True:
                    with api.engine.connect() as conn:
                        state = conn.execute(
                            sa.select(table.c.state).where(table.c.id == order["id"])
                        ).scalar_one()
                    if state == "stock_checked":
                        break
                    time.sleep(0.002)
                samples.append((time.perf_counter() - start) * 1000)
    finally:
        api.live.flows.connectors.close()
        api.engine.dispose()
    return statistics.median(samples), pct(samples, 0.99)


def enqueue_effects(engine: sa.Engine, effects: int, tag: str) -> None:
    """``effects`` webhook messages in one transaction; ``tag`` keeps each run's keys apart at
    the shared receiver (the job's key is the request's Idempotency-Key)."""
    with engine.begin() as conn:
        for i in range(effects):
            jobs.enqueue(
                conn,
                "effect",
                f"bench:{tag}:{i}",
                {"connector": "hook", "title": f"#{i}", "text": "t", "todo": False, "to": []},
            )


def effect_counts(engine: sa.Engine) -> tuple[int, int]:
    """(effects not finished yet, effects that failed at least once)."""
    query = sa.select(
        sa.func.count().filter(jobs.JOBS.c.status.in_(("ready", "running"))),
        sa.func.count().filter(jobs.JOBS.c.last_error.is_not(None)),
    ).where(jobs.JOBS.c.kind == "effect")
    with engine.connect() as conn:
        waiting, failed = conn.execute(query).one()
    return waiting, failed


def wait_delivered(engine: sa.Engine) -> None:
    """Until the background worker has finished every effect (a failure ends the run).
    Looks every 50 ms: at 10 ms this loop (a COUNT over sl_jobs, in the worker's process)
    took about a fifth of the process's CPU from the worker it times; 50 ms adds at most
    50 ms to a run of 2–3 s, against the worker."""
    while True:
        waiting, failed = effect_counts(engine)
        if failed:
            raise RuntimeError(f"{failed} effects failed; the figure would be meaningless")
        if not waiting:
            return
        time.sleep(0.05)


def outbox_seconds(
    api: Api, runtime: FlowRuntime, effects: int, path: WorkerPath, tag: str
) -> float:
    """Seconds from the effects' commit until the worker has delivered them all."""
    if path.concurrency is None:
        enqueue_effects(api.engine, effects, tag)
        start = time.perf_counter()
        Worker(api.engine, lambda: runtime).run_until_idle()
        return time.perf_counter() - start
    with running(path, api.engine, lambda: runtime):
        enqueue_effects(api.engine, effects, tag)  # one transaction: dispatched at its commit
        start = time.perf_counter()
        wait_delivered(api.engine)
        return time.perf_counter() - start


def outbox_rate(url: str, effects: int, path: WorkerPath, tag: str) -> float:
    api = path.open_api(url)
    runtime = api.live.flows
    runtime.connectors = Connectors(
        {"hook": ConnectorSpec("hook", "webhook", url_env="BENCH_HOOK_URL")}
    )
    try:
        seconds = outbox_seconds(api, runtime, effects, path, tag)
        waiting, failed = effect_counts(api.engine)
        if waiting or failed:
            raise RuntimeError(f"{waiting} effects not delivered, {failed} failed")
    finally:
        runtime.connectors.close()
        api.engine.dispose()
    return effects / seconds


def direct_rate(hook: FakeWebhook, effects: int) -> float:
    """The baseline: the same requests sent one by one with httpx."""
    with httpx.Client() as client:
        start = time.perf_counter()
        for i in range(effects):
            client.post(
                hook.url,
                json={"title": f"#{i}", "text": "t"},
                headers={"Idempotency-Key": f"direct:{i}"},
            )
        return effects / (time.perf_counter() - start)


@dataclass(frozen=True)
class Figures:
    path: WorkerPath
    p50: float
    p99: float
    outbox: float


def measure(args: argparse.Namespace, tmp: Path, path: WorkerPath, name: str) -> Figures:
    with fresh_database(args.db, tmp, f"{name}_latency") as url:
        p50, p99 = stock_check_latency(url, args.orders, path)
    with fresh_database(args.db, tmp, f"{name}_outbox") as url:
        outbox = outbox_rate(url, args.effects, path, name)
    return Figures(path, p50, p99, outbox)


def report(args: argparse.Namespace, figures: list[Figures], direct: float) -> None:
    kind = (args.db or "sqlite").split(":")[0]
    print(f"database: {kind}; mock warehouse and chat fakes on 127.0.0.1")
    for f in figures:
        print(f"  worker path: {f.path.label}")
        print(
            f"  submit → stock check → stock_checked ({args.orders} orders, in-process worker): "
            f"p50 {f.p50:.1f} ms, p99 {f.p99:.1f} ms "
            "(target p50 < 100 ms; the seed's platform: 8 s)"
        )
        print(
            f"  outbox deliveries ({args.effects} webhook effects, {f.path.label}): "
            f"{f.outbox:.0f}/s; the same requests sent directly with httpx: {direct:.0f}/s; "
            f"ratio {direct / f.outbox:.2f}x the direct time"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--effects", type=int, default=1000)
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite files)")
    parser.add_argument("--concurrency", type=int, default=4, help="procrastinate's")
    args = parser.parse_args()
    if args.db is not None and not args.db.startswith("postgresql"):
        parser.error("--db takes a PostgreSQL URL; SQLite is the default")
    paths = [WorkerPath()]
    if args.db is not None:
        paths.append(WorkerPath(args.concurrency))
    tmp = Path(tempfile.mkdtemp())
    with (
        AsgiServer(mock_wms_module().create_app()) as wms,
        fake_dingtalk(secret="s") as ding,
        fake_wecom() as wecom,
        fake_webhook() as hook,
    ):
        os.environ.update(
            WMS_URL=wms.base_url,
            WMS_TOKEN="t",
            DINGTALK_WEBHOOK=ding.url,
            DINGTALK_SECRET="s",
            WECOM_WEBHOOK=wecom.url,
            BENCH_HOOK_URL=hook.url,
        )
        figures = [measure(args, tmp, path, f"w{i}") for i, path in enumerate(paths)]
        direct = direct_rate(hook, args.effects)
    report(args, figures, direct)


if __name__ == "__main__":
    main()
