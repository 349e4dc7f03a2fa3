"""The MariaDB / MySQL backend on an aiomysql pool."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiomysql
import pymysql
from pymysql.constants import CLIENT

from storage.backend import Dialect, Plan, Row, Statement
from storage.dialects import MySQLDialect
from storage.errors import CommitUncertain, StoreError, StoreUnavailable
from storage.url import DatabaseUrl, DatabaseUrlError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Deadlock and lock-wait timeout: the transaction was rolled back and can be rerun.
_RETRYABLE = {1213, 1205}
_WRITE_ATTEMPTS = 5
# How long a request may wait for a pooled connection before the database counts as
# unavailable. aiomysql wakes no queued request when it drops a broken connection, and
# its handshake has no timeout: without this bound, requests queued for a connection
# when the database dies would wait forever instead of answering 503.
ACQUIRE_TIMEOUT_SECONDS = 5.0
_CLOSE_GRACE_SECONDS = 5.0
# Default bound on one transaction attempt or one read: a server that keeps the
# connection open but stops answering (a dead node, a partition) must give 503s.
DEFAULT_TIMEOUT_SECONDS = 15.0


def mysql_params(url: str | DatabaseUrl) -> dict[str, Any]:
    """aiomysql connect() arguments from `mysql://user:pass@host:port/dbname`."""
    parsed = DatabaseUrl.parse(url)
    if parsed.backend != "mysql":
        raise DatabaseUrlError(f"not a MariaDB URL: {parsed}")
    return parsed.mysql_params()


class _MySQLTx:
    def __init__(self, cursor: aiomysql.Cursor) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._cursor.execute(sql, params or None)
        return int(self._cursor.rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        await self._cursor.execute(sql, params or None)
        return list(await self._cursor.fetchall())

    async def run_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        # One round trip: the statements, interpolated exactly as `execute` would, go as
        # one multi-statement query and come back as one result set each. MariaDB stops
        # at the first failing statement, whose error is raised here.
        if not statements:
            return []
        cursor = self._cursor
        await cursor.execute(";\n".join(cursor.mogrify(sql, params or None)
                                         for sql, params in statements))
        results = [list(await cursor.fetchall())]
        for _ in statements[1:]:
            await cursor.nextset()
            results.append(list(await cursor.fetchall()))
        return results


class MySQLBackend:
    """Owns one aiomysql pool; write sessions run READ COMMITTED to avoid gap locks."""

    dialect: Dialect = MySQLDialect()

    def __init__(self, pool: aiomysql.Pool, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._pool = pool
        # aiomysql's pool lets a caller that arrives while a released connection's
        # waiter is being woken take that connection first: under a burst, a few
        # callers lost every race until the acquire timeout (503). Turns at this
        # semaphore (first come, first served) decide who gets a connection instead.
        self._turns = asyncio.Semaphore(pool.maxsize)
        self._timeout = timeout
        self._closed = False

    @classmethod
    async def open(cls, url: str | DatabaseUrl, *, maxsize: int = 10,
                   query_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> MySQLBackend:
        """Create the pool lazily: no connection is made until the first query."""
        pool = await aiomysql.create_pool(
            minsize=0,
            maxsize=maxsize,
            autocommit=True,
            charset="utf8mb4",
            connect_timeout=3,
            pool_recycle=1800,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            # For `run_batch`: a view's transaction is two round trips instead of ~15,
            # which is most of the time the guild's feed row stays locked. Every value
            # still goes through PyMySQL's escaping; no SQL is built from input.
            client_flag=CLIENT.MULTI_STATEMENTS,
            **mysql_params(url),
        )
        return cls(pool, query_timeout)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiomysql.Connection]:
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT_SECONDS):
                await self._turns.acquire()
                try:
                    conn = await self._pool.acquire()
                except BaseException:
                    self._turns.release()
                    raise
        except (TimeoutError, pymysql.err.Error, OSError) as exc:
            raise StoreUnavailable(f"database unreachable: {exc}") from exc
        try:
            yield conn
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError,
                asyncio.CancelledError):
            # A broken connection, or one cut off mid-query (its state is unknown),
            # must not go back to the pool.
            conn.close()
            raise
        finally:
            self._pool.release(conn)
            self._turns.release()

    async def write(self, work: Callable[[_MySQLTx], Awaitable[T]]) -> T:
        """Run `work` in one transaction, rerunning it after a deadlock (bounded)."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            # Once COMMIT is sent, a failure to hear back says nothing about the outcome:
            # the server may commit it and only the answer was lost.
            committing = False
            try:
                async with asyncio.timeout(self._timeout), \
                        self._connection() as conn:
                    await conn.begin()
                    try:
                        async with conn.cursor() as cursor:
                            result = await work(_MySQLTx(cursor))
                        committing = True
                        await conn.commit()
                        return result
                    except asyncio.CancelledError:
                        # Timed out or cancelled: a rollback could wait on the same
                        # stalled server; closing the connection rolls back instead.
                        raise
                    except BaseException:
                        if not conn.closed:
                            try:
                                await conn.rollback()
                            except pymysql.err.Error:
                                conn.close()
                        raise
            except TimeoutError as exc:
                if committing:
                    raise CommitUncertain("database did not confirm the commit in time") from exc
                raise StoreUnavailable("database did not answer in time") from exc
            except pymysql.err.Error as exc:
                if committing and isinstance(exc, (pymysql.err.OperationalError,
                                                   pymysql.err.InterfaceError)):
                    raise CommitUncertain(f"connection lost during commit: {exc}") from exc
                code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
                if code in _RETRYABLE and attempt < _WRITE_ATTEMPTS:
                    log.info("transaction rolled back (%s), retry %d", code, attempt)
                    await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)
                    continue
                raise _translate(exc) from exc
        raise AssertionError("unreachable")

    async def read_then_write(self, reads: Sequence[Statement], plan: Plan[T]) -> T:
        """The reads in one round trip, the writes in another (see `Backend`)."""

        async def work(tx: _MySQLTx) -> T:
            writes, result = plan(await tx.run_batch(reads))
            await tx.run_batch(writes)
            return result

        return await self.write(work)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_MySQLTx]:
        """A pooled connection in autocommit: each query sees the latest commits."""
        try:
            async with asyncio.timeout(self._timeout), self._connection() as conn, \
                    conn.cursor() as cursor:
                yield _MySQLTx(cursor)
        except TimeoutError as exc:
            raise StoreUnavailable("database did not answer in time") from exc
        except pymysql.err.Error as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        """Close the pool; connections still checked out after a grace period are cut."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        try:
            await asyncio.wait_for(self._pool.wait_closed(), _CLOSE_GRACE_SECONDS)
        except TimeoutError:
            # A task cancelled while holding a connection must not hang shutdown.
            log.warning("closing the pool with connections still in use")
            self._pool.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pool.wait_closed(), _CLOSE_GRACE_SECONDS)


# Server gone, unreachable, shutting down, out of connections, or still locked after
# the retries: the same request can succeed later. Anything else is a real failure.
_UNAVAILABLE = {1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055}


def _translate(exc: pymysql.err.Error) -> StoreError:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if isinstance(exc, pymysql.err.InterfaceError) or code in _UNAVAILABLE:
        return StoreUnavailable(f"database unavailable: {exc}")
    return StoreError(f"database error: {exc}")
