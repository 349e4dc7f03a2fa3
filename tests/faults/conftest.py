"""Fixtures of the fault tests: private servers, started per test, always stopped."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.faults.servers import HubProcess, PrivateMariaDB, PrivateRedis, install_mariadb_datadir


@pytest.fixture(scope="session")
def mariadb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One freshly installed data directory, copied by every private MariaDB."""
    datadir = tmp_path_factory.mktemp("mariadb-template") / "data"
    install_mariadb_datadir(datadir)
    return datadir


@pytest.fixture
def mariadb(mariadb_template: Path, tmp_path: Path) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(mariadb_template, tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        server.resume()
    server.kill()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts; each is stopped (killed if need be) afterwards."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        if hub.proc is not None:
            hub.proc.kill()
            hub.proc.wait()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s
