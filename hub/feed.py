"""Per-guild fan-out of committed events to local websocket subscriptions.

Every replica keeps, for each guild that has local subscribers, the last seq it has
delivered. Hints that the guild's feed moved on (the local upload path, the bus, the
poller) only wake the guild's pump; the pump delivers in seq order, from the event in
hand when it is the next one, otherwise from the database. A lost hint therefore only
delays delivery until the next hint or poll; it never loses or reorders an event.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from hub import feed_protocol as proto
from hub.clock import now_ms
from hub.settings import Settings
from hub.snapshots import Snapshots
from storage import Store, StoreError
from storage.merge import EntityKey, entity_key, hex_distance
from storage.model import Area, Committed, EntityState, Event
from storage.store import iter_entities

log = logging.getLogger(__name__)

# Covers every valid map position (x 0..1999, y 0..999): the whole guild's state.
WHOLE_MAP = Area(1000, 500, 3000)
REPLAY_BATCH = 500
# With a healthy bus, the database is still polled now and then for lost hints.
SAFETY_POLL_FACTOR = 15

_EVENT = msgspec.json.Decoder(Event)


class _Head(msgspec.Struct):
    seq: int
    epoch: str


_HEAD = msgspec.json.Decoder(_Head)


class Sink(Protocol):
    """What a subscription writes to: a connection's bounded outgoing queue."""

    def send(self, data: bytes) -> None:
        """Queue a message, or close the connection as a slow consumer when full."""

    async def send_paced(self, data: bytes) -> None:
        """Queue a message once the queue has room (snapshot and replay)."""

    def kick(self, code: int, reason: str) -> None:
        """Close the connection with this code."""

    @property
    def closed(self) -> bool:
        """The connection is closing or closed."""


@dataclass(eq=False)
class Subscription:
    """One `subscribe` of one connection; buffers live events until it has caught up."""

    sink: Sink
    sub_id: int
    guild_id: int
    area: Area | None
    max_messages: int
    max_bytes: int
    last_seq: int = 0
    live: bool = False
    buffer: list[tuple[int, bytes, Event | None]] = field(default_factory=list)
    buffered_bytes: int = 0
    # Entities this area subscription was told are inside its disk, to report them leaving.
    keys: set[EntityKey] = field(default_factory=set)

    def hold(self, seq: int, body: bytes, event: Event | None) -> None:
        """Keep a live event while the snapshot or replay is being sent."""
        self.buffer.append((seq, body, event))
        self.buffered_bytes += len(body)
        if len(self.buffer) > self.max_messages or (
                len(self.buffer) > 1 and self.buffered_bytes > self.max_bytes):
            self.buffer.clear()
            self.sink.kick(proto.CLOSE_SLOW, "slow consumer, resume with since")

    def seed(self, entities: list[EntityState]) -> None:
        """Remember which entities of the snapshot lie inside the area."""
        self.keys.update(entity_key(e) for e in entities)

    def wants(self, event: Event) -> bool:
        """Whether an event touches this subscription's disk (updating what it tracks)."""
        area = self.area
        if area is None:
            return True

        def inside(x: int, y: int) -> bool:
            return hex_distance(area.x, area.y, x, y) <= area.r

        hit = False
        ea = event.area
        if ea is not None and hex_distance(area.x, area.y, ea.x, ea.y) <= area.r + ea.r:
            hit = event.covered is None or any(inside(x, y) for x, y in event.covered)
        if not hit:
            hit = any(inside(t.x, t.y) for t in event.tiles)
        for entity in (*event.appeared, *event.moved, *event.changed):
            key = entity_key(entity)
            if inside(entity.x, entity.y):
                self.keys.add(key)
                hit = True
            elif key in self.keys:
                self.keys.discard(key)
                hit = True
        for entity in event.left:
            key = entity_key(entity)
            if key in self.keys or inside(entity.x, entity.y):
                self.keys.discard(key)
                hit = True
        return hit


