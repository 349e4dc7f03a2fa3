"""The embedded SQLite backend on aiosqlite: one writer, one reader, WAL."""
from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from storage.backend import Dialect, Plan, Row, Statement
from storage.dialects import SQLiteDialect
from storage.errors import StoreError
from storage.url import DatabaseUrl, DatabaseUrlError

T = TypeVar("T")


def sqlite_path(url: str | DatabaseUrl) -> str:
    """The file of `sqlite:///relative.db` or `sqlite:////absolute/path.db`."""
    parsed = DatabaseUrl.parse(url)
    if parsed.backend != "sqlite":
        raise DatabaseUrlError(f"not an SQLite URL: {parsed}")
    return parsed.path


class _SQLiteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # One trip to aiosqlite's thread (execute, fetch and close together), not three:
        # the write lock is held across these trips.
        rows = await self._conn.execute_fetchall(sql, params)
        return [tuple(row) for row in rows]

    async def run_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        return await in_connection_thread(self._conn, _run_statements, statements)


def _run_statements(conn: sqlite3.Connection, statements: Sequence[Statement]) -> list[list[Row]]:
    # A failing statement raises here, so the ones after it never run.
    return [[tuple(row) for row in conn.execute(sql, params).fetchall()]
            for sql, params in statements]


def _read_then_write(conn: sqlite3.Connection,
                     reads_and_plan: tuple[Sequence[Statement], Plan[T]]) -> T:
    reads, plan = reads_and_plan
    conn.execute("BEGIN IMMEDIATE")
    try:
        writes, result = plan(_run_statements(conn, reads))
        _run_statements(conn, writes)
        conn.execute("COMMIT")
    except BaseException:
        # A failed COMMIT may already have ended the transaction: the failing ROLLBACK
        # must not replace the original error.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return result


async def in_connection_thread(conn: aiosqlite.Connection,
                               fn: Callable[[sqlite3.Connection, Any], T], arg: Any) -> T:
    """`fn(raw connection, arg)` in one trip to the connection's thread.

    aiosqlite makes each statement its own trip to its thread and back through the event
    loop; a view's transaction is about twenty statements, and while it waits for the
    loop (busy with other requests) SQLite's only write lock is held. aiosqlite has no
    public call for a batch (omnilib/aiosqlite#19): `Connection._execute` is the queue
    every public method goes through, `_conn` the sqlite3 connection its thread owns;
    aiosqlite is pinned (requirements.txt), and the SQLite tests run through here.
    """
    return await conn._execute(lambda: fn(conn._conn, arg))


class SQLiteBackend:
    """All writes go through one connection, one transaction at a time (BEGIN IMMEDIATE)."""

    dialect: Dialect = SQLiteDialect()

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str | DatabaseUrl) -> SQLiteBackend:
        """Open the file (created if missing) in WAL mode so reads never wait on writes."""
        path = sqlite_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(path, isolation_level=None)
        reader = await aiosqlite.connect(path, isolation_level=None)
        for conn in (writer, reader):
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA busy_timeout=5000")
        return cls(writer, reader)

    async def write(self, work: Callable[[_SQLiteTx], Awaitable[T]]) -> T:
        """Run `work` in one IMMEDIATE transaction."""
        async with self._write_lock:
            try:
                try:
                    # BEGIN inside the try: cancelled while it runs in aiosqlite's
                    # thread, it still opens the transaction, which must be closed.
                    await self._writer.execute("BEGIN IMMEDIATE")
                    result = await work(_SQLiteTx(self._writer))
                    await self._writer.execute("COMMIT")
                    return result
                except BaseException:
                    # A task cancelled while COMMIT runs in aiosqlite's thread has nothing
                    # left to roll back (nor one whose BEGIN failed): the failing ROLLBACK
                    # must not replace (and so swallow) the original error.
                    with contextlib.suppress(aiosqlite.Error):
                        await self._writer.execute("ROLLBACK")
                    raise
            except aiosqlite.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    async def read_then_write(self, reads: Sequence[Statement], plan: Plan[T]) -> T:
        """The whole transaction in one trip to the writing connection's thread.

        Each trip back to the event loop while SQLite's only write lock is held waits
        behind whatever else the loop is doing (other requests' HTTP and parsing): done
        trip by trip, that waiting was most of the time a view held the lock.
        """
        async with self._write_lock:
            try:
                return await in_connection_thread(self._writer, _read_then_write, (reads, plan))
            except aiosqlite.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_SQLiteTx]:
        """The reading connection; WAL gives each query the latest commit."""
        try:
            yield _SQLiteTx(self._reader)
        except aiosqlite.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        await self._reader.close()
