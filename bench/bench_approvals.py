"""Approvals: how fast the pack's route plan is chosen, and decisions per second over HTTP.

1. Route plan. ``plan_route`` (the pure function the run time, ``seamline test`` and this
   benchmark share) on the pack's order approval: first matching route among class_a /
   class_c / class_b (default), then the add_steps rule class_d
   (``amount >= params.large_order_amount``), over the four orders of bench_routing.py (one
   per class, one of them also class_d). Baseline: the same conditions as a hand-written Python
   function returning route, added rules and step names. For scale: GoRules zen-engine needs
   8.6 µs for a 4-rule table on this kind of machine.

2. Decisions per second. The pack on a fresh database; orders taken to 'approving' the way
   tests/test_approvals.py does (created, submitted, stock checked, promise confirmed by
   li.sales), all class B: a finance + warehouse countersign. A uvicorn process serves the API;
   an httpx client sends ``POST /api/tasks/{id}/approve`` as huang.fin (finance task) and
   liu.wh (warehouse task), at each concurrency. The warehouse decision of an order comes 16
   places after its finance decision in the queue, so that completing and non-completing
   decisions are mixed evenly and the two decisions of one order are not in flight together.
   Per decision the engine: authenticates the token, locks the task and the approval, checks the
   assignee and self-approval, updates the task, appends a hash-chained event, counts the
   step's approved tasks; on the second one it finishes the approval (event, outcome hash),
   fires the 'approve' transition (record update, history, the pack's automations on
   'approved') and enqueues the PDF-record job. No worker runs: jobs are only enqueued.

   Baseline, same server process, same database, same event chain: a hand-written Starlette
   endpoint (``/baseline/tasks/{id}/approve``) over SQLAlchemy Core and its own ``bench_tasks``
   table (one row per order and role), one transaction per decision: look up the bearer token
   (engine.accounts.auth.user_for_token, one SELECT), lock the task row, check the role and
   that it is
   open, lock the order row (so two countersigns cannot both miss the completion), update the
   task, append one hash-chained event, count the step's approved tasks, and when both are in
   set the order's state to 'approved'. No history, no plan, no jobs. Its orders are plain
   f_order rows put straight into 'approving' (bench_records.fill).

   Reported per database and concurrency: decisions/s, p50/p99 latency (median of the rounds),
   approval instances completed/s (= decisions/s / 2) against SpiffWorkflow's 273 persisted
   approval instances/s, and the ratio to the baseline. Afterwards it checks that every order
   ended 'approved', no task is left open and the event chain verifies.

    python bench/bench_approvals.py [--db URL] [--n 300] [--rounds 3] [--concurrency 1 8]
    python bench/bench_approvals.py --routing-only
    python bench/bench_approvals.py --in-process [--db URL] [--n 300] [--rounds 3]

3. ``--in-process``: approval instances per second in one process, the way SpiffWorkflow's
   figure is taken — per order the transition that starts the approval, then both countersign
   decisions through ``ApprovalRuntime.decide``, sequentially; against hand-written Core doing
   the start and the two decisions of 2. in the same database, and SpiffWorkflow itself running
   the same countersign, persisted in the same database (bench/spiff_peer.py; the ``bench``
   extra). The three alternate round by round. Without SpiffWorkflow installed the ratio is
   taken against the issue's 273/s.

Default database: a fresh SQLite file in a temporary folder. With --db, the database must be
empty (the benchmark creates its tables and leaves them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from apihelp import Api, start_api
from bench_api_server import FAR, free_port
from bench_records import fill
from bench_routing import ORDERS, PACK
from spiff_peer import INSTANCES as spiff_instances_table
from spiff_peer import available as spiff_available
from spiff_peer import spiff_runner

from engine.accounts.auth import User, create_token, get_user, user_for_token
from engine.compile import compile_app
from engine.expressions import EvalEnv
from engine.flows.approvals.routing import RoutePlan, approval_context, plan_route
from engine.flows.approvals.service import APPROVALS, TASKS
from engine.flows.confirm import confirm_gate
from engine.flows.machine import fire_transition
from engine.forms.records import SYSTEM_ACTOR
from engine.model.spec import ApprovalSpec
from engine.outbox.jobs import JOBS
from engine.runtime import Deployments
from engine.store.events import EventIn, append_events, verify_chain
from engine.store.storage import create_db_engine
from engine.store.system_tables import system_metadata
from engine.web.server import create_web_app

ZEN_US = 8.6  # GoRules zen-engine, 4-rule decision table
SPIFF_PER_S = 273  # the SpiffWorkflow figure, when SpiffWorkflow is not installed here
FINANCE, WAREHOUSE, SUBMITTER = "huang.fin", "liu.wh", "li.sales"
LAG = 16  # queue places between an order's finance and warehouse decisions
WARMUP = 10  # orders per path decided before the measured rounds
ENGINE_PATH = "/api/tasks/{}/approve"
BASELINE_PATH = "/baseline/tasks/{}/approve"

Plan = tuple[str, tuple[str, ...], tuple[str, ...]]
Item = tuple[int, str]  # (task id, deciding user)

SYSTEM = system_metadata()  # built once: a fresh MetaData per call would defeat the SQL cache
BASELINE = sa.MetaData()
BENCH_TASKS = sa.Table(
    "bench_tasks",
    BASELINE,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("role", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("decided_by", sa.String(80)),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Index("ix_bench_tasks_step", "order_id", "step", "status"),
)


# ---------------------------------------------------------------------------- route plan


def hand_written_plan(order: dict[str, Any], params: dict[str, Any]) -> Plan:
    """The pack's matrix as a programmer would write it: route, added rules, step names."""
    if order["customer"]["tier"] == "VIP" and order["order_type"] == "rush":
        route, steps = "class_a", ("director",)
    elif order["order_type"] == "trial":
        route, steps = "class_c", ("countersign",)
    else:
        route, steps = "class_b", ("countersign",)
    amount = order.get("amount")
    if amount is not None and amount >= params["large_order_amount"]:
        return route, ("class_d",), (*steps, "gm")
    return route, (), steps


