"""The one storage interface the hub uses; the same logic runs on both backends."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from parsers import GroupMember, Profile, Tile
from storage.backend import Backend, Row, Statement, Tx
from storage.errors import AmbiguousToken, DuplicateUpload, IdempotencyKeyReused, TokenNotFound
from storage.merge import (
    KINDS,
    EntityKey,
    bounding_box,
    enclosing_area,
    entity_key,
    hex_distance,
    merge_view,
)
from storage.model import (
    Area,
    Committed,
    EntityState,
    Event,
    Member,
    MemberEntry,
    MemberProfile,
    MonsterState,
    ObjectState,
    PlaceState,
    PlayerState,
    ResourceState,
    State,
    TileState,
    TokenInfo,
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

PROFILE_COLUMNS: tuple[str, ...] = tuple(MemberProfile.__struct_fields__)
_PROFILE_SQL_COLUMNS = ", ".join(
    "pc_guild_id" if c == "guild_id" else "pc_guild_name" if c == "guild_name" else c
    for c in PROFILE_COLUMNS
)
_TILE_COLUMNS = ("guild_id", "x", "y", "terrain", "seen_at", "seen_by")
_UPLOAD_KEY_COLUMNS = ("guild_id", "member", "idempotency_key", "kind", "body_sha256", "status",
                       "seq", "created_at")
# How long an idempotency key answers for its upload (docs/api.md promises 10 minutes).
UPLOAD_KEY_TTL_MS = 10 * 60_000
# The status a stored upload answered, repeated to its retries.
STORED_STATUS = 200


def hash_token(token: str) -> str:
    """Tokens are stored only as their SHA-256 (they are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_prefix(token: str) -> str:
    """What `token list` shows: the start of the hash, never of the secret itself."""
    return hash_token(token)[:8]


def _in_area(area: Area, x: int, y: int) -> bool:
    return hex_distance(area.x, area.y, x, y) <= area.r


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


# Up to this many columns, a box is read column by column (see `_in_box`).
_BOX_COLUMNS_MAX = 64


def _in_box(box: tuple[int, int, int, int]) -> tuple[str, list[Any]]:
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
    return f"x IN ({_placeholders(x1 - x0 + 1)}) AND y BETWEEN %s AND %s", [
        *range(x0, x1 + 1), y0, y1]


class Store:
    """Guild-partitioned tactical state over a MariaDB or SQLite backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._d = backend.dialect

    async def close(self) -> None:
        """Close the backend's connections (idempotent)."""
        await self.backend.close()

    # -- tokens ----------------------------------------------------------------

    async def find_member(self, token: str) -> Member | None:
        """The member a live token belongs to, or None."""
        digest = hash_token(token)
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql(
                    "SELECT id, token_hash, guild_id, name, player_id FROM tokens "
                    "WHERE token_hash = %s AND revoked_at IS NULL"
                ),
                (digest,),
            )
        for token_id, stored, guild_id, name, player_id in rows:
            if hmac.compare_digest(str(stored), digest):
                return Member(token_id, guild_id, name, player_id)
        return None

    async def add_token(self, guild_id: int, name: str, player_id: int | None, now: int,
                        token: str | None = None) -> str:
        """Store a token (a new random one unless given) and return it."""
        token = token or secrets.token_urlsafe(32)
        await self.add_tokens(guild_id, {token: (name, player_id)}, now)
        return token

    async def add_tokens(self, guild_id: int, tokens: Mapping[str, tuple[str, int | None]],
                         now: int) -> int:
        """Store several tokens of one guild in one transaction; known ones are skipped."""
        rows = sorted(
            (hash_token(tok), token_prefix(tok), guild_id, name, player_id, now)
            for tok, (name, player_id) in tokens.items()
        )

        async def work(tx: Tx) -> int:
            added = 0
            for row in rows:
                exists = await tx.fetchall(
                    self._d.sql("SELECT id FROM tokens WHERE token_hash = %s"), (row[0],))
                if not exists:
                    await tx.execute(self._d.sql(
                        "INSERT INTO tokens (token_hash, token_prefix, guild_id, name, player_id,"
                        " created_at) VALUES (%s, %s, %s, %s, %s, %s)"), row)
                    added += 1
            return added

        return await self.backend.write(work)

    async def revoked_tokens(self, token_ids: Sequence[int]) -> set[int]:
        """Which of these token ids have been revoked."""
        if not token_ids:
            return set()
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql(f"SELECT id FROM tokens WHERE revoked_at IS NOT NULL "
                            f"AND id IN ({_placeholders(len(token_ids))})"),
                list(token_ids))
        return {int(row[0]) for row in rows}

    async def list_tokens(self) -> list[TokenInfo]:
        """Every token, revoked ones included, without secrets."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                "SELECT token_prefix, guild_id, name, player_id, created_at, revoked_at "
                "FROM tokens ORDER BY guild_id, name, created_at"
            )
        return [TokenInfo(*row) for row in rows]

    async def revoke_tokens(self, name_or_prefix: str, now: int,
                            guild_id: int | None = None) -> int:
        """Revoke the live tokens of a member name, or the one whose hash starts so.

        A name wins over a prefix. A prefix (any length of the hex digest `token list`
        shows the start of) must match one live token: AmbiguousToken lists the
        matches otherwise. Player names are only unique within a guild: `guild_id`
        limits the revocation to one guild.
        """
        in_guild = "" if guild_id is None else " AND guild_id = %s"
        scope: list[Any] = [] if guild_id is None else [guild_id]
        by_name = ("UPDATE tokens SET revoked_at = %s WHERE revoked_at IS NULL AND name = %s"
                   + in_guild)
        prefix = name_or_prefix.lower()
        is_prefix = re.fullmatch(r"[0-9a-f]{1,64}", prefix) is not None

        async def work(tx: Tx) -> int:
            count = await tx.execute(self._d.sql(by_name), [now, name_or_prefix, *scope])
            if count or not is_prefix:
                return count
            # Hex digits only, so the LIKE pattern holds no wildcard but its own.
            matches = await tx.fetchall(self._d.sql(
                "SELECT token_hash, token_prefix, guild_id, name, player_id, created_at, "
                "revoked_at FROM tokens WHERE revoked_at IS NULL AND token_hash LIKE %s"
                + in_guild + " ORDER BY guild_id, name"), [prefix + "%", *scope])
            if len(matches) > 1:
                raise AmbiguousToken(name_or_prefix, [TokenInfo(*row[1:]) for row in matches])
            if not matches:
                return 0
            return await tx.execute(self._d.sql(
                "UPDATE tokens SET revoked_at = %s WHERE token_hash = %s"), [now, matches[0][0]])

        count = await self.backend.write(work)
        if count == 0:
            raise TokenNotFound(name_or_prefix)
        return count

    # -- uploads ---------------------------------------------------------------

    def _next_seq_statements(self, guild_id: int) -> list[Statement]:
        # The feed row is locked for the rest of the transaction: one guild's uploads
        # commit one after another, so seq is gap-free and each merge sees the last.
        return [
            (self._d.increment("feeds", ("guild_id", "epoch", "last_seq"), ("guild_id",),
                               "last_seq"), (guild_id, secrets.token_hex(16), 1)),
            (self._d.sql("SELECT epoch, last_seq FROM feeds WHERE guild_id = %s"), (guild_id,)),
        ]

    async def _next_seq(self, tx: Tx, guild_id: int) -> tuple[str, int]:
        increment, select = self._next_seq_statements(guild_id)
        await tx.execute(*increment)
        rows = await tx.fetchall(*select)
        epoch, seq = rows[0]
        return str(epoch), int(seq)

    def _journal_and_event_statements(self, member: Member, kind: str, body: bytes,
                                      committed: Committed) -> list[Statement]:
        event = committed.event
        return [
            (self._d.sql("INSERT INTO events (guild_id, seq, at, body) VALUES (%s, %s, %s, %s)"),
             (member.guild_id, event.seq, event.at, committed.body)),
            (self._d.sql("INSERT INTO uploads (guild_id, member, kind, received_at, body) "
                         "VALUES (%s, %s, %s, %s, %s)"),
             (member.guild_id, member.name, kind, event.at, body)),
        ]

    async def _journal_and_event(self, tx: Tx, member: Member, kind: str, body: bytes,
                                 event: Event, key: str | None) -> Committed:
        committed = Committed(event, msgspec.json.encode(event))
        for statement in self._journal_and_event_statements(member, kind, body, committed):
            await tx.execute(*statement)
        if key is not None:
            await tx.execute(*self._upload_key_statement(member, key, kind, body, event))
        return committed

    # Idempotency keys are read after the feed row is locked: one guild's uploads then
    # run one after another, so a repeated key always finds the first upload's row
    # (READ COMMITTED reads the latest commit) and no two uploads can both claim it.

    def _upload_key_lookup(self, member: Member, key: str, now: int) -> Statement:
        return (self._d.sql("SELECT kind, body_sha256, status, seq FROM upload_keys "
                            "WHERE guild_id = %s AND member = %s AND idempotency_key = %s "
                            "AND created_at >= %s"),
                (member.guild_id, member.name, key, now - UPLOAD_KEY_TTL_MS))

    def _upload_key_statement(self, member: Member, key: str, kind: str, body: bytes,
                              event: Event) -> Statement:
        # An upsert: a key past its lifetime may still be there until the next prune.
        return (self._d.upsert("upload_keys", _UPLOAD_KEY_COLUMNS,
                               ("guild_id", "member", "idempotency_key"),
                               _UPLOAD_KEY_COLUMNS[3:], 1),
                (member.guild_id, member.name, key, kind, _body_digest(body), STORED_STATUS,
                 event.seq, event.at))

    async def _check_upload_key(self, tx: Tx, member: Member, key: str | None, kind: str,
                                body: bytes, now: int) -> None:
        if key is not None:
            _refuse_repeat(await tx.fetchall(*self._upload_key_lookup(member, key, now)),
                           kind, body)

    def _known_entities_statement(self, kind: str, guild_id: int,
                                  box: tuple[int, int, int, int],
                                  ids: Sequence[int]) -> Statement:
        table = ENTITY_TABLES[kind]
        cols = ", ".join(table.columns)
        where, box_params = _in_box(box)
        sql = f"SELECT {cols} FROM {table.name} WHERE guild_id = %s AND {where}"
        params: list[Any] = [guild_id, *box_params]
        if ids:
            sql += (f" UNION SELECT {cols} FROM {table.name} WHERE guild_id = %s "
                    f"AND x IS NOT NULL AND id IN ({_placeholders(len(ids))})")
            params += [guild_id, *ids]
        return self._d.sql(sql), params

    def _upsert_entities_statement(self, guild_id: int, kind: str,
                                   entities: Sequence[EntityState]) -> Statement:
        table = ENTITY_TABLES[kind]
        columns = ("guild_id", *table.columns)
        update = [c for c in table.columns if c not in table.key]
        params: list[Any] = []
        for entity in entities:
            params.append(guild_id)
            params.extend(msgspec.structs.astuple(entity))
        return (self._d.upsert(table.name, columns, ("guild_id", *table.key), update,
                               len(entities)), params)

    def _remove_entities_statement(self, guild_id: int, kind: str,
                                   entities: Sequence[EntityState]) -> Statement:
        table = ENTITY_TABLES[kind]
        if kind == "resource":
            keys: list[Any] = []
            for entity in entities:
                keys.extend(entity_key(entity))  # type: ignore[arg-type]
            where = f"(x, y, name) IN ({', '.join(['(%s, %s, %s)'] * len(entities))})"
        else:
            keys = [entity_key(entity) for entity in entities]
            where = f"id IN ({_placeholders(len(keys))})"
        # A player who left the covered tiles still exists: only the position is lost.
        verb = ("UPDATE players SET x = NULL, y = NULL" if kind == "player"
                else f"DELETE FROM {table.name}")
        return self._d.sql(f"{verb} WHERE guild_id = %s AND {where}"), [guild_id, *keys]

    async def apply_view(self, member: Member, tiles: list[Tile], body: bytes, now: int,
                         key: str | None = None) -> Committed:
        """Merge one view into the guild's state and record its event, atomically.

        With an idempotency `key` already used by this member for this view (within
        UPLOAD_KEY_TTL_MS), nothing is written and DuplicateUpload says what it answered.
        """
        guild_id = member.guild_id
        cells = [(t.x, t.y) for t in tiles]
        box = bounding_box(cells)
        area, exact = enclosing_area(cells)
        players: list[int] = []
        monsters: list[int] = []
        places: list[int] = []
        objects: list[int] = []
        # Most tiles hold nothing: testing the lists first is ten times cheaper than
        # extending with four empty generators per tile.
        for tile in tiles:
            items = tile.items
            if items.pcs:
                players += [p.id for p in items.pcs]  # type: ignore[misc]
            if items.npcs:
                monsters += [m.id for m in items.npcs]  # type: ignore[misc]
            if items.places:
                places += [p.id for p in items.places]
            if items.objects:
                objects += [o.id for o in items.objects]
        ids = {"player": players, "monster": monsters, "place": places, "resource": [],
               "object": objects}

        where, box_params = _in_box(box)
        # Everything the merge reads, after the feed row is locked (one batch), then
        # everything it writes (another): two round trips on MariaDB, one trip to the
        # writer's thread on SQLite (see Backend.read_then_write).
        reads = [
            *self._next_seq_statements(guild_id),
            (self._d.sql(f"SELECT x, y, terrain FROM tiles WHERE guild_id = %s AND {where}"),
             (guild_id, *box_params)),
            *(self._known_entities_statement(kind, guild_id, box, ids[kind]) for kind in KINDS),
        ]
        if key is not None:
            reads.append(self._upload_key_lookup(member, key, now))

        def plan(rows: list[list[Row]]) -> tuple[list[Statement], Committed]:
            if key is not None:
                # Raised inside the transaction: it rolls back, seq increment included.
                _refuse_repeat(rows[-1], "view", body)
                rows = rows[:-1]
            _, head, terrain_rows, *entity_rows = rows
            epoch, seq = str(head[0][0]), int(head[0][1])
            terrain = {(x, y): t for x, y, t in terrain_rows}
            known: dict[str, dict[EntityKey, EntityState]] = {}
            for kind, kind_rows in zip(KINDS, entity_rows, strict=True):
                states = (ENTITY_TABLES[kind].state(*row) for row in kind_rows)
                known[kind] = {entity_key(state): state for state in states}
            merged = merge_view(tiles, terrain, known, now, member.name)
            params: list[Any] = []
            for t in merged.tile_rows:
                params += (guild_id, t.x, t.y, t.type, t.seen_at, t.seen_by)
            writes: list[Statement] = [(
                self._d.upsert("tiles", _TILE_COLUMNS, ("guild_id", "x", "y"),
                               ("terrain", "seen_at", "seen_by"), len(merged.tile_rows)),
                params)]
            for kind in KINDS:
                if merged.gone[kind]:
                    writes.append(self._remove_entities_statement(guild_id, kind,
                                                                  merged.gone[kind]))
                if merged.upserts[kind]:
                    writes.append(self._upsert_entities_statement(guild_id, kind,
                                                                  merged.upserts[kind]))
            if merged.new_tiles:
                writes.append((self._d.sql(
                    "UPDATE feeds SET map_version = map_version + 1 WHERE guild_id = %s"),
                    (guild_id,)))
            event = Event(
                guild_id=guild_id, seq=seq, epoch=epoch, at=now, by=member.name, kind="view",
                area=area, covered=None if exact else sorted(cells), tiles=merged.new_tiles,
                appeared=merged.appeared, moved=merged.moved, changed=merged.changed,
                left=[g for kind in KINDS for g in merged.gone[kind]],
            )
            committed = Committed(event, msgspec.json.encode(event))
            writes += self._journal_and_event_statements(member, "view", body, committed)
            if key is not None:
                writes.append(self._upload_key_statement(member, key, "view", body, event))
            return writes, committed

        return await self.backend.read_then_write(reads, plan)

    async def _update_players(self, tx: Tx, member: Member, kind: str,
                              rows: Sequence[dict[str, Any]], now: int, body: bytes,
                              key: str | None) -> Committed:
        """Write profile or group rows of players, and the event saying what changed."""
        guild_id = member.guild_id
        epoch, seq = await self._next_seq(tx, guild_id)
        await self._check_upload_key(tx, member, key, kind, body, now)
        ids = sorted(row["id"] for row in rows)
        before = await self._players_by_id(tx, guild_id, ids)
        columns = ("guild_id", *rows[0].keys())
        params: list[Any] = []
        for row in sorted(rows, key=lambda r: r["id"]):
            params.append(guild_id)
            params.extend(row.values())
        await tx.execute(
            self._d.upsert("players", columns, ("guild_id", "id"), list(rows[0].keys())[1:],
                           len(rows), keep_known=True),
            params)
        after = await self._players_by_id(tx, guild_id, ids)
        event = Event(guild_id=guild_id, seq=seq, epoch=epoch, at=now, by=member.name, kind=kind,
                      members=list(after.values()))
        for pid, profile in after.items():
            old = before.get(pid)
            state = _map_state(profile)
            if state is None:
                continue
            old_state = _map_state(old) if old else None
            if old_state is None:
                event.appeared.append(state)
            elif (old_state.x, old_state.y) != (state.x, state.y):
                event.moved.append(state)
            else:
                event.changed.append(state)
        return await self._journal_and_event(tx, member, kind, body, event, key)

    async def _players_by_id(self, tx: Tx, guild_id: int,
                             ids: Sequence[int]) -> dict[int, MemberProfile]:
        rows = await tx.fetchall(
            self._d.sql(f"SELECT {_PROFILE_SQL_COLUMNS} FROM players WHERE guild_id = %s "
                        f"AND id IN ({_placeholders(len(ids))}) ORDER BY id"),
            [guild_id, *ids])
        return {row[0]: MemberProfile(*row) for row in rows}

    async def apply_profile(self, member: Member, profile: Profile, body: bytes, now: int,
                            key: str | None = None) -> Committed:
        """Record the uploader's own profile page (`key` as for `apply_view`)."""
        c = profile.caracs
        row = {
            "id": profile.id, "name": profile.name, "level": profile.level, "race": profile.race,
            "img": profile.img, "dla": profile.dla, "pas": profile.pas, "pos": profile.pos,
            "xp": profile.xp, "xp_max": profile.xp_max, "pv": c.pv, "pv_max": c.pv_max,
            "att_m": c.att_m, "def_m": c.def_m, "deg_m": c.deg_m, "arm": c.arm, "mm_m": c.mm_m,
            "pc": c.pc, "x": profile.x, "y": profile.y, "seen_at": now, "seen_by": member.name,
            "profile_at": now, "profile_by": member.name,
        }

        async def work(tx: Tx) -> Committed:
            return await self._update_players(tx, member, "profile", [row], now, body, key)

        return await self.backend.write(work)

    async def apply_group(self, member: Member, group: list[GroupMember], body: bytes,
                          now: int, key: str | None = None) -> Committed:
        """Record the hunting group: each listed player is updated, not the uploader
        (`key` as for `apply_view`)."""
        rows = [
            {"id": g.id, "name": g.name, "race": g.race, "level": g.level, "pc": g.pc,
             "x": g.x, "y": g.y, "seen_at": now, "seen_by": member.name,
             "group_at": now, "group_by": member.name}
            for g in group
        ]

        async def work(tx: Tx) -> Committed:
            if not rows:
                epoch, seq = await self._next_seq(tx, member.guild_id)
                await self._check_upload_key(tx, member, key, "group", body, now)
                event = Event(guild_id=member.guild_id, seq=seq, epoch=epoch, at=now,
                              by=member.name, kind="group")
                return await self._journal_and_event(tx, member, "group", body, event, key)
            return await self._update_players(tx, member, "group", rows, now, body, key)

        return await self.backend.write(work)

    # -- reads -----------------------------------------------------------------

    async def read_tiles(self, guild_id: int, area: Area) -> list[TileState]:
        """Known tiles within the area, by position."""
        where, box_params = _in_box(
            (area.x - area.r, area.x + area.r, area.y - area.r, area.y + area.r))
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql("SELECT x, y, terrain, seen_at, seen_by FROM tiles WHERE guild_id = %s "
                            f"AND {where} ORDER BY x, y"),
                (guild_id, *box_params))
        return [TileState(*row) for row in rows if _in_area(area, row[0], row[1])]

    async def read_state(self, guild_id: int, area: Area, now: int) -> State:
        """The guild's merged tactical state over a hex disk, with the feed position."""
        where, box_params = _in_box(
            (area.x - area.r, area.x + area.r, area.y - area.r, area.y + area.r))
        async with self.backend.read() as tx:
            # The feed head is read first: the state is at least as new as `seq`.
            head = await tx.fetchall(
                self._d.sql("SELECT epoch, last_seq FROM feeds WHERE guild_id = %s"), (guild_id,))
            tile_rows = await tx.fetchall(
                self._d.sql("SELECT x, y, terrain, seen_at, seen_by FROM tiles WHERE guild_id = %s "
                            f"AND {where} ORDER BY x, y"),
                (guild_id, *box_params))
            entities: dict[str, list[Any]] = {}
            for kind in KINDS:
                table = ENTITY_TABLES[kind]
                rows = await tx.fetchall(
                    self._d.sql(f"SELECT {', '.join(table.columns)} FROM {table.name} "
                                f"WHERE guild_id = %s AND {where}"),
                    (guild_id, *box_params))
                states = [table.state(*row) for row in rows]
                entities[kind] = sorted(
                    (s for s in states if _in_area(area, s.x, s.y)), key=_state_order)
        epoch, seq = (str(head[0][0]), int(head[0][1])) if head else ("", 0)
        return State(
            now=now, area=area, seq=seq, epoch=epoch,
            tiles=[TileState(*row) for row in tile_rows if _in_area(area, row[0], row[1])],
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
        where, box_params = _in_box(
            (area.x - area.r, area.x + area.r, area.y - area.r, area.y + area.r))
        out: list[tuple[list[Any], PageCursor | None]] = []
        async with self.backend.read() as tx:
            head = await tx.fetchall(
                self._d.sql("SELECT epoch, last_seq FROM feeds WHERE guild_id = %s"), (guild_id,))
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
                rows = await tx.fetchall(self._d.sql(sql), [*params, limit])
                key_at = [table.columns.index(c) for c in table.key]
                following = (tuple(rows[-1][i] for i in key_at)
                             if len(rows) == limit else None)
                states = [table.state(*row) for row in rows]
                out.append(([st for st in states if _in_area(area, st.x, st.y)], following))
        return (str(head[0][0]), int(head[0][1])) if head else ("", 0), out

    async def read_guild_players(self, guild_id: int) -> list[MemberProfile]:
        """Players of the guild: seen wearing its guildId, or with a profile or group page."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql(f"SELECT {_PROFILE_SQL_COLUMNS} FROM players WHERE guild_id = %s AND "
                            "(pc_guild_id = %s OR profile_at IS NOT NULL OR group_at IS NOT NULL) "
                            "ORDER BY id"),
                (guild_id, guild_id))
        return [MemberProfile(*row) for row in rows]

    async def read_members(self, guild_id: int) -> list[MemberEntry]:
        """Token holders of the guild, each with their player's latest known data."""
        async with self.backend.read() as tx:
            holders = await tx.fetchall(
                self._d.sql("SELECT name, MAX(player_id) FROM tokens WHERE guild_id = %s "
                            "AND revoked_at IS NULL GROUP BY name ORDER BY name"),
                (guild_id,))
            rows = await tx.fetchall(
                self._d.sql(f"SELECT {_PROFILE_SQL_COLUMNS} FROM players WHERE guild_id = %s "
                            "AND profile_at IS NOT NULL"),
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
                self._d.sql("SELECT map_version FROM feeds WHERE guild_id = %s"), (guild_id,))
        return int(rows[0][0]) if rows else 0

    async def read_terrain(self, guild_id: int) -> list[Row]:
        """(x, y, terrain) of every tile the guild knows, for the world map."""
        async with self.backend.read() as tx:
            return await tx.fetchall(
                self._d.sql("SELECT x, y, terrain FROM tiles WHERE guild_id = %s"), (guild_id,))

    # -- live feed -------------------------------------------------------------

    async def feed_head(self, guild_id: int) -> tuple[str, int]:
        """(epoch, last seq) of the guild's feed; ("", 0) before its first upload."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql("SELECT epoch, last_seq FROM feeds WHERE guild_id = %s"), (guild_id,))
        return (str(rows[0][0]), int(rows[0][1])) if rows else ("", 0)

    async def feed_heads(self) -> dict[int, tuple[str, int]]:
        """(epoch, last seq) of every guild's feed."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall("SELECT guild_id, epoch, last_seq FROM feeds")
        return {int(g): (str(e), int(s)) for g, e, s in rows}

    async def events_after(self, guild_id: int, after_seq: int, limit: int = 1000) -> list[tuple[int, bytes]]:
        """(seq, encoded event) of the guild's kept events after `after_seq`, in order."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql("SELECT seq, body FROM events WHERE guild_id = %s AND seq > %s "
                            "ORDER BY seq LIMIT %s"),
                (guild_id, after_seq, limit))
        return [(int(seq), bytes(body)) for seq, body in rows]

    async def oldest_event(self, guild_id: int) -> int | None:
        """The lowest seq still kept for replay, or None when none is kept."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self._d.sql("SELECT MIN(seq) FROM events WHERE guild_id = %s"), (guild_id,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def reset_feeds(self) -> None:
        """Start a new history for every guild's feed (after a restore): new epoch, no replay."""

        async def work(tx: Tx) -> None:
            rows = await tx.fetchall("SELECT guild_id FROM feeds ORDER BY guild_id")
            for (guild_id,) in rows:
                await tx.execute(self._d.sql("UPDATE feeds SET epoch = %s WHERE guild_id = %s"),
                                 (secrets.token_hex(16), guild_id))
            await tx.execute("DELETE FROM events")

        await self.backend.write(work)

    # -- maintenance -----------------------------------------------------------

    async def prune(self, now: int, *, journal_ms: int, events_ms: int, events_max: int) -> tuple[int, int]:
        """Drop journal entries and events past their retention; returns both counts."""
        heads = await self.feed_heads()

        async def work(tx: Tx) -> tuple[int, int]:
            journal = await tx.execute(
                self._d.sql("DELETE FROM uploads WHERE received_at < %s"), (now - journal_ms,))
            events = await tx.execute(
                self._d.sql("DELETE FROM events WHERE at < %s"), (now - events_ms,))
            for guild_id, (_, last_seq) in sorted(heads.items()):
                events += await tx.execute(
                    self._d.sql("DELETE FROM events WHERE guild_id = %s AND seq <= %s"),
                    (guild_id, last_seq - events_max))
            return journal, events

        return await self.backend.write(work)

    async def prune_upload_keys(self, now: int) -> int:
        """Forget idempotency keys past their lifetime; returns how many."""

        async def work(tx: Tx) -> int:
            return await tx.execute(
                self._d.sql("DELETE FROM upload_keys WHERE created_at < %s"),
                (now - UPLOAD_KEY_TTL_MS,))

        return await self.backend.write(work)

    async def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        async with self.backend.read() as tx:
            await tx.fetchall("SELECT 1")

    async def applied_migrations(self) -> set[str]:
        """Ids of the schema migrations recorded as applied."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall("SELECT migration_id FROM _yoyo_migration")
        return {str(row[0]) for row in rows}


# A page's position in its table: the key of its last row.
PageCursor = tuple[Any, ...]
# Every kind of row a state holds, in the order snapshots send them.
STATE_KINDS = ("tile", *KINDS)
_PAGED_TABLES: dict[str, EntityTable] = {
    "tile": EntityTable("tiles", ("x", "y", "terrain", "seen_at", "seen_by"), ("x", "y"),
                        TileState),
    **ENTITY_TABLES,
}


def _after(key: Sequence[str], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """`key > values` for a composite key, spelled out so that both databases walk the
    primary key's index from there (row-value comparisons are not always ranged)."""
    first, *rest = key
    if not rest:
        return f"{first} > %s", [values[0]]
    inner, inner_params = _after(rest, values[1:])
    return f"({first} > %s OR ({first} = %s AND {inner}))", [values[0], values[0], *inner_params]


def _body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _refuse_repeat(key_rows: list[Row], kind: str, body: bytes) -> None:
    """Raise DuplicateUpload for a key already used for this upload, IdempotencyKeyReused
    for a key used for another one; nothing for a new key."""
    if not key_rows:
        return
    stored_kind, digest, status, seq = key_rows[0]
    if stored_kind != kind or str(digest) != _body_digest(body):
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different upload "
                                   "in the last 10 minutes")
    raise DuplicateUpload(int(status), int(seq))


def _map_state(profile: MemberProfile | None) -> PlayerState | None:
    if profile is None or profile.x is None or profile.y is None:
        return None
    return PlayerState(profile.id, profile.name, profile.level, profile.wounds, profile.guild_id,
                       profile.guild_name, profile.x, profile.y, profile.seen_at or 0,
                       profile.seen_by or "")


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
