"""Where each kind of row lives, and the SQL fragments every part of the store shares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.backend import Dialect, Row, Statement
from storage.merge import hex_distance
from storage.model import (
    Area,
    MemberProfile,
    MonsterState,
    ObjectState,
    PlaceState,
    PlayerState,
    ResourceState,
    TileState,
)


@dataclass(frozen=True)
class EntityTable:
    """Where one kind of entity lives; `columns` follow the state struct's fields."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    state: type[Any]


ENTITY_TABLES: dict[str, EntityTable] = {
    "player": EntityTable(
        "players",
        ("id", "name", "level", "wounds", "pc_guild_id", "pc_guild_name", "x", "y", "seen_at", "seen_by"),
        ("id",), PlayerState),
    "monster": EntityTable(
        "monsters", ("id", "name", "level", "wounds", "x", "y", "seen_at", "seen_by"),
        ("id",), MonsterState),
    "place": EntityTable(
        "places", ("id", "name", "level", "town_id", "town_name", "x", "y", "seen_at", "seen_by"),
        ("id",), PlaceState),
    "resource": EntityTable(
        "resources", ("name", "level", "x", "y", "seen_at", "seen_by"),
        ("x", "y", "name"), ResourceState),
    "object": EntityTable(
        "objects", ("id", "name", "x", "y", "seen_at", "seen_by"), ("id",), ObjectState),
}
TILE_TABLE = EntityTable("tiles", ("x", "y", "terrain", "seen_at", "seen_by"), ("x", "y"),
                         TileState)

# The players table's columns in MemberProfile's field order: the struct says
# guild_id and guild_name where the table says pc_guild_id and pc_guild_name.
_PROFILE_FIELD_COLUMNS = {"guild_id": "pc_guild_id", "guild_name": "pc_guild_name"}
PROFILE_COLUMNS: tuple[str, ...] = tuple(
    _PROFILE_FIELD_COLUMNS.get(f, f) for f in MemberProfile.__struct_fields__)
PROFILE_FIELDS: dict[str, str] = {column: field for column, field in zip(
    PROFILE_COLUMNS, MemberProfile.__struct_fields__, strict=True)}
PROFILE_SQL_COLUMNS = ", ".join(PROFILE_COLUMNS)

_FEED_HEAD = "SELECT epoch, last_seq FROM feeds WHERE guild_id = %s"


def feed_head_statement(dialect: Dialect, guild_id: int) -> Statement:
    """The read of a guild's (epoch, last seq)."""
    return dialect.sql(_FEED_HEAD), (guild_id,)


def feed_head_of(rows: list[Row]) -> tuple[str, int]:
    """(epoch, last seq) from the feed row read; ("", 0) before the guild's first upload."""
    return (str(rows[0][0]), int(rows[0][1])) if rows else ("", 0)


def placeholders(count: int) -> str:
    """`%s, %s, ...` for `count` values."""
    return ", ".join(["%s"] * count)


def in_area(area: Area, x: int, y: int) -> bool:
    """Whether (x, y) lies on the hex disk."""
    return hex_distance(area.x, area.y, x, y) <= area.r


def area_box(area: Area) -> tuple[int, int, int, int]:
    """The (min x, max x, min y, max y) box around a hex disk."""
    return area.x - area.r, area.x + area.r, area.y - area.r, area.y + area.r


# Up to this many columns, a box is read column by column (see `in_box`).
_BOX_COLUMNS_MAX = 64


def in_box(box: tuple[int, int, int, int]) -> tuple[str, list[Any]]:
    """`x ... AND y BETWEEN ...` for (min x, max x, min y, max y), with its parameters.

    Every position index is (guild_id, x, y). With `x BETWEEN`, MariaDB and SQLite use
    the index only down to x and then walk every row of those columns (the whole
    explored height of the map, or the whole guild when MariaDB prefers `ref` on
    guild_id); with `x IN (...)` each column is its own index range bounded by y, so a
    read touches the rows of the box only (bench/reads prints the EXPLAIN).
    """
    x0, x1, y0, y1 = box
    if x1 - x0 + 1 > _BOX_COLUMNS_MAX:
        return "x BETWEEN %s AND %s AND y BETWEEN %s AND %s", [x0, x1, y0, y1]
    return f"x IN ({placeholders(x1 - x0 + 1)}) AND y BETWEEN %s AND %s", [
        *range(x0, x1 + 1), y0, y1]
