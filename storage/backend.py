"""What the store needs from a database: transactions, reads, and its SQL dialect."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

Row = tuple[Any, ...]
# One SQL statement with `%s` placeholders (already adapted to the dialect) and its values.
Statement = tuple[str, Sequence[Any]]
T = TypeVar("T")
# Given the rows of each read: the statements to write, and what the transaction returns.
Plan = Callable[[list[list[Row]]], tuple[Sequence[Statement], T]]


class Tx(Protocol):
    """A connection inside a transaction (or, for reads, in autocommit)."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement and return the number of rows it changed."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query and return its rows."""
        ...

    async def run_batch(self, statements: Sequence[Statement]) -> list[list[Row]]:
        """Run statements in order, in one round trip where the database allows it.

        Returns each statement's rows (an empty list for statements without rows).
        A failing statement raises, and the statements after it are not run.
        """
        ...


class Dialect(Protocol):
    """The few places where MariaDB and SQLite SQL differ."""

    name: str

    def sql(self, text: str) -> str:
        """Adapt a statement written with `%s` placeholders."""
        ...

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               update: Sequence[str], rows: int, *, keep_known: bool = False) -> str:
        """A multi-row insert updating `update` columns where the key exists."""
        ...

    def increment(self, table: str, columns: Sequence[str], key: Sequence[str],
                  counter: str) -> str:
        """Insert one row, or add one to `counter` of the existing row."""
        ...


class Backend(Protocol):
    """A database the store can use: MariaDB through aiomysql, or an SQLite file."""

    dialect: Dialect

    async def write(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run `work(tx)` as one transaction: committed if it returns, rolled back if not."""
        ...

    async def read_then_write(self, reads: Sequence[Statement], plan: Plan[T]) -> T:
        """One transaction: run `reads`, hand their rows to `plan`, run the writes it returns.

        `plan` is plain computation (no I/O, no await): a backend may run it away from
        the event loop, and more than once when the transaction is retried.
        """
        ...

    def read(self) -> AbstractAsyncContextManager[Any]:
        """A connection for reads that see everything committed so far."""
        ...

    async def close(self) -> None:
        """Release every connection; calling it twice is harmless."""
        ...

