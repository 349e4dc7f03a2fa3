"""A realistic session replayed through the legacy routes, checked against a model.

Two guilds' members walk around a small world for hundreds of uploads while monsters
move and die, resources run out, objects are picked up and places vanish. An
independent in-test model applies the reference semantics to the same uploads; every
read route must agree with it.
"""
from __future__ import annotations

import json
import random
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.settings import Settings
from storage.merge import hex_distance
from tests.conftest import TokenMaker, auth
from tests.support.world import World

GUILDS = {17: "Les Veilleurs", 42: "La Horde"}
MEMBERS_PER_GUILD = 12
UPLOADS = 260
CENTRE = (500, 250)
RADIUS = 30


@pytest.fixture
def settings(db_url: str) -> Settings:
    # The whole test world (14 tiles around the centre) fits in one read.
    return Settings(db=db_url, token_cache_seconds=0.0, max_radius=RADIUS)


class GuildModel:
    """What one guild should know, by the rules of legacy-api.md, written independently."""

    def __init__(self, guild_id: int) -> None:
        self.guild_id = guild_id
        self.tiles: dict[tuple[int, int], tuple[str, str]] = {}
        self.players: dict[int, dict[str, Any]] = {}
        self.monsters: dict[int, dict[str, Any]] = {}
        self.places: dict[int, dict[str, Any]] = {}
        self.resources: dict[tuple[int, int, str], dict[str, Any]] = {}
        self.objects: dict[int, dict[str, Any]] = {}

    def view(self, by: str, tiles: list[dict[str, Any]]) -> None:
        covered = {(t["x"], t["y"]) for t in tiles}
        for table in (self.monsters, self.places, self.objects):
            for key in [k for k, v in table.items() if (v["x"], v["y"]) in covered]:
                del table[key]
        for key in [k for k in self.resources if (k[0], k[1]) in covered]:
            del self.resources[key]
        for p in self.players.values():
            if (p.get("x"), p.get("y")) in covered:
                p["x"] = p["y"] = None
        for t in tiles:
            x, y, items = t["x"], t["y"], t["items"]
            self.tiles[(x, y)] = (t["type"], by)
            for p in items["pcs"]:
                if p["id"] in (None, "None"):
                    continue
                self.players.setdefault(p["id"], {}).update(
                    id=p["id"], name=p["name"], level=p["level"], wounds=p["wounds"],
                    guild_id=p.get("guildId"), guild_name=p.get("guildName"), x=x, y=y,
                    seen_by=by)
            for m in items["npcs"]:
                if m["id"] in (None, "None"):
                    continue
                self.monsters[m["id"]] = {**m, "x": x, "y": y, "seen_by": by}
            for pl in items["places"]:
                self.places[pl["id"]] = {"id": pl["id"], "name": pl["name"], "level": pl["level"],
                                         "town_id": pl["townId"], "town_name": pl["townName"],
                                         "x": x, "y": y, "seen_by": by}
            for r in items["resources"]:
                self.resources[(x, y, r["name"])] = {"name": r["name"], "level": r["level"],
                                                     "x": x, "y": y, "seen_by": by}
            for o in items["objects"]:
                self.objects[o["id"]] = {**o, "x": x, "y": y, "seen_by": by}

    def profile(self, by: str, body: dict[str, Any]) -> None:
        p = self.players.setdefault(body["id"], {"id": body["id"]})
        p.update(name=body["name"], level=body["level"], race=body["race"], x=body["x"],
                 y=body["y"], seen_by=by, pv=body["caracs"]["pv"], profile_by=by)

    def group(self, by: str, members: list[dict[str, Any]]) -> None:
        for g in members:
            p = self.players.setdefault(g["id"], {"id": g["id"]})
            p.update(name=g["name"], level=g["level"], race=g["race"], pc=g["pc"], x=g["x"],
                     y=g["y"], seen_by=by, group_by=by)

    def guild_players(self) -> set[int]:
        return {pid for pid, p in self.players.items()
                if p.get("guild_id") == self.guild_id or "profile_by" in p or "group_by" in p}

    def on_tile(self) -> dict[tuple[int, int], dict[str, Any]]:
        marks: dict[tuple[int, int], dict[str, Any]] = {}
        # Lowest priority first, so that more important things overwrite.
        for p in sorted(self.players.values(), key=lambda p: -p["id"]):
            if p.get("x") is not None and p.get("guild_id") == self.guild_id:
                marks[(p["x"], p["y"])] = {"gdc": p["name"]}
        for p in sorted(self.players.values(), key=lambda p: -p["id"]):
            if p.get("x") is not None and p.get("guild_id") != self.guild_id:
                marks[(p["x"], p["y"])] = {"pc": p["name"]}
        for pl in self.places.values():
            marks[(pl["x"], pl["y"])] = {"place": pl["name"]}
        for r in self.resources.values():
            marks[(r["x"], r["y"])] = {"resource": r["name"], "level": r["level"]}
        return marks


def _categories(model: GuildModel, cell: tuple[int, int]) -> int:
    on = [any((r["x"], r["y"]) == cell for r in model.resources.values()),
          any((p["x"], p["y"]) == cell for p in model.places.values()),
          any((p.get("x"), p.get("y")) == cell for p in model.players.values())]
    return sum(on)


