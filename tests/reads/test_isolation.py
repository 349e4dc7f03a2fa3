"""Guild isolation: with guild B's token, no read route returns anything of guild A.

Both guilds upload overlapping views (the same tiles with different terrain, the same
monster id on different tiles), the same player's profile and the same hunting group
with different data. Every name guild A uploads starts with "Alpha", every name of
guild B with "Bravo", so a leak shows in the raw bytes of any JSON answer as well as
in the structured checks; the world map is decoded and compared pixel by pixel.
"""
from __future__ import annotations

import io
import json
from typing import Any

from aiohttp.test_utils import TestClient
from PIL import Image

from hub.worldmap import TERRAIN_COLOURS, UNKNOWN
from tests.conftest import TokenMaker, auth
from tests.support.hexes import disk

CENTRE = (300, 200)
ONLY_A = (600, 400)
SPY = 555  # a player both guilds write about


class Guild:
    """One guild's side of the scenario: its ids, names, terrain, tokens."""

    def __init__(self, gid: int, tag: str, terrain: str, player: int, monster_at: int) -> None:
        self.gid, self.tag, self.terrain = gid, tag, terrain
        self.player, self.monster_at = player, monster_at
        self.token = ""
        self.scout = ""

    def view(self, centre: tuple[int, int], r: int, bare: bool = False) -> list[dict[str, Any]]:
        tiles = [{"x": x, "y": y, "type": self.terrain, "items": {}} for x, y in disk(*centre, r)]
        if bare:
            return tiles
        tiles[0]["items"] = {"pcs": [{"id": self.player, "name": f"{self.tag}-Leader",
                                      "level": 3, "guildId": self.gid,
                                      "guildName": f"{self.tag} guild"}],
                             "resources": [{"name": f"{self.tag}-Bois", "level": 1}]}
        tiles[self.monster_at]["items"] = {
            "npcs": [{"id": 7001, "name": f"{self.tag}-Monster", "level": 4}],
            "places": [{"id": 12, "name": f"{self.tag}-Temple", "townId": 3,
                        "townName": f"{self.tag}-Town"}],
            "objects": [{"id": 99, "name": f"{self.tag}-Potion"}],
            "pcs": [{"id": SPY, "name": f"{self.tag}-Spy", "guildId": 1}]}
        return tiles

    def profile(self, player: int, name: str) -> dict[str, Any]:
        return {"id": player, "name": name, "race": f"{self.tag}-Race", "level": 9,
                "x": CENTRE[0], "y": CENTRE[1], "dla": "2026-11-25 18:32:00",
                "caracs": {"pv": self.gid, "pvMax": 100}}

    def group(self) -> list[dict[str, Any]]:
        return [{"id": SPY, "name": f"{self.tag}-Spy", "race": f"{self.tag}-Race", "level": 2,
                 "pc": self.gid, "x": CENTRE[0] + 1, "y": CENTRE[1]},
                {"id": self.player, "name": f"{self.tag}-Leader", "x": CENTRE[0],
                 "y": CENTRE[1]}]


async def post(client: TestClient, url: str, token: str, body: Any) -> None:
    resp = await client.post(url, data=json.dumps(body), headers=auth(token))
    assert resp.status == 200, await resp.text()


async def upload_both(client: TestClient, make_token: TokenMaker) -> tuple[Guild, Guild]:
    a = Guild(17, "Alpha", "Forêt", 1001, monster_at=5)
    b = Guild(42, "Bravo", "Désert", 2002, monster_at=20)
    for g in (a, b):
        g.token = await make_token(g.gid, f"{g.tag}-Leader", g.player)
        g.scout = await make_token(g.gid, f"{g.tag}-Scout")
    # Interleaved, so any cross-guild merge would have a chance to show.
    for g in (a, b):
        await post(client, "/view", g.token, g.view(CENTRE, 3))
    await post(client, "/view", a.scout, a.view(ONLY_A, 2, bare=True))
    for g in (b, a):
        await post(client, f"/pc/{g.player}", g.token, g.profile(g.player, f"{g.tag}-Leader"))
        await post(client, f"/pc/{SPY}", g.scout, g.profile(SPY, f"{g.tag}-Spy"))
        await post(client, "/gdc", g.scout, g.group())
    return a, b


READ_URLS = [
    "/gdc", f"/tiles/{CENTRE[0]}/{CENTRE[1]}/3", f"/minimap/{CENTRE[0]}/{CENTRE[1]}/3",
    f"/tiles/{ONLY_A[0]}/{ONLY_A[1]}/2", f"/minimap/{ONLY_A[0]}/{ONLY_A[1]}/2", "/infos",
    f"/api/v1/state?x={CENTRE[0]}&y={CENTRE[1]}&r=3",
    f"/api/v1/state?x={ONLY_A[0]}&y={ONLY_A[1]}&r=2", "/api/v1/members",
]


