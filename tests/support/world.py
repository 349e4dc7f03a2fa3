"""A small seeded Nacridan-like world that members walk through, for replay tests.

It knows the truth of every tile; `view()` renders what a member at a position sees,
in the wire format the userscripts upload.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tests.support.hexes import disk

TERRAINS = ["Plaine", "Plaine fleurie", "Forêt", "Montagne", "Marais", "Désert", "Rivière"]


HEX_STEPS = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)]


@dataclass
class Walker:
    id: int
    name: str
    level: int
    guild_id: int | None
    guild_name: str | None
    x: int
    y: int


@dataclass
class World:
    """The truth: who and what stands where."""

    rng: random.Random
    x0: int = 500
    y0: int = 250
    size: int = 14
    players: dict[int, Walker] = field(default_factory=dict)
    monsters: dict[int, dict[str, Any]] = field(default_factory=dict)
    places: dict[int, dict[str, Any]] = field(default_factory=dict)
    resources: dict[tuple[int, int, str], int] = field(default_factory=dict)
    objects: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 100_000

    def terrain(self, x: int, y: int) -> str:
        return TERRAINS[(x * 7 + y * 13 + (x * y) % 5) % len(TERRAINS)]

    def random_cell(self) -> tuple[int, int]:
        return (self.x0 + self.rng.randint(-self.size, self.size),
                self.y0 + self.rng.randint(-self.size, self.size))

    def populate(self, guilds: dict[int, str], members_per_guild: int, strangers: int) -> None:
        pid = 1000
        for guild_id, guild_name in guilds.items():
            for i in range(members_per_guild):
                x, y = self.random_cell()
                self.players[pid] = Walker(pid, f"{guild_name[:3]}{i}", self.rng.randint(1, 30),
                                           guild_id, guild_name, x, y)
                pid += 1
        for i in range(strangers):
            x, y = self.random_cell()
            self.players[pid] = Walker(pid, f"Stranger{i}", self.rng.randint(1, 30), None, None, x, y)
            pid += 1
        for _ in range(40):
            self.spawn_monster()
        for i in range(10):
            x, y = self.random_cell()
            portal = i % 3 == 0
            self.places[500 + i] = {
                "id": 500 + i, "level": 1, "x": x, "y": y,
                "name": f"Portail {i}" if portal else f"Temple {i}",
                "townId": None if portal else 10 + i, "townName": None if portal else f"Ville {i}",
            }
        for _ in range(25):
            x, y = self.random_cell()
            self.resources[(x, y, self.rng.choice(["Bois", "Fer", "Lin"]))] = self.rng.randint(1, 4)
        for _ in range(20):
            self.drop_object()

    def spawn_monster(self) -> None:
        self.next_id += 1
        x, y = self.random_cell()
        self.monsters[self.next_id] = {
            "id": self.next_id, "name": self.rng.choice(["Gobelin", "Loup", "Chauve-souris"]),
            "level": self.rng.randint(1, 20), "wounds": "Indemne", "x": x, "y": y,
        }

    def drop_object(self) -> None:
        self.next_id += 1
        x, y = self.random_cell()
        self.objects[self.next_id] = {"id": self.next_id, "name": "Potion", "x": x, "y": y}

    def step(self, x: int, y: int) -> tuple[int, int]:
        dx, dy = self.rng.choice(HEX_STEPS)
        nx, ny = x + dx, y + dy
        if abs(nx - self.x0) > self.size or abs(ny - self.y0) > self.size:
            return x, y
        return nx, ny

    def evolve(self) -> None:
        """Time passes: things move, die, get picked up, run out, appear."""
        for player in self.players.values():
            if self.rng.random() < 0.3:
                player.x, player.y = self.step(player.x, player.y)
        for monster_id in list(self.monsters):
            roll = self.rng.random()
            monster = self.monsters[monster_id]
            if roll < 0.03:
                del self.monsters[monster_id]
            elif roll < 0.3:
                monster["x"], monster["y"] = self.step(monster["x"], monster["y"])
            elif roll < 0.35:
                monster["wounds"] = self.rng.choice(["Blessé", "Gravement blessé"])
        if self.rng.random() < 0.1:
            self.spawn_monster()
        for key in list(self.resources):
            if self.rng.random() < 0.002:
                del self.resources[key]
        for obj_id in list(self.objects):
            if self.rng.random() < 0.02:
                del self.objects[obj_id]
        if self.rng.random() < 0.05:
            self.drop_object()
        if self.rng.random() < 0.005 and self.places:
            del self.places[self.rng.choice(sorted(self.places))]

    def view(self, cx: int, cy: int, r: int) -> list[dict[str, Any]]:
        """What a player at (cx, cy) with view radius r sees, in upload format."""
        cells = {c: {"places": [], "pcs": [], "npcs": [], "resources": [], "objects": []}
                 for c in disk(cx, cy, r)}
        for p in self.players.values():
            if (p.x, p.y) in cells:
                entry: dict[str, Any] = {"id": p.id, "level": p.level, "name": p.name,
                                         "wounds": "Indemne"}
                if p.guild_id is not None:
                    entry |= {"guildId": p.guild_id, "guildName": p.guild_name}
                cells[(p.x, p.y)]["pcs"].append(entry)
        for m in self.monsters.values():
            if (m["x"], m["y"]) in cells:
                cells[(m["x"], m["y"])]["npcs"].append(
                    {k: m[k] for k in ("id", "level", "name", "wounds")})
        for pl in self.places.values():
            if (pl["x"], pl["y"]) in cells:
                cells[(pl["x"], pl["y"])]["places"].append(
                    {k: pl[k] for k in ("id", "level", "name", "townId", "townName")})
        for (x, y, name), level in self.resources.items():
            if (x, y) in cells:
                cells[(x, y)]["resources"].append({"level": level, "name": name})
        for o in self.objects.values():
            if (o["x"], o["y"]) in cells:
                cells[(o["x"], o["y"])]["objects"].append({"id": o["id"], "name": o["name"]})
        # A summoned creature without an id, as real views carry them.
        first = next(iter(cells))
        cells[first]["npcs"].append({"id": None, "level": 1, "name": "Feu Fol", "wounds": "Indemne"})
        return [{"x": x, "y": y, "type": self.terrain(x, y), "items": items}
                for (x, y), items in cells.items()]
