"""Wall-clock time as the store records it."""
from __future__ import annotations

import time
from functools import lru_cache


def now_ms() -> int:
    """Current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def legacy_date(ms: int | None) -> str | None:
    """The old backend's date format, "YYYY-MM-DD HH:MM:SS" in UTC."""
    if ms is None:
        return None
    return _legacy_date_of_second(ms // 1000)


# A /minimap formats one date per tile (331 at radius 10), and the tiles of one upload
# share a second: formatting was 6% of a MariaDB /minimap's CPU before this cache.
@lru_cache(maxsize=4096)
def _legacy_date_of_second(second: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
