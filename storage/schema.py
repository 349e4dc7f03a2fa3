"""Versioned schema migrations for both backends, applied with yoyo-migrations.

yoyo is synchronous (PyMySQL / sqlite3), so `migrate` runs in an executor; it takes a
lock table, so two replicas starting together apply each migration once.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

import pymysql
from yoyo import get_backend, read_migrations

from storage.mysql import mysql_params

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def backend_name(url: str) -> str:
    """`mysql` or `sqlite`, from the database URL."""
    scheme = url.split(":", 1)[0]
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    if scheme == "sqlite":
        return "sqlite"
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use mysql:// or sqlite:///")


def migration_ids(url: str) -> frozenset[str]:
    """Ids of every migration shipped for this backend (read from disk once)."""
    return _shipped_migrations(backend_name(url))


@functools.cache
def _shipped_migrations(backend: str) -> frozenset[str]:
    return frozenset(path.stem for path in (MIGRATIONS / backend).glob("*.sql"))


def _create_mysql_database(url: str) -> None:
    params = mysql_params(url)
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


def migrate_sync(url: str) -> list[str]:
    """Apply pending migrations; returns the ids applied."""
    name = backend_name(url)
    if name == "mysql":
        _create_mysql_database(url)
    yoyo_url = "mysql://" + url.split("://", 1)[1] if name == "mysql" else url
    backend = get_backend(yoyo_url)
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


async def migrate(url: str) -> list[str]:
    """Apply pending migrations without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, migrate_sync, url)
