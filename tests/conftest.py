"""Shared fixtures: a fresh real database per test (SQLite file or MariaDB), the real app."""
from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pymysql
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from storage import Store, migrate, open_store
from storage.model import Member
from storage.tokens import hash_token
from tests.support.dump import empty_database
from tests.support.servers import HubProcess, PrivateRedis

MYSQL_URL = os.environ.get("NACRITAN_TEST_MYSQL", "mysql://root@127.0.0.1:3306")
BACKENDS = ("sqlite", "mysql")


def _mysql_server() -> dict[str, object]:
    parts = urlsplit(MYSQL_URL)
    return {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
            "user": parts.username or "root", "password": parts.password or ""}


def _mysql_admin(statement: str) -> None:
    conn = pymysql.connect(connect_timeout=5, **_mysql_server())  # type: ignore[arg-type]
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session", autouse=True)
def _mariadb_reachable() -> None:
    """The suite needs MariaDB: say so plainly instead of skipping half of it."""
    try:
        _mysql_admin("SELECT 1")
    except pymysql.err.Error as exc:
        pytest.exit(f"MariaDB at {MYSQL_URL} is unreachable ({exc}); start it "
                    "(see .ci/run) or set NACRITAN_TEST_MYSQL", returncode=3)


def fresh_database_url(backend: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A URL to a database nobody else uses, and the function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}", lambda: None
    name = f"nacritan_t_{secrets.token_hex(6)}"
    _mysql_admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    return f"{MYSQL_URL.rstrip('/')}/{name}", lambda: _mysql_admin(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using the database runs once per backend."""
    return str(request.param)


@contextmanager
def migrated_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the current schema, dropped on exit."""
    url, drop = fresh_database_url(backend, tmp_path)
    try:
        asyncio.run(migrate(url))
        yield url
    finally:
        drop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated SQLite database."""
    with migrated_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def mysql_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated MariaDB database, dropped after the test."""
    with migrated_database("mysql", tmp_path) as url:
        yield url


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database, dropped after the test."""
    with migrated_database(backend, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def table_db_url(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database per backend for a whole table of cases (one test module).

    Creating, migrating and dropping a MariaDB database for each of the table's cases
    would cost most of the suite's time budget; each case instead starts from this
    database emptied of every row (`empty_database`), which is the same starting state.
    """
    with migrated_database(str(request.param), tmp_path_factory.mktemp("hostile")) as url:
        yield url


@pytest_asyncio.fixture
async def table_client(aiohttp_client: Callable[..., Awaitable[TestClient]],
                       table_db_url: str) -> TestClient:
    """A hub from the real factory on the emptied table database."""
    await asyncio.to_thread(empty_database, table_db_url)
    return await aiohttp_client(create_app(Settings(db=table_db_url, token_cache_seconds=0.0)))


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Test settings on the fresh database (defaults otherwise).

    No limit on failed authentications: tests that walk every route's 401 cases send
    dozens from one address (the limit has its own tests, in tests/auth).
    """
    return Settings(db=db_url, token_cache_seconds=0.0, auth_failures_per_minute=0)


@pytest.fixture
def app(settings: Settings) -> web.Application:
    """The real application from the real factory."""
    return create_app(settings)


@pytest_asyncio.fixture
async def client(aiohttp_client: Callable[..., Awaitable[TestClient]],
                 app: web.Application) -> TestClient:
    """An HTTP client talking to the app over a real socket."""
    return await aiohttp_client(app)


@pytest_asyncio.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A second store on the test database, for setting up and checking behind the API."""
    s = await open_store(db_url)
    yield s
    await s.close()


TokenMaker = Callable[..., Awaitable[str]]


@pytest_asyncio.fixture
async def make_token(store: Store) -> TokenMaker:
    """`await make_token(guild_id, name, player_id=None)` returns a fresh live token."""

    async def make(guild_id: int, name: str, player_id: int | None = None) -> str:
        return await store.add_token(guild_id, name, player_id, 1)

    return make


def auth(token: str, scheme: str = "Bearer") -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"{scheme} {token}"}


async def member_of(store: Store, token: str) -> Member:
    """The member a token belongs to (fails the test if it has none)."""
    member = await store.find_member_by_hash(hash_token(token))
    assert member is not None
    return member


async def add_token(db_url: str, name: str = "Alice", guild_id: int = 17,
                    player_id: int | None = None) -> str:
    """A fresh live token in a database no fixture holds open (a hub process's)."""
    store = await open_store(db_url)
    try:
        return await store.add_token(guild_id, name, player_id, 1)
    finally:
        await store.close()


# -- processes of the test's own ---------------------------------------------------------


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, which it may hang, kill and restart."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts; each is killed afterwards if still running."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.kill()


@pytest_asyncio.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[HubProcess]]]:
    """`await hub_factory(db_url, **env)` starts a hub at DEBUG and waits until it is ready;
    every hub started is killed after the test."""
    started: list[HubProcess] = []

    async def start(db_url: str, **env: str) -> HubProcess:
        hub = HubProcess({"NACRITAN_DB": db_url, "NACRITAN_LOG_LEVEL": "DEBUG",
                          "NACRITAN_TOKEN_CACHE_SECONDS": "0", **env},
                         tmp_path / f"hub{len(started)}.log")
        started.append(hub)
        hub.start()
        await hub.wait_ready()
        return hub

    yield start
    for hub in started:
        hub.kill()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
