"""``seamline demo --scenario``: a scripted walkthrough, driven through the real HTTP API.

The steps belong to the app: ``demo_scenario.py`` next to app.yaml defines ``STEPS``, a list
of :class:`Step` (a title in English and Chinese and a function taking a :class:`Run`). This
module serves the deployed app (web + in-process worker) on a free loopback port, runs the
steps in order, prints each expectation with ✓ or ✗ and stops at the first one that fails.

A step talks to the app as the people of its org chart (``run.api("li.sales")`` is an httpx
client with that person's API token), waits for the worker (``run.wait``), reads the chat
messages the demo's sink received (``run.chat_messages``) and keeps what later steps need in
``run.memo``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import sqlalchemy as sa

from engine.demo.build import serve_in_thread
from engine.demo.modules import load_module
from engine.model.i18n import Lang, Text

__all__ = ["Failed", "Run", "Step", "load_steps", "run_scenario"]

T = TypeVar("T")
WAIT_SECONDS = 30.0
HTTP_TIMEOUT = 30.0


class Failed(Exception):
    """An expectation of the scenario did not hold."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


@dataclass(frozen=True)
class Step:
    title: Text
    run: Callable[[Run], None]


@dataclass
class Run:
    """What a step works with; see the module docstring."""

    base_url: str
    engine: sa.Engine
    app: Any
    chat_url: str | None
    lang: Lang
    echo: Callable[[str], None]
    memo: dict[str, Any] = field(default_factory=dict)
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    # -- talking to the app

    def api(self, user: str) -> httpx.Client:
        """An API client acting as ``user`` (a fresh token, made once per scenario)."""
        if user not in self._clients:
            from engine.accounts.auth import create_token

            with self.engine.begin() as conn:
                token = create_token(conn, user, label="demo scenario")
            self._clients[user] = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=HTTP_TIMEOUT,
            )
        return self._clients[user]

    def call(
        self, user: str, method: str, path: str, status: int | tuple[int, ...] = 200, **kw: Any
    ) -> Any:
        """One API request as ``user``; a status other than ``status`` fails the step."""
        answer = self.api(user).request(method, path, **kw)
        wanted = (status,) if isinstance(status, int) else status
        if answer.status_code not in wanted:
            raise Failed(
                Text(
                    "{method} {path} as {user} answered {got}: {body}",
                    "{user} 调用 {method} {path} 返回 {got}：{body}",
                ).format(
                    method=method,
                    path=path,
                    user=user,
                    got=str(answer.status_code),
                    body=answer.text[:300],
                )
            )
        return answer.json() if answer.content else None

    def chat_messages(self, since: int = 0) -> list[dict[str, Any]]:
        """Messages the demo's chat sink received after message number ``since``."""
        if self.chat_url is None:
            return []
        answer = httpx.get(f"{self.chat_url}/messages", params={"since": since}, timeout=10)
        messages: list[dict[str, Any]] = answer.json()["messages"]
        return messages

    def chat_seq(self) -> int:
        found = self.chat_messages()
        return int(found[-1]["seq"]) if found else 0

    # -- saying what happened

    def say(self, text: Text) -> None:
        self.echo(f"    · {text(self.lang)}")

    def expect(self, condition: object, text: Text) -> None:
        """Print ✓ and go on, or ✗ and stop the scenario."""
        if not condition:
            self.echo(f"    ✗ {text(self.lang)}")
            raise Failed(text)
        self.echo(f"    ✓ {text(self.lang)}")

    def wait(self, probe: Callable[[], T | None], what: Text, seconds: float = WAIT_SECONDS) -> T:
        """Poll ``probe`` until it returns something truthy (the worker runs meanwhile)."""
        deadline = time.monotonic() + seconds
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise Failed(
                    Text("gave up waiting: {what}", "等待超时：{what}").format(what=what(self.lang))
                )
            time.sleep(0.1)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def load_steps(app_dir: Path) -> list[Step] | None:
    """The app's ``STEPS`` from ``demo_scenario.py`` next to app.yaml (None without one)."""
    source = app_dir / "demo_scenario.py"
    if not source.is_file():
        return None
    module = load_module("demo_scenario_steps", source)
    if module is None:
        return None
    steps: list[Step] = module.STEPS
    return steps


def run_scenario(
    engine: sa.Engine,
    live: Any,
    app_dir: Path,
    chat_url: str | None,
    lang: Lang,
    echo: Callable[[str], None],
) -> bool:
    """Serve the app with its worker, run the app's steps; True when every step held."""
    from engine.outbox.worker import start_worker
    from engine.runtime import Deployments
    from engine.web.routes import page_routes
    from engine.web.server import create_web_app

    steps = load_steps(app_dir)
    if steps is None:
        echo(
            Text(
                "{dir} has no demo_scenario.py: no walkthrough to run",
                "{dir} 中没有 demo_scenario.py：没有可运行的演示脚本",
            ).format(dir=str(app_dir))(lang)
        )
        return False
    deployments = Deployments(engine, live, poll_seconds=2.0)
    worker = start_worker(engine, lambda: deployments.current.flows)
    web = serve_in_thread(
        create_web_app(engine, deployments, extra_routes=page_routes()), "demo-app"
    )
    run = Run(web.url, engine, live.app, chat_url, lang, echo)
    failed = 0
    try:
        for number, step in enumerate(steps, start=1):
            echo(f"[{number}/{len(steps)}] {step.title(lang)}")
            try:
                step.run(run)
            except Failed as failure:
                echo(
                    Text("✗ step {n} failed: {why}", "✗ 第 {n} 步失败：{why}").format(
                        n=str(number), why=failure.text(lang)
                    )(lang)
                )
                failed = number
                break
    finally:
        run.close()
        web.stop()
        worker.stop()
    if not failed:
        echo(
            Text(
                "✓ all {n} steps did what they should",
                "✓ 全部 {n} 个步骤均符合预期",
            ).format(n=str(len(steps)))(lang)
        )
    return not failed
