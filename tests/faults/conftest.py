"""Fixtures of the fault tests: a private MariaDB, started per test, always stopped (the
private Redis, hub processes and HTTP session are in tests/conftest.py)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import PrivateMariaDB, install_mariadb_datadir


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
