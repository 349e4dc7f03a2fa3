"""SQL that differs between MariaDB and SQLite; everything else is shared."""
from __future__ import annotations

from collections.abc import Sequence


def _values(columns: int, rows: int, placeholder: str) -> str:
    row = "(" + ", ".join([placeholder] * columns) + ")"
    return ", ".join([row] * rows)


class MySQLDialect:
    """MariaDB / MySQL: `%s` placeholders, ON DUPLICATE KEY UPDATE, row locks."""

    name = "mysql"
    lock_suffix = " FOR UPDATE"

    def sql(self, text: str) -> str:
        return text

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               update: Sequence[str], rows: int, *, keep_known: bool = False) -> str:
        assignments = ", ".join(
            f"{c} = COALESCE(VALUES({c}), {c})" if keep_known else f"{c} = VALUES({c})"
            for c in update
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"{_values(len(columns), rows, '%s')} ON DUPLICATE KEY UPDATE {assignments}"
        )

    def increment(self, table: str, columns: Sequence[str], key: Sequence[str],
                  counter: str) -> str:
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"{_values(len(columns), 1, '%s')} "
            f"ON DUPLICATE KEY UPDATE {counter} = {counter} + 1"
        )


class SQLiteDialect:
    """SQLite: `?` placeholders, ON CONFLICT DO UPDATE; one writer needs no row locks."""

    name = "sqlite"
    lock_suffix = ""

    def sql(self, text: str) -> str:
        return text.replace("%s", "?")

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               update: Sequence[str], rows: int, *, keep_known: bool = False) -> str:
        assignments = ", ".join(
            f"{c} = COALESCE(excluded.{c}, {c})" if keep_known else f"{c} = excluded.{c}"
            for c in update
        )
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"{_values(len(columns), rows, '?')} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {assignments}"
        )

    def increment(self, table: str, columns: Sequence[str], key: Sequence[str],
                  counter: str) -> str:
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            f"{_values(len(columns), 1, '?')} "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {counter} = {counter} + 1"
        )