def png_pixels(png: bytes) -> dict[tuple[int, int], tuple[int, ...]]:
    """Every painted (not transparent) pixel of the world map."""
    image = Image.open(io.BytesIO(png))
    assert image.size == (1000, 500)
    data = image.convert("RGBA").tobytes()
    unknown = bytes(UNKNOWN)
    return {(i % 1000, i // 1000): tuple(data[4 * i: 4 * i + 4]) for i in range(len(data) // 4)
            if data[4 * i: 4 * i + 4] != unknown}


async def test_json_reads_never_cross_guilds(client: TestClient, make_token: TokenMaker) -> None:
    a, b = await upload_both(client, make_token)
    for me, other in ((a, b), (b, a)):
        for token in (me.token, me.scout):
            for url in READ_URLS:
                resp = await client.get(url, headers=auth(token))
                assert resp.status == 200, (url, await resp.text())
                text = await resp.text()
                assert other.tag not in text, (me.tag, url, text[:500])
                assert other.terrain not in text, (me.tag, url)
    # Where only A has been, B knows nothing at all.
    for url in READ_URLS[3:5]:
        assert await (await client.get(url, headers=auth(b.token))).json() == []
        assert len(await (await client.get(url, headers=auth(a.token))).json()) == 19
    resp = await client.get(READ_URLS[7], headers=auth(b.token))
    state = await resp.json()
    assert not any(state[k] for k in ("tiles", "players", "monsters", "places", "resources",
                                      "objects"))


async def test_each_guild_reads_its_own_version(client: TestClient,
                                                make_token: TokenMaker) -> None:
    a, b = await upload_both(client, make_token)
    for me in (a, b):
        h = auth(me.token)
        resp = await client.get(f"/tiles/{CENTRE[0]}/{CENTRE[1]}/3", headers=h)
        tiles = await resp.json()
        assert len(tiles) == 37
        assert {t["type"] for t in tiles} == {me.terrain}
        assert {t["user"] for t in tiles} == {f"{me.tag}-Leader"}

        resp = await client.get(f"/api/v1/state?x={CENTRE[0]}&y={CENTRE[1]}&r=3", headers=h)
        state = await resp.json()
        where = me.view(CENTRE, 3)[me.monster_at]
        assert [(m["id"], m["name"], m["x"], m["y"]) for m in state["monsters"]] == [
            (7001, f"{me.tag}-Monster", where["x"], where["y"])]
        assert [p["town_name"] for p in state["places"]] == [f"{me.tag}-Town"]
        assert [o["name"] for o in state["objects"]] == [f"{me.tag}-Potion"]
        assert [r["name"] for r in state["resources"]] == [f"{me.tag}-Bois"]
        names = {p["id"]: p["name"] for p in state["players"]}
        assert names == {me.player: f"{me.tag}-Leader", SPY: f"{me.tag}-Spy"}

        resp = await client.get("/gdc", headers=h)
        players = {p["id"]: p for p in await resp.json()}
        assert set(players) == {me.player, SPY}
        assert players[SPY]["race"] == f"{me.tag}-Race"
        assert players[SPY]["pc"] == me.gid
        assert players[SPY]["pv"] == me.gid

        resp = await client.get(f"/minimap/{CENTRE[0]}/{CENTRE[1]}/3", headers=h)
        marks = [t["on_tile"] for t in await resp.json() if t["on_tile"]]
        assert {"resource": f"{me.tag}-Bois", "level": 1} in marks
        assert {"place": f"{me.tag}-Temple"} in marks

        resp = await client.get("/infos", headers=h)
        infos = await resp.json()
        assert (infos["user"], infos["guild"]) == (f"{me.tag}-Leader", me.gid)

        resp = await client.get("/api/v1/members", headers=h)
        members = (await resp.json())["members"]
        assert {m["name"] for m in members} == {f"{me.tag}-Leader", f"{me.tag}-Scout"}
        by_name = {m["name"]: m for m in members}
        assert by_name[f"{me.tag}-Leader"]["player"]["race"] == f"{me.tag}-Race"
        assert by_name[f"{me.tag}-Scout"]["player"]["name"] == f"{me.tag}-Spy"


async def test_world_maps_never_cross_guilds(client: TestClient, make_token: TokenMaker) -> None:
    a, b = await upload_both(client, make_token)
    # B's map is rendered and cached before A uploads more: A's change must not leak in.
    resp = await client.get("/worldmap", headers=auth(b.token))
    assert resp.status == 200 and resp.content_type == "image/png"
    b_before = png_pixels(await resp.read())
    await post(client, "/view", a.scout, a.view((800, 100), 2, bare=True))

    expected = {
        a: {**{c: TERRAIN_COLOURS[a.terrain] for c in disk(*CENTRE, 3)},
            **{c: TERRAIN_COLOURS[a.terrain] for c in disk(*ONLY_A, 2)},
            **{c: TERRAIN_COLOURS[a.terrain] for c in disk(800, 100, 2)}},
        b: {c: TERRAIN_COLOURS[b.terrain] for c in disk(*CENTRE, 3)},
    }
    assert b_before == expected[b]
    for me in (b, a, b):
        for token in (me.token, me.scout):
            resp = await client.get("/worldmap", headers=auth(token))
            assert resp.status == 200
            assert png_pixels(await resp.read()) == expected[me], me.tag
