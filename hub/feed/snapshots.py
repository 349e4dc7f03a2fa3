"""Snapshots of the live feed, read and sent in bounded parts.

A guild's whole state can be tens of megabytes (a year of sightings). Read and encoded
whole, eight subscribers at once held hundreds of megabytes and the event loop for
seconds. Here the state is read page by page (at most PAGE_ROWS rows of one kind), each
page encoded into at most MAX_FRAME_BYTES, and each frame queued only when the socket's
queue has room (`send_paced`), so a snapshot holds about one page and half the socket's
byte budget in memory however large the guild is. A limited number of pages are built
at once per process (NACRITAN_SNAPSHOT_BUILDS), encoded away from the event loop, and
snapshots that start at the same feed position share their pages (read, decoded and
encoded once). A state that fits in one page of each kind and one frame is still sent
as the single `snapshot` message it always was.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from hub import feed_protocol as proto
from storage import Store
from storage.model import Area, State
from storage.reads import STATE_KINDS, PageCursor

if TYPE_CHECKING:
    from hub.feed.subscription import Subscription

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
# The disk a whole-guild snapshot reads, and reports as its `area`: it covers every
# valid map position (x 0..1999, y 0..999).
GUILD_DISK = Area(1000, 500, 3000)

_LISTS = dict(zip(STATE_KINDS, proto.SNAPSHOT_LISTS, strict=True))
# Room left in a frame for everything but the rows.
_ROWS_BYTES = MAX_FRAME_BYTES - 4096


def _state(now: int, area: Area, seq: int, epoch: str, rows: dict[str, list[Any]]) -> State:
    return State(now=now, area=area, seq=seq, epoch=epoch,
                 **{name: rows.get(kind, []) for kind, name in _LISTS.items()})


def encoded_chunks(rows: Sequence[Any]) -> list[bytes]:
    """The rows as JSON arrays of at most _ROWS_BYTES each (split in halves until so)."""
    encoded = msgspec.json.encode(rows)
    if len(encoded) <= _ROWS_BYTES or len(rows) <= 1:
        return [encoded]
    half = len(rows) // 2
    return encoded_chunks(rows[:half]) + encoded_chunks(rows[half:])


# Key of a page: (guild, area, epoch, seq, kind, cursor of the page before or None).
PageKey = tuple[int, Area, str, int, str, PageCursor | None]
# The rows of a page, the cursor of the next one (None: last), the rows encoded.
Page = tuple[list[Any], PageCursor | None, list[bytes]]


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

    async def send(self, sub: Subscription, now: int) -> int:
        """Queue the snapshot of `sub` (paced) and return the seq it reflects.

        Its sink gets the frames: of its area, or of the whole guild (GUILD_DISK). An
        area subscription is told which entities the snapshot showed inside its disk.
        """
        area = sub.area if sub.area is not None else GUILD_DISK
        # Where the state stands as its reading starts (a subscriber's head read earlier
        # may be older): every row read after it is at least as new as `seq`, and the
        # snapshots that start at the same position share their pages.
        (epoch, seq), _ = await self._store.read_state_pages(sub.guild_id, area, [], 0)
        header = (now, area, seq, epoch)
        first = [await self._page(sub.guild_id, area, epoch, seq, kind, None)
                 for kind in STATE_KINDS]
        if all(cursor is None for _, cursor, _ in first):
            rows = {kind: page for kind, (page, _, _) in zip(STATE_KINDS, first, strict=True)}
            frame = proto.snapshot_frame(sub.sub_id, _state(*header, rows))
            if len(frame) <= MAX_FRAME_BYTES:
                self._seed(sub, rows)
                await sub.sink.send_paced(frame)
                return seq
        part = 0
        fields = proto.snapshot_header(*header)
        for kind, (page, cursor, chunks) in zip(STATE_KINDS, first, strict=True):
            while True:
                if page:
                    self._seed(sub, {kind: page})
                    for chunk in chunks:
                        await sub.sink.send_paced(proto.snapshot_part_frame(
                            sub.sub_id, part, True, fields, _LISTS[kind], chunk))
                        part += 1
                        if sub.sink.closed:
                            return seq
                if cursor is None:
                    break
                page, cursor, chunks = await self._page(sub.guild_id, area, epoch, seq, kind,
                                                        cursor)
        await sub.sink.send_paced(proto.snapshot_part_frame(sub.sub_id, part, False, fields))
        log.debug("snapshot of guild %d sent in %d parts", sub.guild_id, part + 1)
        return seq

    async def _read_page(self, guild_id: int, area: Area, kind: str,
                         cursor: PageCursor | None) -> Page:
        async with self._builds:
            _, ((rows, following),) = await self._store.read_state_pages(
                guild_id, area, [(kind, cursor)], PAGE_ROWS)
            # Encoded once for every snapshot sharing the page, off the event loop.
            chunks = await asyncio.to_thread(encoded_chunks, rows) if rows else []
        return rows, following, chunks

    @staticmethod
    def _seed(sub: Subscription, rows: dict[str, list[Any]]) -> None:
        if sub.area is not None:
            sub.seed([e for kind, page in rows.items() if kind != "tile" for e in page])
