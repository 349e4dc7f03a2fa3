"""The live feed tests' client side: a websocket client, and an independent client-side
applier of snapshots and events (written from the Event docstring)."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import aiohttp

from tests.support.hexes import disk

HANG_GUARD = 20.0  # seconds: only to turn a hang into a failure, never a timing assertion


# -- websocket client ---------------------------------------------------------------


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next JSON message; fails on close (use recv_close to expect one)."""
    msg = await asyncio.wait_for(ws.receive(), HANG_GUARD)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def recv_close(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes: (close code, messages seen before it)."""
    seen: list[dict[str, Any]] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), HANG_GUARD)
        if msg.type == aiohttp.WSMsgType.TEXT:
            seen.append(json.loads(msg.data))
            continue
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED), msg.type
        # The code the server sent (close_code may already say how the socket ended).
        code = msg.data if msg.type == aiohttp.WSMsgType.CLOSE else ws.close_code
        return code, seen


async def login(ws: aiohttp.ClientWebSocketResponse, token: str) -> dict[str, Any]:
    """In-band auth; returns auth_ok."""
    assert (await recv(ws)) == {"type": "auth_required"}
    await ws.send_json({"type": "auth", "token": token})
    ok = await recv(ws)
    assert ok["type"] == "auth_ok", ok
    return ok


async def subscribed(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """On a socket authenticated by header: take auth_ok, subscribe to the whole feed
    (command id 1), and return the snapshot that follows."""
    assert (await recv(ws))["type"] == "auth_ok"
    await subscribe(ws, 1)
    return await recv(ws)


async def subscribe(ws: aiohttp.ClientWebSocketResponse, command_id: int,
                    **options: Any) -> dict[str, Any]:
    """Send subscribe; returns its result (the snapshot or events follow)."""
    await ws.send_json({"id": command_id, "type": "subscribe", **options})
    res = await recv(ws)
    assert res["type"] == "result" and res["id"] == command_id and res["success"], res
    return dict(res["result"])


# -- an independent applier ------------------------------------------------------------


def _key(kind: str, entity: dict[str, Any]) -> tuple[Any, ...]:
    if kind == "resource":
        return ("resource", entity["x"], entity["y"], entity["name"])
    return (kind, entity["id"])


KIND_LISTS = {"players": "player", "monsters": "monster", "places": "place",
              "resources": "resource", "objects": "object"}


class Mirror:
    """What a browser interface holds: built from a snapshot, then updated by events."""

    def __init__(self) -> None:
        self.tiles: dict[tuple[int, int], dict[str, Any]] = {}
        self.entities: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.seq = 0
        self.epoch = ""

    def load(self, snapshot: dict[str, Any]) -> None:
        self.tiles = {(t["x"], t["y"]): dict(t) for t in snapshot["tiles"]}
        self.entities = {}
        for name, kind in KIND_LISTS.items():
            for e in snapshot[name]:
                self.entities[_key(kind, e)] = {**e, "kind": kind}
        self.seq, self.epoch = snapshot["seq"], snapshot["epoch"]

    def apply(self, event: dict[str, Any]) -> None:
        assert event["seq"] == self.seq + 1, (event["seq"], self.seq)
        self.seq, self.epoch = event["seq"], event["epoch"]
        for t in event["tiles"]:
            self.tiles[(t["x"], t["y"])] = dict(t)
        for e in event["left"]:
            self.entities.pop(_key(e["kind"], e), None)
        for e in (*event["appeared"], *event["moved"], *event["changed"]):
            self.entities[_key(e["kind"], e)] = dict(e)
        if event["kind"] == "view":
            area = event["area"]
            covered = ({tuple(c) for c in event["covered"]} if event.get("covered")
                       else set(disk(area["x"], area["y"], area["r"])))
            stamp = {"seen_at": event["at"], "seen_by": event["by"]}
            for cell in covered:
                if cell in self.tiles:
                    self.tiles[cell].update(stamp)
            for e in self.entities.values():
                if (e["x"], e["y"]) in covered:
                    e.update(stamp)

    def as_state(self) -> dict[str, Any]:
        """Comparable with GET /api/v1/state (lists sorted the same way here)."""
        return normalise({
            "tiles": list(self.tiles.values()),
            **{name: [e for e in self.entities.values() if e["kind"] == kind]
               for name, kind in KIND_LISTS.items()},
        })


def normalise(state: dict[str, Any]) -> dict[str, Any]:
    """Tiles and entity lists in a canonical order, without the `kind` tag."""
    def clean(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out = [{k: v for k, v in e.items() if k != "kind"} for e in items]
        return sorted(out, key=lambda e: json.dumps(e, sort_keys=True))
    return {"tiles": clean(state["tiles"]),
            **{name: clean(state[name]) for name in KIND_LISTS}}
