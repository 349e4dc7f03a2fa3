"""The live feed of this replica: committed events to local subscriptions, in order.

An upload of this replica is published here (`Feed.publish`): its event goes to the
guild's local subscribers and a hint to the other replicas through the bus. Every
replica keeps, for each guild that has local subscribers, the last seq it has
delivered. Hints that the guild's feed moved on (the local upload, the bus, the poller)
only wake the guild's pump; the pump delivers in seq order, from the event in hand when
it is the next one, otherwise from the database. A lost hint therefore only delays
delivery until the next hint or poll; it never loses or reorders an event.

A subscription first catches up (a snapshot, or a replay of the kept events after the
client's `since`), holding the live events meanwhile, then turns live.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import msgspec
from aiohttp import WSCloseCode

from hub import feed_protocol as proto
from hub.bus import Bus
from hub.clock import now_ms
from hub.settings import Settings
from hub.snapshots import Snapshots
from storage import Store, StoreError
from storage.merge import EntityKey, entity_key, hex_distance
from storage.model import Area, Committed, EntityState, Event
from storage.reads import iter_entities

log = logging.getLogger(__name__)

REPLAY_BATCH = 500
# With a healthy bus, the database is still polled now and then for lost hints.
SAFETY_POLL_FACTOR = 15
# A database read of the feed that failed is tried again after this long.
STORE_RETRY_SECONDS = 1.0

_EVENT = msgspec.json.Decoder(Event)


class _Head(msgspec.Struct):
    seq: int
    epoch: str


_HEAD = msgspec.json.Decoder(_Head)


class Position(NamedTuple):
    """A place in a guild's feed: the seq of an event within the feed's epoch."""

    epoch: str
    seq: int


# Stops a subscription: called once when the client unsubscribes or goes away.
CancelSubscription = Callable[[], None]


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
    """One `subscribe` of one connection; holds live events until it has caught up."""

    sink: Sink
    sub_id: int
    guild_id: int
    # The hex disk it is limited to; None: the whole guild.
    area: Area | None
    max_messages: int
    max_bytes: int
    last_seq: int = 0
    live: bool = False
    buffer: list[tuple[int, bytes, Event | None]] = field(default_factory=list)
    buffered_bytes: int = 0
    # Entities this area subscription was told are inside its disk, to report them leaving.
    keys: set[EntityKey] = field(default_factory=set)
    # The snapshot or replay being sent, until the subscription is live.
    catch_up: asyncio.Task[None] | None = None

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

    def track(self, event: Event) -> bool:
        """Whether the event touches this subscription's disk.

        Updates, as it answers, which entities the subscription knows inside its disk:
        an entity that moved out is reported once (the event touches it), then forgotten.
        Call it once per event, in seq order.
        """
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
                    event = _EVENT.decode(body)
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


class Feed:
    """All guild feeds of this replica: commits in, subscriptions out, and its bus."""

    def __init__(self, store: Store, settings: Settings, bus: Bus) -> None:
        self._store = store
        self._settings = settings
        self._bus = bus
        self._guilds: dict[int, GuildFeed] = {}
        self._poll_now = asyncio.Event()
        self._snapshots = Snapshots(store, settings.snapshot_builds)
        self._uncertain = UncertainCommits(store, self._announce)
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start hearing the other replicas, and polling the database for what they miss."""
        await self._bus.start(self)
        self._poller = asyncio.create_task(self._poll_forever(), name="feed-poller")

    async def close(self) -> None:
        """Stop polling, the bus, and every pump (on app cleanup)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self._uncertain.close()
        await self._bus.close()
        guilds, self._guilds = list(self._guilds.values()), {}
        for guild in guilds:
            for sub in guild.subs:
                if sub.catch_up is not None:
                    sub.catch_up.cancel()
            await guild.close()

    # -- commits in --------------------------------------------------------------

    def publish(self, committed: Committed) -> None:
        """An upload of this replica committed: to the local subscribers, and to the bus."""
        event = committed.event
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.offer(event, committed.body)
        self._bus.publish(event.guild_id, event.seq, event.epoch)

    def commit_uncertain(self, guild_id: int) -> None:
        """An upload of this guild may have committed unseen: look once the database answers."""
        self._uncertain.add(guild_id)

    def _announce(self, guild_id: int, head: Position) -> None:
        # A head read after an unanswered COMMIT: what it shows may be news to everyone.
        self.hint(guild_id, head.seq, head.epoch)
        self._bus.publish(guild_id, head.seq, head.epoch)

    # -- what the bus hears (hub.bus.BusListener) ----------------------------------

    def hint(self, guild_id: int, seq: int, epoch: str) -> None:
        """A replica (maybe this one) committed `seq` in this guild."""
        guild = self._guilds.get(guild_id)
        if guild is not None:
            guild.hint(seq, epoch)

    def bus_changed(self, healthy: bool) -> None:
        """The bus came back or went away: poll the feed heads now."""
        self._poll_now.set()

    async def _poll_forever(self) -> None:
        """Read every feed's head: often while the bus is down, rarely while it is up."""
        while True:
            interval = self._settings.poll_interval
            if self._bus.healthy:
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

    # -- subscriptions out -----------------------------------------------------------

    async def subscribe(self, sink: Sink, sub_id: int, guild_id: int, area: Area | None,
                        resume: Position | None) -> tuple[bool, CancelSubscription]:
        """Follow a guild's feed: (whether `resume` is replayable, how to stop).

        The subscription holds live events from before anything is read. The feed head
        is then read once: here, to start the guild's pump or to check `resume`, or
        else by the snapshot, as its own starting position. The snapshot (or the replay
        after `resume`) and the live events follow in a task of their own, which first
        runs at the caller's next await: the answer the caller queues right away goes
        out before them.
        """
        sub = Subscription(sink=sink, sub_id=sub_id, guild_id=guild_id, area=area,
                           max_messages=self._settings.ws_queue_messages,
                           max_bytes=self._settings.ws_queue_bytes)
        guild = self._guilds.get(guild_id)
        if guild is None:
            guild = self._guilds[guild_id] = GuildFeed(guild_id, self._store)
        guild.subs.add(sub)
        since: int | None = None
        try:
            if resume is not None or guild.task is None:
                head = Position(*await self._store.feed_head(guild_id))
                guild.heard(head)
                since = await self._replayable(guild_id, resume, head)
        except BaseException:
            self._unsubscribe(sub)
            raise
        sub.catch_up = asyncio.create_task(self._catch_up(sub, since),
                                           name=f"feed-catch-up-{guild_id}")
        return since is not None, functools.partial(self._unsubscribe, sub)

    async def _replayable(self, guild_id: int, resume: Position | None,
                          head: Position) -> int | None:
        """The seq to replay from, or None for a snapshot (`resume` cannot be replayed)."""
        if resume is None or resume.epoch != head.epoch or resume.seq > head.seq:
            return None
        if resume.seq == head.seq:
            return resume.seq
        oldest = await self._store.oldest_event(guild_id)
        return resume.seq if oldest is not None and oldest <= resume.seq + 1 else None

    async def _catch_up(self, sub: Subscription, since: int | None) -> None:
        try:
            if since is None:
                sub.last_seq = await self._snapshots.send(sub, now_ms())
            else:
                await self._replay(sub, since)
            self._go_live(sub)
        except Exception as exc:
            # The client was told it is subscribed: make it reconnect and resume.
            log.warning("subscription catch-up failed: %s", exc)
            sub.sink.kick(WSCloseCode.TRY_AGAIN_LATER, "catch-up failed, resume with since")
            self._unsubscribe(sub)
        finally:
            sub.catch_up = None

    async def _replay(self, sub: Subscription, since: int) -> None:
        """Send the kept events after `since`."""
        if sub.area is not None:
            # Best effort: what is in the disk now; see docs/protocol.md (area resume).
            state = await self._store.read_state(sub.guild_id, sub.area, now_ms())
            sub.seed(list(iter_entities(state)))
        last = since
        while not sub.sink.closed:
            rows = await self._store.events_after(sub.guild_id, last, REPLAY_BATCH)
            for seq, body in rows:
                last = seq
                if sub.area is None or sub.track(_EVENT.decode(body)):
                    await sub.sink.send_paced(proto.event_frame(sub.sub_id, body))
            if len(rows) < REPLAY_BATCH:
                break
        sub.last_seq = last

    def _go_live(self, sub: Subscription) -> None:
        # No await from here on: held events are flushed and the subscription turns
        # live in one step, so nothing can slip between the two.
        held, sub.buffer, sub.buffered_bytes = sub.buffer, [], 0
        for seq, body, event in held:
            if seq <= sub.last_seq:
                continue
            sub.last_seq = seq
            if sub.area is not None and not sub.track(event or _EVENT.decode(body)):
                continue
            sub.sink.send(proto.event_frame(sub.sub_id, body))
        sub.live = True

    def _unsubscribe(self, sub: Subscription) -> None:
        # Idempotent: the client, its going away and a failed catch-up may each call it.
        if sub.catch_up is not None and sub.catch_up is not asyncio.current_task():
            sub.catch_up.cancel()
        guild = self._guilds.get(sub.guild_id)
        if guild is None or sub not in guild.subs:
            return
        guild.subs.discard(sub)
        if not guild.subs:
            # The guild's pump stops with its last subscriber.
            del self._guilds[sub.guild_id]
            if guild.task is not None:
                guild.task.cancel()
