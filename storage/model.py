"""What the store returns: the guild's tactical state, as JSON-ready structs.

Field names here are the wire names of the versioned API (docs/api.md) and of the
live feed. Times are UTC epoch milliseconds.
"""
from __future__ import annotations

import msgspec


class Member(msgspec.Struct, frozen=True):
    """The owner of a token: one player of one guild, as the operator set it."""

    token_id: int
    guild_id: int
    name: str
    player_id: int | None


class TokenInfo(msgspec.Struct, frozen=True):
    """A token as `token list` shows it: never the secret, only its first characters."""

    prefix: str
    guild_id: int
    name: str
    player_id: int | None
    created_at: int
    revoked_at: int | None


class Area(msgspec.Struct, frozen=True):
    """A hex disk: every tile within hex distance `r` of (x, y)."""

    x: int
    y: int
    r: int


class TileState(msgspec.Struct):
    x: int
    y: int
    type: str
    seen_at: int
    seen_by: str


class PlayerState(msgspec.Struct, tag="player", tag_field="kind"):
    id: int
    name: str
    level: int | None
    wounds: str | None
    guild_id: int | None
    guild_name: str | None
    x: int
    y: int
    seen_at: int
    seen_by: str


class MonsterState(msgspec.Struct, tag="monster", tag_field="kind"):
    id: int
    name: str
    level: int | None
    wounds: str | None
    x: int
    y: int
    seen_at: int
    seen_by: str


class PlaceState(msgspec.Struct, tag="place", tag_field="kind"):
    id: int
    name: str
    level: int | None
    town_id: int | None
    town_name: str | None
    x: int
    y: int
    seen_at: int
    seen_by: str


class ResourceState(msgspec.Struct, tag="resource", tag_field="kind"):
    name: str
    level: int | None
    x: int
    y: int
    seen_at: int
    seen_by: str


class ObjectState(msgspec.Struct, tag="object", tag_field="kind"):
    id: int
    name: str
    x: int
    y: int
    seen_at: int
    seen_by: str


EntityState = PlayerState | MonsterState | PlaceState | ResourceState | ObjectState


class MemberProfile(msgspec.Struct):
    """A player with everything known of them: map sighting, profile page, group page."""

    id: int
    name: str
    level: int | None = None
    wounds: str | None = None
    guild_id: int | None = None
    guild_name: str | None = None
    x: int | None = None
    y: int | None = None
    seen_at: int | None = None
    seen_by: str | None = None
    race: str | None = None
    img: str | None = None
    dla: str | None = None
    pas: int | None = None
    pos: int | None = None
    xp: int | None = None
    xp_max: int | None = None
    pv: int | None = None
    pv_max: int | None = None
    att_m: int | None = None
    def_m: int | None = None
    deg_m: int | None = None
    arm: int | None = None
    mm_m: int | None = None
    pc: int | None = None
    profile_at: int | None = None
    profile_by: str | None = None
    group_at: int | None = None
    group_by: str | None = None


class State(msgspec.Struct):
    """The guild's merged tactical state over an area."""

    now: int
    area: Area
    seq: int
    epoch: str
    tiles: list[TileState]
    players: list[PlayerState]
    monsters: list[MonsterState]
    places: list[PlaceState]
    resources: list[ResourceState]
    objects: list[ObjectState]


class MemberEntry(msgspec.Struct):
    """A token holder of the guild and what is known of their player."""

    name: str
    player_id: int | None
    player: MemberProfile | None


class Event(msgspec.Struct, kw_only=True):
    """One accepted upload as the live feed carries it (docs/protocol.md).

    `tiles` are tiles added or whose terrain changed; `appeared`, `moved`, `changed`
    hold entities as they are now, `left` as they were last seen. For views, every
    tile of `covered` (or of `area` when `covered` is absent) and everything still on
    it was refreshed: seen_at = `at`, seen_by = `by`.
    """

    guild_id: int
    seq: int
    epoch: str
    at: int
    by: str
    kind: str
    area: Area | None = None
    covered: list[tuple[int, int]] | None = None
    tiles: list[TileState] = []
    appeared: list[EntityState] = []
    moved: list[EntityState] = []
    changed: list[EntityState] = []
    left: list[EntityState] = []
    members: list[MemberProfile] = []


class Committed(msgspec.Struct, frozen=True):
    """An upload's event as its transaction committed it, with the JSON bytes stored in
    the feed's journal: the same bytes go to the bus, the sockets and any later replay,
    so an event is encoded once."""

    event: Event
    body: bytes

    @property
    def seq(self) -> int:
        """The event's place in its guild's feed."""
        return self.event.seq
