"""The live feed of this replica: committed events to local subscriptions, in order.

An upload of this replica is published here (`Feed.publish`): its event goes to the
guild's pump (`pump.py`), which delivers every event once and in seq order to the
guild's local subscriptions (`subscription.py`), and a hint goes to the other replicas
through the bus (`bus.py`). Every replica keeps, for each guild that has local
subscribers, the last seq it has delivered; a lost hint only delays delivery until the
next hint or poll.

A subscription first catches up (a snapshot, `snapshots.py`, or a replay of the kept
events after the client's `since`), holding the live events meanwhile, then turns live:
that sequence lives here alone.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from aiohttp import WSCloseCode

from hub import feed_protocol as proto
from hub.clock import now_ms
from hub.feed.bus import Bus
from hub.feed.pump import EVENT, REPLAY_BATCH, GuildFeed
from hub.feed.snapshots import Snapshots
from hub.feed.subscription import CancelSubscription, Position, Sink, Subscription
from hub.feed.uncertain import UncertainCommits
from hub.settings import Settings
from storage import Store, StoreError
from storage.model import Area, Committed
from storage.reads import iter_entities

log = logging.getLogger(__name__)

# With a healthy bus, the database is still polled now and then for lost hints.
SAFETY_POLL_FACTOR = 15

__all__ = ["CancelSubscription", "Feed", "Position", "Sink", "Subscription"]


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

    # -- what the bus hears (hub.feed.bus.BusListener) ----------------------------------

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
        is then read here only to start the guild's pump (its first subscriber on this
        replica) or to check `resume`; a snapshot reads its own starting position with
        the state it sends. So a replay, or a snapshot of a guild already pumping, reads
        the head once; a snapshot that starts the pump reads it twice, because the pump
        must start at or before the snapshot's position (the events between the two are
        held, then dropped by seq) and the snapshot's position must be read with its
        state. The snapshot (or the replay after `resume`) and the live events follow in
        a task of their own, which first runs at the caller's next await: the answer the
        caller queues right away goes out before them.
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
                if sub.area is None or sub.track(EVENT.decode(body)):
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
            if sub.area is not None and not sub.track(event or EVENT.decode(body)):
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
