"""Large snapshots come in parts: no websocket frame over 1 MiB, every row of the state
exactly once, live events after the last part; small ones stay one message."""
from __future__ import annotations

import json
from typing import Any

import aiohttp
import msgspec
from aiohttp.test_utils import TestClient

from hub.feed.snapshots import MAX_FRAME_BYTES, encoded_chunks
from parsers import decode_view
from storage import Store
from storage.model import Area, TileState
from tests.conftest import TokenMaker, auth, member_of
from tests.feed.kit import HANG_GUARD, KIND_LISTS, normalise, recv
from tests.support.hexes import disk

GUILD = 41
WHOLE_MAP = {"x": 1000, "y": 500, "r": 3000}


def big_view(cx: int, cy: int, id_base: int) -> bytes:
    """A 397-tile view with a monster on every third tile and a few of everything else."""
    tiles: list[dict[str, Any]] = []
    for i, (x, y) in enumerate(disk(cx, cy, 11)):
        items: dict[str, Any] = {"npcs": [], "pcs": [], "resources": [], "places": [],
                                 "objects": []}
        if i % 3 == 0:
            items["npcs"].append({"id": id_base + i, "name": f"Gobelin {id_base + i}",
                                  "level": i % 40 + 1})
        if i % 50 == 0:
            items["pcs"].append({"id": id_base + i, "name": f"Joueur {id_base + i}",
                                 "level": 5, "guildId": 3, "guildName": "Guilde"})
        if i % 40 == 0:
            items["resources"].append({"name": "Bois", "level": 2})
        if i % 60 == 0:
            items["objects"].append({"id": id_base + i, "name": "Parchemin"})
        tiles.append({"x": x, "y": y, "type": "Forêt" if i % 2 else "Plaine", "items": items})
    return json.dumps(tiles, ensure_ascii=False).encode()


async def seed_guild(store: Store, token: str, views: int) -> None:
    member = await member_of(store, token)
    for n in range(views):
        body = big_view(100 + 23 * (n % 6), 100 + 23 * (n // 6), 100_000 + 1000 * n)
        await store.apply_view(member, decode_view(body, max_tiles=400, max_entities=4000),
                               body, 1_800_000_000_000 + n)


async def snapshot_messages(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[int, dict[str, Any]]]:
    """(frame size, message) of every snapshot message, up to the complete snapshot."""
    out = []
    while True:
        msg = await ws.receive(timeout=HANG_GUARD)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        assert data["type"] == "snapshot", data
        out.append((len(msg.data.encode()), data))
        if not data.get("more", False):
            return out


async def test_a_whole_guild_snapshot_comes_in_bounded_complete_parts(
        client: TestClient, store: Store, make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice")
    await seed_guild(store, token, 30)
    truth = await store.read_state(GUILD, Area(**WHOLE_MAP), 0)
    ws = await client.ws_connect("/ws", headers=auth(token))
    assert (await recv(ws))["type"] == "auth_ok"
    await ws.send_json({"id": 1, "type": "subscribe"})
    assert (await recv(ws))["success"]
    parts = await snapshot_messages(ws)
    sizes = [size for size, _ in parts]
    print(f"\n{len(truth.tiles)} tiles, {sum(sizes)} bytes in {len(parts)} parts, "
          f"largest {max(sizes)}")
    assert sum(sizes) > MAX_FRAME_BYTES  # one message would have been too large
    assert max(sizes) <= MAX_FRAME_BYTES
    assert [m["part"] for _, m in parts] == list(range(len(parts)))
    assert [m["more"] for _, m in parts] == [True] * (len(parts) - 1) + [False]
    header = {k: parts[0][1][k] for k in ("now", "area", "seq", "epoch")}
    assert header["seq"] == truth.seq == 30 and header["area"] == WHOLE_MAP
    assert all({k: m[k] for k in header} == header for _, m in parts)
    got: dict[str, list[Any]] = {name: [] for name in ("tiles", *KIND_LISTS)}
    for _, m in parts:
        for name in got:
            got[name] += m[name]
    expected = json.loads(json.dumps({name: getattr(truth, name) for name in got},
                                     default=lambda s: {f: getattr(s, f) for f in s.__struct_fields__}))
    assert {name: len(rows) for name, rows in got.items()} == {
        name: len(rows) for name, rows in expected.items()}
    assert normalise(got) == normalise(expected)
    # Live events follow the last part.
    body = big_view(400, 400, 900_000)
    resp = await client.post("/view", data=body, headers=auth(token))
    assert resp.status == 200
    event = await recv(ws)
    assert event["type"] == "event" and event["seq"] == 31
    await ws.close()


async def test_a_huge_radius_is_bounded_too_and_a_small_area_is_one_message(
        client: TestClient, store: Store, make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice")
    await seed_guild(store, token, 30)
    ws = await client.ws_connect("/ws", headers=auth(token))
    assert (await recv(ws))["type"] == "auth_ok"
    await ws.send_json({"id": 1, "type": "subscribe",
                        "area": {"x": 150, "y": 150, "r": 5000}})
    assert (await recv(ws))["success"]
    parts = await snapshot_messages(ws)
    assert len(parts) > 1 and max(size for size, _ in parts) <= MAX_FRAME_BYTES
    # A small area: the single message of the protocol's first version, unchanged.
    await ws.send_json({"id": 2, "type": "subscribe", "area": {"x": 110, "y": 110, "r": 4}})
    assert (await recv(ws))["success"]
    (single,) = await snapshot_messages(ws)
    message = single[1]
    assert "part" not in message and "more" not in message
    assert list(message) == ["type", "subscription", "recovered", "now", "area", "seq", "epoch",
                             "tiles", "players", "monsters", "places", "resources", "objects"]
    assert message["tiles"] and message["monsters"]
    truth = await store.read_state(GUILD, Area(110, 110, 4), message["now"])
    assert normalise(message) == normalise(json.loads(json.dumps(
        {name: getattr(truth, name) for name in ("tiles", *KIND_LISTS)},
        default=lambda s: {f: getattr(s, f) for f in s.__struct_fields__})))
    await ws.close()


def test_a_page_of_long_rows_is_split_below_the_frame_limit() -> None:
    rows = [TileState(x, 0, "Plaine", 1, "é" * 500) for x in range(3000)]  # about 3 MiB
    chunks = encoded_chunks(rows)
    assert len(chunks) > 2
    assert max(len(c) for c in chunks) <= MAX_FRAME_BYTES - 4096
    assert [t for c in chunks for t in json.loads(c)] == json.loads(msgspec.json.encode(rows))
