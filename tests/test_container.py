"""The production container set-up (Dockerfile, compose.yaml, deploy/nginx.conf, .env.example).

Three parts:

* consistency checks that read the files and hold them against the code: every command a
  container runs is a real ``seamline`` command (``--help`` of each, and click parsing the
  exact arguments), every variable the compose file hands a Seamline container is one the code
  (or uvicorn) reads, the apt packages and the font path the PDF code looks for, the health
  check's path in the route table and public, the proxy's upstreams and trusted address;
* compose.yaml's services as local processes on PostgreSQL (``SEAMLINE_TEST_PG_URL``): one
  ``deploy``, two ``serve --no-worker``, two ``worker``; readiness of both webs, an order made
  through one web and worked by the workers (the pack's warehouse check and its WeCom message
  to the customer, on local fakes), then SIGTERM and nothing left running;
* ``docker build`` of the image, only where a Docker daemon answers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import tomllib
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from apihelp import PACK
from composehelp import Cluster, postgres_database, seamline_command
from fakes import AsgiServer, fake_dingtalk, fake_wecom
from packservices import mock_wms_module

from engine.cli.main import main as seamline_cli
from engine.flows.approvals import pdf as approval_pdf
from engine.web.routes import api_routes, page_routes
from engine.web.server import PUBLIC_ROUTES

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
NGINX = ROOT / "deploy" / "nginx.conf"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
PG_URL = os.environ.get("SEAMLINE_TEST_PG_URL")
IMAGE_BASE = "python:3.11-slim-bookworm"


# ---------------------------------------------------------------------------- reading the files


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's build stages (instructions from each FROM to the next)."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def exec_form(arguments: str) -> list[str]:
    import json

    assert arguments.startswith("["), f"use the exec form (JSON array): {arguments}"
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return parsed


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def seamline_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the Seamline image."""
    services = compose()["services"]
    return {
        name: spec
        for name, spec in services.items()
        if isinstance(spec.get("command"), list) and spec["command"][:1] == ["seamline"]
    }


def command_cases() -> list[tuple[str, list[str]]]:
    cases = [(name, spec["command"]) for name, spec in seamline_services().items()]
    cmd = [args for word, args in stages()[-1] if word == "CMD"]
    assert cmd, "the Dockerfile has no CMD"
    cases.append(("Dockerfile CMD", exec_form(cmd[-1])))
    return cases


def web_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in seamline_services().items() if "serve" in spec["command"]}


# ---------------------------------------------------------------------------- (a) consistency


def test_dockerfile_builds_the_wheel_then_installs_it_with_the_lock() -> None:
    args = {}
    for word, rest in dockerfile_instructions():
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        if word == "FROM":
            break
    parts = stages()
    assert len(parts) >= 2, "multi-stage: a builder stage and the final image"
    bases = []
    for stage in parts:
        base = stage[0][1].split()[0]
        bases.append(re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), base))
    assert set(bases) == {IMAGE_BASE}, bases
    builder, final = parts[0], parts[-1]
    assert re.search(r"\bAS\s+builder\b", builder[0][1], re.IGNORECASE)
    builder_runs = " ".join(rest for word, rest in builder if word == "RUN")
    assert "python -m build --wheel" in builder_runs
    copies = [rest for word, rest in final if word == "COPY"]
    assert any(c.startswith("--from=builder") for c in copies), "the wheel comes from the builder"
    lock_copy = [c for c in copies if "requirements.lock" in c and "--from" not in c]
    assert lock_copy and (ROOT / "requirements.lock").is_file()
    installs = [rest for word, rest in final if word == "RUN" and "pip install" in rest]
    assert len(installs) == 1
    install = installs[0]
    assert re.search(r"pip install -c \S*requirements\.lock", install), install
    extras = re.search(r"(?:\.whl|\})\[([a-z,]+)\]", install)
    assert extras, f"install the wheel with its extras: {install}"
    wanted = set(extras[1].split(","))
    assert wanted == {"postgres", "pdf"}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    optional = declared["project"].get("optional-dependencies", {})
    assert wanted <= set(optional), f"pyproject.toml declares the extras {sorted(optional)}"


