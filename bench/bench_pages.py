"""Page latency, one request at a time, as each person of the pack opens the pages.

A uvicorn process serves a demo database (a copy of ``--dir``, default: a new demo with
``--orders`` orders; or ``--db URL`` of a loaded database, which is only read). The client signs
in as each role's person and GETs each main page ``--n`` times in turn — home, tasks, the order
list (plain, searched, filtered by state), order pages (one in approval, the delivered one
with the longest history), a customer and a product page, the create and edit forms, the
dashboards, /runs for the operator and the public /track page — and prints p50 / p95 / max
per page over every person who may open it, with the slowest person's p50.

The baseline, measured in the same run through the same server: a hand-written Starlette
endpoint that reads the same order row with SQLAlchemy Core and renders a trivial Jinja
template, so the ratio is the engine's cost over reading the row and rendering a page.

    python bench/bench_pages.py [--dir /tmp/sldemo42] [--orders 42000] [--n 20] [--db URL]
        [--only PATH-SUBSTRING] [--per-user] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "seamline-demo"
PEOPLE = ["sun.sales", "zhou.pd", "wu.proc", "huang.fin", "liu.wh", "ma.log", "chen.cs", "qian.it"]

SERVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import sqlalchemy as sa
    import uvicorn
    from jinja2 import Template
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse
    from starlette.routing import Route
    from engine.dashboards.refresh import refresh
    from engine.runtime import Deployments, newest_live
    from engine.store.storage import create_db_engine
    from engine.web.asgi import prepare_database
    from engine.web.routes import page_routes
    from engine.web.server import create_web_app

    engine = create_db_engine({url!r})
    current = newest_live(engine)
    prepare_database(engine, current)
    refresh(engine, current.app, current.metadata)  # the worker's trend snapshots, as served
    deployments = Deployments(engine, current, poll_seconds=2.0)
    deployments.start()
    orders = current.metadata.tables["f_order"]
    events = current.metadata.tables["sl_events"]
    approvals = current.metadata.tables["sl_approvals"]
    PAGE = Template(
        "<!doctype html><html><body><h1>{{{{ row.order_no }}}}</h1><dl>"
        "{{% for k, v in row.items() %}}<dt>{{{{ k }}}}</dt><dd>{{{{ v }}}}</dd>{{% endfor %}}"
        "</dl></body></html>"
    )

    def read(rid):
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(orders).where(orders.c.id == rid)).mappings().one())

    async def baseline(request):
        row = await run_in_threadpool(read, request.path_params["rid"])
        return HTMLResponse(PAGE.render(row=row))

    def pick():
        with engine.connect() as conn:
            approving = conn.execute(  # in approval now, else the newest approved
                sa.select(approvals.c.record_id).where(approvals.c.form == "order")
                .order_by((approvals.c.status == "active").desc(), approvals.c.id.desc())
                .limit(1)
            ).scalar() or conn.execute(  # the history has no approvals: one in the state
                sa.select(orders.c.id).where(orders.c.state == "approving")
                .order_by(orders.c.id.desc()).limit(1)
            ).scalar()
            delivered = conn.execute(
                sa.select(orders.c.id).where(orders.c.state.in_(["delivered", "invoiced"]))
                .order_by(orders.c.id.desc()).limit(200)
            ).scalars().all()
            longest = conn.execute(
                sa.select(events.c.record_id, sa.func.count().label("n"))
                .where(events.c.form == "order", events.c.record_id.in_(delivered))
                .group_by(events.c.record_id).order_by(sa.text("n DESC")).limit(1)
            ).first()
            draft = conn.execute(
                sa.select(orders.c.id, orders.c.customer, orders.c.product)
                .where(orders.c.state == "draft").order_by(orders.c.id.desc()).limit(1)
            ).first() or conn.execute(
                sa.select(orders.c.id, orders.c.customer, orders.c.product)
                .order_by(orders.c.id.desc()).limit(1)
            ).first()
            total = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar()
        dashboards = {{
            name: [k.name for k in d.kpis] for name, d in current.app.dashboards.items()
        }}
        return {{
            "approving": approving, "delivered": longest[0] if longest else None,
            "delivered_events": longest[1] if longest else 0,
            "draft": draft[0], "customer": draft[1], "product": draft[2],
            "orders": total, "dashboards": dashboards, "database": engine.dialect.name,
        }}

    web = create_web_app(
        engine, deployments,
        extra_routes=[Route("/baseline/{{rid:int}}", baseline), *page_routes()],
    )
    open({info!r}, "w").write(json.dumps(pick()))
    uvicorn.run(web, host="127.0.0.1", port={port}, log_level="warning")
""")


