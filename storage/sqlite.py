"""The embedded SQLite backend: one writer thread, one reader thread, WAL.

Each connection lives in a thread of its own (`ConnectionThread`), which runs whole
functions of the stdlib `sqlite3` connection: a view's entire transaction is one trip
there and back, as datasette's `Database` runs its writes, with no private API of any
dependency.
"""
from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from storage.backend import Dialect, Plan, Row, Statement
from storage.dialects import SQLiteDialect
from storage.errors import StoreError
from storage.url import DatabaseUrl, DatabaseUrlError

T = TypeVar("T")
_STOP = object()


class ConnectionThread:
    """One sqlite3 connection owned by one thread, which runs the functions it is given.

    sqlite3 connections must stay in the thread that uses them, and SQLite blocks: the
    event loop hands each function over and awaits a future the thread resolves. A
    caller cancelled meanwhile does not stop the function (it still runs to the end,
    in order), so a transaction is never left half-done by a cancellation.
    """

    def __init__(self, path: str, name: str) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closing = False
        self._ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, args=(path,),
                                        name=f"sqlite-{name}", daemon=True)
        self._thread.start()
        failure = self._ready.get()
        if failure is not None:
            raise failure

    def _serve(self, path: str) -> None:
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except BaseException as exc:
            self._ready.put(exc)
            return
        self._ready.put(None)
        try:
            while (job := self._jobs.get()) is not _STOP:
                fn, loop, future = job
                try:
                    result = fn(conn)
                except BaseException as exc:
                    loop.call_soon_threadsafe(_settle, future, None, exc)
                else:
                    loop.call_soon_threadsafe(_settle, future, result, None)
        finally:
            conn.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(connection)` in the connection's thread; its result or its exception."""
        if self._closing:
            raise StoreError("database connection closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, loop, future))
        return await future

    async def close(self) -> None:
        """Finish the queued functions, close the connection, end the thread (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._jobs.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def sqlite_path(url: str | DatabaseUrl) -> str:
    """The file of `sqlite:///relative.db` or `sqlite:////absolute/path.db`."""
    parsed = DatabaseUrl.parse(url)
    if parsed.backend != "sqlite":
        raise DatabaseUrlError(f"not an SQLite URL: {parsed}")
    return parsed.path


class _SQLiteTx:
    def __init__(self, conn: ConnectionThread) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._conn.run(lambda conn: conn.execute(sql, params).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        # One trip (execute and fetch together): the write lock is held across trips.
        return await self._conn.run(
            lambda conn: [tuple(row) for row in conn.execute(sql, params).fetchall()])

    async def run_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        return await self._conn.run(lambda conn: _run_statements(conn, statements))


def _run_statements(conn: sqlite3.Connection, statements: Sequence[Statement]) -> list[list[Row]]:
    # A failing statement raises here, so the ones after it never run.
    return [[tuple(row) for row in conn.execute(sql, params).fetchall()]
            for sql, params in statements]


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=5000")


def _read_then_write(conn: sqlite3.Connection, reads: Sequence[Statement], plan: Plan[T]) -> T:
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


class SQLiteBackend:
    """All writes go through one connection, one transaction at a time (BEGIN IMMEDIATE)."""

    dialect: Dialect = SQLiteDialect()

    def __init__(self, writer: ConnectionThread, reader: ConnectionThread) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, url: str | DatabaseUrl) -> SQLiteBackend:
        """Open the file (created if missing) in WAL mode so reads never wait on writes."""
        path = sqlite_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            writer = await loop.run_in_executor(None, ConnectionThread, path, "writer")
            reader = await loop.run_in_executor(None, ConnectionThread, path, "reader")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite file {path!r}: {exc}") from exc
        try:
            for conn in (writer, reader):
                await conn.run(_configure)
        except sqlite3.Error as exc:
            await writer.close()
            await reader.close()
            raise StoreError(f"cannot open the SQLite file {path!r}: {exc}") from exc
        return cls(writer, reader)

    async def write(self, work: Callable[[_SQLiteTx], Awaitable[T]]) -> T:
        """Run `work` in one IMMEDIATE transaction."""
        async with self._write_lock:
            try:
                tx = _SQLiteTx(self._writer)
                try:
                    # BEGIN inside the try: cancelled while it runs in the writer's
                    # thread, it still opens the transaction, which must be closed.
                    await tx.execute("BEGIN IMMEDIATE")
                    result = await work(tx)
                    await tx.execute("COMMIT")
                    return result
                except BaseException:
                    # A task cancelled while COMMIT runs in the writer's thread has nothing
                    # left to roll back (nor one whose BEGIN failed): the failing ROLLBACK
                    # must not replace (and so swallow) the original error. Queued after
                    # whatever the thread still runs, it ends the transaction in order.
                    # (StoreError: the store was closed meanwhile, which ends it too.)
                    with contextlib.suppress(sqlite3.Error, StoreError):
                        await tx.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    async def read_then_write(self, reads: Sequence[Statement], plan: Plan[T]) -> T:
        """The whole transaction in one trip to the writing connection's thread.

        Each trip back to the event loop while SQLite's only write lock is held waits
        behind whatever else the loop is doing (other requests' HTTP and parsing): done
        trip by trip, that waiting was most of the time a view held the lock.
        """
        async with self._write_lock:
            try:
                return await self._writer.run(lambda conn: _read_then_write(conn, reads, plan))
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_SQLiteTx]:
        """The reading connection; WAL gives each query the latest commit."""
        try:
            yield _SQLiteTx(self._reader)
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.close()
        await self._reader.close()
