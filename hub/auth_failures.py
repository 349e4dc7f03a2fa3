"""Failed authentications per client address, so that guessing tokens is not free."""
from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0
# Addresses remembered at once; the least recently failing ones are forgotten first,
# so a flood from many addresses costs bounded memory.
MAX_ADDRESSES = 50_000


class AuthFailures:
    """A sliding minute of failures per address; over `per_minute`, the address waits."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str | None) -> int | None:
        """Whole seconds this address must wait before authenticating again, or None."""
        if not self._limit or address is None:
            return None
        failures = self._failures.get(address)
        if failures is None:
            return None
        now = self._clock()
        self._expire(failures, now)
        if len(failures) < self._limit:
            if not failures:
                del self._failures[address]
            return None
        # At most `limit` failures are kept: the address may retry once the oldest expires.
        return max(1, math.ceil(failures[0] + WINDOW_SECONDS - now))

    def record(self, address: str | None) -> None:
        """One more failure from this address."""
        if not self._limit or address is None:
            return
        now = self._clock()
        failures = self._failures.get(address)
        if failures is None:
            failures = self._failures[address] = deque()
            if len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        self._expire(failures, now)
        failures.append(now)
        # More than the limit is never needed to know when the address may retry.
        while len(failures) > self._limit:
            failures.popleft()

    @staticmethod
    def _expire(failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - WINDOW_SECONDS:
            failures.popleft()
