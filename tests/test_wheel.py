"""Installable: the built wheel works outside the checkout, the sdist is the whole project.

Builds the sdist and the wheel from this tree (``python -m build``), installs the wheel with
``requirements.lock`` into a fresh venv, and from an empty folder runs what an operator runs:
``seamline --version``, ``seamline demo --no-serve --orders 50``, then serves the demo and signs
in: ``/login`` and the pack's pages answer 200. The core install (no extras) refuses PostgreSQL
with the line that installs it, not a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

import httpx
import pytest

import engine

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
PASSWORD = "seamline-demo"


def _run(*args: str | Path, cwd: Path, timeout: float = 600, **env: str) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


# what a checkout holds that is not the project (a copy without them builds like a clean clone)
NOT_PROJECT = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".seamline-demo",
    "*.db",
    "*.db-*",
)


def _build(kind: str, tmp_path: Path) -> Path:
    """``python -m build --KIND`` of a copy of this tree (builds write into the source folder;
    a copy keeps parallel tests and the checkout apart); the folder holding the result."""
    source, out = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_PROJECT)
    _run(sys.executable, "-m", "build", f"--{kind}", "--outdir", out, source, cwd=tmp_path)
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def _tracked() -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare the sdist with")
    files = []
    for line in done.stdout.splitlines():
        mode, _, _, path = line.split(maxsplit=3)
        if mode == "120000":  # a link (engine/assets/…): the sdist holds what it points at
            files.extend(
                str(p.relative_to(ROOT))
                for p in (ROOT / path).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".db")
            )
        else:
            files.append(path)
    return files


def test_sdist_holds_every_tracked_file_and_its_tests_run(tmp_path: Path) -> None:
    sdist = _one(_build("sdist", tmp_path), f"seamline-{VERSION}.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path, filter="data")
    missing = sorted(set(_tracked()) - names)
    assert not missing, f"files git tracks but the sdist leaves out: {missing[:20]}"
    assert not [n for n in names if n.endswith((".db", ".pyc"))]
    unpacked = tmp_path / f"seamline-{VERSION}"
    # the sdist's own tests, on the sdist's own code (not this checkout's)
    out = _run(
        sys.executable,
        "-m",
        "pytest",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "tests/test_layers.py",
        "tests/test_compile_app.py",
        cwd=unpacked,
        PYTHONPATH=str(unpacked),
    )
    assert re.search(r"\d+ passed", out), out


def _check_wheel(wheel: Path) -> None:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(f"seamline-{VERSION}.dist-info/METADATA").decode()
    for shipped in (
        "engine/assets/templates/login.html",
        "engine/assets/templates/base.html",
        "engine/assets/starter/app.yaml",
        "engine/assets/packs/manufacturing/app.yaml",
        "engine/assets/packs/manufacturing/mock_wms.py",
        "engine/web/static/htmx.min.js",
        f"seamline-{VERSION}.dist-info/licenses/LICENSE",
    ):
        assert shipped in names, shipped
    pack_files = {
        str(p.relative_to(ROOT / "examples" / "manufacturing_pack"))
        for p in (ROOT / "examples" / "manufacturing_pack").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".db")
    }
    shipped_pack = {
        n.removeprefix("engine/assets/packs/manufacturing/")
        for n in names
        if n.startswith("engine/assets/packs/manufacturing/")
    }
    assert pack_files <= shipped_pack, sorted(pack_files - shipped_pack)
    assert not [n for n in names if n.endswith((".db", ".pyc"))]
    assert "License-Expression: Apache-2.0" in meta
    assert "Provides-Extra: postgres" in meta and "Provides-Extra: pdf" in meta


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_installed_wheel_runs_the_demo_from_an_empty_folder(tmp_path: Path) -> None:
    wheel = _one(_build("wheel", tmp_path), f"seamline-{VERSION}-py3-none-any.whl")
    _check_wheel(wheel)
    _run(sys.executable, "-m", "venv", tmp_path / "v", cwd=tmp_path)
    venv = tmp_path / "v" / "bin"
    lock = ROOT / "requirements.lock"
    pip = (venv / "python", "-m", "pip", "install", "-q", "-c", lock)
    _run(*pip, wheel, cwd=tmp_path)  # the core: SQLite, no extras
    here = tmp_path / "empty"
    here.mkdir()
    where = _run(venv / "python", "-c", "import engine; print(engine.__file__)", cwd=here)
    assert Path(where.strip()).is_relative_to(venv.parent), where
    assert not Path(where.strip()).is_relative_to(Path(engine.__file__).parents[1])

    assert _run(venv / "seamline", "--version", cwd=here).strip() == f"seamline {VERSION}"

    # core only: PostgreSQL is refused with the line that installs it (exit 2, no traceback)
    initialised = subprocess.run(
        [
            venv / "seamline",
            "--lang",
            "en",
            "--db",
            "postgresql://x@127.0.0.1/none",
            "--app",
            str(ROOT / "configs"),
            "audit",
            "verify",
        ],
        cwd=here,
        capture_output=True,
        text=True,
        check=False,
    )
    assert initialised.returncode == 2, initialised.stderr
    assert "pip install 'seamline[postgres]'" in initialised.stderr
    assert "Traceback" not in initialised.stderr

    _run(*pip, f"seamline[pdf] @ {wheel.as_uri()}", cwd=tmp_path)
    demo = tmp_path / "demo"
    demo.mkdir()
    out = _run(venv / "seamline", "demo", "--no-serve", "--orders", "50", cwd=demo)
    assert "sun.sales" in out, out
    assert (demo / ".seamline-demo").is_dir()

    port = _free_port()
    log = tmp_path / "demo.log"
    sink = log.open("w")
    server = subprocess.Popen(
        [venv / "seamline", "demo", "--orders", "50", "--port", str(port)],
        cwd=demo,
        stdout=subprocess.DEVNULL,
        stderr=sink,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as client:
            login = _wait_for(client, "/login", server, log)
            assert login.status_code == 200
            assert "登录" in login.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
            assert token is not None
            signed = client.post(
                "/login",
                data={"csrf_token": token[1], "username": "sun.sales", "password": PASSWORD},
                follow_redirects=False,
            )
            assert signed.status_code == 303, signed.text
            for page in ("/", "/forms/order", "/forms/order/new", "/dashboards"):
                got = client.get(page)
                assert got.status_code == 200, (page, got.text[:500])
            assert "/static/" in client.get("/").text
            assert client.get("/static/htmx.min.js").status_code == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        sink.close()


def _wait_for(
    client: httpx.Client, path: str, server: subprocess.Popen[bytes], log: Path
) -> httpx.Response:
    deadline = time.monotonic() + 120
    while True:
        if server.poll() is not None:
            raise AssertionError(f"the demo stopped: {log.read_text(encoding='utf-8')}")
        try:
            return client.get(path)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_requirements_lock_pins_every_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["postgres"]]
    declared += project["optional-dependencies"]["pdf"]
    pinned = {
        re.split(r"==", line)[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
        if "==" in line
    }
    for requirement in declared:
        name = re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is declared but not in requirements.lock (run scripts/lock)"
