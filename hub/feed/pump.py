"""The pump of one guild's feed on this replica: every event once, in seq order.

Hints that the guild's feed moved on (the local upload, the bus, the poller) only wake
the pump; it delivers from the event in hand when that is the next one, otherwise from
the database. A lost hint therefore only delays delivery until the next hint or poll; it
never loses or reorders an event.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec

from hub import feed_protocol as proto
from hub.feed.subscription import Position, Subscription
from storage import Store, StoreError
from storage.model import Event

log = logging.getLogger(__name__)

REPLAY_BATCH = 500
# A database read of the feed that failed is tried again after this long.
STORE_RETRY_SECONDS = 1.0

EVENT = msgspec.json.Decoder(Event)


class _Head(msgspec.Struct):
    seq: int
    epoch: str


_HEAD = msgspec.json.Decoder(_Head)


class GuildFeed:
    """The local subscribers of one guild and the pump that feeds them in order."""

    def __init__(self, guild_id: int, store: Store) -> None:
        self.guild_id = guild_id
        self.subs: set[Subscription] = set()
        self.epoch = ""
        self.delivered = 0
        self.known_head = 0
        self._store = store
        self._pending: dict[int, tuple[bytes, Event]] = {}
        self._wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def heard(self, head: Position) -> None:
        """A subscriber read where the feed stands: the pump starts from there, or, if it
        runs already, delivers up to there."""
        if self.task is None:
            self.epoch, self.delivered = head
            self.known_head = max(self.known_head, self.delivered)
            self.task = asyncio.create_task(self._run(), name=f"feed-guild-{self.guild_id}")
        else:
            self.hint(head.seq, head.epoch)

    def offer(self, event: Event, body: bytes) -> None:
        """The local upload path hands over an event it just committed."""
        if event.seq > self.delivered:
            self._pending[event.seq] = (body, event)
        self.hint(event.seq, event.epoch)

    def hint(self, seq: int, epoch: str) -> None:
        """The guild's feed reached `seq` (in `epoch`): deliver whatever is missing."""
        if epoch != self.epoch or seq > self.delivered:
            self.known_head = max(self.known_head, seq)
            if epoch != self.epoch:
                self.known_head = max(self.known_head, self.delivered + 1)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._catch_up()
            except StoreError as exc:
                log.warning("feed of guild %d: catch-up failed (%s); retrying", self.guild_id, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                self._wake.set()
            except Exception:
                # The pump must outlive any bug: a dead pump would silently stop the
                # guild's delivery while its backlog grows.
                log.exception("feed of guild %d: catch-up crashed; retrying", self.guild_id)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                self._wake.set()

    async def _catch_up(self) -> None:
        while self.known_head > self.delivered:
            nxt = self.delivered + 1
            pending = self._pending.pop(nxt, None)
            if pending is not None and pending[1].epoch == self.epoch:
                self.fan_out(nxt, pending[0], pending[1])
                continue
            rows = await self._store.events_after(self.guild_id, self.delivered, REPLAY_BATCH)
            delivered_before = self.delivered
            for seq, body in rows:
                head = _HEAD.decode(body)
                if seq != self.delivered + 1 or head.epoch != self.epoch:
                    break
                self.fan_out(seq, body, None)
            if self.delivered == delivered_before:
                await self._check_history()
                return
        for seq in [s for s in self._pending if s <= self.delivered]:
            del self._pending[seq]

    async def _check_history(self) -> None:
        # Nothing deliverable although a hint said so: the feed was reset (new epoch),
        # its events were pruned past us, or the hint was stale.
        epoch, head = await self._store.feed_head(self.guild_id)
        if epoch != self.epoch and self.epoch == "" and self.delivered == 0:
            # The guild's very first upload created its feed: nothing was delivered
            # under the empty epoch, so adopt the new one and go on from seq 0.
            self.epoch = epoch
            self._wake.set()
            return
        if epoch != self.epoch or head > self.delivered:
            log.info("feed of guild %d: history changed (epoch %s -> %s, head %d, delivered %d);"
                     " asking %d subscriptions to resync", self.guild_id, self.epoch, epoch, head,
                     self.delivered, len(self.subs))
            for sub in list(self.subs):
                sub.sink.kick(proto.CLOSE_RESYNC, "feed history changed, resubscribe with since")
            self.epoch, self.delivered = epoch, head
        self.known_head = self.delivered
        self._pending.clear()

    def fan_out(self, seq: int, body: bytes, event: Event | None) -> None:
        """Deliver the next event: the same bytes to every subscription with the same id."""
        self.delivered = seq
        frames: dict[int, bytes] = {}
        for sub in self.subs:
            if not sub.live:
                sub.hold(seq, body, event)
                continue
            if seq <= sub.last_seq:
                continue
            sub.last_seq = seq
            if sub.area is not None:
                if event is None:
                    event = EVENT.decode(body)
                if not sub.track(event):
                    continue
            frame = frames.get(sub.sub_id)
            if frame is None:
                frame = frames[sub.sub_id] = proto.event_frame(sub.sub_id, body)
            sub.sink.send(frame)

    async def close(self) -> None:
        """Stop the pump."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

