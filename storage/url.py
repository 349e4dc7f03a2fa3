"""`DatabaseUrl`: the one parser of `NACRITAN_DB`, used by serve, migrate, backup, restore and tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

MYSQL_SCHEMES = ("mysql", "mariadb")


class DatabaseUrlError(ValueError):
    """The text is not a database URL the hub can use; the message says why and gives examples."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed, validated database URL: which backend, and where."""

    # The URL as given (password included): never logged; `str()` is the safe form.
    text: str = field(repr=False)
    backend: Literal["mysql", "sqlite"]
    # SQLite: the file (relative to the working directory unless absolute).
    path: str = ""
    # MariaDB / MySQL.
    host: str = ""
    port: int = 3306
    user: str = ""
    password: str = field(default="", repr=False)
    database: str = ""

    @classmethod
    def parse(cls, text: str | DatabaseUrl) -> DatabaseUrl:
        """Parse `sqlite:///file.db`, `sqlite:////abs/file.db` or `mysql://u:p@host:port/db`."""
        if isinstance(text, DatabaseUrl):
            return text
        if "://" not in text:
            raise DatabaseUrlError("no scheme (sqlite:/// or mysql://)")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            # urlsplit's own message may quote part of a password that holds `/`, `?` or
            # `#` (it then reads the rest as host:port): say what to do instead.
            raise DatabaseUrlError("malformed host:port; percent-encode any of / ? # @ : "
                                   "in the user or password") from None
        scheme = parts.scheme.lower()
        if scheme == "sqlite":
            if parts.netloc:
                raise DatabaseUrlError(
                    f"sqlite URLs have three slashes before a relative path "
                    f"(sqlite:///{parts.netloc}{parts.path}) and four before an absolute one")
            path = unquote(parts.path[1:])
            if not path or path.endswith("/"):
                raise DatabaseUrlError("names no file")
            return cls(text=text, backend="sqlite", path=path)
        if scheme in MYSQL_SCHEMES:
            database = unquote(parts.path.strip("/"))
            if not database or "/" in database:
                raise DatabaseUrlError("names no database (mysql://user:pass@host:3306/DATABASE)")
            if not parts.hostname:
                raise DatabaseUrlError("names no host")
            return cls(text=text, backend="mysql", host=parts.hostname, port=port or 3306,
                       user=unquote(parts.username or "root"),
                       password=unquote(parts.password or ""), database=database)
        raise DatabaseUrlError(f"unsupported scheme {parts.scheme!r} (sqlite:/// or mysql://)")

    def mysql_params(self) -> dict[str, Any]:
        """aiomysql / PyMySQL connect() arguments."""
        return {"host": self.host, "port": self.port, "user": self.user,
                "password": self.password, "db": self.database}

    @property
    def yoyo_url(self) -> str:
        """The same database in yoyo-migrations' spelling."""
        if self.backend == "sqlite":
            return self.text
        return "mysql://" + self.text.split("://", 1)[1]

    def __str__(self) -> str:
        # Never the password: this is what logs and error messages show.
        if self.backend == "sqlite":
            return f"sqlite:///{self.path}"
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"
