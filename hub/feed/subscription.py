"""A subscription to a guild's feed, and where it writes: what one `subscribe` holds."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from hub import feed_protocol as proto
from storage.merge import EntityKey, entity_key, hex_distance
from storage.model import Area, EntityState, Event


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
