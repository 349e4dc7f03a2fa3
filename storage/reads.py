"""Reads of a guild's state: tiles, entities, pages of a snapshot, players and members."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from storage.backend import Row
from storage.base import StoreBase
from storage.merge import KINDS, entity_key
from storage.model import Area, EntityState, MemberEntry, MemberProfile, State, TileState
from storage.tables import (
    ENTITY_TABLES,
    PROFILE_SQL_COLUMNS,
    TILE_TABLE,
    EntityTable,
    area_box,
    feed_head_of,
    feed_head_statement,
    in_area,
    in_box,
)

# A page's position in its table: the key of its last row.
PageCursor = tuple[Any, ...]
# Every kind of row a state holds, in the order snapshots send them.
STATE_KINDS = ("tile", *KINDS)
_PAGED_TABLES: dict[str, EntityTable] = {"tile": TILE_TABLE, **ENTITY_TABLES}
_TILES_IN_BOX = "SELECT x, y, terrain, seen_at, seen_by FROM tiles WHERE guild_id = %s AND "


def _after(key: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`key > values` for a composite key, spelled out so that both databases walk the
    primary key's index from there (row-value comparisons are not always ranged)."""
    first, *rest = key
    if not rest:
        return f"{first} > %s", [values[0]]
    inner, inner_params = _after(rest, values[1:])
    return f"({first} > %s OR ({first} = %s AND {inner}))", [values[0], values[0], *inner_params]


def _state_order(entity: EntityState) -> tuple[Any, ...]:
    key = entity_key(entity)
    return key if isinstance(key, tuple) else (key,)


def iter_entities(state: State) -> Iterable[EntityState]:
    """Every entity of a state, all kinds together."""
    yield from state.players
    yield from state.monsters
    yield from state.places
    yield from state.resources
    yield from state.objects