def plan_names(plan: RoutePlan) -> Plan:
    return (
        plan.route.name,
        tuple(r.name for r in plan.added),
        tuple(s.name for s in plan.steps),
    )


def per_evaluation(batch: Callable[[], object], size: int, number: int = 5000) -> float:
    """µs per evaluation: median of 7 repeats of ``number`` calls of ``batch`` (``size`` each)."""
    runs = timeit.repeat(batch, number=number, repeat=7)
    return statistics.median(runs) / number / size * 1e6


def order_approval() -> ApprovalSpec:
    result = compile_app(PACK)
    assert result.app is not None, "the pack does not compile"
    return result.app.approvals["order"]


def bench_routing_plan() -> None:
    approval = order_approval()
    env = EvalEnv()
    params = dict(approval.params)
    contexts = [approval_context(approval, order, SUBMITTER) for order in ORDERS]
    for order, context in zip(ORDERS, contexts, strict=True):
        assert plan_names(plan_route(approval, context, env)) == hand_written_plan(order, params)
    plans = [plan_names(plan_route(approval, c, env)) for c in contexts]
    assert {p[0] for p in plans} == {"class_a", "class_b", "class_c"}
    assert sum(p[1] == ("class_d",) for p in plans) == 1
    size = len(ORDERS)
    base = per_evaluation(lambda: [hand_written_plan(o, params) for o in ORDERS], size)
    ours = per_evaluation(lambda: [plan_route(approval, c, env) for c in contexts], size)
    with_context = per_evaluation(
        lambda: [
            plan_route(approval, approval_context(approval, o, SUBMITTER), env) for o in ORDERS
        ],
        size,
    )
    print("route plan of the pack's order approval: 3 routes + add_steps class_d")
    print(f"  (median of 7 repeats, µs per order, {size} orders covering every class)")
    print(f"  hand-written Python function            {base:7.3f} µs   1.0x")
    print(
        f"  plan_route (compiled conditions)        {ours:7.3f} µs   {ours / base:.1f}x "
        f"hand-written, {ZEN_US / ours:.1f}x faster than zen-engine's {ZEN_US} µs"
    )
    print(
        f"  approval_context + plan_route           {with_context:7.3f} µs   "
        f"{with_context / base:.1f}x hand-written"
    )


