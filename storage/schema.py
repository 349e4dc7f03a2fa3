"""Versioned schema migrations for both backends, applied with yoyo-migrations.

yoyo is synchronous (PyMySQL / sqlite3), so `migrate` runs in an executor; it takes a
lock table, so two replicas starting together apply each migration once.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from pathlib import Path

import pymysql
from yoyo import get_backend, read_migrations

from storage.errors import DatabaseUnusable, StoreUnavailable
from storage.url import DatabaseUrl

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def backend_name(url: str | DatabaseUrl) -> str:
    """`mysql` or `sqlite`, from the database URL."""
    return DatabaseUrl.parse(url).backend


def migration_ids(url: str | DatabaseUrl) -> frozenset[str]:
    """Ids of every migration shipped for this backend (read from disk once)."""
    return _shipped_migrations(backend_name(url))


@functools.cache
def _shipped_migrations(backend: str) -> frozenset[str]:
    return frozenset(path.stem for path in (MIGRATIONS / backend).glob("*.sql"))


def create_mysql_database(url: DatabaseUrl) -> None:
    """CREATE DATABASE IF NOT EXISTS, with the collation the schema expects."""
    params = url.mysql_params()
    database = params.pop("db")
    conn = pymysql.connect(connect_timeout=5, **params)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS `{database.replace('`', '``')}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            )
    finally:
        conn.close()


def migrate_sync(url: str | DatabaseUrl) -> list[str]:
    """Apply pending migrations; returns the ids applied."""
    parsed = DatabaseUrl.parse(url)
    name = parsed.backend
    if name == "mysql":
        create_mysql_database(parsed)
    backend = get_backend(parsed.yoyo_url)
    try:
        migrations = read_migrations(str(MIGRATIONS / name))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        applied = [m.id for m in pending]
    finally:
        backend.connection.close()
    if applied:
        log.info("applied migrations: %s", ", ".join(applied))
    return applied


# MariaDB errors that a configuration change alone can fix: access denied to the user or
# to the database. Anything else on connecting (refused, reset, timed out, too many
# connections, unknown host while DNS catches up) is an outage and worth waiting for.
_MYSQL_UNUSABLE = {1044, 1045, 1698}


async def migrate(url: str | DatabaseUrl) -> list[str]:
    """Apply pending migrations without blocking the event loop.

    Raises DatabaseUnusable when the database can never work as configured, and
    StoreUnavailable when it cannot be reached now.
    """
    parsed = DatabaseUrl.parse(url)
    try:
        return await asyncio.get_running_loop().run_in_executor(None, migrate_sync, parsed)
    except sqlite3.Error as exc:
        raise DatabaseUnusable(f"cannot use the SQLite file {parsed.path!r}: {exc}") from None
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in _MYSQL_UNUSABLE:
            raise DatabaseUnusable(f"MariaDB refused {parsed}: {exc.args[-1]}") from None
        raise StoreUnavailable(f"MariaDB at {parsed.host}:{parsed.port} unreachable: "
                               f"{exc.args[-1]}") from None
