"""`POST /view`: the hex tiles around a player and everything standing on them."""
from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from parsers.body import require_utf8
from parsers.errors import UNREADABLE, ParseError
from parsers.lean import can_skip_printable_check, lean_type
from parsers.types import GameId, Level, Name, ShortText, SummonId, Terrain, X, Y

# Per-list bound on one tile; the per-upload totals are checked in `decode_view`.
MAX_PER_TILE = 200


class Place(msgspec.Struct, rename="camel"):
    id: GameId
    name: Name
    level: Level | None = None
    # Portals ("Portail ...") have no town.
    town_id: GameId | None = None
    town_name: ShortText | None = None


class Player(msgspec.Struct, rename="camel"):
    id: SummonId
    name: Name
    level: Level | None = None
    wounds: ShortText | None = None
    guild_id: GameId | None = None
    guild_name: ShortText | None = None


class Monster(msgspec.Struct, rename="camel"):
    id: SummonId
    name: Name
    level: Level | None = None
    wounds: ShortText | None = None


class Resource(msgspec.Struct, rename="camel"):
    name: Name
    level: Level | None = None


class Obj(msgspec.Struct, rename="camel"):
    id: GameId
    name: Name


class Items(msgspec.Struct, rename="camel"):
    # Older userscripts omit empty lists, so each defaults to empty.
    places: Annotated[list[Place], Meta(max_length=MAX_PER_TILE)] = []
    pcs: Annotated[list[Player], Meta(max_length=MAX_PER_TILE)] = []
    npcs: Annotated[list[Monster], Meta(max_length=MAX_PER_TILE)] = []
    resources: Annotated[list[Resource], Meta(max_length=MAX_PER_TILE)] = []
    objects: Annotated[list[Obj], Meta(max_length=MAX_PER_TILE)] = []


class Tile(msgspec.Struct, rename="camel"):
    x: X
    y: Y
    terrain: Terrain = msgspec.field(name="type")
    items: Items = msgspec.field(default_factory=Items)


_VIEW = msgspec.json.Decoder(list[Tile])
# Same structs, same limits, minus the printable pattern: only for bodies that cannot
# fail it (see parsers/lean.py); about twice as fast.
_VIEW_LEAN = msgspec.json.Decoder(lean_type(list[Tile]))


def decode_view(body: bytes, *, max_tiles: int, max_entities: int) -> list[Tile]:
    """Decode and validate a view; summoned creatures without an id are dropped."""
    require_utf8(body)
    try:
        tiles = (_VIEW_LEAN if can_skip_printable_check(body) else _VIEW).decode(body)
    except msgspec.MsgspecError as exc:
        raise ParseError.from_msgspec(exc) from None
    except UNREADABLE as exc:
        raise ParseError.unreadable(exc) from None
    if not tiles:
        raise ParseError("a view needs at least one tile", "$")
    if len(tiles) > max_tiles:
        raise ParseError(f"too many tiles: {len(tiles)} > {max_tiles}", "$")
    seen: set[tuple[int, int]] = set()
    entities = 0
    for index, tile in enumerate(tiles):
        cell = (tile.x, tile.y)
        if cell in seen:
            raise ParseError(f"tile ({tile.x}, {tile.y}) appears twice", f"$[{index}]")
        seen.add(cell)
        items = tile.items
        # Summoned creatures (id null or "None") are dropped; most tiles hold none.
        pcs, npcs = items.pcs, items.npcs
        if pcs and not all(type(p.id) is int for p in pcs):
            items.pcs = [p for p in pcs if isinstance(p.id, int)]
        if npcs and not all(type(m.id) is int for m in npcs):
            items.npcs = [m for m in npcs if isinstance(m.id, int)]
        entities += (
            len(items.places) + len(items.pcs) + len(items.npcs)
            + len(items.resources) + len(items.objects)
        )
        if entities > max_entities:
            raise ParseError(
                f"too many entities: more than {max_entities} in one view", f"$[{index}].items"
            )
    return tiles
