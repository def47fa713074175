"""Flows: submit → stock check against the mock warehouse on loopback → state change latency,
and effects delivered per second through the outbox against sending the same requests
directly with httpx (the baseline, measured in the same run against the same receiver).
The seed's platform needed 8 s for the stock check; the target is p50 < 100 ms.

    python bench/bench_flows.py [--orders 200] [--effects 1000] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from apihelp import PACK, start_api  # noqa: E402
from fakes import AsgiServer, fake_dingtalk, fake_webhook, fake_wecom  # noqa: E402

from engine.flows import jobs  # noqa: E402
from engine.flows.machine import fire_transition  # noqa: E402
from engine.flows.worker import Worker  # noqa: E402
from engine.forms.records import SYSTEM_ACTOR  # noqa: E402


def load_mock():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mock_wms", PACK / "mock_wms.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["mock_wms"] = module
    spec.loader.exec_module(module)
    return module.create_app()


def pct(samples: list[float], p: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * p))]


def stock_check_latency(url: str, orders: int) -> tuple[float, float]:
    api = start_api(url)
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00001", "name": "客户", "tier": "A"}, SYSTEM_ACTOR
    )["id"]
    product = records.create(
        "product",
        {"code": "SD-100000", "name": "面套", "unit_price": 10, "lead_days": 5},
        SYSTEM_ACTOR,
    )["id"]
    worker = Worker(api.engine, lambda: api.live.flows)
    worker.start(poll=0.005)  # the in-process worker of `seamline serve`
    far = (date.today() + timedelta(days=90)).isoformat()
    samples = []
    try:
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
        worker.stop()
        api.live.flows.connectors.close()
        api.engine.dispose()
    return statistics.median(samples), pct(samples, 0.99)


def effects_rate(url: str, effects: int, hook) -> tuple[float, float]:
    api = start_api(url)
    with api.engine.begin() as conn:
        for i in range(effects):
            jobs.enqueue(
                conn,
                "effect",
                f"bench:{i}",
                {"connector": "hook", "title": f"#{i}", "text": "t", "todo": False, "to": []},
            )
    from engine.flows.connectors import Connectors
    from engine.spec import ConnectorSpec

    runtime = api.live.flows
    runtime.connectors = Connectors(
        {"hook": ConnectorSpec("hook", "webhook", url_env="BENCH_HOOK_URL")}
    )
    start = time.perf_counter()
    Worker(api.engine, lambda: runtime).run_until_idle()
    outbox = effects / (time.perf_counter() - start)
    client = httpx.Client()
    start = time.perf_counter()
    for i in range(effects):
        client.post(
            hook.url,
            json={"title": f"#{i}", "text": "t"},
            headers={"Idempotency-Key": f"direct:{i}"},
        )
    direct = effects / (time.perf_counter() - start)
    client.close()
    runtime.connectors.close()
    api.engine.dispose()
    return outbox, direct


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--effects", type=int, default=1000)
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with (
        AsgiServer(load_mock()) as wms,
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
        url1 = args.db or f"sqlite:///{tmp / 'latency.db'}"
        p50, p99 = stock_check_latency(url1, args.orders)
        url2 = args.db or f"sqlite:///{tmp / 'outbox.db'}"
        outbox, direct = effects_rate(url2, args.effects, hook)
    kind = (args.db or "sqlite").split(":")[0]
    print(f"database: {kind}; mock warehouse and chat fakes on 127.0.0.1")
    print(
        f"  submit → stock check → stock_checked ({args.orders} orders, in-process worker): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p50 < 100 ms; the seed's platform: 8 s)"
    )
    print(
        f"  outbox deliveries ({args.effects} webhook effects, one worker): {outbox:.0f}/s; "
        f"the same requests sent directly with httpx: {direct:.0f}/s; "
        f"ratio {direct / outbox:.2f}x the direct time"
    )


if __name__ == "__main__":
    main()
