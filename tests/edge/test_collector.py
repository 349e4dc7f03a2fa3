"""`hub serve` tunes the cyclic garbage collector before serving (hub/server.py)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from hub.server import COLLECTOR_THRESHOLDS
from tests.support.servers import HubProcess


async def test_the_served_hub_runs_with_the_tuned_collector_thresholds(
        hub_factory: Callable[..., Awaitable[HubProcess]], sqlite_url: str) -> None:
    hub = await hub_factory(sqlite_url)
    # The hub logs what gc.get_threshold() reads in its own process once it has set them.
    tuned = "/".join(map(str, COLLECTOR_THRESHOLDS))
    assert f"garbage collector thresholds {tuned}" in hub.log()
    assert COLLECTOR_THRESHOLDS[0] > 700, "the first threshold is CPython's default"
