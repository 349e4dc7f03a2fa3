"""Load for fault tests: uploaders that retry with their Idempotency-Key and record every
attempt, and subscribers that follow a guild's feed across disconnections and record
every event they get."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RETRY_PAUSE = 0.2
REQUEST_GUARD = 30.0


def unique_view(guild_id: int, n: int) -> tuple[bytes, tuple[int, int], str]:
    """A one-tile view at a position no other upload of the guild uses, with a monster
    whose name carries the upload's marker: (body, tile, marker)."""
    x, y = 10 + n % 1900, 10 + n // 1900
    marker = f"g{guild_id}u{n}"
    body = [{"x": x, "y": y, "type": "Plaine", "items": {
        "npcs": [{"id": 1_000_000 + n, "name": f"Gobelin {marker}", "level": 1}],
        "pcs": [], "resources": [], "places": [], "objects": []}}]
    return json.dumps(body).encode(), (x, y), marker


@dataclass
class Attempt:
    at: float
    status: int  # 0: no answer (connection failed or timed out)
    body: dict[str, Any] | None
    replayed: bool


@dataclass
class Upload:
    guild_id: int
    n: int
    key: str
    body: bytes
    tile: tuple[int, int]
    marker: str
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def answered(self) -> Attempt | None:
        """The 2xx attempt, if any."""
        return next((a for a in self.attempts if 200 <= a.status < 300), None)


class Uploader:
    """Posts unique views for one guild, each retried with its key until a 2xx."""

    def __init__(self, bases: list[str], token: str, guild_id: int, pause: float = 0.02) -> None:
        self.bases = bases
        self.token = token
        self.guild_id = guild_id
        self.pause = pause
        self.uploads: list[Upload] = []
        self.stopping = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            body, tile, marker = unique_view(self.guild_id, n)
            upload = Upload(self.guild_id, n, f"key-{marker}", body, tile, marker)
            self.uploads.append(upload)
            while upload.answered is None:
                # Replicas in turn, upload by upload and retry by retry.
                base = self.bases[(n + len(upload.attempts)) % len(self.bases)]
                attempt = await self._post(session, base, upload)
                upload.attempts.append(attempt)
                assert attempt.status in (0, 200, 503), (attempt.status, attempt.body)
                if upload.answered is None:
                    await asyncio.sleep(RETRY_PAUSE)
            await asyncio.sleep(self.pause)

    async def _post(self, session: aiohttp.ClientSession, base: str, upload: Upload) -> Attempt:
        headers = {"Authorization": f"Basic {self.token}", "Idempotency-Key": upload.key}
        try:
            async with asyncio.timeout(REQUEST_GUARD), session.post(
                    f"{base}/view", data=upload.body, headers=headers) as resp:
                return Attempt(time.monotonic(), resp.status, await resp.json(),
                               resp.headers.get("Idempotent-Replayed") == "true")
        except (aiohttp.ClientError, TimeoutError):
            return Attempt(time.monotonic(), 0, None, False)


class Subscriber:
    """Follows one guild's whole feed; reconnects and resumes with `since` when cut off."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token
        self.events: list[dict[str, Any]] = []
        # When each event arrived (time.monotonic()), by seq.
        self.arrived: dict[int, float] = {}
        self.snapshots = 0
        self.reconnects = 0
        self.seq = 0
        self.epoch: str | None = None
        self.subscribed = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError, TimeoutError):
                await self._follow(session)
            self.reconnects += 1
            await asyncio.sleep(RETRY_PAUSE)

    async def _follow(self, session: aiohttp.ClientSession) -> None:
        async with session.ws_connect(f"{self.base}/ws",
                                      headers={"Authorization": f"Bearer {self.token}"}) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "auth_ok"
            command: dict[str, Any] = {"id": 1, "type": "subscribe"}
            if self.epoch is not None:
                command.update(since=self.seq, epoch=self.epoch)
            await ws.send_json(command)
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    return
                data = json.loads(message.data)
                if data["type"] == "result":
                    if not data["success"]:
                        return  # e.g. unavailable while the database is down: retry
                    assert data["result"]["recovered"] or self.epoch is None, data
                    self.subscribed.set()
                elif data["type"] == "snapshot":
                    assert self.epoch is None, "a snapshot after events: history was lost"
                    self.snapshots += 1
                    self.seq, self.epoch = data["seq"], data["epoch"]
                elif data["type"] == "event":
                    self.events.append(data)
                    self.arrived.setdefault(data["seq"], time.monotonic())
                    self.seq, self.epoch = data["seq"], data["epoch"]


def event_fields(event: dict[str, Any]) -> dict[str, Any]:
    """An event message without its envelope (comparable with the stored event)."""
    return {k: v for k, v in event.items() if k not in ("type", "subscription")}


async def wait_for(predicate: Any, guard: float, what: str) -> None:
    """Poll `predicate()` until true; the guard turns a hang into a failure."""
    deadline = time.monotonic() + guard
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