class GuildFeed:
    """The local subscribers of one guild and the pump that feeds them in order."""

    def __init__(self, guild_id: int, store: Store, retry: float) -> None:
        self.guild_id = guild_id
        self.subs: set[Subscription] = set()
        self.epoch = ""
        self.delivered = 0
        self.known_head = 0
        self._store = store
        self._retry = retry
        self._pending: dict[int, tuple[bytes, Event]] = {}
        self._wake = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read where the feed stands and start the pump (once; StoreError if unreadable)."""
        async with self._start_lock:
            if self.task is None:
                self.epoch, self.delivered = await self._store.feed_head(self.guild_id)
                self.known_head = max(self.known_head, self.delivered)
                self.task = asyncio.create_task(self._run(), name=f"feed-guild-{self.guild_id}")

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
                await asyncio.sleep(self._retry)
                self._wake.set()
            except Exception:
                # The pump must outlive any bug: a dead pump would silently stop the
                # guild's delivery while its backlog grows.
                log.exception("feed of guild %d: catch-up crashed; retrying", self.guild_id)
                await asyncio.sleep(self._retry)
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
                    event = _EVENT.decode(body)
                if not sub.wants(event):
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


class UncertainCommits:
    """Guilds with an upload whose COMMIT went unanswered, read again once the database
    answers, so that an upload that did commit is delivered (and announced to the other
    replicas) right away instead of at the next routine poll.

    The head is read a few times, `retry` apart: a server that resumes after a stall may
    apply the orphaned COMMIT just after it answers the first read.
    """

    READS = 3

    def __init__(self, store: Store, on_head: Callable[[int, int, str], None],
                 retry: float) -> None:
        self._store = store
        self._on_head = on_head
        self._retry = retry
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
                        epoch, seq = await self._store.feed_head(guild_id)
                    except StoreError:
                        await asyncio.sleep(self._retry)
                        continue
                    self._on_head(guild_id, seq, epoch)
                    reads += 1
                    if reads < self.READS:
                        await asyncio.sleep(self._retry)
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


class Feed:
    """All guild feeds of this replica: subscribe, unsubscribe, and hints in."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings
        self._guilds: dict[int, GuildFeed] = {}
        self._poll_now = asyncio.Event()
        self._snapshots = Snapshots(store, settings.snapshot_builds)
        self.bus_healthy: Callable[[], bool] = lambda: True

    # -- hints in ----------------------------------------------------------------

    def offer(self, committed: Committed) -> None:
        """An upload of this replica committed: hand the event to local subscribers."""
        guild = self._guilds.get(committed.event.guild_id)
        if guild is not None:
            guild.offer(committed.event, committed.body)

    def hint(self, guild_id: int, seq: int, epoch: str) -> None:
        """A replica (maybe this one) committed `seq` in this guild."""
        guild = self._guilds.get(guild_id)
        if guild is not None:
            guild.hint(seq, epoch)

    def poll_soon(self) -> None:
        """Poll the feed heads now (the bus just came back or went away)."""
        self._poll_now.set()

    async def poll_forever(self) -> None:
        """Read every feed's head: often while the bus is down, rarely while it is up."""
        while True:
            interval = self._settings.poll_interval
            if self.bus_healthy():
                interval *= SAFETY_POLL_FACTOR
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), interval)
            self._poll_now.clear()
            if not self._guilds:
                continue
            try:
                heads = await self._store.feed_heads()
            except StoreError as exc:
                log.warning("feed poll failed: %s", exc)
                continue
            for guild_id, (epoch, seq) in heads.items():
                self.hint(guild_id, seq, epoch)

    # -- subscriptions -------------------------------------------------------------

    async def start(self, sub: Subscription, since: int | None, epoch: str | None) -> bool:
        """Register a subscription (before reading anything); True when `since` is replayable."""
        guild = self._guilds.get(sub.guild_id)
        if guild is None:
            guild = self._guilds[sub.guild_id] = GuildFeed(
                sub.guild_id, self._store, self._settings.poll_interval)
        guild.subs.add(sub)
        await guild.start()
        if since is None or epoch is None:
            return False
        head_epoch, head = await self._store.feed_head(sub.guild_id)
        if epoch != head_epoch or since > head:
            return False
        if since == head:
            return True
        oldest = await self._store.oldest_event(sub.guild_id)
        return oldest is not None and oldest <= since + 1

    async def send_snapshot(self, sub: Subscription) -> None:
        """Send the state of the guild (or area), in parts when large, then the live events."""
        sub.last_seq = await self._snapshots.send(sub, sub.area or WHOLE_MAP, now_ms())
        self._go_live(sub)

    async def replay(self, sub: Subscription, since: int) -> None:
        """Send the kept events after `since`, then the live ones."""
        if sub.area is not None:
            # Best effort: what is in the disk now; see docs/protocol.md (area resume).
            state = await self._store.read_state(sub.guild_id, sub.area, now_ms())
            sub.seed(list(iter_entities(state)))
        last = since
        while not sub.sink.closed:
            rows = await self._store.events_after(sub.guild_id, last, REPLAY_BATCH)
            for seq, body in rows:
                last = seq
                if sub.area is None or sub.wants(_EVENT.decode(body)):
                    await sub.sink.send_paced(proto.event_frame(sub.sub_id, body))
            if len(rows) < REPLAY_BATCH:
                break
        sub.last_seq = last
        self._go_live(sub)

    def _go_live(self, sub: Subscription) -> None:
        # No await from here on: buffered events are flushed and the subscription turns
        # live in one step, so nothing can slip between the two.
        held, sub.buffer, sub.buffered_bytes = sub.buffer, [], 0
        for seq, body, event in held:
            if seq <= sub.last_seq:
                continue
            sub.last_seq = seq
            if sub.area is not None and not sub.wants(event or _EVENT.decode(body)):
                continue
            sub.sink.send(proto.event_frame(sub.sub_id, body))
        sub.live = True

    async def stop(self, sub: Subscription) -> None:
        """Forget a subscription; the guild's pump stops with its last subscriber."""
        guild = self._guilds.get(sub.guild_id)
        if guild is None:
            return
        guild.subs.discard(sub)
        if not guild.subs:
            del self._guilds[sub.guild_id]
            await guild.close()

    async def close(self) -> None:
        """Stop every pump (on app cleanup)."""
        guilds, self._guilds = list(self._guilds.values()), {}
        for guild in guilds:
            await guild.close()