@dataclass
class Timing:
    """The milliseconds of one page, by person."""

    path: str
    label: str
    by_user: dict[str, list[float]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    def all(self) -> list[float]:
        return [ms for values in self.by_user.values() for ms in values]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def prepare_database(args: argparse.Namespace, tmp: Path) -> str:
    """The URL to serve: ``--db`` as given, else a copy of ``--dir`` (or a new demo)."""
    if args.db:
        return str(args.db)
    target = tmp / "demo"
    if args.dir:  # deployed again below: this tree's schema, the data kept
        shutil.copytree(args.dir, target)
    else:
        print(f"building a demo with {args.orders:,} orders in {target} …", flush=True)
    command = ["demo", "--no-serve", "--dir", str(target), "--orders", str(args.orders)]
    env = {**os.environ, "PYTHONPATH": str(args.tree)}  # that tree's engine deploys
    cli = [sys.executable, "-c", "from engine.cli.main import main; main()"]
    subprocess.run([*cli, *command], check=True, stdout=subprocess.DEVNULL, env=env, cwd=args.tree)
    return f"sqlite:///{target / 'seamline-demo.db'}"


def sign_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert found, "no CSRF token on /login"
    answer = client.post(
        "/login",
        data={"csrf_token": found[1], "username": username, "password": PASSWORD, "next": "/"},
    )
    assert answer.status_code == 303, f"{username} could not sign in: {answer.status_code}"
    return client


def pages(info: dict[str, object]) -> list[tuple[str, str]]:
    """(path, label) of every page measured; the record pages with what they show."""
    out = [
        ("/", "home"),
        ("/tasks", "my tasks"),
        ("/forms/order", "order list"),
        ("/forms/order?q=SO-2026", "order list ?q= (order number)"),
        ("/forms/order?state=approving", "order list ?state=approving"),
    ]
    if info.get("approving"):
        out.append((f"/forms/order/{info['approving']}", "order page in approval"))
    if info.get("delivered"):
        out.append(
            (
                f"/forms/order/{info['delivered']}",
                f"order page, delivered ({info['delivered_events']} events)",
            )
        )
    out += [
        (f"/forms/customer/{info['customer']}", "customer page"),
        (f"/forms/product/{info['product']}", "product page"),
        ("/forms/customer", "customer list"),
        ("/forms/product", "product list"),
        ("/forms/order/new", "new order form"),
        (f"/forms/order/{info['draft']}/edit", "order edit form"),
        ("/dashboards", "dashboards"),
    ]
    dashboards = info["dashboards"]
    assert isinstance(dashboards, dict)
    for name, kpis in dashboards.items():
        out.append((f"/dashboards/{name}", f"dashboard {name}"))
        if kpis:
            out.append((f"/dashboards/{name}/kpis/{kpis[0]}", f"drill-down {name}/{kpis[0]}"))
    out.append(("/runs", "runs (operator)"))
    return out


def measure(client: httpx.Client, path: str, n: int) -> list[float] | None:
    """``n`` sequential GETs after one warm-up; None when this person may not open it."""
    first = client.get(path)
    if first.status_code in (403, 404):
        return None
    assert first.status_code == 200, f"GET {path}: {first.status_code}"
    out = []
    for _ in range(n):
        start = time.perf_counter()
        answer = client.get(path)
        out.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code}"
    return out


