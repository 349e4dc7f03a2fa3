"""`GET /ws`: the live feed's websocket: auth first, commands, one writer per connection."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from hub import feed_protocol as proto
from hub import keys
from hub.auth import token_from_header
from hub.bus import LocalBus, RedisBus
from hub.clock import now_ms
from hub.errors import Forbidden, TooManyAuthFailures, Unauthorized
from hub.feed import Feed, Subscription, UncertainCommits
from hub.metrics import Metrics
from hub.settings import Settings
from storage import StoreError
from storage.model import Area, Committed, Member

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

# How long a closing handshake may take before the transport is dropped.
CLOSE_TIMEOUT_SECONDS = 5.0
CLOSE_POLL_SECONDS = 0.1
# Floor of the interval between checks that open feeds' tokens are still live.
MIN_REVOCATION_CHECK_SECONDS = 0.5
# A connection whose queue is over half full and whose writer has not finished a frame
# for this long belongs to a client that does not read: it is closed with CLOSE_SLOW.
WRITER_STALL_SECONDS = 10.0


async def close_or_drop(ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                        code: int, reason: str, grace: float = CLOSE_TIMEOUT_SECONDS) -> None:
    """Close with a handshake if the client takes it in time, else drop the transport.

    A client that stops reading never lets the close frame drain; cancelling aiohttp's
    close does not end that wait either, and its fallback is a graceful
    transport.close() that waits for unsent bytes that will never leave. Without the
    abort, the socket, its handler and its subscriptions would live as long as the
    frozen client does.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    closing = asyncio.create_task(ws.close(code=code, message=reason.encode()))
    await asyncio.wait({closing}, timeout=grace)
    # aiohttp may have finished with a graceful transport.close(): let the bytes still
    # queued (the close frame among them) reach a slow reader until the grace runs out.
    # asyncio exposes no event for "write buffer drained", hence the poll.
    while (transport is not None and transport.get_write_buffer_size() > 0  # noqa: ASYNC110
           and loop.time() < deadline):
        await asyncio.sleep(CLOSE_POLL_SECONDS)
    if transport is not None and (not closing.done() or transport.get_write_buffer_size() > 0):
        # Losing the connection fails every pending write, which ends `closing` too.
        transport.abort()
    # Not wait_for: it would wait on a task that ignores its cancellation.
    await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_SECONDS)
    if closing.done():
        if not closing.cancelled():
            closing.exception()  # retrieved: a failed close is expected here
    else:
        closing.cancel()


