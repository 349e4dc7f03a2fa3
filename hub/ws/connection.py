"""One websocket's outgoing side: one writer task draining a bounded queue."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from aiohttp import WSMsgType, web

from hub import feed_protocol as proto
from hub.metrics import Metrics
from hub.settings import Settings

log = logging.getLogger(__name__)

# How long a closing handshake may take before the transport is dropped.
CLOSE_TIMEOUT_SECONDS = 5.0
CLOSE_POLL_SECONDS = 0.1
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