# ---------------------------------------------------------------------------- setup


def master_data(api: Api) -> tuple[int, int]:
    """One tier-B customer and one product at 80: every order is class B (4,000 yuan)."""
    records = api.live.records
    customer = records.create(
        "customer", {"code": "C00001", "name": "客户", "tier": "B"}, SYSTEM_ACTOR
    )
    product = records.create(
        "product",
        {"code": "SD-100001", "name": "座椅面套", "unit_price": 80, "lead_days": 5},
        SYSTEM_ACTOR,
    )
    return int(customer["id"]), int(product["id"])


def approving_order(api: Api, customer: int, product: int, sales: User) -> None:
    """An order taken to 'approving' as tests/test_approvals.py's ``_order`` does."""
    order_id = at_the_gate(api, customer, product)
    moved = fire_transition(api.live.records, "order", order_id, "confirm_promise", sales)
    assert moved["state"] == "approving", moved["state"]


def engine_orders(api: Api, customer: int, product: int, count: int) -> list[tuple[int, int]]:
    """``count`` orders in 'approving'; (finance task, warehouse task) of each, in order."""
    with api.engine.connect() as conn:
        sales = get_user(conn, SUBMITTER)
    assert sales is not None
    for _ in range(count):
        approving_order(api, customer, product, sales)
    with api.engine.begin() as conn:  # the stock check against the warehouse is not measured
        conn.execute(JOBS.delete().where(JOBS.c.kind == "flow"))
        rows = conn.execute(
            sa.select(TASKS.c.id, TASKS.c.slot)
            .join(APPROVALS, APPROVALS.c.id == TASKS.c.approval_id)
            .where(TASKS.c.status == "open")
            .order_by(APPROVALS.c.record_id, TASKS.c.slot)
        ).all()
    assert len(rows) == 2 * count and [r.slot for r in rows[:2]] == [0, 1]
    return [(rows[i].id, rows[i + 1].id) for i in range(0, len(rows), 2)]


def baseline_orders(api: Api, customer: int, product: int, count: int) -> list[tuple[int, int]]:
    """``count`` plain f_order rows in 'approving', each with a finance and a warehouse task."""
    orders = api.live.metadata.tables["f_order"]
    fill(api.engine, orders, count, customer, product)
    BASELINE.create_all(api.engine)
    with api.engine.begin() as conn:
        filled = orders.c.order_no.like("FILL-%")
        conn.execute(orders.update().where(filled).values(state="approving"))
        ids = conn.execute(sa.select(orders.c.id).where(filled).order_by(orders.c.id)).scalars()
        conn.execute(
            BENCH_TASKS.insert(),
            [
                {"order_id": oid, "step": 0, "role": role, "status": "open"}
                for oid in ids
                for role in ("finance", "warehouse")
            ],
        )
        rows = conn.execute(
            sa.select(BENCH_TASKS.c.id).order_by(BENCH_TASKS.c.order_id, BENCH_TASKS.c.role)
        ).scalars()
        tasks = list(rows)
    return [(tasks[i], tasks[i + 1]) for i in range(0, len(tasks), 2)]


def tokens(api: Api) -> dict[str, str]:
    with api.engine.begin() as conn:
        return {user: create_token(conn, user) for user in (FINANCE, WAREHOUSE)}


@dataclass
class Setup:
    engine_pairs: list[tuple[int, int]]
    baseline_pairs: list[tuple[int, int]]
    tokens: dict[str, str]
    seconds_per_order: float