class Connection:
    """One websocket's outgoing side: a bounded queue drained by one writer task.

    `send` never waits: a connection whose queue is full (by messages or bytes) is closed
    with CLOSE_SLOW instead, so one slow client never slows anyone else. Snapshots and
    replays use `send_paced`, which waits for room instead (they are sent once, on demand),
    and the read loop waits for room (`wait_for_room`) before each command, so a client
    that pipelines commands is answered at the pace it reads.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                 settings: Settings, metrics: Metrics) -> None:
        self.ws = ws
        self._transport = transport
        self._close_grace = settings.ws_close_grace
        self._metrics = metrics
        self._max_messages = settings.ws_queue_messages
        self._max_bytes = settings.ws_queue_bytes
        self._queue: deque[tuple[bytes, bool]] = deque()
        self._counted = 0
        self._bytes = 0
        # Bytes of paced frames (snapshot parts, replays): bounded by the same budget.
        self._paced_bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing: tuple[int, str] | None = None
        self._closer: asyncio.Task[None] | None = None
        # When the writer last finished a frame: a queue that is over half full and has
        # not moved for WRITER_STALL_SECONDS means the client is not reading at all.
        self._progress_at = asyncio.get_running_loop().time()
        self._writer = asyncio.create_task(self._write_forever(), name="ws-writer")

    @property
    def closed(self) -> bool:
        """Closing or closed: nothing more will be sent."""
        return self._closing is not None or self.ws.closed

    def _has_room(self) -> bool:
        # At most half full, by counted messages, by all frames, and by bytes.
        return (self._counted * 2 <= self._max_messages
                and len(self._queue) <= self._max_messages
                and (self._bytes + self._paced_bytes) * 2 <= self._max_bytes)

    def send(self, data: bytes) -> None:
        """Queue a message; a full queue closes the connection as a slow consumer."""
        if self.closed:
            return
        # One message larger than the byte limit still goes through an empty queue.
        if self._counted >= self._max_messages or (
                self._counted and self._bytes + len(data) > self._max_bytes):
            self._close_slow()
            return
        self._counted += 1
        self._bytes += len(data)
        self._queue.append((data, True))
        self._wake.set()

    def _close_slow(self) -> None:
        self._metrics.ws_slow_closed.inc()
        log.info("closing a slow websocket (%d messages, %d bytes queued)",
                 len(self._queue), self._bytes + self._paced_bytes)
        self.kick(proto.CLOSE_SLOW, "slow consumer, resume with since")

    async def wait_for_room(self) -> None:
        """Return once the queue is at most half full; close as slow if it stops moving."""
        loop = asyncio.get_running_loop()
        waiting_since = loop.time()
        while not self.closed and not self._has_room():
            self._room.clear()
            stalled_for = loop.time() - max(self._progress_at, waiting_since)
            if stalled_for >= WRITER_STALL_SECONDS:
                self._close_slow()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), WRITER_STALL_SECONDS - stalled_for)

    async def send_paced(self, data: bytes) -> None:
        """Queue a message once the queue is at most half full (snapshot, replay)."""
        await self.wait_for_room()
        if not self.closed:
            self._paced_bytes += len(data)
            self._queue.append((data, False))
            self._wake.set()

    def kick(self, code: int, reason: str) -> None:
        """Close with this code now, dropping whatever is still queued."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        self._queue.clear()
        self._counted = self._bytes = self._paced_bytes = 0
        self._room.set()
        # The writer may be stuck waiting for a client that does not read: cancel it
        # (a frame is written whole before any wait) and close from a fresh task.
        self._writer.cancel()
        self._closer = asyncio.create_task(self._close(code, reason), name="ws-closer")

    async def _close(self, code: int, reason: str) -> None:
        # The close frame queues behind what the socket already holds: a slow client gets
        # `ws_close_grace` seconds to read up to it, then the transport is dropped.
        await close_or_drop(self.ws, self._transport, code, reason, self._close_grace)

    async def _write_forever(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    data, counted = self._queue.popleft()
                    if counted:
                        self._counted -= 1
                        self._bytes -= len(data)
                    else:
                        self._paced_bytes -= len(data)
                    if self._has_room():
                        self._room.set()
                    await self.ws.send_frame(data, WSMsgType.TEXT)
                    self._progress_at = loop.time()
                    if counted:
                        self._metrics.events_delivered.inc()
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away; the read loop sees it and cleans up.
            log.debug("websocket writer stopped: %s", exc)

    async def aclose(self) -> None:
        """Stop the writer and wait for any closing handshake in progress."""
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        if self._closer is not None:
            await self._closer
        self._room.set()


def error_reply(exc: BaseException, command_id: int | None) -> bytes:
    """The one mapping from an exception to a command's error result."""
    if isinstance(exc, proto.CommandError):
        return proto.error(exc.command_id if exc.command_id is not None else command_id,
                           exc.code, exc.message)
    if isinstance(exc, StoreError):
        log.warning("websocket command failed on the database: %s", exc)
        return proto.error(command_id, proto.ERR_UNAVAILABLE, "database unavailable, retry later")
    log.error("websocket command failed", exc_info=exc)
    return proto.error(command_id, proto.ERR_INTERNAL, "internal error")


class Session:
    """An authenticated connection: its commands and its subscriptions."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                 member: Member, app: web.Application) -> None:
        self.member = member
        self.settings = app[keys.SETTINGS]
        self.feed: Feed = app[keys.FEED]
        self.conn = Connection(ws, transport, self.settings, app[keys.METRICS])
        self.ws = ws
        self.subs: dict[int, Subscription] = {}
        self.catch_ups: dict[int, asyncio.Task[None]] = {}
        self._last_id = 0
        self._next_sub = 1

    async def run(self) -> None:
        """Answer commands until the client or the server closes."""
        self.conn.send(proto.auth_ok(self.member.guild_id, self.member.name))
        try:
            async for message in self.ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    # Pipelined commands are answered at the pace the client reads:
                    # aiohttp hands over buffered messages without ever yielding, so
                    # without this wait the writer would not run until the queue
                    # overflowed.
                    await self.conn.wait_for_room()
                    await self.handle(message.data)
        finally:
            for task in self.catch_ups.values():
                task.cancel()
            for task in list(self.catch_ups.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for sub in self.subs.values():
                await self.feed.stop(sub)
            await self.conn.aclose()

    async def handle(self, raw: bytes | str) -> None:
        """Decode, check the id, dispatch; every failure becomes an error result."""
        command_id: int | None = None
        try:
            command = proto.decode_command(raw)
            command_id = command.id
            if command.id <= self._last_id:
                raise proto.CommandError(
                    proto.ERR_ID_REUSE, f"id {command.id} is not above the last id "
                    f"{self._last_id}: ids must increase", command.id)
            self._last_id = command.id
            handler = HANDLERS[type(command)]
            await handler(self, command)
        except Exception as exc:
            self.conn.send(error_reply(exc, command_id))

    async def subscribe(self, command: Any) -> None:
        """Register the subscription and answer, then catch it up in the background.

        The result is sent before the next command is read (commands are answered one
        by one, in order); only the snapshot or replay runs in the background.
        """
        if command.since is not None and command.epoch is None:
            raise proto.CommandError(proto.ERR_INVALID_FORMAT,
                                     "`since` needs the `epoch` it was read in", command.id)
        if len(self.subs) >= proto.MAX_SUBSCRIPTIONS:
            raise proto.CommandError(proto.ERR_TOO_MANY_SUBSCRIPTIONS,
                                     f"at most {proto.MAX_SUBSCRIPTIONS} per connection",
                                     command.id)
        area = command.area
        sub = Subscription(
            sink=self.conn, sub_id=self._next_sub, guild_id=self.member.guild_id,
            area=Area(area.x, area.y, area.r) if area is not None else None,
            max_messages=self.settings.ws_queue_messages,
            max_bytes=self.settings.ws_queue_bytes)
        self._next_sub += 1
        self.subs[sub.sub_id] = sub
        try:
            recovered = await self.feed.start(sub, command.since, command.epoch)
        except Exception:
            self.subs.pop(sub.sub_id, None)
            await self.feed.stop(sub)
            raise
        self.conn.send(proto.result(command.id, {"subscription": sub.sub_id,
                                                 "recovered": recovered}))
        self.catch_ups[sub.sub_id] = asyncio.create_task(
            self._catch_up(sub, command.since if recovered else None))

    async def _catch_up(self, sub: Subscription, since: int | None) -> None:
        try:
            if since is not None:
                await self.feed.replay(sub, since)
            else:
                await self.feed.send_snapshot(sub)
        except Exception as exc:
            # The client was told it is subscribed: make it reconnect and resume.
            log.warning("subscription catch-up failed: %s", exc)
            self.conn.kick(WSCloseCode.TRY_AGAIN_LATER, "catch-up failed, resume with since")
            self.subs.pop(sub.sub_id, None)
            await self.feed.stop(sub)
        finally:
            self.catch_ups.pop(sub.sub_id, None)

    async def unsubscribe(self, command: Any) -> None:
        """Stop one of this connection's subscriptions."""
        sub = self.subs.pop(command.subscription, None)
        if sub is None:
            raise proto.CommandError(proto.ERR_NOT_FOUND,
                                     f"no subscription {command.subscription}", command.id)
        task = self.catch_ups.pop(sub.sub_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.feed.stop(sub)
        self.conn.send(proto.result(command.id, None))

    async def ping(self, command: Any) -> None:
        """Answer with the server's clock."""
        self.conn.send(proto.result(command.id, {"now": now_ms()}))


HANDLERS: dict[type, Callable[[Session, Any], Awaitable[None]]] = {
    proto.Subscribe: Session.subscribe,
    proto.Unsubscribe: Session.unsubscribe,
    proto.Ping: Session.ping,
}


def _check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    # Browsers always send Origin on a websocket; other clients may not.
    origin = request.headers.get("Origin")
    if origin is not None and "*" not in allowed and origin not in allowed:
        raise Forbidden(f"origin {origin!r} is not allowed", "Origin")


async def _authenticate(ws: web.WebSocketResponse, app: web.Application,
                        address: str | None) -> Member | None:
    """Wait for the auth message; on failure say why and close with CLOSE_AUTH."""
    await ws.send_frame(proto.auth_required(), WSMsgType.TEXT)
    try:
        message = await ws.receive(timeout=app[keys.SETTINGS].ws_auth_timeout)
    except TimeoutError:
        reason = "auth timeout"
    else:
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None  # closed or failed before authenticating: nothing to say
        try:
            token = proto.decode_auth(message.data).token
        except Exception:
            reason = 'expected {"type": "auth", "token": "..."}'
        else:
            try:
                member = await app[keys.AUTH].member(token, address)
            except TooManyAuthFailures as refused:
                member, reason = None, refused.message
            else:
                reason = "unknown or revoked token"
            if member is not None:
                return member
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_frame(proto.auth_invalid(reason), WSMsgType.TEXT)
    await ws.close(code=proto.CLOSE_AUTH, message=reason.encode())
    return None


@routes.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The live feed (docs/protocol.md)."""
    app = request.app
    settings = app[keys.SETTINGS]
    _check_origin(request, settings.cors_origins)
    app[keys.AUTH].refuse_if_limited(request.remote)
    member: Member | None = None
    if "Authorization" in request.headers:
        # Non-browser clients may authenticate on the upgrade request itself.
        token = token_from_header(request.headers["Authorization"]) or ""
        member = await app[keys.AUTH].member(token, request.remote)
        if member is None:
            raise Unauthorized("unknown or revoked token")
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat or None,
                               max_msg_size=settings.ws_max_msg_bytes,
                               compress=False, timeout=CLOSE_TIMEOUT_SECONDS)
    await ws.prepare(request)
    app[keys.METRICS].ws_connections.inc()
    sockets = app[keys.WEBSOCKETS]
    sockets[ws] = request.transport
    try:
        if member is None:
            member = await _authenticate(ws, app, request.remote)
        if member is not None:
            session = Session(ws, request.transport, member, app)
            app[keys.SESSIONS].add(session)
            await session.run()
    except StoreError as exc:
        log.warning("websocket closed: database unavailable (%s)", exc)
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"database unavailable")
    finally:
        sockets.pop(ws, None)
    return ws


async def _close_sockets(app: web.Application) -> None:
    """On shutdown, close every websocket with 1001 so clients reconnect elsewhere."""
    sockets = list(app[keys.WEBSOCKETS].items())
    if sockets:
        log.info("closing %d websockets for shutdown", len(sockets))

    await asyncio.gather(*(close_or_drop(ws, transport, WSCloseCode.GOING_AWAY, "server shutdown")
                           for ws, transport in sockets))


async def _close_revoked_forever(app: web.Application) -> None:
    # A token is checked when a socket opens; a revoked one must also stop an open feed.
    # One query per interval for all sockets, as often as the token cache expires.
    interval = max(app[keys.SETTINGS].token_cache_seconds, MIN_REVOCATION_CHECK_SECONDS)
    while True:
        await asyncio.sleep(interval)
        sessions: list[Session] = [*app[keys.SESSIONS]]
        if not sessions:
            continue
        try:
            revoked = await app[keys.STORE].revoked_tokens(
                sorted({s.member.token_id for s in sessions}))
        except StoreError as exc:
            log.warning("revocation check skipped: %s", exc)
            continue
        for session in sessions:
            if session.member.token_id in revoked:
                session.conn.kick(proto.CLOSE_AUTH, "token revoked")


async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
    """The feed, its bus (in-process or Redis) and its poller live as long as the app."""
    settings = app[keys.SETTINGS]
    feed = Feed(app[keys.STORE], settings)
    bus: LocalBus | RedisBus
    if settings.redis:
        metrics = app[keys.METRICS]

        def on_bus_change(subscribed: bool) -> None:
            metrics.redis_subscribed.set(1 if subscribed else 0)
            feed.poll_soon()

        bus = RedisBus(settings.redis, feed.hint, on_bus_change)
    else:
        bus = LocalBus()
    feed.bus_healthy = lambda: bus.healthy
    app[keys.FEED] = feed

    async def on_event(committed: Committed) -> None:
        event = committed.event
        feed.offer(committed)
        bus.publish(event.guild_id, event.seq, event.epoch)

    app[keys.EVENT_LISTENERS].append(on_event)

    def on_head(guild_id: int, seq: int, epoch: str) -> None:
        feed.hint(guild_id, seq, epoch)
        bus.publish(guild_id, seq, epoch)

    uncertain = UncertainCommits(app[keys.STORE], on_head, settings.poll_interval)
    app[keys.UNCERTAIN_COMMIT_LISTENERS].append(uncertain.add)
    await bus.start()
    poller = asyncio.create_task(feed.poll_forever(), name="feed-poller")
    revocations = asyncio.create_task(_close_revoked_forever(app), name="feed-revocations")
    yield
    for task in (poller, revocations):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await uncertain.close()
    await bus.close()
    await feed.close()


def setup_live_feed(app: web.Application) -> None:
    """Add the websocket route, the feed's cleanup context and the shutdown hook."""
    app[keys.WEBSOCKETS] = weakref.WeakKeyDictionary()
    app[keys.SESSIONS] = weakref.WeakSet()
    app.cleanup_ctx.append(feed_ctx)
    app.on_shutdown.append(_close_sockets)
    app.add_routes(routes)
