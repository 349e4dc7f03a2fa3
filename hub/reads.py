"""Read handlers: the legacy routes and the versioned API, all scoped to the token's guild."""
from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from hub import keys
from hub.clock import legacy_date, now_ms
from hub.errors import InvalidParameter
from storage.model import Area, MemberProfile, State, TileState

routes = web.RouteTableDef()

# [0-9], not \d: Python's \d also matches other scripts' digits ("٤٢", "４２").
_COORD = r"{x:-?[0-9]{1,6}}/{y:-?[0-9]{1,6}}/{n:-?[0-9]{1,6}}"
# What `int()` would also accept is refused: signs but "-", spaces, "_", non-ASCII digits.
_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _json(data: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), content_type="application/json")


def _int_param(raw: str | None, name: str, low: int, high: int) -> int:
    if raw is None or raw == "":
        raise InvalidParameter(f"{name} is required", name)
    if not _INTEGER.fullmatch(raw):
        raise InvalidParameter(f"{name} must be an integer (ASCII digits)", name)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidParameter(f"{name} must be between {low} and {high}", name)
    return value


def _area(request: web.Request, values: dict[str, str] | Any, radius: str) -> Area:
    max_radius = request.app[keys.SETTINGS].max_radius
    return Area(
        _int_param(values.get("x"), "x", -10_000, 10_000),
        _int_param(values.get("y"), "y", -10_000, 10_000),
        _int_param(values.get(radius), radius, 0, max_radius),
    )


def _legacy_tile(tile: TileState) -> dict[str, Any]:
    # The old backend exposed its row id; x * 1000 + y is as stable and as unique.
    return {"id": tile.x * 1000 + tile.y, "type": tile.type, "x": tile.x, "y": tile.y,
            "user": tile.seen_by, "date": legacy_date(tile.seen_at)}


def _legacy_player(p: MemberProfile) -> dict[str, Any]:
    stamps = [(p.seen_at or 0, p.seen_by), (p.profile_at or 0, p.profile_by),
              (p.group_at or 0, p.group_by)]
    latest_at, latest_by = max(stamps, key=lambda s: s[0])
    return {
        "id": p.id, "level": p.level, "name": p.name, "wounds": p.wounds,
        "guildId": p.guild_id, "guildName": p.guild_name, "x": p.x, "y": p.y,
        "user": latest_by, "race": p.race, "img": p.img, "dla": p.dla, "pas": p.pas,
        "pos": p.pos, "xp": p.xp, "xpMax": p.xp_max, "pv": p.pv, "pvMax": p.pv_max,
        "attM": p.att_m, "defM": p.def_m, "degM": p.deg_m, "arm": p.arm, "mmM": p.mm_m,
        "pc": p.pc, "date": legacy_date(latest_at or None),
    }


def on_tile(state: State, guild_id: int) -> dict[tuple[int, int], dict[str, Any]]:
    """The one most important thing on each tile: resource > place > other pc > guildmate."""
    marks: dict[tuple[int, int], tuple[int, dict[str, Any]]] = {}

    def mark(x: int, y: int, rank: int, value: dict[str, Any]) -> None:
        current = marks.get((x, y))
        if current is None or rank < current[0]:
            marks[(x, y)] = (rank, value)

    for r in state.resources:
        mark(r.x, r.y, 0, {"resource": r.name, "level": r.level})
    for pl in state.places:
        mark(pl.x, pl.y, 1, {"place": pl.name})
    for p in state.players:
        if p.guild_id == guild_id:
            mark(p.x, p.y, 3, {"gdc": p.name})
        else:
            mark(p.x, p.y, 2, {"pc": p.name})
    return {cell: value for cell, (_, value) in marks.items()}


@routes.get("/gdc")
async def get_group(request: web.Request) -> web.Response:
    """The guild's players with every known field (legacy shape)."""
    players = await request.app[keys.STORE].read_guild_players(request[keys.MEMBER].guild_id)
    return _json([_legacy_player(p) for p in players])


@routes.get("/tiles/" + _COORD)
async def get_tiles(request: web.Request) -> web.Response:
    """Known tiles within hex distance n (legacy shape)."""
    area = _area(request, request.match_info, "n")
    tiles = await request.app[keys.STORE].read_tiles(request[keys.MEMBER].guild_id, area)
    return _json([_legacy_tile(t) for t in tiles])


@routes.get("/minimap/" + _COORD)
async def get_minimap(request: web.Request) -> web.Response:
    """Known tiles within hex distance n, each with what matters most on it."""
    area = _area(request, request.match_info, "n")
    guild_id = request[keys.MEMBER].guild_id
    state = await request.app[keys.STORE].read_state(guild_id, area, now_ms())
    marks = on_tile(state, guild_id)
    tiles = []
    for tile in state.tiles:
        entry = _legacy_tile(tile)
        entry["on_tile"] = marks.get((tile.x, tile.y), {})
        tiles.append(entry)
    return _json(tiles)


@routes.get("/infos")
async def get_infos(request: web.Request) -> web.Response:
    """Who the token belongs to, as the old backend answered."""
    return _json({"host": request.app[keys.HOSTNAME], "date": legacy_date(now_ms()),
                  "user": request[keys.MEMBER].name, "guild": request[keys.MEMBER].guild_id})


@routes.get("/worldmap")
async def get_worldmap(request: web.Request) -> web.Response:
    """The guild's known world, one pixel per tile, as a PNG."""
    png = await request.app[keys.WORLDMAP].png(request[keys.MEMBER].guild_id)
    return web.Response(body=png, content_type="image/png",
                        headers={"Cache-Control": "private, max-age=60"})


@routes.get("/api/v1/state")
async def get_state(request: web.Request) -> web.Response:
    """The guild's merged tactical state over a hex disk (docs/api.md)."""
    area = _area(request, request.query, "r")
    state = await request.app[keys.STORE].read_state(request[keys.MEMBER].guild_id, area, now_ms())
    return _json(state)


@routes.get("/api/v1/members")
async def get_members(request: web.Request) -> web.Response:
    """The guild's token holders with their latest profile and group data."""
    members = await request.app[keys.STORE].read_members(request[keys.MEMBER].guild_id)
    return _json({"members": members})