def set_up(url: str, count: int) -> Setup:
    api = start_api(url)
    try:
        customer, product = master_data(api)
        start = time.perf_counter()
        ours = engine_orders(api, customer, product, count)
        per_order = (time.perf_counter() - start) / count
        base = baseline_orders(api, customer, product, count)
        return Setup(ours, base, tokens(api), per_order)
    finally:
        api.live.flows.connectors.close()
        api.engine.dispose()


# ---------------------------------------------------------------------------- server


def refused(status: int, why: str) -> JSONResponse:
    return JSONResponse({"error": why}, status_code=status)


def hand_written_decision(
    engine: sa.Engine, orders: sa.Table, token: str, task_id: int
) -> JSONResponse:
    """The baseline's whole decision: one transaction, see the module docstring."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        user = user_for_token(conn, token)
        if user is None:
            return refused(401, "unauthenticated")
        task = conn.execute(
            sa.select(BENCH_TASKS).where(BENCH_TASKS.c.id == task_id).with_for_update()
        ).first()
        if task is None:
            return refused(404, "no such task")
        if task.role not in user.roles:
            return refused(403, "not yours")
        if task.status != "open":
            return refused(409, "already decided")
        conn.execute(
            sa.select(orders.c.id).where(orders.c.id == task.order_id).with_for_update()
        ).one()
        conn.execute(
            BENCH_TASKS.update()
            .where(BENCH_TASKS.c.id == task_id)
            .values(status="approved", decided_by=user.username, decided_at=now)
        )
        payload = {"task_id": task_id, "step": task.step, "decision": "approved"}
        append_events(
            conn, SYSTEM, [EventIn(user.username, "order", task.order_id, "decided", payload)], now
        )
        approved = conn.execute(
            sa.select(sa.func.count())
            .select_from(BENCH_TASKS)
            .where(
                BENCH_TASKS.c.order_id == task.order_id,
                BENCH_TASKS.c.step == task.step,
                BENCH_TASKS.c.status == "approved",
            )
        ).scalar_one()
        outcome = "approved" if approved == 2 else "active"
        if outcome == "approved":
            conn.execute(
                orders.update()
                .where(orders.c.id == task.order_id)
                .values(state="approved", version=orders.c.version + 1, updated_at=now)
            )
    return JSONResponse({"task_id": task_id, "decision": "approved", "approval_status": outcome})


def baseline_endpoint(
    engine: sa.Engine, orders: sa.Table
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        task_id = int(request.path_params["task_id"])
        await request.body()
        return await run_in_threadpool(hand_written_decision, engine, orders, token, task_id)

    return endpoint


def serve(url: str, port: int) -> None:
    """The server process: the pack's API plus the baseline endpoint, one uvicorn worker."""
    import uvicorn

    api = start_api(url)
    baseline = baseline_endpoint(api.engine, api.live.metadata.tables["f_order"])
    web = create_web_app(
        api.engine,
        Deployments(api.engine, api.live),
        extra_routes=[Route(BASELINE_PATH.format("{task_id}"), baseline, methods=["POST"])],
    )
    try:
        uvicorn.run(web, host="127.0.0.1", port=port, log_level="warning")
    finally:
        api.live.flows.connectors.close()
        api.engine.dispose()


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SEAMLINE_SECRET_KEY": "x" * 40}
    command = [sys.executable, __file__, "--serve", "--db", url, "--port", str(port)]
    server = subprocess.Popen(command, env=env)
    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError("the server did not come up in 60 s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=30)


# ---------------------------------------------------------------------------- client


@dataclass(frozen=True)
class Round:
    per_s: float
    p50_ms: float
    p99_ms: float


def decision_queue(pairs: Sequence[tuple[int, int]], lag: int = LAG) -> list[Item]:
    """Finance decision of order i, then warehouse decision of order i - lag, and so on."""
    queue: list[Item] = []
    for i in range(len(pairs) + lag):
        if i < len(pairs):
            queue.append((pairs[i][0], FINANCE))
        if i >= lag:
            queue.append((pairs[i - lag][1], WAREHOUSE))
    return queue


async def drive(
    base: str, path: str, queue: list[Item], tokens: dict[str, str], concurrency: int
) -> Round:
    """Send every decision of ``queue``, ``concurrency`` at a time; ``path`` has ``{}``."""
    latencies: list[float] = []
    items = iter(queue)
    headers = {user: {"Authorization": f"Bearer {token}"} for user, token in tokens.items()}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def worker() -> None:
            for task_id, user in items:
                start = time.perf_counter()
                r = await client.post(path.format(task_id), json={}, headers=headers[user])
                latencies.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.text

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    p99 = statistics.quantiles(latencies, n=100)[98]
    return Round(len(queue) / elapsed, statistics.median(latencies), p99)


def run_rounds(
    base: str, setup: Setup, n: int, rounds: int, concurrencies: Sequence[int]
) -> dict[int, dict[str, list[Round]]]:
    """Warm up both paths, then for each concurrency alternate engine and baseline rounds,
    each on ``n`` orders not decided before."""
    runs: dict[int, dict[str, list[Round]]] = {}
    paths = {
        "engine": (ENGINE_PATH, setup.engine_pairs),
        "baseline": (BASELINE_PATH, setup.baseline_pairs),
    }
    for path, pairs in paths.values():
        asyncio.run(drive(base, path, decision_queue(pairs[:WARMUP]), setup.tokens, 8))
    offset = WARMUP
    for concurrency in concurrencies:
        runs[concurrency] = {"engine": [], "baseline": []}
        for _ in range(rounds):
            for name, (path, pairs) in paths.items():
                queue = decision_queue(pairs[offset : offset + n])
                runs[concurrency][name].append(
                    asyncio.run(drive(base, path, queue, setup.tokens, concurrency))
                )
            offset += n
    return runs


def median_round(rounds: list[Round]) -> Round:
    return Round(
        statistics.median(r.per_s for r in rounds),
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
    )


def report(dialect: str, n: int, rounds: int, runs: dict[int, dict[str, list[Round]]]) -> None:
    print(
        f"database {dialect}, one uvicorn process, {n} class-B orders ({2 * n} decisions) "
        f"per round, median of {rounds} rounds"
    )
    for concurrency, by_path in runs.items():
        base, ours = median_round(by_path["baseline"]), median_round(by_path["engine"])
        print(f"  concurrency {concurrency}")
        for label, r in (
            ("hand-written Starlette + Core (task, event, count, state)", base),
            ("Seamline POST /api/tasks/{id}/approve (all checks, history) ", ours),
        ):
            print(
                f"    {label}  {r.per_s:7.0f} decisions/s  p50 {r.p50_ms:6.1f} ms  "
                f"p99 {r.p99_ms:6.1f} ms  {r.per_s / 2:6.0f} approvals/s "
                f"({r.per_s / 2 / SPIFF_PER_S:.2f}x SpiffWorkflow's {SPIFF_PER_S}/s)"
            )
        print(f"    Seamline takes {base.per_s / ours.per_s:.2f}x the baseline's time per decision")


def check_outcome(url: str, orders: int) -> None:
    """Every order of both paths approved, no task open, the event chain intact."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            approved = conn.execute(
                sa.text("SELECT count(*) FROM f_order WHERE state = 'approved'")
            ).scalar_one()
            open_tasks = conn.execute(
                sa.select(sa.func.count()).select_from(TASKS).where(TASKS.c.status == "open")
            ).scalar_one()
            open_tasks += conn.execute(
                sa.select(sa.func.count())
                .select_from(BENCH_TASKS)
                .where(BENCH_TASKS.c.status == "open")
            ).scalar_one()
            chain = verify_chain(conn, SYSTEM)
    finally:
        engine.dispose()
    assert approved == 2 * orders and open_tasks == 0, (approved, open_tasks)
    assert chain.ok, chain
    print(f"  checked: {2 * orders} orders approved, no task open, {chain.checked} events chained")


def bench_decisions(url: str, n: int, rounds: int, concurrencies: Sequence[int]) -> None:
    count = WARMUP + n * rounds * len(concurrencies)
    setup = set_up(url, count)
    print(
        f"set-up: {count} orders per path; taking one to 'approving' through the engine took "
        f"{setup.seconds_per_order * 1000:.1f} ms"
    )
    port = free_port()
    server = start_server(url, port)
    try:
        runs = run_rounds(f"http://127.0.0.1:{port}", setup, n, rounds, concurrencies)
    finally:
        stop_server(server)
    report(sa.make_url(url).get_backend_name(), n, rounds, runs)
    check_outcome(url, count)


# ---------------------------------------------------------------------------- in-process


def at_the_gate(api: Api, customer: int, product: int) -> int:
    """An order stock-checked with the promise date confirmed by both sides: one transition
    (``confirm_promise``) from 'approving', where its class-B approval starts."""
    records = api.live.records
    values = {
        "customer": customer,
        "product": product,
        "quantity": 50,
        "order_type": "normal",
        "desired_date": FAR,
        "promised_date": FAR,
        "atp_date": FAR,
    }
    order = records.create("order", values, SYSTEM_ACTOR)
    fire_transition(records, "order", order["id"], "submit", SYSTEM_ACTOR)
    fire_transition(records, "order", order["id"], "stock_ok", SYSTEM_ACTOR)
    for _side in ("sales", "production_director"):
        confirm_gate(records, "order", order["id"], "confirm_promise", SYSTEM_ACTOR)
    return int(order["id"])


def hand_written_instance(engine: sa.Engine, orders: sa.Table, order_id: int) -> list[int]:
    """The baseline's whole approval instance: start (the order to 'approving', two open
    tasks, one chained event), then the two decisions of :func:`hand_written_decision`."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(sa.select(orders.c.id).where(orders.c.id == order_id).with_for_update()).one()
        conn.execute(
            orders.update()
            .where(orders.c.id == order_id)
            .values(state="approving", version=orders.c.version + 1, updated_at=now)
        )
        tasks = []
        for role in ("finance", "warehouse"):
            row = BENCH_TASKS.insert().values(order_id=order_id, step=0, role=role, status="open")
            inserted = conn.execute(row).inserted_primary_key
            assert inserted is not None
            tasks.append(int(inserted[0]))
        append_events(conn, SYSTEM, [EventIn("bench", "order", order_id, "started", {})], now)
    return tasks


