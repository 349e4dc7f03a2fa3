"""Snapshots of the live feed, read and sent in bounded parts.

A guild's whole state can be tens of megabytes (a year of sightings). Read and encoded
whole, eight subscribers at once held hundreds of megabytes and the event loop for
seconds. Here the state is read page by page (at most PAGE_ROWS rows of one kind), each
page encoded into at most MAX_FRAME_BYTES, and each frame queued only when the socket's
queue has room (`send_paced`), so a snapshot holds about one page and half the socket's
byte budget in memory however large the guild is. A limited number of pages are built
at once per process (NACRITAN_SNAPSHOT_BUILDS), away from the event loop for the
encoding, and snapshots that start at the same feed position share their pages. A state that fits in one page of each kind and one frame is still sent as the
single `snapshot` message it always was.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from hub import feed_protocol as proto
from storage import Store
from storage.model import Area, State
from storage.store import STATE_KINDS, PageCursor

if TYPE_CHECKING:
    from hub.feed import Subscription

log = logging.getLogger(__name__)

# Rows of one kind per page: typical rows encode to 100-150 bytes (a frame of about
# 60 KiB); a page of unusually long rows is split to stay under MAX_FRAME_BYTES. The
# driver decodes a page without yielding the event loop: small pages keep other
# requests' waits short.
PAGE_ROWS = 500
# No websocket frame of a snapshot is larger (a page that would be is split).
MAX_FRAME_BYTES = 1024 * 1024
# Pages kept for snapshots starting at the same feed position.
CACHED_PAGES = 64

_LISTS = {"tile": "tiles", "player": "players", "monster": "monsters", "place": "places",
          "resource": "resources", "object": "objects"}


def _state(now: int, area: Area, seq: int, epoch: str, rows: dict[str, list[Any]]) -> State:
    return State(now=now, area=area, seq=seq, epoch=epoch,
                 **{name: rows.get(kind, []) for kind, name in _LISTS.items()})


def part_frames(sub_id: int, first_part: int, header: tuple[int, Area, int, str], kind: str,
                rows: Sequence[Any]) -> list[bytes]:
    """The `more: true` frames of one page, split until each is at most MAX_FRAME_BYTES."""
    frame = proto.snapshot_part_frame(sub_id, first_part, True,
                                      _state(*header, {kind: list(rows)}))
    if len(frame) <= MAX_FRAME_BYTES or len(rows) <= 1:
        return [frame]
    half = len(rows) // 2
    head = part_frames(sub_id, first_part, header, kind, rows[:half])
    return head + part_frames(sub_id, first_part + len(head), header, kind, rows[half:])


# Key of a page: (guild, area, epoch, seq, kind, cursor of the page before or None).
PageKey = tuple[int, Area, str, int, str, PageCursor | None]
Page = tuple[list[Any], PageCursor | None]


class PageCache:
    """Pages of snapshots, shared by the snapshots that started at the same
    feed position (guild, area, epoch, seq): subscribers that connect together (after a
    deploy, a network blip) would otherwise each read and decode the same rows. Their
    rows are at least as new as that seq, which is all a snapshot promises. Concurrent
    requests for one page wait for one read; at most `max_pages` are kept (LRU)."""

    def __init__(self, max_pages: int) -> None:
        self._max_pages = max_pages
        self._pages: OrderedDict[PageKey, Page] = OrderedDict()
        self._reading: dict[PageKey, asyncio.Future[Page]] = {}

    async def get(self, key: PageKey, read: Callable[[], Awaitable[Page]]) -> Page:
        """The page under `key`, read (once) if nobody has it."""
        while (pending := self._reading.get(key)) is not None:
            # Another snapshot is reading it. If that one is cancelled (its subscriber
            # left), this one reads the page itself.
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this snapshot itself was cancelled
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
            return page
        future: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        self._reading[key] = future
        try:
            page = await read()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters, if any, get it from their await
            raise
        finally:
            del self._reading[key]
        future.set_result(page)
        self._pages[key] = page
        if len(self._pages) > self._max_pages:
            self._pages.popitem(last=False)
        return page


class Snapshots:
    """Builds and sends snapshots; at most `builds` pages are read or encoded at once."""

    def __init__(self, store: Store, builds: int) -> None:
        self._store = store
        self._builds = asyncio.Semaphore(builds)
        self._cache = PageCache(CACHED_PAGES)

    async def _page(self, guild_id: int, area: Area, epoch: str, seq: int, kind: str,
                    cursor: PageCursor | None) -> Page:
        return await self._cache.get((guild_id, area, epoch, seq, kind, cursor),
                                     functools.partial(self._read_page, guild_id, area, kind,
                                                       cursor))

    async def send(self, sub: Subscription, area: Area, now: int) -> int:
        """Queue the snapshot of `sub` (paced) and return the seq it reflects.

        Its sink gets the frames; an area subscription is told which entities the
        snapshot showed inside its disk.
        """
        # Every row read after the head is at least as new as `seq`.
        (epoch, seq), _ = await self._store.read_state_pages(sub.guild_id, area, [], 0)
        header = (now, area, seq, epoch)
        first = [await self._page(sub.guild_id, area, epoch, seq, kind, None)
                 for kind in STATE_KINDS]
        if all(cursor is None for _, cursor in first):
            rows = {kind: page for kind, (page, _) in zip(STATE_KINDS, first, strict=True)}
            frame = proto.snapshot_frame(sub.sub_id, _state(*header, rows))
            if len(frame) <= MAX_FRAME_BYTES:
                self._seed(sub, rows)
                await sub.sink.send_paced(frame)
                return seq
        part = 0
        for kind, (page, cursor) in zip(STATE_KINDS, first, strict=True):
            while True:
                if page:
                    self._seed(sub, {kind: page})
                    async with self._builds:
                        # Encoding a page is pure CPU: off the loop, other requests go on.
                        frames = await asyncio.to_thread(part_frames, sub.sub_id, part,
                                                         header, kind, page)
                    for frame in frames:
                        await sub.sink.send_paced(frame)
                        if sub.sink.closed:
                            return seq
                    part += len(frames)
                if cursor is None:
                    break
                page, cursor = await self._page(sub.guild_id, area, epoch, seq, kind, cursor)
        await sub.sink.send_paced(
            proto.snapshot_part_frame(sub.sub_id, part, False, _state(*header, {})))
        log.debug("snapshot of guild %d sent in %d parts", sub.guild_id, part + 1)
        return seq

    async def _read_page(self, guild_id: int, area: Area, kind: str,
                         cursor: PageCursor | None) -> Page:
        async with self._builds:
            _, (page,) = await self._store.read_state_pages(guild_id, area, [(kind, cursor)],
                                                            PAGE_ROWS)
        return page

    @staticmethod
    def _seed(sub: Subscription, rows: dict[str, list[Any]]) -> None:
        if sub.area is not None:
            sub.seed([e for kind, page in rows.items() if kind != "tile" for e in page])
