"""Graceful stop: the HTTP requests in flight, and waiting for exactly them on SIGTERM.

aiohttp's own shutdown (`BaseRunner.cleanup`) first marks every connection closing, and
a closing connection drops the bytes that still arrive, so an upload whose body was on
its way would never complete; its handler then waits out the whole shutdown timeout.
The hub therefore drains before aiohttp's cleanup runs: it stops listening, lets the
requests in flight finish reading and answering (their connections then close), and
hands over to aiohttp as soon as none is left. Bodies still arriving near the deadline
are cut off and answered with a JSON 503, so every client gets an answer in time.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import hdrs, web

from hub import keys
from hub.errors import ShuttingDown, error_response

log = logging.getLogger(__name__)

# Time left, before the deadline, for requests whose body was cut off to answer 503.
ANSWER_MARGIN_SECONDS = 1.0


class InFlight:
    """The HTTP requests being served (websockets apart: they are closed on shutdown)."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        # Past the drain's body deadline: body reads still waiting end with a 503.
        self.stopped = False
        self._body_reads: set[asyncio.Future[bytes]] = set()
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        """A request starts."""
        self.count += 1

    def leave(self) -> None:
        """A request has been answered."""
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    def reading(self, read: asyncio.Future[bytes]) -> None:
        """A body read in progress, cut off when the drain's deadline comes."""
        if self.stopped:
            read.cancel()
        self._body_reads.add(read)
        read.add_done_callback(self._body_reads.discard)

    async def drain(self, budget: float) -> None:
        """Wait for the requests in flight: bodies until shortly before `budget` s, then 503."""
        self.draining = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._idle = asyncio.Event()
        if self.count == 0:
            return
        log.info("shutdown: waiting for %d requests in flight", self.count)
        cutoff = max(budget - ANSWER_MARGIN_SECONDS, budget / 2)
        if not await self._wait_idle(cutoff):
            log.warning("shutdown: %d requests still in flight after %.1f s; "
                        "cutting off bodies still arriving", self.count, cutoff)
            self.stopped = True
            for read in list(self._body_reads):
                read.cancel()
            await self._wait_idle(max(0.0, budget - (loop.time() - started)))
        log.info("shutdown: drained in %.2f s (%d requests left)",
                 loop.time() - started, self.count)

    async def _wait_idle(self, seconds: float) -> bool:
        assert self._idle is not None
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


@web.middleware
async def inflight_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Count each request while it is served; while draining, close its connection after."""
    inflight = request.app[keys.INFLIGHT]
    if _is_websocket(request):
        response: web.StreamResponse = await handler(request)
        return response
    if inflight.stopped:
        exc = ShuttingDown()
        return error_response(exc.status, exc.code, exc.message,
                              legacy=not request.path.startswith("/api/"), headers=exc.headers)
    inflight.enter()
    try:
        response = await handler(request)
        if inflight.draining:
            # Keep-alive would let the client send its next request to a stopping process.
            response.force_close()
        return response
    finally:
        inflight.leave()
