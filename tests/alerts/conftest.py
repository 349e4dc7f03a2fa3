"""Alert fixtures: the Discord stand-in, fast alert settings, the real app."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hub.settings import Settings
from tests.alerts.kit import FakeDiscord

PUBLIC_URL = "https://hub.nacritan.test"


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    server = await FakeDiscord().start()
    yield server
    await server.close()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Alert rounds every 0.1 s and retries from 0.2 s, so delivery tests take seconds."""
    return Settings(db=db_url, token_cache_seconds=0.0, public_url=PUBLIC_URL,
                    alerts_interval=0.1, alerts_retry_seconds=0.2)
