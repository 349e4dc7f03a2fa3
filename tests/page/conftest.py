"""The real hub in its own process on a real port, and headless Chromium driving the page."""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Self, TypeVar

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from storage import open_store
from tests.conftest import fresh_database_url
from tests.support.servers import HubProcess

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Chromium logs failed connections and refused requests as console errors: expected
# while the hub is down or the token revoked, and not errors of the page.
NETWORK_NOISE = ("WebSocket connection to", "Failed to load resource")
GUILD = 17
OTHER_GUILD = 99


def off_the_loop(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a thread: sync Playwright holds this thread's loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work()).result()


class Hub(HubProcess):
    """The hub of the page tests: stopped (SIGTERM) and started again at will, with the
    uploads, reads and token commands the tests make."""

    def __init__(self, db_url: str, log_path: Path, port: int | None = None) -> None:
        super().__init__({"NACRITAN_DB": db_url, "NACRITAN_TOKEN_CACHE_SECONDS": "0.5",
                          "NACRITAN_LOG_LEVEL": "INFO"}, log_path, port)
        self.db_url = db_url
        self.url = self.base

    def start(self) -> Self:
        """Start and wait until ready (from the browser's thread: blocking is right here)."""
        super().start()
        self.wait_ready_blocking()
        return self

    def post(self, path: str, token: str, payload: Any) -> dict[str, Any]:
        """An upload as the userscripts send it; returns the hub's JSON answer."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def get(self, path: str, token: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())

    def token(self, guild_id: int, name: str, player_id: int | None = None) -> str:
        """A fresh token, stored as the operator's CLI would."""
        async def add() -> str:
            store = await open_store(self.db_url)
            try:
                return await store.add_token(guild_id, name, player_id, int(time.time() * 1000))
            finally:
                await store.close()
        return off_the_loop(add)

    def revoke(self, name: str) -> None:
        """Revoke through the operator's command line."""
        subprocess.run([sys.executable, "-m", "hub", "token", "revoke", name],
                       cwd=ROOT, env={**os.environ, "NACRITAN_DB": self.db_url},
                       check=True, capture_output=True, timeout=60)


@pytest.fixture(params=["sqlite"])
def page_backend(request: pytest.FixtureRequest) -> str:
    """Browser tests run on SQLite unless a test asks for both backends."""
    return str(request.param)


@pytest.fixture
def hub(page_backend: str, tmp_path: Path) -> Iterator[Hub]:
    """A running hub on a fresh database; stopped after the test."""
    # `serve` applies the migrations itself, as in production.
    url, drop = fresh_database_url(page_backend, tmp_path)
    server = Hub(url, tmp_path / "hub.log")
    try:
        yield server.start()
    finally:
        server.stop()
        drop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Sync Playwright runs an event loop in this thread while it lives: one module at a
    time, so that the asyncio tests of other modules get the thread back."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless; Playwright never downloads a browser here."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (empty localStorage) at a desktop size; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
         and not msg.text.startswith(NETWORK_NOISE) else None)
    yield p
    context.close()
    assert errors == [], errors


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot under tests/artifacts/ (git-ignored) for a human to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path
