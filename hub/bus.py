"""How replicas tell each other that a guild's feed moved on: in-process, or Redis pub/sub.

A message carries only (guild, seq, epoch): each replica reads the events themselves
from the database, so a lost message or a Redis outage delays delivery (the feed then
polls the database) but never loses an event.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "nacritan:feed"
PUBLISH_QUEUE = 10_000
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 2.0

Hint = Callable[[int, int, str], None]


def encode_hint(guild_id: int, seq: int, epoch: str) -> bytes:
    """The pub/sub payload: `guild:seq:epoch`."""
    return f"{guild_id}:{seq}:{epoch}".encode()


def decode_hint(data: bytes | str) -> tuple[int, int, str] | None:
    """(guild, seq, epoch) of a payload, or None when it is not one of ours."""
    text = data.decode() if isinstance(data, bytes) else data
    parts = text.split(":", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[0]), int(parts[1]), parts[2]
    except ValueError:
        return None


class LocalBus:
    """A single replica: commits are already seen by the local feed, nothing to send."""

    healthy = True

    def publish(self, guild_id: int, seq: int, epoch: str) -> None:
        """Nothing to do: the upload path handed the event to the feed already."""

    def readiness(self) -> str | None:
        """Always ready."""
        return None

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""


class RedisBus:
    """Publishes commits to, and hears other replicas' commits from, one Redis channel."""

    def __init__(self, url: str, on_hint: Hint, on_change: Callable[[], None]) -> None:
        self._url = url
        self._on_hint = on_hint
        self._on_change = on_change
        self._redis: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(PUBLISH_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = False

    @property
    def healthy(self) -> bool:
        """True while the subscription is established (hints arrive without polling)."""
        return self.subscribed

    def readiness(self) -> str | None:
        """A reason for /readyz while the subscription is down."""
        return None if self.subscribed else "redis subscription not established"

    def publish(self, guild_id: int, seq: int, epoch: str) -> None:
        """Queue a hint for other replicas; never blocks or fails an upload."""
        with contextlib.suppress(asyncio.QueueFull):
            # A dropped hint only delays other replicas until their next poll.
            self._outbox.put_nowait(encode_hint(guild_id, seq, epoch))

    async def start(self) -> None:
        """Create the client and start the listener and publisher tasks."""
        self._redis = aioredis.from_url(
            self._url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=10)
        self._tasks = [asyncio.create_task(self._listen(), name="redis-bus-listen"),
                       asyncio.create_task(self._publish(), name="redis-bus-publish")]

    async def close(self) -> None:
        """Stop both tasks and close the client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _set_subscribed(self, value: bool) -> None:
        if value != self.subscribed:
            self.subscribed = value
            log.info("redis subscription %s", "established" if value else "lost")
            self._on_change()

    async def _listen(self) -> None:
        assert self._redis is not None
        delay = RECONNECT_MIN_SECONDS
        while True:
            # redis-py's PubSub does not reliably re-subscribe after the server goes
            # away, so every attempt starts from a new PubSub.
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self._set_subscribed(True)
                        delay = RECONNECT_MIN_SECONDS
                    elif message["type"] == "message":
                        hint = decode_hint(message["data"])
                        if hint is not None:
                            self._on_hint(*hint)
            except (RedisError, OSError) as exc:
                if self.subscribed:
                    log.warning("redis subscription failed: %s", exc)
            finally:
                self._set_subscribed(False)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _publish(self) -> None:
        assert self._redis is not None
        while True:
            payload = await self._outbox.get()
            try:
                await self._redis.publish(CHANNEL, payload)
            except (RedisError, OSError) as exc:
                # Other replicas poll while their subscription is down; nothing to retry.
                log.debug("redis publish failed: %s", exc)
