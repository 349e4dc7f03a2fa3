"""A seeded, deterministic workload: guild members walking a hex world and uploading views.

Views are hex disks (radius 4: 61 tiles, radius 6: 127 tiles) in the game's axial
coordinates, shaped like the userscript's upload (see tests/data/): every
tile carries its five item lists. Members move one tile per turn or stay, so
consecutive views of a member overlap; monsters wander, objects come and go, places and
resources stay where they are. The same seed always yields the same bytes.
"""
from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

TERRAINS = ("Plaine", "Plaine", "Plaine", "Plaine fleurie", "Forêt", "Forêt dense",
            "Colline", "Marais", "Rivière", "Montagne", "Désert", "Route")
MONSTERS = ("Gobelin", "Squelette", "Loup", "Ours-garou", "Zombie", "Araignée géante",
            "Orque", "Chauve-souris", "Rat géant", "Troll des cavernes")
WOUNDS = ("Indemne", "Légèrement blessé", "Blessé", "Gravement blessé", "Presque mort")
RESOURCES = ("Champ de lin", "Filon de fer", "Bosquet d'if", "Carrière", "Herbes")
PLACES = ("Auberge", "Forge", "Portail", "Temple", "Marché", "Tour de garde")
OBJECTS = ("Épée courte", "Bouclier", "Potion", "Parchemin", "Anneau", "Sac de pièces")
# Axial neighbours: hex distance = (|dx| + |dy| + |dx + dy|) / 2.
STEPS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1))
# Where the guild roams (inside the parser's 0..1999 x 0..999 world).
ORIGIN = (700, 350)


def disk(cx: int, cy: int, r: int) -> list[tuple[int, int]]:
    """Tiles of a hex disk in the userscript's order: by row (y), then x."""
    return [(cx + dx, cy + dy) for dy in range(-r, r + 1)
            for dx in range(max(-r, -r - dy), min(r, r - dy) + 1)]


