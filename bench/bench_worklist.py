"""The count of "my work" in the menu, which every page pays for, per role of the pack.

For one person of each role of the pack, on a demo database, medians of:

- ``count``: the whole count computed (``engine.flows.worklist.work_counts``: approvals, gate
  confirmations, to-dos and records waiting for one of the person's roles, capped at the
  menu's 999+) — what a page pays when something happened since the person's last page;
- ``menu``: ``engine.web.panels.open_task_count`` as ``page_kit`` runs it before each page,
  while nothing happened (the count kept by ``CountCache``: one read of the event-log head);
- the baseline, measured in the same run on the same connection pool: the approvals-only
  count the menu showed before the worklist (``_approval_count``: open approval tasks of the
  person and of those they stand in for).

    python bench/bench_worklist.py --db sqlite:////tmp/copy/seamline-demo.db [--rounds 200]
    python bench/bench_worklist.py --orders 3000          # builds a demo database first

The database is only read. Use a copy of a ``seamline demo`` database (e.g. the 42,000-order
one; run ``seamline --app examples/manufacturing_pack --db URL deploy`` on the copy first when
it was built by an older version). Without ``--db``, a demo database of ``--orders`` orders is
built in a temporary folder the way ``seamline demo --no-serve`` builds it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.accounts.auth import User, get_user  # noqa: E402
from engine.demo import build as demo  # noqa: E402
from engine.flows.worklist import _approval_count, work_counts  # noqa: E402
from engine.model import clock  # noqa: E402
from engine.runtime import LiveApp, newest_live  # noqa: E402
from engine.store.storage import create_db_engine  # noqa: E402
from engine.web.panels import MENU_CAP, open_task_count  # noqa: E402


def build_demo(folder: Path, orders: int) -> str:
    from engine.compile import compile_app
    from engine.deploy.apply import bundle_sources, deploy

    url = f"sqlite:///{folder / 'bench-worklist.db'}"
    compiled = compile_app(demo.PACK)
    assert compiled.app is not None, compiled.diagnostics.sorted()
    engine = create_db_engine(url)
    deploy(engine, compiled.app, bundle_sources(compiled.workspace), actor="bench")
    live = newest_live(engine)
    demo.give_demo_passwords(engine, live.app)
    demo.load_sample_data(engine, live, demo.PACK, orders, lambda text: print(text("en")))
    live.flows.connectors.close()
    engine.dispose()
    return url


def median_ms(run: Callable[[], object], rounds: int) -> float:
    run()  # warm: compiled-statement cache, pages of the database file
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def approvals_only(live: LiveApp, user: User) -> int:
    with live.records.reads.connect() as conn:
        return _approval_count(conn, live.app, user.username, clock.now())


def counted(live: LiveApp, user: User) -> int:
    with live.records.reads.connect() as conn:
        counts = work_counts(conn, live.app, live.metadata, user, clock.now(), MENU_CAP)
    return counts.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="a deployed demo database (only read)")
    parser.add_argument("--orders", type=int, default=3000, help="without --db: orders to build")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or build_demo(Path(tmp), args.orders)
        engine = create_db_engine(url)
        live = newest_live(engine)
        logins = demo.demo_logins(live.app, demo.PACK)
        with engine.connect() as conn:
            orders = conn.exec_driver_sql("SELECT count(*) FROM f_order").scalar_one()
        print(f"{engine.dialect.name}, {orders:,} orders, {args.rounds} rounds per figure")
        print(
            f"{'person':<12} {'role':<20} {'work':>5} {'count ms':>9} {'ratio':>6} "
            f"{'menu ms':>8} {'ratio':>6} {'approvals ms (baseline)':>24}"
        )
        counts, menus = [], []
        for login in logins:
            with engine.connect() as conn:
                user = get_user(conn, login.user)
            assert user is not None, login.user
            work = open_task_count(live, user)
            assert work == counted(live, user), "the kept count differs from the count"
            count = median_ms(lambda u=user: counted(live, u), args.rounds)
            menu = median_ms(lambda u=user: open_task_count(live, u), args.rounds)
            base = median_ms(lambda u=user: approvals_only(live, u), args.rounds)
            counts.append(count)
            menus.append(menu)
            print(
                f"{login.user:<12} {login.role:<20} {work:>5} {count:>9.2f} {count / base:>5.1f}x "
                f"{menu:>8.2f} {menu / base:>5.1f}x {base:>24.2f}"
            )
        print(
            f"slowest role: count {max(counts):.2f} ms, menu {max(menus):.2f} ms median "
            "(goal < 5 ms)"
        )
        live.flows.connectors.close()
        engine.dispose()


if __name__ == "__main__":
    main()
