"""How replicas tell each other that a guild's feed moved on: in-process, or Redis pub/sub.

A message carries only (guild, seq, epoch): each replica reads the events themselves
from the database, so a lost message or a Redis outage delays delivery (the feed then
polls the database) but never loses an event.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from hub.metrics import Metrics

log = logging.getLogger(__name__)

CHANNEL = "nacritan:feed"
PUBLISH_QUEUE = 10_000
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 2.0
# Bound on every command and handshake: a Redis that accepts connections and answers
# nothing must fail fast instead of holding the publisher or a reconnect forever.
COMMAND_TIMEOUT_SECONDS = 2.0
# The subscription pings Redis this often and counts it hung when nothing at all (a
# message, a subscribe confirmation, a pong) has come back for HUNG_AFTER_SECONDS.
# redis-py's own health check swallows its pongs, so it cannot tell us that.
LIVENESS_PING_SECONDS = 1.0
HUNG_AFTER_SECONDS = 3.0
LIVENESS_MESSAGE = "nacritan-liveness"
READ_SLICE_SECONDS = 0.5


class BusListener(Protocol):
    """Who a bus hands what it hears to: the feed of this replica."""

    def hint(self, guild_id: int, seq: int, epoch: str) -> None:
        """A replica (maybe this one) committed `seq` in this guild, in `epoch`."""

    def bus_changed(self, healthy: bool) -> None:
        """The bus came back (True) or went away (False): hints may have been missed."""


class Bus(Protocol):
    """How this replica's commits reach the others, and theirs reach it."""

    @property
    def healthy(self) -> bool:
        """True while hints arrive without polling."""

    def publish(self, guild_id: int, seq: int, epoch: str) -> None:
        """Tell the other replicas this guild's feed reached `seq`; never blocks or fails."""

    async def start(self, listener: BusListener) -> None:
        """Start hearing the other replicas; what is heard goes to `listener`."""

    async def close(self) -> None:
        """Stop; nothing reaches the listener afterwards."""


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

    @property
    def healthy(self) -> bool:
        """Always: there is nobody else to hear from."""
        return True

    def publish(self, guild_id: int, seq: int, epoch: str) -> None:
        """Nothing to do: the feed gave the event to its local subscribers already."""

    async def start(self, listener: BusListener) -> None:
        """Nothing to hear."""

    async def close(self) -> None:
        """Nothing to close."""


class RedisBus:
    """Publishes commits to, and hears other replicas' commits from, one Redis channel."""

    def __init__(self, url: str, metrics: Metrics) -> None:
        self._url = url
        self._metrics = metrics
        self._listener: BusListener | None = None
        self._redis: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(PUBLISH_QUEUE)
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = False

    @property
    def healthy(self) -> bool:
        """True while the subscription is established (hints arrive without polling)."""
        return self.subscribed

    def publish(self, guild_id: int, seq: int, epoch: str) -> None:
        """Queue a hint for other replicas; never blocks or fails an upload."""
        with contextlib.suppress(asyncio.QueueFull):
            # A dropped hint only delays other replicas until their next poll.
            self._outbox.put_nowait(encode_hint(guild_id, seq, epoch))

    async def start(self, listener: BusListener) -> None:
        """Create the client and start the listening and publishing tasks."""
        self._listener = listener
        # No retries inside redis-py: `_listen` reconnects itself, and a publish that
        # fails is only a hint lost (other replicas also poll).
        self._redis = aioredis.from_url(
            self._url, socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS, health_check_interval=5,
            retry=Retry(NoBackoff(), 0))
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
            if value:
                log.info("redis subscription established")
            else:
                log.warning("redis subscription lost: the feed polls the database meanwhile")
            self._metrics.redis_subscribed.set(1 if value else 0)
            if self._listener is not None:
                self._listener.bus_changed(value)

    async def _listen(self) -> None:
        assert self._redis is not None
        delay = RECONNECT_MIN_SECONDS
        while True:
            # redis-py's PubSub does not reliably re-subscribe after the server goes
            # away, so every attempt starts from a new PubSub.
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                await self._receive(pubsub)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed:
                    log.warning("redis subscription failed: %s", exc or type(exc).__name__)
            finally:
                if self.subscribed:
                    delay = RECONNECT_MIN_SECONDS  # it worked: reconnect quickly
                self._set_subscribed(False)
                # Closing a connection to a hung server must not hang too.
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                        await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _receive(self, pubsub: aioredis.client.PubSub) -> None:
        """Hand hints over until the connection fails or Redis stops answering."""
        loop = asyncio.get_running_loop()
        heard = next_ping = loop.time()
        while True:
            now = loop.time()
            if now - heard > HUNG_AFTER_SECONDS:
                raise TimeoutError(f"redis answered nothing for {now - heard:.1f} s")
            if now >= next_ping:
                # Sent on the subscription's own connection: its pong proves that
                # connection (not just some other) still works.
                await pubsub.ping(LIVENESS_MESSAGE)
                next_ping = now + LIVENESS_PING_SECONDS
            message = await pubsub.get_message(timeout=READ_SLICE_SECONDS)
            if message is None:
                continue
            heard = loop.time()
            if message["type"] == "subscribe":
                self._set_subscribed(True)
            elif message["type"] == "message":
                hint = decode_hint(message["data"])
                if hint is not None and self._listener is not None:
                    self._listener.hint(*hint)

    async def _publish(self) -> None:
        assert self._redis is not None
        while True:
            payload = await self._outbox.get()
            try:
                await self._redis.publish(CHANNEL, payload)
            except (RedisError, OSError, TimeoutError) as exc:
                # Other replicas poll while their subscription is down; nothing to retry.
                log.debug("redis publish failed: %s", exc)