def _hash(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def terrain(x: int, y: int) -> str:
    """Static terrain, a pure function of the position."""
    return TERRAINS[_hash("t", x // 3, y // 3) % len(TERRAINS)]


@dataclass
class Mobile:
    """Something that moves and is seen: a player or a monster."""

    id: int
    name: str
    level: int
    x: int
    y: int
    wounds: str = "Indemne"


@dataclass
class World:
    """The shared, seeded world every member sees a part of."""

    seed: int
    extent: int = 40
    rng: random.Random = field(init=False)
    monsters: dict[tuple[int, int], list[Mobile]] = field(default_factory=dict)
    strangers: dict[tuple[int, int], list[Mobile]] = field(default_factory=dict)
    objects: dict[tuple[int, int], list[tuple[int, str]]] = field(default_factory=dict)
    next_object: int = 500_000

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        ox, oy = ORIGIN
        e = self.extent
        # About 6% of tiles hold a monster, 1% a stranger, 2% an object.
        for i in range(int((2 * e) ** 2 * 0.06)):
            m = Mobile(1_300_000 + i, self.rng.choice(MONSTERS), self.rng.randint(1, 40),
                       ox + self.rng.randint(-e, e), oy + self.rng.randint(-e, e),
                       self.rng.choice(WOUNDS))
            self.monsters.setdefault((m.x, m.y), []).append(m)
        for i in range(int((2 * e) ** 2 * 0.01)):
            p = Mobile(3000 + i, f"Passant{i}", self.rng.randint(1, 60),
                       ox + self.rng.randint(-e, e), oy + self.rng.randint(-e, e),
                       self.rng.choice(WOUNDS))
            self.strangers.setdefault((p.x, p.y), []).append(p)
        for _ in range(int((2 * e) ** 2 * 0.02)):
            self._drop_object(ox + self.rng.randint(-e, e), oy + self.rng.randint(-e, e))

    def _drop_object(self, x: int, y: int) -> None:
        self.next_object += 1
        name = OBJECTS[self.next_object % len(OBJECTS)]
        self.objects.setdefault((x, y), []).append((self.next_object, name))

    def _wander(self, table: dict[tuple[int, int], list[Mobile]], share: float) -> None:
        moving = [m for ms in table.values() for m in ms if self.rng.random() < share]
        for m in moving:
            table[(m.x, m.y)].remove(m)
            if not table[(m.x, m.y)]:
                del table[(m.x, m.y)]
            dx, dy = self.rng.choice(STEPS)
            m.x, m.y = m.x + dx, m.y + dy
            if self.rng.random() < 0.2:
                m.wounds = self.rng.choice(WOUNDS)
            table.setdefault((m.x, m.y), []).append(m)

    def tick(self) -> None:
        """One game turn: some monsters and strangers move, an object is picked up or dropped."""
        self._wander(self.monsters, 0.05)
        self._wander(self.strangers, 0.05)
        if self.objects and self.rng.random() < 0.5:
            cell = self.rng.choice(sorted(self.objects))
            self.objects[cell].pop()
            if not self.objects[cell]:
                del self.objects[cell]
        ox, oy = ORIGIN
        e = self.extent
        self._drop_object(ox + self.rng.randint(-e, e), oy + self.rng.randint(-e, e))


def place_at(x: int, y: int) -> list[dict[str, object]]:
    """Places are static: about 1% of tiles."""
    h = _hash("p", x, y)
    if h % 100:
        return []
    kind = PLACES[(h // 100) % len(PLACES)]
    if kind == "Portail":
        return [{"id": 1 + h % 90_000, "name": f"{kind} {h % 97}", "level": None,
                 "townId": None, "townName": None}]
    return [{"id": 1 + h % 90_000, "name": f"{kind} de {x % 50}", "level": 1 + h % 5,
             "townId": 1 + h % 300, "townName": f"Ville {h % 300}"}]


def resources_at(x: int, y: int) -> list[dict[str, object]]:
    """Resources are static: about 3% of tiles."""
    h = _hash("r", x, y)
    if h % 33:
        return []
    return [{"name": RESOURCES[(h // 33) % len(RESOURCES)], "level": 1 + h % 9}]


class GuildWorkload:
    """`members` guildmates of guild `guild_id` walking a shared world, uploading views."""

    def __init__(self, seed: int = 1, members: int = 32, radius: int = 4,
                 guild_id: int = 501) -> None:
        self.radius = radius
        self.guild_id = guild_id
        self.world = World(seed)
        rng = random.Random(seed * 7919 + radius)
        self.rng = rng
        ox, oy = ORIGIN
        self.members = [
            Mobile(1000 + i, f"Membre{i}", rng.randint(1, 60),
                   ox + rng.randint(-12, 12), oy + rng.randint(-12, 12))
            for i in range(members)
        ]
        self._encoder = msgspec.json.Encoder()

    @property
    def names(self) -> list[str]:
        """Member names, the token names the hub will know them by."""
        return [m.name for m in self.members]

    def step(self, index: int) -> None:
        """Member `index` moves one tile (two times in three) or stays."""
        m = self.members[index]
        if self.rng.random() < 0.67:
            dx, dy = self.rng.choice(STEPS)
            ox, oy = ORIGIN
            # Stay within the populated part of the world.
            if abs(m.x + dx - ox) <= self.world.extent and abs(m.y + dy - oy) <= self.world.extent:
                m.x, m.y = m.x + dx, m.y + dy

    def view(self, index: int) -> list[dict[str, object]]:
        """What member `index` sees now: the userscript's JSON structure."""
        me = self.members[index]
        by_cell: dict[tuple[int, int], list[Mobile]] = {}
        for m in self.members:
            by_cell.setdefault((m.x, m.y), []).append(m)
        tiles = []
        for x, y in disk(me.x, me.y, self.radius):
            pcs = [{"id": p.id, "level": p.level, "name": p.name, "wounds": p.wounds,
                    "guildId": self.guild_id, "guildName": "Serpents d'Argent"}
                   for p in by_cell.get((x, y), ())]
            pcs += [{"id": p.id, "level": p.level, "name": p.name, "wounds": p.wounds,
                     "guildId": None, "guildName": None}
                    for p in self.world.strangers.get((x, y), ())]
            npcs = [{"id": m.id, "level": m.level, "name": m.name, "wounds": m.wounds}
                    for m in self.world.monsters.get((x, y), ())]
            objects = [{"id": oid, "name": name} for oid, name in self.world.objects.get((x, y), ())]
            tiles.append({"x": x, "y": y, "type": terrain(x, y), "items": {
                "places": place_at(x, y), "pcs": pcs, "npcs": npcs,
                "resources": resources_at(x, y), "objects": objects}})
        return tiles

    def member_views(self, per_member: int) -> list[list[bytes]]:
        """`per_member` consecutive compact JSON views for each member, turn by turn."""
        out: list[list[bytes]] = [[] for _ in self.members]
        for _ in range(per_member):
            self.world.tick()
            for i in range(len(self.members)):
                self.step(i)
                out[i].append(self._encoder.encode(self.view(i)))
        return out

    def stream(self) -> Iterator[tuple[int, bytes]]:
        """An endless stream of (member index, view), members taking turns."""
        while True:
            self.world.tick()
            for i in range(len(self.members)):
                self.step(i)
                yield i, self._encoder.encode(self.view(i))


def views(count: int, *, radius: int = 4, seed: int = 1, members: int = 8,
          pretty: bool = False) -> list[bytes]:
    """`count` views of the stream (indented like the reference sample when `pretty`)."""
    stream = GuildWorkload(seed, members, radius).stream()
    out = []
    for _ in range(count):
        _, body = next(stream)
        out.append(msgspec.json.format(body, indent=1) if pretty else body)
    return out


def entity_counts(body: bytes) -> dict[str, int]:
    """How many of each kind a view holds (for the benchmark's description)."""
    counts = {"places": 0, "pcs": 0, "npcs": 0, "resources": 0, "objects": 0}
    for tile in msgspec.json.decode(body):
        for kind, items in tile["items"].items():
            counts[kind] += len(items)
    return counts
