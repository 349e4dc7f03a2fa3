"""A real `python -m hub serve` on a fresh database, its log in a file, and a raw client.

The edge tests speak HTTP/1.1 byte by byte over asyncio streams, so that framing no
HTTP library would produce (bare LF, NUL, obs-fold, broken chunks) reaches the hub.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from storage import open_store
from tests.conftest import migrated_database

ROOT = Path(__file__).resolve().parents[2]
GUILD = 17
# Bounds that only keep a broken hub from hanging the suite; no test asserts on them.
START_GUARD_SECONDS = 20.0
READ_GUARD_SECONDS = 5.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    """One HTTP response as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


def parse_reply(raw: bytes) -> Reply | None:
    """The first response in these bytes, or None when there is none (connection dropped)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return Reply(status, headers, rest[:length], raw)


async def read_reply(reader: asyncio.StreamReader) -> Reply | None:
    """Read one response (by its Content-Length); None if the hub closed without one."""
    raw = b""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
        head = parse_reply(raw)
        assert head is not None
        length = int(head.headers.get("content-length", "0"))
        raw += await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raw += getattr(exc, "partial", b"")
    return parse_reply(raw)


async def exchange(port: int, *parts: bytes, pause: float = 0.0) -> Reply | None:
    """Send these bytes on a fresh connection (pausing between parts) and read the reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        try:
            return await asyncio.wait_for(read_reply(reader), READ_GUARD_SECONDS)
        except TimeoutError:
            return None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request(method: str, path: str, *headers: str, body: bytes | None = None,
            length: int | None = None) -> bytes:
    """An HTTP/1.1 request; Content-Length is that of `body` unless `length` says otherwise."""
    lines = [f"{method} {path} HTTP/1.1", "Host: hub", *headers]
    if body is not None or length is not None:
        lines.append(f"Content-Length: {len(body or b'') if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Hub:
    """A `python -m hub serve` subprocess; its stdout and stderr go to `log_path`."""

    db_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the hub and wait until it answers /readyz."""
        env = {**os.environ, "NACRITAN_DB": self.db_url, "NACRITAN_LOG_LEVEL": "DEBUG",
               "NACRITAN_TOKEN_CACHE_SECONDS": "0", **self.env}
        with self.log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), cwd=ROOT, env=env, stdout=log_file,
                stderr=asyncio.subprocess.STDOUT)
        deadline = time.monotonic() + START_GUARD_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.returncode is None, self.log()
            try:
                reply = await exchange(self.port, request("GET", "/readyz"))
                if reply is not None and reply.status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        pytest.fail("the hub did not become ready:\n" + self.log())

    async def stop(self, signum: int = signal.SIGTERM) -> tuple[int, float]:
        """Signal the hub and wait for it to exit: its return code and how long it took."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = await asyncio.wait_for(self.proc.wait(), 60)
        return code, time.monotonic() - started

    def log(self) -> str:
        """Everything the hub has written so far."""
        return self.log_path.read_text(errors="backslashreplace")

    async def wait_for_log(self, text: str, count: int = 1) -> str:
        """The log once `text` appears `count` times in it (access lines come last)."""
        for _ in range(100):
            log = self.log()
            if log.count(text) >= count:
                return log
            await asyncio.sleep(0.05)
        return self.log()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated SQLite database."""
    with migrated_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def mysql_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated MariaDB database, dropped after the test."""
    with migrated_database("mysql", tmp_path) as url:
        yield url


async def add_token(db_url: str, name: str = "Alice", guild_id: int = GUILD) -> str:
    """A fresh live token in the hub's database."""
    store = await open_store(db_url)
    try:
        return await store.add_token(guild_id, name, None, 1)
    finally:
        await store.close()


def canary() -> str:
    """A random value to send in a header and then look for everywhere."""
    return "canary-" + secrets.token_hex(8)


@pytest_asyncio.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[Any]:
    """`await hub_factory(db_url, **env)` starts a hub; every hub started is killed after."""
    hubs: list[Hub] = []

    async def start(db_url: str, **env: str) -> Hub:
        hub = Hub(db_url, tmp_path / f"hub{len(hubs)}.log", env)
        hubs.append(hub)
        await hub.start()
        return hub

    yield start
    for hub in hubs:
        if hub.proc is not None and hub.proc.returncode is None:
            hub.proc.kill()
            await hub.proc.wait()
