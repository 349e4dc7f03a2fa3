"""Pure merges of one upload into what the guild knew: rows to write and the event.

A view is the truth for the tiles it covers: whatever was known on a covered tile and
is absent from the view has left it; whatever the view shows is there now (moving it
if it was known elsewhere). Tiles outside the view keep what was known.

A profile or group page adds to what is known of its players: a field it leaves out
(None) keeps the known value.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from parsers import Tile
from storage.model import (
    Area,
    EntityState,
    MemberProfile,
    MonsterState,
    ObjectState,
    PlaceState,
    PlayerState,
    ResourceState,
    TileState,
)

EntityKey = int | tuple[int, int, str]

KINDS: tuple[str, ...] = ("player", "monster", "place", "resource", "object")


def entity_key(entity: EntityState) -> EntityKey:
    """Players, monsters, places, objects are known by id; resources by (x, y, name)."""
    if isinstance(entity, ResourceState):
        return (entity.x, entity.y, entity.name)
    return entity.id


def _attributes(entity: EntityState) -> tuple[object, ...]:
    # seen_at and seen_by are the last two fields of every entity struct.
    return msgspec.structs.astuple(entity)[:-2]


def hex_distance(x1: int, y1: int, x2: int, y2: int) -> int:
    """Distance between two tiles in axial hex coordinates."""
    dx, dy = x2 - x1, y2 - y1
    return (abs(dx) + abs(dy) + abs(dx + dy)) // 2


def disk_size(r: int) -> int:
    """Number of tiles in a hex disk of radius r."""
    return 3 * r * (r + 1) + 1


def enclosing_area(cells: Iterable[tuple[int, int]]) -> tuple[Area, bool]:
    """The disk around the view's centre tile, and whether it is exactly the view."""
    points = list(cells)
    cx = round(sum(x for x, _ in points) / len(points))
    cy = round(sum(y for _, y in points) / len(points))
    r = max(hex_distance(cx, cy, x, y) for x, y in points)
    return Area(cx, cy, r), len(points) == disk_size(r)


def bounding_box(cells: Iterable[tuple[int, int]]) -> tuple[int, int, int, int]:
    """(min x, max x, min y, max y) of a set of tiles."""
    xs, ys = zip(*cells, strict=True)
    return min(xs), max(xs), min(ys), max(ys)


def view_entities(tiles: list[Tile], now: int, by: str) -> list[EntityState]:
    """Everything a view shows, as state records stamped with this sighting."""
    seen: list[EntityState] = []
    for tile in tiles:
        x, y, items = tile.x, tile.y, tile.items
        for p in items.pcs:
            assert isinstance(p.id, int)  # the parser dropped summoned creatures
            seen.append(PlayerState(p.id, p.name, p.level, p.wounds, p.guild_id, p.guild_name,
                                    x, y, now, by))
        for m in items.npcs:
            assert isinstance(m.id, int)
            seen.append(MonsterState(m.id, m.name, m.level, m.wounds, x, y, now, by))
        for pl in items.places:
            seen.append(PlaceState(pl.id, pl.name, pl.level, pl.town_id, pl.town_name,
                                   x, y, now, by))
        for r in items.resources:
            seen.append(ResourceState(r.name, r.level, x, y, now, by))
        for o in items.objects:
            seen.append(ObjectState(o.id, o.name, x, y, now, by))
    return seen


@dataclass
class ViewMerge:
    """Rows to write for one view, and the changes its event reports."""

    tile_rows: list[TileState]
    new_tiles: list[TileState]
    upserts: dict[str, list[EntityState]] = field(default_factory=dict)
    gone: dict[str, list[EntityState]] = field(default_factory=dict)
    appeared: list[EntityState] = field(default_factory=list)
    moved: list[EntityState] = field(default_factory=list)
    changed: list[EntityState] = field(default_factory=list)