def run(base: str, info: dict[str, object], args: argparse.Namespace) -> None:
    wanted = [p for p in pages(info) if not args.only or args.only in p[0]]
    timings = {path: Timing(path, label) for path, label in wanted}
    anonymous = httpx.Client(base_url=base, timeout=60)
    baseline_path = f"/baseline/{info.get('approving') or info['draft']}"
    baseline = measure(anonymous, baseline_path, args.n * 2) or []
    track = [] if args.only else measure(anonymous, "/track", args.n) or []
    for username in PEOPLE:
        client = sign_in(base, username)
        for path, _label in wanted:
            found = measure(client, path, args.n)
            if found is None:
                timings[path].refused.append(username)
            else:
                timings[path].by_user[username] = found
        client.close()
    baseline += measure(anonymous, baseline_path, args.n * 2) or []
    b50 = statistics.median(baseline)
    print(
        f"\n{info['database']}, {info['orders']:,} orders, one uvicorn process, sequential GETs, "
        f"{args.n} per page and person (after one warm-up)"
    )
    header = f"{'page':52} {'p50':>7} {'p95':>7} {'max':>7} {'slowest p50':>20} {'×base':>6}"
    print(header)
    print("-" * len(header))
    print(
        f"{'baseline: Starlette + Core row + Jinja':52} {b50:7.1f} "
        f"{percentile(baseline, 0.95):7.1f} {max(baseline):7.1f} {'':>20} {1.0:6.2f}"
    )
    rows = [("/track", "tracking page (public)", {"anonymous": track})] if track else []
    rows += [(t.path, t.label, t.by_user) for t in timings.values()]
    over = []
    for _path, label, by_user in rows:
        values = [ms for v in by_user.values() for ms in v]
        if not values:
            print(f"{label[:52]:52} {'(nobody may open it)':>44}")
            continue
        worst_user, worst = max(
            ((u, statistics.median(v)) for u, v in by_user.items()), key=lambda p: p[1]
        )
        p50 = statistics.median(values)
        print(
            f"{label[:52]:52} {p50:7.1f} {percentile(values, 0.95):7.1f} {max(values):7.1f} "
            f"{worst:8.1f} {worst_user:>11} {p50 / b50:6.2f}"
        )
        if worst >= 100:
            over.append(label)
        if args.per_user:
            for user, v in by_user.items():
                print(f"    {user:48} {statistics.median(v):7.1f} {max(v):15.1f}")
    print(
        "\nevery page's slowest-person p50 < 100 ms: "
        + ("met" if not over else f"NOT met ({', '.join(over)})")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="a demo folder to copy (never written)")
    parser.add_argument("--orders", type=int, default=42_000, help="without --dir: demo size")
    parser.add_argument("--db", help="a database URL already loaded with the demo (read only)")
    parser.add_argument("--n", type=int, default=20, help="requests per page and person")
    parser.add_argument("--only", help="measure only the pages whose path contains this")
    parser.add_argument("--per-user", action="store_true", help="print each person's p50")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="serve the engine of another source tree (e.g. `git archive` of an older commit)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        url = prepare_database(args, tmp)
        port = free_port()
        info_file = tmp / "info.json"
        script = tmp / "server.py"
        script.write_text(
            SERVER.format(root=str(args.tree), url=url, port=port, info=str(info_file))
        )
        env = {**os.environ, "SEAMLINE_SECRET_KEY": "x" * 40, "PYTHONPATH": str(args.tree)}
        server = subprocess.Popen([sys.executable, str(script)], env=env)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(6000):  # trend snapshots of a database loaded without ANALYZE: minutes
                if server.poll() is not None:
                    sys.exit("the server stopped before it answered")
                if info_file.exists() and info_file.read_text():
                    try:
                        httpx.get(f"{base}/api/health", timeout=1)
                        break
                    except httpx.HTTPError:
                        pass
                time.sleep(0.1)
            else:
                sys.exit("the server did not answer within 10 minutes")
            run(base, json.loads(info_file.read_text()), args)
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
