"""Wall-clock time as the store records it."""
from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Current UTC time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def legacy_date(ms: int | None) -> str | None:
    """The old backend's date format, "YYYY-MM-DD HH:MM:SS" in UTC."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
