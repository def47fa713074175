"""``seamline demo``: one folder holds everything, a second run loads nothing twice, --reset
starts over (and never empties a folder the demo did not make), and the scripted walkthrough
(``--scenario``) drives a day of orders through the real API to the end — an end-to-end test
of the pack on SQLite with its mock warehouse and the demo's chat sink.

Small histories (``--orders``) keep it quick; the full year is the command's default."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.demo.chat import ChatSink, create_chat_app, message_text

ROOT = Path(__file__).resolve().parents[1]
ENV = ("WMS_URL", "WMS_TOKEN", "DINGTALK_WEBHOOK", "DINGTALK_SECRET", "WECOM_WEBHOOK")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo sets these for its servers; the test restores them."""
    for name in (*ENV, "SEAMLINE_SECRET_KEY", "SEAMLINE_DB"):
        monkeypatch.delenv(name, raising=False)


def demo(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--lang", "en", "demo", "--no-serve", *args])
    return result.exit_code, result.stdout + result.stderr


def counts(out: str) -> str:
    found = re.search(r"in the database: (.*)", out)
    assert found, out
    return found.group(1)


def test_demo_keeps_everything_in_its_folder_and_loads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "d"
    code, first = demo("--dir", str(folder), "--orders", "150")
    assert code == 0, first
    assert "deployed" in first and "150 orders" in first
    assert "销售订单 150" in counts(first) and "客户 200" in counts(first)
    assert "li.sales" in first and "seamline-demo" in first and "→ My tasks" in first
    # the newest drafts are submitted through the app; their stock check waits for the worker
    assert "done through the app, as the people of the history: 销售订单 · 提交订单 × 3" in first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing in the cwd
    assert {p.name for p in folder.iterdir()} >= {"seamline-demo.db", "secret_key"}

    code, again = demo("--dir", str(folder), "--orders", "150")
    assert code == 0, again
    assert "reusing" in again and "history:" not in again
    assert counts(again) == counts(first)

    db = f"sqlite:///{folder / 'seamline-demo.db'}"
    verify = CliRunner().invoke(
        main, ["--db", db, "--app", str(ROOT / "examples/manufacturing_pack"), "audit", "verify"]
    )
    assert verify.exit_code == 0, verify.stdout


def test_reset_starts_over(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    assert demo("--dir", str(folder), "--orders", "20")[0] == 0
    code, out = demo("--dir", str(folder), "--orders", "30", "--reset")
    assert code == 0, out
    assert f"removed {folder / 'seamline-demo.db'}" in out
    assert "deployed" in out and "销售订单 30" in counts(out)


def test_a_load_that_stopped_half_way_is_refused_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run interrupted after the history's rows are in (here: starting the approvals
    fails) leaves data without its approvals; the next run says so instead of serving it."""
    from engine.demo import build

    def interrupted(live: object) -> int:
        raise KeyboardInterrupt

    folder = tmp_path / "d"
    with monkeypatch.context() as patch:
        patch.setattr(build, "start_waiting_approvals", interrupted)
        code, out = demo("--dir", str(folder), "--orders", "20")
    assert code != 0
    assert (folder / "loading").is_file()

    code, out = demo("--dir", str(folder), "--orders", "20")
    assert code == 1
    assert "stopped half-way" in out and "--reset" in out
    assert "in the database" not in out and "li.sales" not in out

    code, out = demo("--dir", str(folder), "--orders", "20", "--reset")
    assert code == 0, out
    assert "销售订单 20" in counts(out)
    assert not (folder / "loading").exists()


def test_reset_never_empties_a_folder_the_demo_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me", encoding="utf-8")
    code, out = demo("--dir", str(tmp_path), "--reset")
    assert code == 1
    assert "not made by `seamline demo`" in out
    assert (tmp_path / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_chat_sink_keeps_robot_messages(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    sink = ChatSink(tmp_path / "messages.jsonl")
    client = TestClient(create_chat_app(sink))
    card = {"msgtype": "markdown", "markdown": {"title": "缺料提醒", "text": "### 缺料提醒：SO-1"}}
    assert client.post("/dingtalk/dingtalk", json=card).json() == {"errcode": 0, "errmsg": "ok"}
    assert (
        client.post("/wecom/wecom", json={"msgtype": "text", "text": {"content": "hi"}}).json()[
            "errcode"
        ]
        == 0
    )
    assert client.post("/wecom/wecom", content=b"not json").json()["errcode"] != 0
    listed = client.get("/messages", params={"since": 1}).json()["messages"]
    assert [(m["robot"], m["text"]) for m in listed] == [("wecom", "hi")]
    assert "缺料提醒：SO-1" in client.get("/").text
    assert len(ChatSink(tmp_path / "messages.jsonl").messages) == 2  # kept across restarts
    assert message_text(card) == ("缺料提醒", "### 缺料提醒：SO-1")


def test_chat_page_shows_times_in_the_apps_time_zone(tmp_path: Path) -> None:
    import json

    from starlette.testclient import TestClient

    stored = {
        "seq": 1,
        "at": "2025-03-04T23:30:00+00:00",
        "robot": "dingtalk",
        "connector": "dingtalk",
        "title": "t",
        "text": "t",
        "payload": {},
    }
    (tmp_path / "messages.jsonl").write_text(json.dumps(stored) + "\n", encoding="utf-8")
    client = TestClient(create_chat_app(ChatSink(tmp_path / "messages.jsonl"), "Asia/Shanghai"))
    page = client.get("/").text
    assert "2025-03-05 07:30" in page  # UTC+8, the next day
    assert ">2025-03-04T23:30" not in page
    assert client.get("/messages").json()["messages"][0]["at"] == stored["at"]  # JSON stays UTC


def test_scenario_drives_a_day_of_orders(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "engine.cli.main", "--lang", "en", "demo", "--scenario"),
            *("--dir", str(tmp_path / "d"), "--orders", "150"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "✗" not in out
    assert "DingTalk to-do to procurement" in out
    assert "route class_a" in out and "route class_c" in out and "rejected" in out
    assert "all 10 steps did what they should" in out
    messages = (tmp_path / "d" / "messages.jsonl").read_text(encoding="utf-8")
    assert "缺料提醒" in messages


def test_an_app_without_a_history_generator_gets_its_csv_files(tmp_path: Path) -> None:
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(
        ROOT / "examples" / "manufacturing_pack",
        pack,
        ignore=shutil.ignore_patterns("schemas", "make_history.py"),
    )
    products = (pack / "data" / "products.csv").read_text(encoding="utf-8").splitlines()
    (pack / "data" / "products.csv").write_text("\n".join(products[:51]) + "\n", encoding="utf-8")
    args = ["--app", str(pack), "--lang", "en", "demo", "--no-serve", "--dir", str(tmp_path / "d")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "loaded 40 sample customer records" in result.stdout
    assert "loaded 50 sample product records" in result.stdout
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "loaded" not in again.stdout
