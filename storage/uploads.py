"""Uploads (views, profile pages, group pages): each one transaction of reads, a pure
plan, then writes, recording the guild's next event.

Every upload's first reads take the guild's feed row (the next seq) and then look up
its idempotency key; docs/design.md says why there.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from parsers import GroupMember, Profile, Tile
from storage.backend import Row, Statement
from storage.base import StoreBase
from storage.errors import DuplicateUpload, IdempotencyKeyReused
from storage.merge import (
    KINDS,
    EntityKey,
    bounding_box,
    enclosing_area,
    entity_key,
    merge_players,
    merge_view,
    player_changes,
)
from storage.model import Committed, EntityState, Event, Member, MemberProfile
from storage.tables import (
    ENTITY_TABLES,
    PROFILE_FIELDS,
    PROFILE_SQL_COLUMNS,
    feed_head_of,
    feed_head_statement,
    in_box,
    placeholders,
)

_TILE_COLUMNS = ("guild_id", "x", "y", "terrain", "seen_at", "seen_by")
_UPLOAD_KEY_COLUMNS = ("guild_id", "member", "idempotency_key", "kind", "body_sha256", "status",
                       "seq", "created_at")
_PROFILE_COLUMN_OF = {field: column for column, field in PROFILE_FIELDS.items()}
# How long an idempotency key answers for its upload (docs/api.md promises 10 minutes).
UPLOAD_KEY_TTL_MS = 10 * 60_000
# The status a stored upload answered, repeated to its retries.
STORED_STATUS = 200


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


class Uploads(StoreBase):
    """Merges uploads into the guild's state and appends their events to its feed."""

    # -- what every upload reads first and writes last -----------------------------

    def _sequence_reads(self, member: Member, key: str | None, now: int) -> list[Statement]:
        """Take the guild's feed row (locked until commit) and its next seq, then read the
        idempotency key (when given): the first reads of every upload."""
        reads: list[Statement] = [
            (self.dialect.increment("feeds", ("guild_id", "epoch", "last_seq"), ("guild_id",),
                                    "last_seq"), (member.guild_id, secrets.token_hex(16), 1)),
            feed_head_statement(self.dialect, member.guild_id),
        ]
        if key is not None:
            reads.append((self.dialect.sql(
                "SELECT kind, body_sha256, status, seq FROM upload_keys "
                "WHERE guild_id = %s AND member = %s AND idempotency_key = %s "
                "AND created_at >= %s"),
                (member.guild_id, member.name, key, now - UPLOAD_KEY_TTL_MS)))
        return reads

    @staticmethod
    def _sequenced(rows: list[list[Row]], key: str | None, kind: str,
                   body: bytes) -> tuple[str, int, list[list[Row]]]:
        """(epoch, seq) from the rows of `_sequence_reads`, and the rows of the reads after.

        A repeated key raises inside the transaction: it rolls back, seq increment included.
        """
        _, head, *rest = rows
        if key is not None:
            _refuse_repeat(rest[0], kind, body)
            rest = rest[1:]
        epoch, seq = feed_head_of(head)
        return epoch, seq, rest

    def _record_statements(self, member: Member, kind: str, body: bytes, event: Event,
                           key: str | None) -> tuple[list[Statement], Committed]:
        """The event (encoded once), the journal entry and the idempotency key: the last
        writes of every upload."""
        committed = Committed(event, msgspec.json.encode(event))
        writes: list[Statement] = [
            (self.dialect.sql("INSERT INTO events (guild_id, seq, at, body) VALUES (%s, %s, %s, %s)"),
             (member.guild_id, event.seq, event.at, committed.body)),
            (self.dialect.sql("INSERT INTO uploads (guild_id, member, kind, received_at, body) "
                              "VALUES (%s, %s, %s, %s, %s)"),
             (member.guild_id, member.name, kind, event.at, body)),
        ]
        if key is not None:
            # An upsert: a key past its lifetime may still be there until the next prune.
            writes.append((self.dialect.upsert("upload_keys", _UPLOAD_KEY_COLUMNS,
                                               ("guild_id", "member", "idempotency_key"),
                                               _UPLOAD_KEY_COLUMNS[3:], 1),
                           (member.guild_id, member.name, key, kind, _body_digest(body),
                            STORED_STATUS, event.seq, event.at)))
        return writes, committed

    # -- views -----------------------------------------------------------------------

    def _known_entities_statement(self, kind: str, guild_id: int,
                                  box: tuple[int, int, int, int],
                                  ids: Sequence[int]) -> Statement:
        table = ENTITY_TABLES[kind]
        cols = ", ".join(table.columns)
        where, box_params = in_box(box)
        sql = f"SELECT {cols} FROM {table.name} WHERE guild_id = %s AND {where}"
        params: list[Any] = [guild_id, *box_params]
        if ids:
            sql += (f" UNION SELECT {cols} FROM {table.name} WHERE guild_id = %s "
                    f"AND x IS NOT NULL AND id IN ({placeholders(len(ids))})")
            params += [guild_id, *ids]
        return self.dialect.sql(sql), params

    def _upsert_entities_statement(self, guild_id: int, kind: str,
                                   entities: Sequence[EntityState]) -> Statement:
        table = ENTITY_TABLES[kind]
        columns = ("guild_id", *table.columns)
        update = [c for c in table.columns if c not in table.key]
        params: list[Any] = []
        for entity in entities:
            params.append(guild_id)
            params.extend(msgspec.structs.astuple(entity))
        return (self.dialect.upsert(table.name, columns, ("guild_id", *table.key), update,
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
            where = f"id IN ({placeholders(len(keys))})"
        # A player who left the covered tiles still exists: only the position is lost.
        verb = ("UPDATE players SET x = NULL, y = NULL" if kind == "player"
                else f"DELETE FROM {table.name}")
        return self.dialect.sql(f"{verb} WHERE guild_id = %s AND {where}"), [guild_id, *keys]

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

        where, box_params = in_box(box)
        reads = [
            *self._sequence_reads(member, key, now),
            (self.dialect.sql(f"SELECT x, y, terrain FROM tiles WHERE guild_id = %s AND {where}"),
             (guild_id, *box_params)),
            *(self._known_entities_statement(kind, guild_id, box, ids[kind]) for kind in KINDS),
        ]

        def plan(rows: list[list[Row]]) -> tuple[list[Statement], Committed]:
            epoch, seq, (terrain_rows, *entity_rows) = self._sequenced(rows, key, "view", body)
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
                self.dialect.upsert("tiles", _TILE_COLUMNS, ("guild_id", "x", "y"),
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
                writes.append((self.dialect.sql(
                    "UPDATE feeds SET map_version = map_version + 1 WHERE guild_id = %s"),
                    (guild_id,)))
            event = Event(
                guild_id=guild_id, seq=seq, epoch=epoch, at=now, by=member.name, kind="view",
                area=area, covered=None if exact else sorted(cells), tiles=merged.new_tiles,
                appeared=merged.appeared, moved=merged.moved, changed=merged.changed,
                left=[g for kind in KINDS for g in merged.gone[kind]],
            )
            record, committed = self._record_statements(member, "view", body, event, key)
            return writes + record, committed

        return await self.backend.read_then_write(reads, plan)

    # -- profile and group pages -----------------------------------------------------

    async def _apply_players(self, member: Member, kind: str, rows: Sequence[dict[str, Any]],
                             body: bytes, now: int, key: str | None) -> Committed:
        """Upsert players' rows (MemberProfile fields) from a profile or group page and
        record the event saying what changed; no rows records an event all the same."""
        guild_id = member.guild_id
        rows = sorted(rows, key=lambda r: int(r["id"]))
        ids = [row["id"] for row in rows]
        reads = self._sequence_reads(member, key, now)
        if rows:
            reads.append((self.dialect.sql(
                f"SELECT {PROFILE_SQL_COLUMNS} FROM players WHERE guild_id = %s "
                f"AND id IN ({placeholders(len(ids))}) ORDER BY id"), [guild_id, *ids]))

        def plan(found: list[list[Row]]) -> tuple[list[Statement], Committed]:
            epoch, seq, rest = self._sequenced(found, key, kind, body)
            known = {int(row[0]): MemberProfile(*row) for row in (rest[0] if rows else [])}
            merged = merge_players(known, rows)
            writes: list[Statement] = []
            if rows:
                fields = list(rows[0])
                columns = ("guild_id", *(_PROFILE_COLUMN_OF[f] for f in fields))
                params: list[Any] = []
                for row in rows:
                    params.append(guild_id)
                    params.extend(row[f] for f in fields)
                update = [c for c in columns if c not in ("guild_id", "id")]
                writes.append((self.dialect.upsert("players", columns, ("guild_id", "id"),
                                                   update, len(rows), keep_known=True),
                               params))
            changes = player_changes(known, merged)
            event = Event(guild_id=guild_id, seq=seq, epoch=epoch, at=now, by=member.name,
                          kind=kind, members=merged, appeared=changes.appeared,
                          moved=changes.moved, changed=changes.changed)
            record, committed = self._record_statements(member, kind, body, event, key)
            return writes + record, committed

        return await self.backend.read_then_write(reads, plan)

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
        return await self._apply_players(member, "profile", [row], body, now, key)

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
        return await self._apply_players(member, "group", rows, body, now, key)
