"""Storage: one interface (`Store`) over MariaDB (aiomysql) or SQLite (aiosqlite)."""
from __future__ import annotations

from storage.errors import StoreError, StoreUnavailable, TokenNotFound
from storage.mysql import MySQLBackend
from storage.schema import backend_name, migrate, migration_ids
from storage.sqlite import SQLiteBackend
from storage.store import Store


async def open_store(url: str) -> Store:
    """A store on the database the URL names; no connection is needed to succeed."""
    if backend_name(url) == "mysql":
        return Store(await MySQLBackend.open(url))
    return Store(await SQLiteBackend.open(url))


__all__ = [
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TokenNotFound",
    "migrate",
    "migration_ids",
    "open_store",
]