def bench_in_process(url: str, n: int, rounds: int) -> None:
    """Approval instances per second in one process, as SpiffWorkflow's figure is: per order,
    the transition that starts the class-B approval (route planned, two tasks persisted), then
    the finance and the warehouse decision through ``ApprovalRuntime.decide`` (the outcome
    transition, history, the PDF job enqueued), one after another on one thread. The baseline
    does the same with hand-written Core in the same database (start, then two decisions)."""
    api = start_api(url)
    try:
        customer, product = master_data(api)
        with api.engine.connect() as conn:
            sales = get_user(conn, SUBMITTER)
            people = {u: get_user(conn, u) for u in (FINANCE, WAREHOUSE)}
        assert sales is not None and all(people.values())
        count = n * rounds + WARMUP
        ours = [at_the_gate(api, customer, product) for _ in range(count)]
        orders = api.live.metadata.tables["f_order"]
        fill(api.engine, orders, count, customer, product)
        BASELINE.create_all(api.engine)
        with api.engine.connect() as conn:
            theirs = list(
                conn.execute(
                    sa.select(orders.c.id)
                    .where(orders.c.order_no.like("FILL-%"))
                    .order_by(orders.c.id)
                ).scalars()
            )
        tokens_ = tokens(api)
        decide = api.live.flows.approvals.decide

        def engine_instance(order_id: int) -> None:
            fire_transition(api.live.records, "order", order_id, "confirm_promise", sales)
            with api.engine.connect() as conn:
                rows = conn.execute(
                    sa.select(TASKS.c.id, TASKS.c.slot)
                    .join(APPROVALS, APPROVALS.c.id == TASKS.c.approval_id)
                    .where(APPROVALS.c.record_id == order_id, TASKS.c.status == "open")
                    .order_by(TASKS.c.slot)
                ).all()
            for row, user in zip(rows, (FINANCE, WAREHOUSE), strict=True):
                decide(row.id, people[user], "approve", None)

        def baseline_instance(order_id: int) -> None:
            tasks = hand_written_instance(api.engine, orders, order_id)
            for task, user in zip(tasks, (FINANCE, WAREHOUSE), strict=True):
                hand_written_decision(api.engine, orders, tokens_[user], task)

        runners: list[tuple[str, Callable[[int], None], list[int]]] = [
            ("baseline", baseline_instance, theirs),
            ("engine", engine_instance, ours),
        ]
        if spiff_available():
            spiff = spiff_runner(api.engine)
            deciders = {"finance": FINANCE, "warehouse": WAREHOUSE}
            # the peer keeps no orders: its instances carry the numbers -1, -2, …
            numbers = [-i for i in range(1, count + 1)]
            runners.append(("spiff", lambda i: spiff(i, deciders), numbers))
        for i in range(WARMUP):
            for _, run, ids in runners:
                run(ids[i])
        rates: dict[str, list[float]] = {name: [] for name, _, _ in runners}
        for r in range(rounds):
            part = slice(WARMUP + r * n, WARMUP + (r + 1) * n)
            for name, run, all_ids in runners:
                ids = all_ids[part]
                start = time.perf_counter()
                for order_id in ids:
                    run(order_id)
                rates[name].append(len(ids) / (time.perf_counter() - start))
        with api.engine.connect() as conn:
            done = conn.execute(
                sa.select(sa.func.count()).select_from(orders).where(orders.c.state == "approved")
            ).scalar_one()
        assert done == 2 * count, done
        if "spiff" in rates:
            with api.engine.connect() as conn:
                finished = conn.execute(
                    sa.select(sa.func.count()).where(spiff_instances_table.c.completed)
                ).scalar_one()
            assert finished == count, finished
    finally:
        api.live.flows.connectors.close()
        api.engine.dispose()
    ours_rate = statistics.median(rates["engine"])
    base_rate = statistics.median(rates["baseline"])
    if rates.get("spiff"):
        spiff_rate, spiff_said = statistics.median(rates["spiff"]), "measured in this run"
    else:
        spiff_rate = SPIFF_PER_S
        spiff_said = "the issue's figure; pip install -e '.[bench]' to measure it"
    print(
        f"\nin-process approval instances ({sa.make_url(url).get_backend_name()}, one thread, "
        f"{n} per round, median of {rounds}): start + 2 countersign decisions, persisted"
    )
    print(f"  hand-written Core        {base_rate:7.0f} instances/s")
    print(f"  SpiffWorkflow            {spiff_rate:7.0f} instances/s   ({spiff_said})")
    print(
        f"  Seamline                 {ours_rate:7.0f} instances/s   {base_rate / ours_rate:.2f}x "
        f"the baseline's time; {ours_rate / spiff_rate:.2f}x SpiffWorkflow's (goal 2x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--n", type=int, default=300, help="orders per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--routing-only", action="store_true")
    parser.add_argument(
        "--in-process", action="store_true", help="only the in-process approval instances"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.db, args.port)
        return
    bench_routing_plan()
    if args.routing_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        if args.in_process:
            bench_in_process(url, args.n, args.rounds)
        else:
            bench_decisions(url, args.n, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
