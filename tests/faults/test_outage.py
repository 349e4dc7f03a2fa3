"""Database outages: uploads answer 503 with Retry-After in the envelope, never 500, and
the hub recovers by itself when the database comes back.

MariaDB is reached through a small TCP proxy run inside the test: cutting it closes the
listener and every connection through it (what a crashed or restarting server looks like
from the hub), restoring it listens again on the same port. The hub is never restarted.

SQLite has no server to lose, and as root no file permission can stop the hub (root
ignores them), so the honest SQLite failure is the one operators do cause: another
process holding the write lock longer than the hub's busy timeout (an `sqlite3` shell
left in a transaction, a backup tool). Writes must then fail cleanly with 503 and leave
nothing, reads keep working (WAL), and the next write after the lock is released works.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymysql
import pytest
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from storage import migrate
from storage.mysql import mysql_params
from storage.sqlite import sqlite_path
from tests.conftest import add_token, auth, fresh_database_url
from tests.support.dump import snapshot
from tests.support.payloads import PLAYER, encode, make_group, make_profile, make_view

GUILD = 17
HANG_SECONDS = 30
POOL_SIZE = 10  # MySQLBackend's default maxsize


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` is an outage, `restore()` ends it."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections = 0
        # Cleared by `stall()`: connections stay open but no byte goes through.
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    async def start(self) -> None:
        """Listen (again, on the same port once it is known)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every connection, both ends, without a goodbye."""
        assert self._server is not None
        self._server.close()
        self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    def stall(self) -> None:
        """A server that keeps its connections but stops answering (dead node, partition)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.transport.abort()
            return
        self.connections += 1
        self._writers.update((client_w, server_w))
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


UPLOADS: list[tuple[str, Callable[[], Any]]] = [
    ("/view", lambda: make_view(monster_at=7)),
    (f"/pc/{PLAYER}", lambda: make_profile(level=8)),
    ("/gdc", make_group),
]


async def assert_unavailable(client: TestClient, method: str, url: str, token: str,
                             body: Any = None) -> None:
    """503, Retry-After in whole seconds, the one envelope."""
    data = encode(body) if body is not None else None
    resp = await client.request(method, url, data=data, headers=auth(token))
    text = await resp.text()
    assert resp.status == 503, (url, resp.status, text)
    assert int(resp.headers["Retry-After"]) > 0
    payload = json.loads(text)
    error = payload["error"]
    assert error["code"] in ("storage_unavailable", "storage_error"), error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in text
    if not url.startswith("/api/"):
        assert payload["Info"] == error["message"]


async def upload_all(client: TestClient, token: str) -> None:
    for url, body in UPLOADS:
        resp = await client.post(url, data=encode(body()), headers=auth(token))
        assert resp.status == 200, (url, await resp.text())


@pytest.fixture
async def proxied_mysql(tmp_path: Path) -> AsyncIterator[tuple[str, str, TcpProxy]]:
    """(direct URL, URL through the proxy, proxy) of a fresh migrated MariaDB database."""
    url, drop = fresh_database_url("mysql", tmp_path)
    proxy: TcpProxy | None = None
    try:
        await migrate(url)
        parts = urlsplit(url)
        proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 3306)
        await proxy.start()
        netloc = parts.netloc.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
        assert netloc != parts.netloc
        yield url, urlunsplit(parts._replace(netloc=netloc)), proxy
    finally:
        if proxy is not None:
            await proxy.close()
        await asyncio.to_thread(drop)


def lock_feed_row(url: str) -> Any:
    """A plain connection holding the write lock of guild GUILD's feed row until closed."""
    params = mysql_params(url)
    conn = pymysql.connect(host=params["host"], port=params["port"], user=params["user"],
                           password=params["password"], database=params["db"])
    conn.begin()
    with conn.cursor() as cursor:
        cursor.execute("SELECT last_seq FROM feeds WHERE guild_id = %s FOR UPDATE", (GUILD,))
        assert cursor.fetchall()
    return conn


async def test_mysql_outage_answers_503_and_recovers(
        aiohttp_client: Callable[..., Awaitable[TestClient]],
        proxied_mysql: tuple[str, str, TcpProxy]) -> None:
    direct, proxied, proxy = proxied_mysql
    token = await add_token(direct, player_id=PLAYER)
    # Tokens are looked up on every request (no cache): an outage reaches auth too.
    client = await aiohttp_client(create_app(Settings(db=proxied, token_cache_seconds=0.0)))

    await upload_all(client, token)
    assert (await client.get("/readyz")).status == 200
    assert proxy.connections > 0, "the hub did not go through the proxy"

    for cycle in range(2):
        before = await snapshot(direct)
        await proxy.cut()
        for url, body in UPLOADS:
            await assert_unavailable(client, "POST", url, token, body())
        for url in ("/gdc", "/tiles/100/100/2", "/api/v1/state?x=100&y=100&r=2", "/worldmap"):
            await assert_unavailable(client, "GET", url, token)
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "not_ready"
        resp = await client.get("/healthz")
        assert resp.status == 200, "liveness must not depend on the database"
        assert await snapshot(direct) == before, "something was written during the outage"

        await proxy.restore()
        # Recovery by itself: the very next requests are served, no restart, no retry.
        resp = await client.get("/readyz")
        assert resp.status == 200, (cycle, await resp.text())
        await upload_all(client, token)
        resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
        assert resp.status == 200
        assert (await resp.json())["seq"] == 3 * (cycle + 2)


