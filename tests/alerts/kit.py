"""A local stand-in for Discord's webhook endpoint, and uploads placed to the hex.

The stand-in is a real aiohttp server on a real socket: it records every request (its
arrival time, path and JSON body) and answers what the test scripted, 204 otherwise.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.hexes import disk

HANG_GUARD = 20.0  # seconds: only turns a hang into a failure, never a timing claim


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    path: str
    body: dict[str, Any]
    status: int  # what the stand-in answered


@dataclass
class FakeDiscord:
    """Answers `POST /api/webhooks/<id>/<token>` like Discord, as scripted."""

    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    # The answer when nothing is scripted.
    default: int = 204
    # While set and not yet opened, requests are recorded and then held unanswered.
    gate: asyncio.Event | None = None
    _runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> FakeDiscord:
        app = web.Application()
        app.router.add_post("/api/webhooks/{id}/{token}", self._handle)
        # No access log: its lines would hold the webhook paths (the secrets under test).
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def webhook(self) -> str:
        """A fresh webhook URL on this server; its token is the secret to look for."""
        return (f"http://127.0.0.1:{self.port}/api/webhooks/{secrets.randbelow(10**12)}/"
                f"{secrets.token_urlsafe(48)}")

    def answer(self, status: int, **options: Any) -> None:
        """Queue the answer to the next request (429: retry_after=, header=; others)."""
        self.script.append((status, options))

    def to(self, webhook: str) -> list[Received]:
        """The requests that reached one webhook."""
        path = webhook.split(f":{self.port}", 1)[1]
        return [r for r in self.received if r.path == path]

    def delivered(self, webhook: str | None = None) -> list[Received]:
        """Requests answered with a success."""
        got = self.received if webhook is None else self.to(webhook)
        return [r for r in got if 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status, options = self.script.pop(0) if self.script else (self.default, {})
        self.received.append(Received(time.monotonic(), request.path, body, status))
        if self.gate is not None:
            await self.gate.wait()
        if status == 204:
            return web.Response(status=204)
        if status == 429:
            retry = options.get("retry_after", 1.0)
            headers = {}
            if options.get("header"):
                headers["Retry-After"] = str(retry)
            payload: dict[str, Any] = {"message": "You are being rate limited.", "global": False}
            if options.get("body", True):
                payload["retry_after"] = retry
            return web.json_response(payload, status=429, headers=headers)
        if status == 404:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        return web.Response(status=status, text="upstream trouble")


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool],
                     guard: float = HANG_GUARD) -> None:
    """Wait until `check()` holds (polled; the guard only turns a hang into a failure)."""
    async def poll() -> None:
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), guard)


def view(cx: int, cy: int, r: int = 4, *, pcs: dict[tuple[int, int], list[dict[str, Any]]] | None = None,
         npcs: dict[tuple[int, int], list[dict[str, Any]]] | None = None) -> bytes:
    """A whole view around (cx, cy) in the userscript's format, with entities placed."""
    pcs, npcs = pcs or {}, npcs or {}
    tiles = []
    for x, y in disk(cx, cy, r):
        tiles.append({"x": x, "y": y, "type": "Plaine", "items": {
            "pcs": pcs.get((x, y), []), "npcs": npcs.get((x, y), []),
            "places": [], "resources": [], "objects": []}})
    return json.dumps(tiles).encode()


def monster(mid: int, level: int, name: str = "Gobelin") -> dict[str, Any]:
    return {"id": mid, "name": name, "level": level, "wounds": "Indemne"}


def player(pid: int, name: str, guild_id: int | None = None, level: int = 10) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": pid, "name": name, "level": level, "wounds": "Indemne"}
    if guild_id is not None:
        entry |= {"guildId": guild_id, "guildName": f"Guilde {guild_id}"}
    return entry


def profile(pid: int, name: str, x: int, y: int, pv: int, pv_max: int,
            dla: str = "2024-06-01 18:49:00") -> bytes:
    return json.dumps({"id": pid, "name": name, "level": 12, "x": x, "y": y, "dla": dla,
                       "caracs": {"pv": pv, "pvMax": pv_max}}).encode()
