"""Uploads as the userscripts send them: one realistic view, profile and hunting group, and
seeded random views (`ViewMaker`) for the live feed."""
from __future__ import annotations

import json
import random
from typing import Any

from tests.support.hexes import disk

GUILD = 17
PLAYER = 4242
CENTRE = (500, 500)
WORLD_RADIUS = 14  # views of radius <= 4 stay within r=18 of CENTRE (GET /api/v1/state r<=20)


def encode(value: Any) -> bytes:
    """JSON as a userscript would send it (non-ASCII kept as UTF-8)."""
    return json.dumps(value, ensure_ascii=False).encode()


def make_view(cx: int = 100, cy: int = 100, r: int = 2, monster_at: int = 3) -> list[dict[str, Any]]:
    """A realistic view: every tile with all five lists, a few things standing on them."""
    tiles: list[dict[str, Any]] = []
    for i, (x, y) in enumerate(disk(cx, cy, r)):
        tiles.append({"x": x, "y": y, "type": "Plaine" if i % 2 else "Forêt",
                      "items": {"places": [], "pcs": [], "npcs": [], "resources": [],
                                "objects": []}})
    centre = next(t for t in tiles if (t["x"], t["y"]) == (cx, cy))
    centre["items"]["pcs"].append({"id": PLAYER, "level": 7, "name": "Alice",
                                   "wounds": "Indemne", "guildId": GUILD,
                                   "guildName": "Les Veilleurs"})
    tiles[monster_at]["items"]["npcs"].append(
        {"id": 90311, "level": 5, "name": "Chauve-souris Géante", "wounds": "Indemne"})
    tiles[0]["items"]["resources"].append({"level": 2, "name": "Bois"})
    tiles[1]["items"]["places"].append({"id": 12, "level": 1, "name": "Temple de Tonak",
                                        "townId": 3, "townName": "Tonak"})
    tiles[2]["items"]["objects"].append({"id": 777001, "name": "Potion de soin"})
    return tiles


def make_profile(player_id: int = PLAYER, **changes: Any) -> dict[str, Any]:
    """A profile page as the userscript posts it."""
    profile: dict[str, Any] = {
        "id": player_id, "name": "Alice", "race": "Elfe", "level": 7, "img": "elfe_f.png",
        "dla": "2026-11-25 18:32:00", "pas": 12, "pos": 3, "xp": 1530, "xpMax": 2000,
        "x": 100, "y": 100,
        "caracs": {"pv": 41, "pvMax": 55, "attM": 12, "defM": 10, "degM": 8, "arm": 3,
                   "mmM": 6, "pc": 80},
    }
    profile.update(changes)
    return profile


def make_group() -> list[dict[str, Any]]:
    """A hunting group page listing two players."""
    return [{"id": PLAYER, "name": "Alice", "race": "Elfe", "level": 7, "pc": 80,
             "x": 100, "y": 100},
            {"id": 5151, "name": "Bob", "race": "Humain", "level": 9, "pc": 45,
             "x": 101, "y": 100}]


class ViewMaker:
    """Seeded random views around CENTRE: terrain changes, monsters that wander and vanish."""

    TERRAINS = ("Plaine", "Forêt", "Montagne", "Marais")

    def __init__(self, seed: int, id_base: int = 1000) -> None:
        self.rng = random.Random(seed)
        self.id_base = id_base

    def view(self, radius: int | None = None) -> bytes:
        rng = self.rng
        r = rng.randint(1, 3) if radius is None else radius
        cx, cy = rng.choice(disk(*CENTRE, WORLD_RADIUS))
        cells = disk(cx, cy, r)
        # Now and then a partial view (a view clipped at the map edge): `covered` is sent.
        if rng.random() < 0.2 and len(cells) > 3:
            cells = cells[: len(cells) - rng.randint(1, 3)]
        ids = rng.sample(range(self.id_base, self.id_base + 40), k=min(len(cells), 6))
        tiles: list[dict[str, Any]] = []
        for x, y in cells:
            items: dict[str, Any] = {"npcs": [], "pcs": [], "resources": [], "places": [],
                                     "objects": []}
            if ids and rng.random() < 0.3:
                mid = ids.pop()
                items["npcs"].append({"id": mid, "name": f"Gobelin {mid}",
                                      "level": rng.randint(1, 3)})
            if rng.random() < 0.05:
                pid = self.id_base + 100 + rng.randint(0, 9)
                if all(p["id"] != pid for t in tiles for p in t["items"]["pcs"]):
                    items["pcs"].append({"id": pid, "name": f"Joueur {pid}", "level": 5,
                                         "guildId": 3, "guildName": "Guilde"})
            if rng.random() < 0.05:
                items["resources"].append({"name": "Bois", "level": rng.randint(1, 2)})
            tiles.append({"x": x, "y": y, "type": rng.choice(self.TERRAINS), "items": items})
        return json.dumps(tiles).encode()