async def test_mysql_stall_answers_503_and_recovers(
        aiohttp_client: Callable[..., Awaitable[TestClient]],
        proxied_mysql: tuple[str, str, TcpProxy]) -> None:
    """The server stops answering without closing anything: requests get 503 once the
    database timeout passes, instead of hanging, and the hub recovers when it answers."""
    direct, proxied, proxy = proxied_mysql
    token = await add_token(direct, player_id=PLAYER)
    # The token stays cached, so the stalled uploads reach their write transaction.
    client = await aiohttp_client(create_app(
        Settings(db=proxied, token_cache_seconds=600.0, db_timeout=1.0)))
    await upload_all(client, token)
    before = await snapshot(direct)

    proxy.stall()
    try:
        # A hang detector, not a speed check.
        async with asyncio.timeout(HANG_SECONDS):
            for url, body in UPLOADS:
                await assert_unavailable(client, "POST", url, token, body())
            await assert_unavailable(client, "GET", "/api/v1/state?x=100&y=100&r=2", token)
            resp = await client.get("/readyz")
            assert resp.status == 503
    finally:
        proxy.resume()
    assert await snapshot(direct) == before, "something was written during the stall"
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    await upload_all(client, token)
    resp = await client.get("/api/v1/state?x=100&y=100&r=0", headers=auth(token))
    assert (await resp.json())["seq"] == 6


async def test_mysql_cut_while_pool_is_busy_recovers(
        aiohttp_client: Callable[..., Awaitable[TestClient]],
        proxied_mysql: tuple[str, str, TcpProxy]) -> None:
    """A long transaction holds the uploads up, then the database dies: every upload gets
    an answer, 200 or 503, including those that were queued for a pool connection."""
    direct, proxied, proxy = proxied_mysql
    token = await add_token(direct, player_id=PLAYER)
    client = await aiohttp_client(create_app(Settings(db=proxied, token_cache_seconds=0.0)))
    await upload_all(client, token)

    async def one(i: int) -> int:
        view = make_view(cx=100 + i % 5, monster_at=i % 19)
        resp = await client.post("/view", data=encode(view), headers=auth(token))
        await resp.read()
        return resp.status

    # Another client (directly, not through the proxy) locks the guild's feed row:
    # every upload blocks inside its transaction, holding its pool connection.
    locker = await asyncio.to_thread(lock_feed_row, direct)
    try:
        in_flight = [asyncio.create_task(one(i)) for i in range(30)]
        for _ in range(1000):  # bounded by count: until the pool is exhausted
            if proxy.open_connections >= POOL_SIZE:
                break
            await asyncio.sleep(0.01)
        assert proxy.open_connections == POOL_SIZE
        await asyncio.sleep(0.1)  # the other requests queue for a connection
        await proxy.cut()
    finally:
        await asyncio.to_thread(locker.close)
    # A hang detector, not a speed check: without an answer, a request would wait forever.
    _, hung = await asyncio.wait(in_flight, timeout=HANG_SECONDS)
    for task in hung:
        task.cancel()
    assert not hung, f"{len(hung)} uploads never got an answer while the database was down"
    statuses = [task.result() for task in in_flight]
    assert set(statuses) <= {200, 503}, statuses
    await proxy.restore()
    await upload_all(client, token)
    # Every upload answered 200 was committed (a 503 may or may not have been: the
    # connection can die between COMMIT and its answer), and nothing else moved seq.
    resp = await client.get("/api/v1/state?x=100&y=100&r=0", headers=auth(token))
    committed = (await resp.json())["seq"] - 6
    assert statuses.count(200) <= committed <= len(statuses), (statuses, committed)


async def test_sqlite_write_lock_answers_503_and_recovers(
        aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    await migrate(db_url)
    client = await aiohttp_client(create_app(Settings(db=db_url, token_cache_seconds=0.0)))
    token = await add_token(db_url, player_id=PLAYER)
    await upload_all(client, token)
    before = await snapshot(db_url)

    holder = sqlite3.connect(sqlite_path(db_url), isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        # One upload only: it waits out the hub's busy timeout before failing.
        await assert_unavailable(client, "POST", "/view", token, make_view(monster_at=7))
        # WAL: reads are not blocked by a writer, and the database is reachable.
        resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
        assert resp.status == 200
        assert (await client.get("/readyz")).status == 200
    finally:
        with contextlib.suppress(sqlite3.Error):
            holder.execute("ROLLBACK")
        holder.close()

    assert await snapshot(db_url) == before
    await upload_all(client, token)
    resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
    assert (await resp.json())["seq"] == 6