def merge_view(
    tiles: list[Tile],
    known_terrain: Mapping[tuple[int, int], str],
    known: Mapping[str, Mapping[EntityKey, EntityState]],
    now: int,
    by: str,
) -> ViewMerge:
    """Compare a view with what was known of its tiles and of the entities it shows.

    `known[kind]` must hold every entity of that kind standing on a covered tile and
    every entity the view shows, wherever it was.
    """
    covered = {(t.x, t.y) for t in tiles}
    tile_rows = sorted(
        (TileState(t.x, t.y, t.terrain, now, by) for t in tiles), key=lambda t: (t.x, t.y)
    )
    new_tiles = [t for t in tile_rows if known_terrain.get((t.x, t.y)) != t.type]
    result = ViewMerge(tile_rows=tile_rows, new_tiles=new_tiles)
    seen_by_kind: dict[str, dict[EntityKey, EntityState]] = {kind: {} for kind in KINDS}
    for entity in view_entities(tiles, now, by):
        seen_by_kind[entity.__struct_config__.tag][entity_key(entity)] = entity  # type: ignore[index]
    for kind in KINDS:
        seen = seen_by_kind[kind]
        before = known.get(kind, {})
        for key, entity in seen.items():
            old = before.get(key)
            if old is None:
                result.appeared.append(entity)
            elif (old.x, old.y) != (entity.x, entity.y):
                result.moved.append(entity)
            elif _attributes(old) != _attributes(entity):
                result.changed.append(entity)
        result.upserts[kind] = sorted(seen.values(), key=_sort_key)
        result.gone[kind] = sorted(
            (
                old
                for key, old in before.items()
                if key not in seen and (old.x, old.y) in covered
            ),
            key=_sort_key,
        )
    return result


def _sort_key(entity: EntityState) -> tuple[int, int, str] | tuple[int]:
    # Rows are written in key order so that concurrent transactions lock alike.
    key = entity_key(entity)
    return key if isinstance(key, tuple) else (key,)


def merge_players(known: Mapping[int, MemberProfile],
                  rows: Sequence[Mapping[str, Any]]) -> list[MemberProfile]:
    """The players as stored once `rows` (MemberProfile fields, `id` among them) are
    upserted with `keep_known` (storage/dialects.py): a new player is stored as given;
    over a known one, each value given replaces the stored one and each None keeps it
    (`col = COALESCE(new, col)`). In id order, as a read of the rows would return them.
    """
    merged = []
    for row in sorted(rows, key=lambda r: int(r["id"])):
        old = known.get(row["id"])
        if old is None:
            merged.append(MemberProfile(**row))
        else:
            merged.append(msgspec.structs.replace(
                old, **{name: value for name, value in row.items() if value is not None}))
    return merged


def player_map_state(profile: MemberProfile | None) -> PlayerState | None:
    """A player as the map shows it, or None while its position is unknown."""
    if profile is None or profile.x is None or profile.y is None:
        return None
    return PlayerState(profile.id, profile.name, profile.level, profile.wounds, profile.guild_id,
                       profile.guild_name, profile.x, profile.y, profile.seen_at or 0,
                       profile.seen_by or "")


@dataclass
class PlayerChanges:
    """What a profile or group page changed on the map: its event's entity lists."""

    appeared: list[EntityState] = field(default_factory=list)
    moved: list[EntityState] = field(default_factory=list)
    changed: list[EntityState] = field(default_factory=list)


def player_changes(known: Mapping[int, MemberProfile],
                   merged: Sequence[MemberProfile]) -> PlayerChanges:
    """Players that appeared on the map, moved on it, or were seen again where they were."""
    changes = PlayerChanges()
    for profile in merged:
        state = player_map_state(profile)
        if state is None:
            continue
        old_state = player_map_state(known.get(profile.id))
        if old_state is None:
            changes.appeared.append(state)
        elif (old_state.x, old_state.y) != (state.x, state.y):
            changes.moved.append(state)
        else:
            changes.changed.append(state)
    return changes
