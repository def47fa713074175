"""What the browser tests share: Debian's Chromium (skipped with the reason when it is missing),
an ASGI app served by uvicorn on a free port, and signing in on the login page."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

__all__ = ["CHROMIUM", "free_port", "launch", "needs_chromium", "serve", "sign_in"]

CHROMIUM = "/usr/bin/chromium"

needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} not found: run scripts/install-browser (Debian chromium)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(web: Any) -> Iterator[str]:
    """Serve ``web`` on 127.0.0.1 in a thread; yield its base URL, stop it on the way out.

    The socket is bound here (port 0) and handed to uvicorn, so no other process — another
    pytest-xdist worker — can take the port between choosing it and listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(web, log_level="warning", lifespan="off")
        running = uvicorn.Server(config)
        thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not running.started:
                if time.monotonic() > deadline or not thread.is_alive():
                    pytest.fail("the web server did not start")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            running.should_exit = True
            thread.join(timeout=10)


def launch(pw: Playwright) -> Browser:
    """Headless Chromium without the sandbox (containers) and without background traffic."""
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
    )


def sign_in(page: Page, username: str, password: str) -> None:
    """Fill the login form the page was sent to and submit it."""
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
