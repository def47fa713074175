"""Shared fixtures: build an app folder from YAML strings and compile it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from engine.compile import CompileResult, compile_app

MINIMAL_APP = """\
name: t
title: Test app
locale: en
calendar: cn
roles:
  clerk: {label: Clerk}
  boss: {label: Boss}
"""

MINIMAL_FORM = """\
title: Item
fields:
  name: {type: text, label: Name, required: true}
  qty: {type: integer, label: Qty, min: 0}
"""


@pytest.fixture(autouse=True)
def _calendar_notice_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate warns when the working-day calendar ends within 6 months of today; apps here
    use `calendar: cn` on any day, so the check reads a fixed day (tests/
    test_calendar_coverage.py turns it back to engine.model.clock)."""
    monkeypatch.setattr("engine.compile.app.calendar_today", lambda tz: date(2026, 6, 1))


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., CompileResult]:
    """``make_app({"forms/x.yaml": "..."})`` writes a workspace and compiles it.

    app.yaml defaults to a minimal valid app; pass ``"app.yaml": ...`` to replace it.
    """

    def build(files: dict[str, str], *, with_app: bool = True) -> CompileResult:
        root = tmp_path / "app"
        root.mkdir(exist_ok=True)
        all_files = {"app.yaml": MINIMAL_APP} if with_app else {}
        all_files.update(files)
        for rel, text in all_files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text), encoding="utf-8")
        return compile_app(root)

    return build


def codes(result: CompileResult) -> list[tuple[str, int, int, str]]:
    """(file name, line, col, code) of every diagnostic, sorted."""
    return [(Path(d.path).name, d.line, d.col, d.code) for d in result.diagnostics.sorted()]


# ---------------------------------------------------------------------------- databases
import os  # noqa: E402
import uuid  # noqa: E402

PG_URL = os.environ.get("SEAMLINE_TEST_PG_URL")
DB_KINDS = ["sqlite", "postgresql"]
# "gw0", "gw1", … under pytest-xdist (-n), "main" in a serial run
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """A URL to a fresh, empty database: a SQLite file in the test's own tmp_path, and (when
    SEAMLINE_TEST_PG_URL is set) a new PostgreSQL database created for this test and dropped
    after it. Every test has its own database, so pytest-xdist workers never share tables; the
    name carries the worker (``sl_test_gw1_…``) to tell whose a leftover is."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not PG_URL:
        pytest.skip("SEAMLINE_TEST_PG_URL is not set")
    import sqlalchemy as sa

    name = f"sl_test_{WORKER}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = sa.engine.make_url(PG_URL)
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


# ---------------------------------------------------------------------------- parallel runs


def pytest_sessionstart(session: pytest.Session) -> None:
    """test_api_fuzz.py opens its SQLite database when imported, and every xdist worker imports
    it: keep those files in this run's pytest temp folder (per worker, cleaned by pytest's
    rotation), not in /tmp, unless SEAMLINE_FUZZ_DIR says where."""
    if "SEAMLINE_FUZZ_DIR" not in os.environ:
        base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
        os.environ["SEAMLINE_FUZZ_DIR"] = str(base)


# ---------------------------------------------------------------------------- slow tests

# Tests that took over ~10 s each on the 2-core machine (``pytest --durations=60``, serial and
# -n 2): marked ``slow`` so ``pytest -m "not slow"`` is a quick run; CI runs everything. Keyed by
# file::function (every parameter, e.g. both databases) or by a full id with its parameters.
SLOW = frozenset(
    {
        "test_browser.py::test_approve_from_the_inbox_in_a_real_browser",
        "test_browser.py::test_dashboard_red_light_to_its_orders_in_a_real_browser",
        "test_browser.py::test_order_in_a_real_browser",
        "test_demo.py::test_an_app_without_a_history_generator_gets_its_csv_files",
        "test_demo.py::test_demo_keeps_everything_in_its_folder_and_loads_once",
        "test_demo.py::test_reset_starts_over",
        "test_demo.py::test_scenario_drives_a_day_of_orders",
        "test_events.py::test_parallel_autonumbers_on_several_processes",
        "test_expressions_hostile.py::test_compiled_closures_agree_with_simpleeval",
        "test_no_traceback.py::test_mutated_pack_never_raises",
        "test_no_traceback.py::test_random_text_never_raises",
        "test_reservations.py::test_100_concurrent_orders_flaky_warehouse_killed_worker",
        "test_story_browser.py::test_the_seed_story_in_a_real_browser",
        "test_track.py::test_enumerating_a_thousand_numbers_is_limited_and_learns_nothing",
        "test_workers.py::test_sigkill_mid_flight_then_restart_delivers_everything_once",
        "test_wheel.py::test_installed_wheel_runs_the_demo_from_an_empty_folder",
        "test_wheel.py::test_sdist_holds_every_tracked_file_and_its_tests_run",
        "test_workers.py::test_two_workers_share_jobs_without_running_one_twice",
        "test_container.py::test_compose_services_as_processes",
        "test_container.py::test_the_image_builds_and_holds_what_it_promises",
        "test_backup.py::test_sqlite_backup_restore_verify",
        "test_backup.py::test_postgresql_dump_restore_verify",
        "test_role_stories.py::test_sales_searches_orders_exports_and_promises_a_date",
        "test_role_stories.py::test_procurement_sees_the_shortage_and_opens_the_order",
        "test_role_stories.py::test_director_confirms_the_gate_approves_and_reads_the_dashboard",
        "test_role_stories.py::test_finance_invoices_only_with_a_log_and_warehouse_sees_its_pages",
        "test_role_stories.py::test_logistics_ships_with_a_courier_number_and_confirms_delivery",
        "test_role_stories.py::test_customer_tracks_orders_on_a_phone",
    }
)


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = []
    for item in items:
        nodeid = item.nodeid.removeprefix("tests/")
        if nodeid in SLOW or nodeid.split("[", 1)[0] in SLOW:
            item.add_marker(pytest.mark.slow)
            slow.append(item)
    if WORKER != "main" and slow:
        # under xdist the slow tests go first (in their usual order): the workers share them
        # out at the start instead of one worker finishing a 30-90 s test while the other idles
        first = set(slow)
        items[:] = slow + [item for item in items if item not in first]


@pytest.fixture
def engine(db_url: str):
    """An engine on ``db_url`` (empty: the test deploys what it needs), disposed after."""
    from engine.store.storage import create_db_engine

    eng = create_db_engine(db_url)
    yield eng
    eng.dispose()
