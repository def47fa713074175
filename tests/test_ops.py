"""Operating a server (issue 14): JSON and text logs, /api/ready, /metrics and who may read it,
``seamline serve --workers N --no-worker`` and the ASGI factory — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from apihelp import PACK, Api, start_api
from click.testing import CliRunner
from starlette.testclient import TestClient

from engine.cli.main import main
from engine.model import clock
from engine.model.logs import JsonFormatter, TextFormatter, configure_logging, logger
from engine.outbox import jobs
from engine.runtime import Deployments
from engine.store.storage import create_db_engine
from engine.web.server import create_web_app

ROOT = Path(__file__).resolve().parents[1]
SEAMLINE = [sys.executable, "-m", "engine.cli"]
RUNNING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@pytest.fixture(autouse=True)
def _logging_as_before() -> Iterator[None]:
    """The CLI configures logging in this process: put the root logger and the followed
    loggers back as they were."""
    root = logging.getLogger()
    names = ("seamline", "uvicorn", "uvicorn.error", "uvicorn.access", "procrastinate", "httpx")
    saved = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names})
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    made = start_api(db_url)
    yield made
    made.live.flows.connectors.close()
    made.engine.dispose()


def _client(api: Api, ip: str = "127.0.0.1", engine: sa.Engine | None = None) -> TestClient:
    db = engine if engine is not None else api.engine
    web = create_web_app(db, Deployments(db, api.live))
    return TestClient(web, raise_server_exceptions=False, client=(ip, 50000))


# ---------------------------------------------------------------------------- logging


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_deploy_logs_one_json_object_per_line(db_url: str) -> None:
    code, out, err = _cli("--app", str(PACK), "--db", db_url, "--log-format", "json", "deploy")
    assert code == 0, err
    assert "✓" in out  # what people read stays on standard output
    lines = _json_lines(err)
    deployed = [r for r in lines if r["logger"] == "seamline.deploy.apply"]
    assert len(deployed) == 1, err
    record = deployed[0]
    assert record["level"] == "INFO" and str(record["message"]).startswith("deployed ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(record["time"]))
    assert len(str(record["hash"])) == 64 and int(str(record["steps"])) > 0
    assert record["app"] and record["version"] and record["actor"]
    # the whole of stderr is JSON lines
    assert all(line.startswith("{") for line in err.splitlines() if line.strip())
    # the database password never reaches a log line
    password = sa.engine.make_url(db_url).password
    assert not password or password not in err


def test_log_level_and_format_from_the_environment(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAMLINE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("SEAMLINE_LOG_FORMAT", "json")
    code, _out, err = _cli("--app", str(PACK), "--db", db_url, "deploy")
    assert code == 0 and _json_lines(err) == [], err  # INFO is below WARNING
    monkeypatch.setenv("SEAMLINE_LOG_LEVEL", "info")
    code, _out, err = _cli("--app", str(PACK), "--db", db_url, "--log-format", "text", "deploy")
    assert code == 0
    assert re.search(
        r"^\S+Z INFO seamline\.deploy\.apply: deploy: \S+ .* deployed already", err, re.M
    )
    code, _out, err = _cli("--log-level", "LOUD", "deploy")
    assert code == 2 and "--log-level" in err


def test_formatters_carry_extras_and_tracebacks() -> None:
    record = logging.LogRecord("seamline.x", logging.ERROR, __file__, 1, "job %s", (7,), None)
    record.job_id = 7
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["message"] == "job 7" and parsed["job_id"] == 7 and parsed["level"] == "ERROR"
    assert "ValueError: boom" in parsed["exc"] and "\n" not in JsonFormatter().format(record)
    text = TextFormatter().format(record)
    assert " ERROR seamline.x: job 7 job_id=7" in text and "ValueError: boom" in text


def test_engine_loggers_are_one_hierarchy(capsys: pytest.CaptureFixture[str]) -> None:
    assert logger("engine.outbox.worker").name == "seamline.outbox.worker"
    configure_logging("DEBUG", "json")
    configure_logging("INFO", "json")  # again: replaces its handler, never adds a second
    logging.getLogger("seamline.outbox.worker").info("hello", extra={"job_id": 3})
    logging.getLogger("seamline.outbox.worker").debug("hidden")
    logging.getLogger("httpx").info("HTTP Request: POST https://hook.example/send?key=SECRET")
    logging.getLogger("uvicorn.error").info("from uvicorn")
    lines = _json_lines(capsys.readouterr().err)
    assert [(r["logger"], r["message"]) for r in lines] == [
        ("seamline.outbox.worker", "hello"),
        ("uvicorn.error", "from uvicorn"),
    ]
    assert lines[0]["job_id"] == 3
    for path in (ROOT / "engine").rglob("*.py"):  # no logger outside the hierarchy
        if path.name != "logs.py":
            assert "logging.getLogger(" not in path.read_text(encoding="utf-8"), path


# ---------------------------------------------------------------------------- /api/ready


def test_ready_when_the_database_answers_and_jobs_keep_up(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEAMLINE_READY_MAX_LAG", raising=False)
    r = _client(api).get("/api/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True and body["checks"]["database"]["ms"] >= 0
    jobs_check = body["checks"]["jobs"]
    assert jobs_check == {"ok": True, "lag_seconds": 0.0, "due": 0, "max_lag_seconds": 300.0}


def test_not_ready_when_jobs_lag_behind(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    with api.engine.begin() as conn:
        jobs.enqueue(
            conn, "effect", "late-1", {"x": 1}, due_at=clock.now() - timedelta(seconds=900)
        )
        jobs.enqueue(conn, "effect", "later", {"x": 2}, due_at=clock.now() + timedelta(hours=1))
    monkeypatch.setenv("SEAMLINE_READY_MAX_LAG", "600")
    r = _client(api).get("/api/ready", headers={"Accept-Language": "en"})
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready" and body["checks"]["database"]["ok"] is True
    check = body["checks"]["jobs"]
    assert check["ok"] is False and check["due"] == 1 and 899 <= check["lag_seconds"] < 1000
    assert "jobs are behind" in body["reason"] and "limit 600 s" in body["reason"]
    zh = _client(api).get("/api/ready", headers={"Accept-Language": "zh-CN"}).json()
    assert "任务积压" in zh["reason"]
    monkeypatch.setenv("SEAMLINE_READY_MAX_LAG", "3600")
    r = _client(api).get("/api/ready")
    assert r.status_code == 200 and r.json()["checks"]["jobs"]["due"] == 1


def test_not_ready_not_500_when_the_database_is_down(api: Api, tmp_path: Path) -> None:
    if api.engine.dialect.name == "sqlite":
        gone = create_db_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    else:  # nothing listens on port 1
        gone = create_db_engine(api.engine.url.set(port=1).render_as_string(hide_password=False))
    client = _client(api, engine=gone)
    r = client.get("/api/ready", headers={"Accept-Language": "en"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["checks"]["database"]["ok"] is False
    assert body["reason"] == "the database does not answer"
    assert body["checks"]["jobs"]["ok"] is False
    assert client.get("/api/health").status_code == 200  # alive, just not ready
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "seamline_database_up 0.0" in metrics.text
    gone.dispose()


def test_ready_and_metrics_are_in_the_openapi_document(api: Api) -> None:
    paths = _client(api).get("/api/openapi.json").json()["paths"]
    assert set(paths["/api/ready"]["get"]["responses"]) == {"200", "503"}
    assert paths["/api/ready"]["get"]["security"] == []


# ---------------------------------------------------------------------------- /metrics


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return 0.0


def test_metrics_count_requests_by_route_template(api: Api) -> None:
    client = _client(api)
    before = client.get("/metrics").text
    for _ in range(3):
        assert client.get("/api/health").status_code == 200
    assert client.get("/api/forms/order/records/12345").status_code == 401
    assert client.get("/no/such/address/98765").status_code == 404
    with api.engine.begin() as conn:
        jobs.enqueue(conn, "effect", "due-now", {"x": 1}, due_at=clock.now() - timedelta(seconds=5))
    after = client.get("/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    health = {"method": "GET", "route": "/api/health", "status": "200"}
    total = "seamline_http_requests_total"
    assert _sample(text, total, **health) - _sample(before, total, **health) == 3
    record = {"route": "/api/forms/{form}/records/{record_id}", "status": "401"}
    assert _sample(text, total, **record) - _sample(before, total, **record) == 1
    unmatched = {"route": "unmatched", "status": "404"}
    assert _sample(text, total, **unmatched) - _sample(before, total, **unmatched) == 1
    assert "12345" not in text and "98765" not in text  # never the raw path
    duration = "seamline_http_request_duration_seconds_count"
    assert (
        _sample(text, duration, route="/api/health")
        - _sample(before, duration, route="/api/health")
        == 3
    )
    assert _sample(text, "seamline_database_up") == 1
    assert _sample(text, "seamline_jobs_due") == 1
    assert _sample(text, "seamline_jobs_lag_seconds") >= 4
    for name in ("seamline_jobs_dead", "seamline_deliveries_failed"):
        assert f"\n{name} 0.0" in text
    assert "\nseamline_deliveries_sent_total 0.0" in text


def test_metrics_count_deliveries_and_dead_letters(api: Api) -> None:
    with api.engine.begin() as conn:
        for key in ("a", "b", "c"):
            jobs.enqueue(conn, "effect", key, {"x": 1})
        jobs.enqueue(conn, "flow", "f", {"x": 1})
    taken = jobs.claim(api.engine, "test", limit=10)
    by_key = {j.key: j for j in taken}
    with api.engine.begin() as conn:
        jobs.finish(conn, by_key["a"])
    jobs.retry_later(api.engine, by_key["b"], "HTTP 400 from robot x", permanent=True)
    jobs.retry_later(api.engine, by_key["f"], "bug", permanent=True)
    text = _client(api).get("/metrics").text
    assert _sample(text, "seamline_deliveries_sent_total") == 1
    assert _sample(text, "seamline_deliveries_failed") == 1
    assert _sample(text, "seamline_jobs_dead") == 2


@pytest.mark.parametrize(
    ("ip", "headers", "status"),
    [
        ("127.0.0.1", {}, 200),
        ("10.1.2.3", {}, 200),
        ("192.168.7.7", {}, 200),
        ("8.8.8.8", {}, 403),
        ("127.0.0.1", {"X-Forwarded-For": "8.8.8.8"}, 403),  # through a proxy: not direct
        ("testclient", {}, 403),
    ],
)
def test_metrics_without_a_token_only_for_private_addresses(
    api: Api, monkeypatch: pytest.MonkeyPatch, ip: str, headers: dict[str, str], status: int
) -> None:
    monkeypatch.delenv("SEAMLINE_METRICS_TOKEN", raising=False)
    r = _client(api, ip).get("/metrics", headers=headers)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["errors"][0]["code"] == "forbidden"


def test_metrics_with_a_token_need_it_from_everywhere(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEAMLINE_METRICS_TOKEN", "s3cret-scrape-token")
    good = {"Authorization": "Bearer s3cret-scrape-token"}
    assert _client(api, "8.8.8.8").get("/metrics", headers=good).status_code == 200
    assert _client(api, "127.0.0.1").get("/metrics").status_code == 403
    bad = {"Authorization": "Bearer wrong"}
    assert _client(api, "127.0.0.1").get("/metrics", headers=bad).status_code == 403
    zh = _client(api, "8.8.8.8").get("/metrics", headers={"Accept-Language": "zh"})
    assert zh.status_code == 403 and "监控指标" in zh.text


# ---------------------------------------------------------------------------- serving


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEAMLINE_", "PROMETHEUS_", "FORWARDED_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _deploy(db_url: str) -> None:
    code, _out, err = _cli("--app", str(PACK), "--db", db_url, "deploy")
    assert code == 0, err


class _Server:
    """A server process whose stderr (JSON logs) is read until uvicorn names its port."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self._file, cwd=ROOT
        )

    def port(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = RUNNING.search(self.text())
            if found:
                return int(found[1])
            assert self.proc.poll() is None, self.text()
            time.sleep(0.1)
        pytest.fail(f"the server did not start:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._file.close()


def _wait_ready(base: str, processes: int, server: _Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        serving = [r for r in _json_lines(server.text()) if r["logger"] == "seamline.web.asgi"]
        if len(serving) >= processes:
            return
        assert server.proc.poll() is None, server.text()
        time.sleep(0.1)
    pytest.fail(f"not every process built its app:\n{server.text()}")


def test_serve_with_two_workers_and_no_worker(db_url: str, tmp_path: Path) -> None:
    _deploy(db_url)
    command = [
        *SEAMLINE,
        "--app",
        str(PACK),
        "--db",
        db_url,
        "--log-format",
        "json",
        "serve",
        "--port",
        "0",
        "--workers",
        "2",
        "--no-worker",
    ]
    server = _Server(command, _env(SEAMLINE_SECRET_KEY="k" * 40), tmp_path / "serve.log")
    try:
        base = f"http://127.0.0.1:{server.port()}"
        _wait_ready(base, 2, server)
        with httpx.Client(base_url=base, timeout=10) as client:
            statuses = []
            for _ in range(40):  # new connections, shared out between the processes
                statuses.append(httpx.get(base + "/api/health", timeout=10).status_code)
            assert statuses == [200] * 40
            assert client.get("/api/ready").json()["status"] == "ready"
            metrics = client.get("/metrics").text
        served = _sample(metrics, "seamline_http_requests_total", route="/api/health", status="200")
        assert served == 40  # every process counted, added up (multiprocess mode)
        records = _json_lines(server.text())
        serving = [r for r in records if r["logger"] == "seamline.web.asgi"]
        assert len({r["pid"] for r in serving}) == 2  # two processes built their own app
        assert all(r["worker"] is False for r in serving)  # --no-worker
        assert any(r["logger"] == "uvicorn.access" for r in records)  # uvicorn: same format
        password = sa.engine.make_url(db_url).password
        assert not password or password not in server.text()
    finally:
        server.stop()


def test_the_factory_needs_seamline_db() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "engine.web.asgi:create_app", "--port", "0"],
        env=_env(SEAMLINE_LANG="en"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert "SEAMLINE_DB is not set" in proc.stderr, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-c", "from engine.web.asgi import create_app; create_app()"],
        env=_env(SEAMLINE_LANG="zh"),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode != 0 and "未设置 SEAMLINE_DB" in proc.stderr, proc.stderr


def test_the_factory_serves_the_newest_deployment(db_url: str, tmp_path: Path) -> None:
    _deploy(db_url)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "engine.web.asgi:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    env = _env(SEAMLINE_DB=db_url, SEAMLINE_LOG_FORMAT="json", SEAMLINE_SECRET_KEY="k" * 40)
    server = _Server(command, env, tmp_path / "factory.log")
    try:
        base = f"http://127.0.0.1:{server.port()}"
        health = httpx.get(base + "/api/health", timeout=10)
        assert health.status_code == 200 and len(health.json()["content_hash"]) == 64
        assert httpx.get(base + "/api/ready", timeout=10).status_code == 200
        serving = [r for r in _json_lines(server.text()) if r.get("logger") == "seamline.web.asgi"]
        assert len(serving) == 1 and serving[0]["worker"] is False  # SEAMLINE_WORKER unset
    finally:
        server.stop()