async def _post(client: TestClient, path: str, token: str, body: Any) -> None:
    resp = await client.post(path, data=json.dumps(body), headers=auth(token, "Basic"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["Info"] == "Job done"


async def _get(client: TestClient, path: str, token: str) -> Any:
    resp = await client.get(path, headers=auth(token))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_replayed_session_matches_model(client: TestClient, make_token: TokenMaker) -> None:
    rng = random.Random(20261125)
    world = World(rng, x0=CENTRE[0], y0=CENTRE[1])
    world.populate(GUILDS, MEMBERS_PER_GUILD, strangers=6)
    # Crowd a few tiles so that the minimap's priorities are really put to the test.
    for place in list(world.places.values())[:2]:
        world.resources[(place["x"], place["y"], "Bois")] = 3
    strangers = [p for p in world.players.values() if p.guild_id is None]
    for place, stranger in zip(list(world.places.values())[2:4], strangers, strict=False):
        stranger.x, stranger.y = place["x"], place["y"]
    members = [p for p in world.players.values() if p.guild_id is not None]
    tokens = {p.id: await make_token(p.guild_id, p.name, p.id) for p in members}
    models = {g: GuildModel(g) for g in GUILDS}
    kinds = {"view": 0, "profile": 0, "group": 0}

    for _ in range(UPLOADS):
        world.evolve()
        walker = rng.choice(members)
        token, model = tokens[walker.id], models[walker.guild_id]  # type: ignore[index]
        roll = rng.random()
        if roll < 0.8:
            view = world.view(walker.x, walker.y, rng.randint(3, 6))
            await _post(client, "/view", token, view)
            model.view(walker.name, view)
            kinds["view"] += 1
        elif roll < 0.9:
            body = {"id": walker.id, "name": walker.name, "race": rng.choice(["Elfe", None]),
                    "level": walker.level, "img": "x.png", "dla": "2026-11-25 18:32:00",
                    "pas": 3, "pos": 2, "xp": 10, "xpMax": 100, "x": walker.x, "y": walker.y,
                    "caracs": {"pv": rng.randint(1, 50), "pvMax": 50, "attM": 1, "defM": 1,
                               "degM": 1, "arm": 1, "mmM": 1, "pc": 5}}
            await _post(client, f"/pc/{walker.id}", token, body)
            model.profile(walker.name, body)
            kinds["profile"] += 1
        else:
            mates = [p for p in members if p.guild_id == walker.guild_id and p.id != walker.id]
            group = [{"id": p.id, "name": p.name, "race": "Humain", "level": p.level,
                      "pc": rng.randint(0, 99), "x": p.x, "y": p.y}
                     for p in rng.sample(mates, 4)]
            await _post(client, "/gdc", token, group)
            model.group(walker.name, group)
            kinds["group"] += 1
    assert min(kinds.values()) > 10, kinds

    cx, cy = CENTRE
    for guild_id, model in models.items():
        token = next(tokens[p.id] for p in members if p.guild_id == guild_id)
        state = await _get(client, f"/api/v1/state?x={cx}&y={cy}&r={RADIUS}", token)
        assert {(t["x"], t["y"]): (t["type"], t["seen_by"]) for t in state["tiles"]} == model.tiles
        assert {m["id"]: (m["name"], m["level"], m["wounds"], m["x"], m["y"], m["seen_by"])
                for m in state["monsters"]} == {
            m["id"]: (m["name"], m["level"], m["wounds"], m["x"], m["y"], m["seen_by"])
            for m in model.monsters.values()}
        assert {p["id"]: (p["name"], p["town_id"], p["town_name"], p["x"], p["y"], p["seen_by"])
                for p in state["places"]} == {
            p["id"]: (p["name"], p["town_id"], p["town_name"], p["x"], p["y"], p["seen_by"])
            for p in model.places.values()}
        assert {(r["x"], r["y"], r["name"]): (r["level"], r["seen_by"])
                for r in state["resources"]} == {
            k: (r["level"], r["seen_by"]) for k, r in model.resources.items()}
        assert {o["id"]: (o["x"], o["y"], o["seen_by"]) for o in state["objects"]} == {
            o["id"]: (o["x"], o["y"], o["seen_by"]) for o in model.objects.values()}
        assert {p["id"]: (p["name"], p["x"], p["y"], p["seen_by"]) for p in state["players"]} == {
            p["id"]: (p["name"], p["x"], p["y"], p["seen_by"])
            for p in model.players.values() if p.get("x") is not None}
        assert state["monsters"], "the replay should leave monsters on the map"

        tiles = await _get(client, f"/tiles/{cx}/{cy}/{RADIUS}", token)
        assert {(t["x"], t["y"]): (t["type"], t["user"]) for t in tiles} == model.tiles
        assert all(hex_distance(cx, cy, t["x"], t["y"]) <= RADIUS for t in tiles)

        minimap = await _get(client, f"/minimap/{cx}/{cy}/{RADIUS}", token)
        expected_marks = model.on_tile()
        crowded = [c for c in model.tiles if _categories(model, c) > 1]
        assert crowded, "no tile holds two kinds of things: priorities untested"
        got_marks = {(t["x"], t["y"]): t["on_tile"] for t in minimap if t["on_tile"]}
        assert got_marks == {c: m for c, m in expected_marks.items() if c in model.tiles}
        assert {"resource", "place", "pc", "gdc"} <= {k for m in got_marks.values() for k in m}

        gdc = await _get(client, "/gdc", token)
        assert {p["id"] for p in gdc} == model.guild_players()
        for p in gdc:
            expected = model.players[p["id"]]
            assert (p["x"], p["y"], p["name"]) == (expected.get("x"), expected.get("y"),
                                                   expected["name"])
            if "pv" in expected:
                assert p["pv"] == expected["pv"]
            if "race" in expected and expected["race"] is not None:
                assert p["race"] == expected["race"]
