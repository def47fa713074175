"""compose.yaml's services as local processes: a one-shot ``seamline deploy``, N × ``seamline
serve --no-worker`` on free ports and M × ``seamline worker``, all against one database.

Used by tests/test_container.py and bench/scale_out.py. Every process runs in its own session
(process group); :meth:`Cluster.stop` sends SIGTERM, waits, and reports what did not end by
itself (and kills it, so nothing is left behind either way)::

    with Cluster(app_dir, db_url, env, tmp_path) as cluster:
        cluster.deploy()
        token = cluster.token("li.sales")
        cluster.start(webs=2, workers=2)
        cluster.webs[0].url   # http://127.0.0.1:PORT
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import sqlalchemy as sa

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def seamline_command() -> list[str]:
    """The installed ``seamline`` console script next to this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("seamline")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "engine.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_database(admin_url: str, prefix: str = "sl_compose") -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``admin_url``, dropped afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(admin_url).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None  # the web processes' base URL

    def output(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@dataclass
class Stopped:
    """How the processes ended after SIGTERM: exit codes, and who had to be killed."""

    codes: dict[str, int | None] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)  # still running after STOP_TIMEOUT
    leftovers: list[str] = field(default_factory=list)  # a process group outlived its leader
    said: dict[str, str] = field(default_factory=dict)  # each one's log


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a recycled id of someone else's group
        return False
    return True


class Cluster:
    """The compose services of one database as local processes (see the module docstring)."""

    def __init__(self, app_dir: Path, db_url: str, env: Mapping[str, str], workdir: Path) -> None:
        self.app_dir = app_dir
        self.db_url = db_url
        # the database only through SEAMLINE_DB, as in compose.yaml
        self.env = {**os.environ, **env, "SEAMLINE_DB": db_url, "PYTHONUNBUFFERED": "1"}
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.webs: list[Proc] = []
        self.workers: list[Proc] = []

    # -- one-shot commands

    def run(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """``seamline --app APP ARGS`` to the end (exit code not checked)."""
        return subprocess.run(
            [*seamline_command(), "--app", str(self.app_dir), *args],
            env=self.env,
            capture_output=True,
            text=True,
            input=input_text,
            timeout=180,
            check=False,
        )

    def deploy(self) -> None:
        done = self.run("deploy")
        assert done.returncode == 0, done.stdout + done.stderr

    def token(self, username: str) -> str:
        made = self.run("token", "create", username, "--label", "compose test")
        assert made.returncode == 0, made.stdout + made.stderr
        return made.stdout.strip().splitlines()[-1]

    # -- long-running services

    def spawn(self, name: str, args: Sequence[str], url: str | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        out: IO[bytes] = log.open("wb")
        try:
            popen = subprocess.Popen(
                [*seamline_command(), "--app", str(self.app_dir), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: nothing of it may outlive stop()
            )
        finally:
            out.close()  # the child has its own copy
        proc = Proc(name, popen, log, url)
        self.procs.append(proc)
        return proc

    def start_web(self, index: int) -> Proc:
        """``serve --no-worker`` on a free port; retried on another port if that one was taken
        between choosing and binding it."""
        for _ in range(3):
            port = free_port()
            args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker"]
            proc = self.spawn(f"web{index}", args, f"http://127.0.0.1:{port}")
            if self._wait_health(proc):
                self.webs.append(proc)
                return proc
            self._stop_one(proc)
        raise AssertionError(f"web{index} did not start:\n{proc.output()}")

    def start_worker(self, index: int, *extra: str) -> Proc:
        proc = self.spawn(f"worker{index}", ["worker", *extra])
        self.workers.append(proc)
        return proc

    def start(self, webs: int, workers: int) -> None:
        for i in range(1, webs + 1):
            self.start_web(i)
        for i in range(1, workers + 1):
            self.start_worker(i)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._workers_running():
            for w in self.workers:
                assert w.popen.poll() is None, f"{w.name} exited:\n{w.output()}"
            assert time.monotonic() < deadline, "workers did not start:\n" + "\n".join(
                w.output() for w in self.workers
            )
            time.sleep(0.1)

    def _workers_running(self) -> bool:
        """Every worker started: on PostgreSQL each procrastinate worker has registered its
        heartbeat row (a worker of the table loop says so in its log)."""
        if not self.db_url.startswith("postgresql"):
            return all("running" in w.output() or "已启动" in w.output() for w in self.workers)
        engine = sa.create_engine(self.db_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                alive = conn.exec_driver_sql(
                    "SELECT count(*) FROM procrastinate_workers "
                    "WHERE last_heartbeat > now() - interval '30 seconds'"
                ).scalar_one()
        finally:
            engine.dispose()
        return int(alive) >= len(self.workers)

    def _wait_health(self, proc: Proc) -> bool:
        assert proc.url is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(proc.url + "/api/health", timeout=2).status_code == 200:
                    return True
            time.sleep(0.1)
        return False

    # -- stopping

    def _stop_one(self, proc: Proc, stopped: Stopped | None = None) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            if stopped is not None:
                stopped.killed.append(proc.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(10)
        if _group_alive(proc.popen.pid):
            if stopped is not None:
                stopped.leftovers.append(proc.name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
        if stopped is not None:
            stopped.codes[proc.name] = proc.popen.returncode
            stopped.said[proc.name] = proc.output()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self) -> Stopped:
        """SIGTERM to every process at once (as ``docker compose stop``), then wait for each."""
        stopped = Stopped()
        procs = list(self.procs)
        for proc in procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
        for proc in procs:
            self._stop_one(proc, stopped)
        self.webs.clear()
        self.workers.clear()
        return stopped

    def stop_workers(self) -> Stopped:
        stopped = Stopped()
        for proc in list(self.workers):
            self._stop_one(proc, stopped)
        self.workers.clear()
        return stopped

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in self.procs)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
