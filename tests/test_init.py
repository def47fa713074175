"""``seamline init`` and the shipped files: an operator starts from the starter app or the pack,
in any folder, and the commands find the app there; bad settings get a plain error."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.assets import PACKS, PAGE_TEMPLATES, STARTER
from engine.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def here(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_assets_are_the_edited_folders() -> None:
    assert PAGE_TEMPLATES.resolve() == (ROOT / "templates").resolve()
    assert STARTER.resolve() == (ROOT / "configs").resolve()
    assert PACKS["manufacturing"].resolve() == (ROOT / "examples" / "manufacturing_pack").resolve()


def test_init_the_starter_then_validate_and_deploy_from_its_folder(here: Path) -> None:
    code, out, err = run("--lang", "en", "init", "factory")
    assert code == 0, err
    assert "copied the starter app into factory" in out
    assert "next: cd factory && seamline validate && seamline deploy && seamline serve" in out
    assert "to sign in: seamline user set-password USER" in out
    assert (here / "factory" / "app.yaml").read_bytes() == (STARTER / "app.yaml").read_bytes()
    os.chdir(here / "factory")
    code, out, err = run("validate")  # no --app: ./app.yaml is found
    assert code == 0, out + err
    assert "Equipment repair desk" in out
    code, out, err = run("deploy")
    assert code == 0, out + err
    tables = sqlite3.connect(here / "factory" / "seamline.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    )
    assert "sl_events" in {name for (name,) in tables}


def test_init_the_pack_copies_all_of_it(here: Path) -> None:
    code, out, err = run("--lang", "zh", "init", "--pack", "manufacturing", "pack")
    assert code == 0, err
    assert "已将manufacturing 行业包复制到 pack" in out
    copied = {str(p.relative_to(here / "pack")) for p in (here / "pack").rglob("*") if p.is_file()}
    shipped = {
        str(p.relative_to(PACKS["manufacturing"]))
        for p in PACKS["manufacturing"].rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".db", "-wal"))
    }
    assert copied == shipped
    assert {"app.yaml", "mock_wms.py", "demo_scenario.py", "forms/order.yaml"} <= copied
    code, out, err = run("--app", str(here / "pack"), "validate")
    assert code == 0, out + err


def test_init_never_overwrites(here: Path) -> None:
    (here / "app.yaml").write_text("name: mine\n", encoding="utf-8")
    code, _, err = run("--lang", "en", "init")
    assert code == 1
    assert "already has app.yaml: nothing copied" in err
    assert (here / "app.yaml").read_text(encoding="utf-8") == "name: mine\n"
    assert not (here / "forms").exists()


def test_unknown_pack_is_refused_with_the_choices(here: Path) -> None:
    code, _, err = run("init", "--pack", "retail", "x")
    assert code == 2
    assert "'manufacturing'" in err
    assert not (here / "x").exists()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:secret@db/orders", "unsupported database URL 'mysql://u:***@db/orders'"),
        ("not a url", "the database URL is not a URL"),
    ],
)
def test_a_database_url_seamline_cannot_use_is_said_plainly(url: str, said: str) -> None:
    code, _, err = run("--lang", "en", "--app", str(STARTER), "--db", url, "audit", "verify")
    assert code == 2
    assert said in err
    assert "sqlite:///path/to/seamline.db or postgresql://" in err
    assert "secret" not in err and "Traceback" not in err


def test_a_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if [postgres] were not installed
    code, _, err = run(
        "--lang", "zh", "--app", str(STARTER), "--db", "postgresql://x@127.0.0.1/x", "plan"
    )
    assert code == 2
    assert "需要安装可选组件 'postgres'" in err
    assert "pip install 'seamline[postgres]'" in err


def test_version() -> None:
    from importlib.metadata import version

    code, out, _ = run("--version")
    assert code == 0
    assert out.strip() == f"seamline {version('seamline')}"


def test_commands_on_the_deployed_app_need_no_folder(here: Path) -> None:
    """A container or a second machine runs serve/worker/audit with only SEAMLINE_DB."""
    db = f"sqlite:///{here / 'x.db'}"
    code, out, err = run("--app", str(STARTER), "--db", db, "deploy")
    assert code == 0, out + err
    empty = here / "elsewhere"
    empty.mkdir()
    os.chdir(empty)
    runner = CliRunner(env={"SEAMLINE_DB": db})
    verified = runner.invoke(main, ["--lang", "en", "audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "event chain intact" in verified.stdout
    drained = runner.invoke(main, ["--lang", "en", "worker", "--drain"])
    assert drained.exit_code == 0, drained.output
    # without a database named, the missing folder is the error, with the way out
    code, _, err = run("--lang", "en", "audit", "verify")
    assert code == 1
    assert "app folder not found" in err and "seamline init DIR" in err
