"""Storage: one interface (`Store`) over MariaDB (aiomysql) or SQLite (aiosqlite)."""
from __future__ import annotations

from storage.errors import (
    CommitUncertain,
    DuplicateUpload,
    IdempotencyKeyReused,
    StoreError,
    StoreUnavailable,
    TokenNotFound,
)
from storage.mysql import DEFAULT_TIMEOUT_SECONDS, MySQLBackend
from storage.schema import backend_name, migrate, migration_ids
from storage.sqlite import SQLiteBackend
from storage.store import Store


async def open_store(url: str, *, query_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Store:
    """A store on the database the URL names; no connection is needed to succeed.

    `query_timeout` bounds each MariaDB transaction attempt and read (SQLite has its busy
    timeout instead).
    """
    if backend_name(url) == "mysql":
        return Store(await MySQLBackend.open(url, query_timeout=query_timeout))
    return Store(await SQLiteBackend.open(url))


__all__ = [
    "CommitUncertain",
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
