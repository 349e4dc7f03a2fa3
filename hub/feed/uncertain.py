"""Uploads whose COMMIT went unanswered: their guild's feed head, read once the database answers."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from hub.feed.pump import STORE_RETRY_SECONDS
from hub.feed.subscription import Position
from storage import Store, StoreError


class UncertainCommits:
    """Guilds with an upload whose COMMIT went unanswered, read again once the database
    answers, so that an upload that did commit is delivered (and announced to the other
    replicas) right away instead of at the next routine poll.

    The head is read a few times, STORE_RETRY_SECONDS apart: a server that resumes after
    a stall may apply the orphaned COMMIT just after it answers the first read.
    """

    READS = 3

    def __init__(self, store: Store, on_head: Callable[[int, Position], None]) -> None:
        self._store = store
        self._on_head = on_head
        self._unsettled: set[int] = set()
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def add(self, guild_id: int) -> None:
        """An upload of this guild may or may not have committed."""
        self._unsettled.add(guild_id)
        if guild_id not in self._tasks:
            self._tasks[guild_id] = asyncio.create_task(
                self._settle(guild_id), name=f"feed-settle-{guild_id}")

    async def _settle(self, guild_id: int) -> None:
        try:
            while guild_id in self._unsettled:
                self._unsettled.discard(guild_id)
                reads = 0
                while reads < self.READS:
                    try:
                        head = Position(*await self._store.feed_head(guild_id))
                    except StoreError:
                        await asyncio.sleep(STORE_RETRY_SECONDS)
                        continue
                    self._on_head(guild_id, head)
                    reads += 1
                    if reads < self.READS:
                        await asyncio.sleep(STORE_RETRY_SECONDS)
        finally:
            self._tasks.pop(guild_id, None)

    async def close(self) -> None:
        """Stop every pending read."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