def test_final_image_runs_as_a_user_and_serves_the_web_alone() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "run as a non-root user"
    exposed = [rest for word, rest in final if word == "EXPOSE"]
    assert exposed == ["8000"]
    cmd = exec_form([rest for word, rest in final if word == "CMD"][-1])
    assert cmd[0] == "seamline" and "serve" in cmd and "--no-worker" in cmd
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] == exposed[0]
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert health, "a HEALTHCHECK"
    url = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[\w/]*)", health[-1])
    assert url, health
    assert url[1] == exposed[0] and url[2] == "/api/health"


def _apt_packages() -> set[str]:
    runs = " ".join(rest for word, rest in stages()[-1] if word == "RUN")
    found = re.search(r"apt-get install (.*?)(?:&&|$)", runs)
    assert found, "the final stage installs Debian packages"
    return {w for w in found[1].split() if not w.startswith("-")}


def test_apt_packages_are_the_cjk_font_and_tzdata() -> None:
    assert {"fonts-wqy-microhei", "tzdata"} <= _apt_packages()
    runs = " ".join(rest for word, rest in stages()[-1] if word == "RUN")
    assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists" in runs


def test_the_font_package_holds_the_file_the_pdf_code_looks_for() -> None:
    first = approval_pdf._FONT_CANDIDATES[0]
    assert first.name == "wqy-microhei.ttc"
    if shutil.which("dpkg") is None:
        pytest.skip("no dpkg here to ask which package ships the font")
    owner = subprocess.run(["dpkg", "-S", str(first)], capture_output=True, text=True, check=False)
    if owner.returncode != 0:
        pytest.skip(f"fonts-wqy-microhei is not installed here: {owner.stderr.strip()}")
    assert owner.stdout.split(":", 1)[0] in _apt_packages()


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression (Go's filepath.Match plus ``**``)."""
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out (Docker's rules: the last matching
    pattern wins, ``!`` re-includes, a pattern matching a parent folder covers its files)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern(pattern.removeprefix("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_wheel_is_built_from() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    needed = [
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "MANIFEST.in",
        "requirements.lock",
        "engine/__init__.py",
        "engine/web/static/htmx.min.js",
        "engine/cli/main.py",
    ]
    # engine/assets links to folders outside engine/: their files go into the wheel too
    for link in (ROOT / "engine" / "assets").rglob("*"):
        if link.is_symlink():
            target = link.resolve().relative_to(ROOT)
            needed += [str(p.relative_to(ROOT)) for p in (ROOT / target).rglob("*.yaml")][:5]
    needed += [str(p.relative_to(ROOT)) for p in (ROOT / "templates").glob("*.html")][:5]
    for path in needed:
        assert not _ignored(path, patterns), f"{path} is left out of the build context"
    for path in (".venv/bin/python", ".git/HEAD", ".env", "tests/conftest.py", "x/seamline.db"):
        assert _ignored(path, patterns), f"{path} must not go into the build context"
    assert not _ignored(".env.example", patterns)


@pytest.mark.parametrize(("where", "command"), command_cases(), ids=lambda v: str(v))
def test_every_container_command_is_a_seamline_command(where: str, command: list[str]) -> None:
    assert command[0] == "seamline"
    args = command[1:]
    # the app folder is /app in the containers; here the shipped pack stands in for it
    args = [str(PACK) if a == "/app" else a for a in args]
    global_options = []
    while args and args[0].startswith("--"):
        global_options += args[:2]
        args = args[2:]
    words = [a for a in args if not a.startswith("-")]
    sub = []
    group: Any = seamline_cli
    for word in words:
        if hasattr(group, "commands") and word in group.commands:
            sub.append(word)
            group = group.commands[word]
        else:
            break
    assert sub, f"{where}: no seamline command in {command}"
    base = subprocess.run(
        [*seamline_command(), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    for option in global_options[::2]:
        assert option in base.stdout, f"{where}: seamline has no global option {option}"
    helped = subprocess.run(
        [*seamline_command(), *global_options, *sub, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    for option in (a for a in args if a.startswith("--")):
        assert option in helped.stdout, f"{where}: `seamline {' '.join(sub)}` has no {option}"
    # and click accepts exactly these arguments (values of the right types, nothing missing)
    with seamline_cli.make_context("seamline", [*global_options, *args]) as parent:
        leaf: Any = seamline_cli
        for word in sub:
            leaf = leaf.commands[word]
        with leaf.make_context(sub[-1], args[len(sub) :], parent=parent) as parsed:
            assert not parsed.args, f"{where}: arguments left over: {parsed.args}"


def _read_by_the_code() -> str:
    texts = [p.read_text(encoding="utf-8") for p in (ROOT / "engine").rglob("*.py")]
    return "\n".join(texts)


def _pack_variables() -> set[str]:
    text = (PACK / "app.yaml").read_text(encoding="utf-8")
    return set(re.findall(r"_env:\s*([A-Z][A-Z0-9_]*)", text))


def test_every_variable_a_container_gets_is_read_by_the_code() -> None:
    import uvicorn.config

    code = _read_by_the_code()
    # read by uvicorn: the default of --forwarded-allow-ips
    uvicorn_reads = '"FORWARDED_ALLOW_IPS"' in Path(uvicorn.config.__file__).read_text("utf-8")
    pack = _pack_variables()
    for name, spec in seamline_services().items():
        for variable in spec.get("environment", {}):
            if variable in pack or (variable == "FORWARDED_ALLOW_IPS" and uvicorn_reads):
                continue
            assert f'"{variable}"' in code, (
                f"compose.yaml gives {name} {variable}, but nothing in engine/ reads it"
            )
        # the pack's connector variables are all handed on (else its messages go nowhere)
        assert pack <= set(spec.get("environment", {})), (name, pack - set(spec["environment"]))


def test_secrets_come_from_the_environment_and_env_example_lists_them() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    example = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert used - {"SEAMLINE_IMAGE"} <= example, used - example
    assert example <= used, f".env.example names what compose.yaml does not use: {example - used}"
    for name, spec in seamline_services().items():
        env = spec["environment"]
        for secret in ("SEAMLINE_SECRET_KEY", "SEAMLINE_DB"):
            assert "${" in env[secret], f"{name}: {secret} must come from .env, not the file"
        assert "${SEAMLINE_SECRET_KEY:?" in env["SEAMLINE_SECRET_KEY"], "required, never empty"
    db = compose()["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    assert db.startswith("${POSTGRES_PASSWORD:?")


def test_compose_layout_db_deploy_webs_workers_proxy() -> None:
    services = compose()["services"]
    db = services["db"]
    assert db["image"] == "postgres:15"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    deploy = services["deploy"]
    assert deploy["command"][-1] == "deploy" and deploy["restart"] == "no"
    assert deploy["depends_on"]["db"]["condition"] == "service_healthy"
    webs = web_services()
    assert len(webs) == 2
    workers = [s for s in seamline_services().values() if "worker" in s["command"]]
    assert len(workers) == 1 and workers[0]["deploy"]["replicas"] == 2
    for spec in [*webs.values(), *workers]:
        assert spec["depends_on"]["deploy"]["condition"] == "service_completed_successfully"
        assert "/app:ro" in " ".join(spec["volumes"])
        assert spec["environment"]["SEAMLINE_DB"].startswith("postgresql+psycopg://")
    for name, spec in webs.items():
        assert "--no-worker" in spec["command"], name
        assert "ports" not in spec, f"{name} is reached through the proxy only"
    assert all(s.get("healthcheck") == {"disable": True} for s in workers)


def test_proxy_balances_the_webs_and_only_it_is_trusted() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    mounted = [v.split(":")[0] for v in proxy["volumes"]]
    assert "./deploy/nginx.conf" in mounted and NGINX.is_file()
    conf = NGINX.read_text(encoding="utf-8")
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, re.S)
    assert upstream
    servers = set(re.findall(r"server\s+([\w.-]+:\d+)", upstream[2]))
    webs = web_services()
    assert servers == {f"{name}:8000" for name in webs}
    assert f"proxy_pass http://{upstream[1]}" in conf
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr", conf)
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme", conf)
    address = proxy["networks"]["backend"]["ipv4_address"]
    for name, spec in webs.items():
        assert spec["environment"]["FORWARDED_ALLOW_IPS"] == address, name
    # the proxy answers on a port; the webs' metrics stay inside
    assert proxy["ports"] and re.search(r"location\s*=\s*/metrics", conf)


def test_the_health_check_path_is_in_the_route_table_and_public() -> None:
    paths = {getattr(route, "path", None) for route in [*api_routes(), *page_routes()]}
    final = stages()[-1]
    health = [rest for word, rest in final if word == "HEALTHCHECK"][-1]
    found = re.search(r"http://[\w.]+:\d+(/[\w/]*)", health)
    assert found
    assert found[1] in paths
    assert found[1] in PUBLIC_ROUTES, "the health check answers without signing in"
    assert "/api/ready" in paths  # the readiness check the operations guide points at


# ---------------------------------------------------------------------------- (b) processes

FAR = (date.today() + timedelta(days=60)).isoformat()


def _wait(predicate: Any, seconds: float, what: str, cluster: Cluster) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {seconds} s\n{cluster.logs()}")


def test_compose_services_as_processes(tmp_path: Path) -> None:
    """deploy once, 2 × serve --no-worker, 2 × worker on one PostgreSQL database: both webs
    ready, an order made on web 1 is checked against the warehouse by a worker (not a web) and
    its customer hears of it over WeCom; read back on web 2; SIGTERM ends everything."""
    if not PG_URL:
        pytest.skip("SEAMLINE_TEST_PG_URL is not set: compose's services need PostgreSQL")
    with (
        postgres_database(PG_URL) as db_url,
        AsgiServer(mock_wms_module().create_app(token="wms-secret")) as wms,
        fake_dingtalk(secret="ding-secret") as ding,
        fake_wecom() as wecom,
    ):
        env = {
            "SEAMLINE_SECRET_KEY": "compose-test-" + "k" * 40,
            "WMS_URL": wms.base_url,
            "WMS_TOKEN": "wms-secret",
            "DINGTALK_WEBHOOK": ding.url,
            "DINGTALK_SECRET": "ding-secret",
            "WECOM_WEBHOOK": wecom.url,
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
        }
        cluster = Cluster(PACK, db_url, env, tmp_path)
        try:
            cluster.deploy()
            sales = cluster.token("li.sales")
            finance = cluster.token("huang.fin")
            cluster.start(webs=2, workers=2)
            web1, web2 = (w.url for w in cluster.webs)
            for url in (web1, web2):
                ready = httpx.get(f"{url}/api/ready", timeout=10)
                assert ready.status_code == 200, ready.text
            _order_is_worked_by_the_workers(cluster, web1, web2, sales, finance, wecom)
            assert not ding.rejected
        finally:
            stopped = cluster.stop()
        assert not stopped.killed, f"did not stop on SIGTERM: {stopped.killed}"
        assert not stopped.leftovers, f"left processes behind: {stopped.leftovers}"
        assert set(stopped.codes) == {"web1", "web2", "worker1", "worker2"}
        # uvicorn and procrastinate finish their work, then re-raise the signal they caught, so
        # a clean stop ends "by SIGTERM"; what they logged on the way out tells it from a kill
        assert all(code in (0, -signal.SIGTERM) for code in stopped.codes.values()), stopped
        for name, said in stopped.said.items():
            done = "Application shutdown complete" if name.startswith("web") else "Stopped worker"
            assert done in said, f"{name} did not shut down cleanly:\n{said[-3000:]}"


def _order_is_worked_by_the_workers(
    cluster: Cluster, web1: str, web2: str, sales: str, finance: str, wecom: Any
) -> None:
    as_sales = {"Authorization": f"Bearer {sales}"}
    as_finance = {"Authorization": f"Bearer {finance}"}
    with (
        httpx.Client(base_url=web1, timeout=30) as one,
        httpx.Client(base_url=web2, timeout=30) as two,
    ):
        customer = one.post(
            "/api/forms/customer/records",
            json={
                "code": "C00042",
                "name": "绍兴星辰机械",
                "contact": "王先生",
                "phone": "13900000001",
                "wecom_id": "wx-c00042",
            },
            headers=as_sales,
        )
        assert customer.status_code == 201, customer.text
        product = two.post(  # the other web: both serve the same database
            "/api/forms/product/records",
            json={"code": "SD-100000", "name": "座椅面套", "unit_price": "35.00", "lead_days": 5},
            headers=as_finance,
        )
        assert product.status_code == 201, product.text
        order = one.post(
            "/api/forms/order/records",
            json={
                "customer": customer.json()["id"],
                "product": product.json()["id"],
                "quantity": 20,
                "desired_date": FAR,
                "order_type": "normal",
            },
            headers=as_sales,
        )
        assert order.status_code == 201, order.text
        oid = order.json()["id"]
        submitted = one.post(f"/api/forms/order/records/{oid}/actions/submit", headers=as_sales)
        assert submitted.status_code == 200, submitted.text

        def state() -> str:
            got = two.get(f"/api/forms/order/records/{oid}", headers=as_sales)
            assert got.status_code == 200, got.text
            return str(got.json()["state"])

        _wait(lambda: state() == "stock_checked", 60, "the stock check did not finish", cluster)
        _wait(lambda: len(wecom.messages) >= 1, 30, "no WeCom message arrived", cluster)
        record = two.get(f"/api/forms/order/records/{oid}", headers=as_sales).json()
        assert record["reserved_qty"] == 20 and record["atp_date"]
    engine = sa.create_engine(cluster.db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT kind, status, locked_by FROM sl_jobs ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert rows and all(row.status == "done" for row in rows), rows
    # run by the worker processes (procrastinate workers name themselves), never by a web
    web_pids = {str(w.popen.pid) for w in cluster.webs}
    assert not any(
        row.locked_by and any(pid in row.locked_by for pid in web_pids) for row in rows
    ), rows


# ---------------------------------------------------------------------------- (c) the image


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI on this machine"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["no daemon"])[-1]
        return f"no Docker daemon reachable (`docker info`: {reason})"
    return None


def test_the_image_builds_and_holds_what_it_promises() -> None:
    unavailable = _docker_unavailable()
    if unavailable:
        pytest.skip(f"{unavailable}: the image is not built here")
    tag = f"seamline-test:{uuid.uuid4().hex[:10]}"
    built = subprocess.run(
        ["docker", "build", "--tag", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-5000:] + built.stderr[-5000:]
    try:
        probe = (
            "import os; from engine.flows.approvals.pdf import find_cjk_font; "
            "import procrastinate, psycopg, fpdf, zoneinfo; "
            "zoneinfo.ZoneInfo('Asia/Shanghai'); print(os.getuid(), find_cjk_font())"
        )
        ran = subprocess.run(
            ["docker", "run", "--rm", tag, "python", "-c", probe],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        uid, font = ran.stdout.split()
        assert uid != "0" and font.endswith("wqy-microhei.ttc")
        helped = subprocess.run(
            ["docker", "run", "--rm", tag, "seamline", "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert "--no-worker" in helped.stdout
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=300)
