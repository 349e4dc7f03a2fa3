"""Storage: one interface (`Store`) over MariaDB (aiomysql) or SQLite (stdlib sqlite3 in threads)."""
from __future__ import annotations

from storage.errors import (
    AmbiguousToken,
    CommitUncertain,
    DatabaseUnusable,
    DuplicateUpload,
    IdempotencyKeyReused,
    StoreError,
    StoreUnavailable,
    TokenNotFound,
)
from storage.mysql import DEFAULT_TIMEOUT_SECONDS, MySQLBackend
from storage.schema import migrate, migration_ids
from storage.sqlite import SQLiteBackend
from storage.store import Store
from storage.url import DatabaseUrl, DatabaseUrlError


async def open_store(url: str | DatabaseUrl, *, query_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Store:
    """A store on the database the URL names; no connection is needed to succeed.

    `query_timeout` bounds each MariaDB transaction attempt and read (SQLite has its busy
    timeout instead).
    """
    parsed = DatabaseUrl.parse(url)
    if parsed.backend == "mysql":
        return Store(await MySQLBackend.open(parsed, query_timeout=query_timeout))
    return Store(await SQLiteBackend.open(parsed))


__all__ = [
    "AmbiguousToken",
    "CommitUncertain",
    "DatabaseUnusable",
    "DatabaseUrl",
    "DatabaseUrlError",
    "DuplicateUpload",
    "IdempotencyKeyReused",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TokenNotFound",
    "migrate",
    "migration_ids",
    "open_store",
]
