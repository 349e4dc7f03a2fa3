"""Fixtures for the deployment tests: real MariaDB databases, real tools, real processes."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pymysql
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MYSQL_SERVER = os.environ.get("NACRITAN_TEST_MYSQL", "mysql://root@127.0.0.1:3306")


def tool(name: str) -> str:
    """A command-line tool from the venv (PyPI wheels) or the system (Debian packages)."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run .ci/deploy-checks.sh (or see its apt/pip list)")
    return found


def admin(statement: str, database: str | None = None) -> list[tuple[object, ...]]:
    """Run one statement as the server's admin user and return its rows."""
    parts = urlsplit(MYSQL_SERVER)
    connection = pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        autocommit=True,
        connect_timeout=5,
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        connection.close()


@dataclass(frozen=True)
class Database:
    """A uniquely named MariaDB database and a password-protected user that owns it."""

    name: str
    user: str
    password: str

    def url(self, password: str | None = None) -> str:
        """NACRITAN_DB for this database as its user (optionally with another password)."""
        parts = urlsplit(MYSQL_SERVER)
        secret = quote(self.password if password is None else password, safe="")
        host = f"{parts.hostname or '127.0.0.1'}:{parts.port or 3306}"
        return f"mysql://{self.user}:{secret}@{host}/{self.name}"


@pytest.fixture
def make_database() -> Iterator[Callable[[], Database]]:
    """`make_database()` creates a fresh empty database and user; all are dropped afterwards."""
    created: list[Database] = []

    def make() -> Database:
        suffix = secrets.token_hex(5)
        # Quotes, a backslash, URL and option-file metacharacters: the password must
        # survive URL parsing and the 0600 defaults file unharmed.
        database = Database(f"nacritan_t_{suffix}", f"nt_{suffix}", f"p'a\"s\\s:@/#{suffix}")
        admin(f"CREATE DATABASE {database.name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        escaped = database.password.replace("\\", "\\\\").replace("'", "\\'")
        admin(f"CREATE USER '{database.user}'@'%' IDENTIFIED BY '{escaped}'")
        admin(f"GRANT ALL PRIVILEGES ON {database.name}.* TO '{database.user}'@'%'")
        created.append(database)
        return database

    yield make
    for database in created:
        admin(f"DROP DATABASE IF EXISTS {database.name}")
        admin(f"DROP USER IF EXISTS '{database.user}'@'%'")


def hub_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment for a `python -m hub` child: this venv, this source tree, one DB."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NACRITAN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONDONTWRITEBYTECODE="1",
        NACRITAN_DB=db_url,
        NACRITAN_LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def run_hub(args: list[str], db_url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m hub ARGS` to completion, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        env=hub_env(db_url, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_until_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Poll a loopback port until it accepts, failing early if `process` died."""
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} never listened on port {port}")


def wait_for_http(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    """Poll an HTTP URL until it answers 200."""
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} never answered 200 on {url}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a child we started, then SIGKILL it if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