class Reads(StoreBase):
    """What the map, the snapshots and the member pages read; every read sees the latest
    commit."""

    async def read_tiles(self, guild_id: int, area: Area) -> list[TileState]:
        """Known tiles within the area, by position."""
        where, box_params = in_box(area_box(area))
        async with self.backend.read() as tx:
            rows = await tx.fetchall(self.dialect.sql(f"{_TILES_IN_BOX}{where} ORDER BY x, y"),
                                     (guild_id, *box_params))
        return [TileState(*row) for row in rows if in_area(area, row[0], row[1])]

    async def read_state(self, guild_id: int, area: Area, now: int) -> State:
        """The guild's merged tactical state over a hex disk, with the feed position."""
        where, box_params = in_box(area_box(area))
        async with self.backend.read() as tx:
            # The feed head is read first: the state is at least as new as `seq`.
            head = await tx.fetchall(*feed_head_statement(self.dialect, guild_id))
            tile_rows = await tx.fetchall(
                self.dialect.sql(f"{_TILES_IN_BOX}{where} ORDER BY x, y"),
                (guild_id, *box_params))
            entities: dict[str, list[Any]] = {}
            for kind in KINDS:
                table = ENTITY_TABLES[kind]
                rows = await tx.fetchall(
                    self.dialect.sql(f"SELECT {', '.join(table.columns)} FROM {table.name} "
                                     f"WHERE guild_id = %s AND {where}"),
                    (guild_id, *box_params))
                states = [table.state(*row) for row in rows]
                entities[kind] = sorted(
                    (s for s in states if in_area(area, s.x, s.y)), key=_state_order)
        epoch, seq = feed_head_of(head)
        return State(
            now=now, area=area, seq=seq, epoch=epoch,
            tiles=[TileState(*row) for row in tile_rows if in_area(area, row[0], row[1])],
            players=entities["player"], monsters=entities["monster"], places=entities["place"],
            resources=entities["resource"], objects=entities["object"],
        )

    async def read_state_pages(self, guild_id: int, area: Area,
                               pages: Sequence[tuple[str, PageCursor | None]],
                               limit: int) -> tuple[tuple[str, int],
                                                    list[tuple[list[Any], PageCursor | None]]]:
        """The feed head (epoch, seq), then pages of the guild's state over a hex disk, one
        per (kind, cursor), read on one connection: each the next `limit` rows of that
        kind after the cursor (None: from the start), in key order, with the cursor of
        the next page (None: it was the last). The rows are at least as new as the head.

        Kinds are "tile" and the entity kinds; rows are TileState or entity states. A
        page may hold fewer rows than `limit` and still not be the last (rows outside
        the disk but inside its bounding box are dropped).
        """
        where, box_params = in_box(area_box(area))
        out: list[tuple[list[Any], PageCursor | None]] = []
        async with self.backend.read() as tx:
            head = await tx.fetchall(*feed_head_statement(self.dialect, guild_id))
            for kind, cursor in pages:
                table = _PAGED_TABLES[kind]
                sql = (f"SELECT {', '.join(table.columns)} FROM {table.name} "
                       f"WHERE guild_id = %s AND {where}")
                params: list[Any] = [guild_id, *box_params]
                if cursor is not None:
                    after, after_params = _after(table.key, cursor)
                    sql += f" AND {after}"
                    params += after_params
                sql += f" ORDER BY {', '.join(table.key)} LIMIT %s"
                rows = await tx.fetchall(self.dialect.sql(sql), [*params, limit])
                key_at = [table.columns.index(c) for c in table.key]
                following = (tuple(rows[-1][i] for i in key_at)
                             if len(rows) == limit else None)
                states = [table.state(*row) for row in rows]
                out.append(([st for st in states if in_area(area, st.x, st.y)], following))
        return feed_head_of(head), out

    async def read_guild_players(self, guild_id: int) -> list[MemberProfile]:
        """Players of the guild: seen wearing its guildId, or with a profile or group page."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self.dialect.sql(
                    f"SELECT {PROFILE_SQL_COLUMNS} FROM players WHERE guild_id = %s AND "
                    "(pc_guild_id = %s OR profile_at IS NOT NULL OR group_at IS NOT NULL) "
                    "ORDER BY id"),
                (guild_id, guild_id))
        return [MemberProfile(*row) for row in rows]

    async def read_members(self, guild_id: int) -> list[MemberEntry]:
        """Token holders of the guild, each with their player's latest known data."""
        async with self.backend.read() as tx:
            holders = await tx.fetchall(
                self.dialect.sql("SELECT name, MAX(player_id) FROM tokens WHERE guild_id = %s "
                                 "AND revoked_at IS NULL GROUP BY name ORDER BY name"),
                (guild_id,))
            rows = await tx.fetchall(
                self.dialect.sql(f"SELECT {PROFILE_SQL_COLUMNS} FROM players "
                                 "WHERE guild_id = %s AND profile_at IS NOT NULL"),
                (guild_id,))
        profiles = [MemberProfile(*row) for row in rows]
        by_id = {p.id: p for p in profiles}
        by_uploader: dict[str, MemberProfile] = {}
        for p in sorted(profiles, key=lambda p: p.profile_at or 0):
            if p.profile_by is not None:
                by_uploader[p.profile_by] = p
        entries = []
        for name, player_id in holders:
            player = by_id.get(player_id) if player_id is not None else by_uploader.get(name)
            entries.append(MemberEntry(name=name, player_id=player_id, player=player))
        return entries

    async def map_version(self, guild_id: int) -> int:
        """A number that changes whenever one of the guild's tiles is added or changed."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self.dialect.sql("SELECT map_version FROM feeds WHERE guild_id = %s"), (guild_id,))
        return int(rows[0][0]) if rows else 0

    async def read_terrain(self, guild_id: int) -> list[Row]:
        """(x, y, terrain) of every tile the guild knows, for the world map."""
        async with self.backend.read() as tx:
            return await tx.fetchall(
                self.dialect.sql("SELECT x, y, terrain FROM tiles WHERE guild_id = %s"),
                (guild_id,))
