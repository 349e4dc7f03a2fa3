"""SQL that differs between MariaDB and SQLite; everything else is shared."""
from __future__ import annotations

from collections.abc import Sequence


class _Dialect:
    """Multi-row upserts written once; subclasses say how their SQL spells the parts."""

    name = ""
    placeholder = "%s"

    def sql(self, text: str) -> str:
        """Adapt a statement written with `%s` placeholders."""
        return text if self.placeholder == "%s" else text.replace("%s", self.placeholder)

    def on_conflict(self, key: Sequence[str]) -> str:
        """The clause that turns an INSERT into an update of the existing row."""
        raise NotImplementedError

    def new_value(self, column: str) -> str:
        """How an update clause names the value the INSERT tried to write."""
        raise NotImplementedError

    def _insert(self, table: str, columns: Sequence[str], rows: int) -> str:
        row = "(" + ", ".join([self.placeholder] * len(columns)) + ")"
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"

    def upsert(self, table: str, columns: Sequence[str], key: Sequence[str],
               update: Sequence[str], rows: int, *, keep_known: bool = False) -> str:
        """A multi-row insert updating `update` columns where the key exists.

        With `keep_known`, a NULL in the new row keeps the stored value (profile and
        group pages do not carry every field).
        """
        assignments = ", ".join(
            f"{c} = COALESCE({self.new_value(c)}, {c})" if keep_known
            else f"{c} = {self.new_value(c)}"
            for c in update
        )
        return f"{self._insert(table, columns, rows)} {self.on_conflict(key)} {assignments}"

    def increment(self, table: str, columns: Sequence[str], key: Sequence[str],
                  counter: str) -> str:
        """Insert one row, or add one to `counter` of the existing row."""
        return (f"{self._insert(table, columns, 1)} {self.on_conflict(key)} "
                f"{counter} = {counter} + 1")


class MySQLDialect(_Dialect):
    """MariaDB / MySQL: `%s` placeholders, ON DUPLICATE KEY UPDATE."""

    name = "mysql"

    def on_conflict(self, key: Sequence[str]) -> str:
        return "ON DUPLICATE KEY UPDATE"

    def new_value(self, column: str) -> str:
        return f"VALUES({column})"


class SQLiteDialect(_Dialect):
    """SQLite: `?` placeholders, ON CONFLICT DO UPDATE."""

    name = "sqlite"
    placeholder = "?"

    def on_conflict(self, key: Sequence[str]) -> str:
        return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET"

    def new_value(self, column: str) -> str:
        return f"excluded.{column}"
