"""The whole database as plain rows, read outside the hub: to prove what was (not) stored.

Every table, every row, ordered by primary key, through a plain sqlite3 / PyMySQL
connection that shares nothing with the hub.
"""
from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pymysql

from storage.mysql import mysql_params
from storage.sqlite import sqlite_path

Dump = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def _dump_sqlite(url: str) -> Dump:
    conn = sqlite3.connect(sqlite_path(url))
    try:
        dump: Dump = {}
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for name in names:
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            columns = [row[1] for row in info]
            pk = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0]
            order = ", ".join(f'"{c}"' for c in (pk or columns))
            rows = conn.execute(f'SELECT * FROM "{name}" ORDER BY {order}').fetchall()
            dump[name] = (columns, rows)
        return dump
    finally:
        conn.close()


def _dump_mysql(url: str) -> Dump:
    params = mysql_params(url)
    conn = _plain_connection(url)
    try:
        dump: Dump = {}
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = %s AND table_type = 'BASE TABLE' "
                        "ORDER BY table_name", (params["db"],))
            names = [r[0] for r in cur.fetchall()]
            for name in names:
                cur.execute("SELECT column_name FROM information_schema.columns "
                            "WHERE table_schema = %s AND table_name = %s "
                            "ORDER BY ordinal_position", (params["db"], name))
                columns = [r[0] for r in cur.fetchall()]
                cur.execute("SELECT column_name FROM information_schema.statistics "
                            "WHERE table_schema = %s AND table_name = %s "
                            "AND index_name = 'PRIMARY' ORDER BY seq_in_index",
                            (params["db"], name))
                pk = [r[0] for r in cur.fetchall()]
                order = ", ".join(f"`{c}`" for c in (pk or columns))
                cur.execute(f"SELECT * FROM `{name}` ORDER BY {order}")
                dump[name] = (columns, list(cur.fetchall()))
        return dump
    finally:
        conn.close()


def _plain_connection(url: str) -> Any:
    if url.startswith("sqlite"):
        return sqlite3.connect(sqlite_path(url))
    params = mysql_params(url)
    return pymysql.connect(host=params["host"], port=params["port"], user=params["user"],
                           password=params["password"], database=params["db"],
                           charset="utf8mb4", connect_timeout=5, autocommit=True)


def empty_database(url: str) -> None:
    """Delete every row of the hub's tables, keeping the schema and its migration log."""
    conn = _plain_connection(url)
    try:
        cur = conn.cursor()
        tables = [name for name in dump_database(url)
                  if "yoyo" not in name and not name.startswith("sqlite_")]
        for name in tables:
            cur.execute(f"DELETE FROM {name}")
        conn.commit()
    finally:
        conn.close()


def dump_database(url: str) -> Dump:
    """Every table's columns and rows, ordered by primary key, read outside the hub."""
    return _dump_sqlite(url) if url.startswith("sqlite") else _dump_mysql(url)


async def snapshot(url: str) -> Dump:
    """`dump_database` without blocking the event loop the hub runs on."""
    return await asyncio.to_thread(dump_database, url)


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query run outside the hub, through a plain driver."""
    conn = _plain_connection(db_url)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()
