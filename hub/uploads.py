"""Upload handlers of the legacy API: read, parse, store, announce, answer."""
from __future__ import annotations

from aiohttp import web

from hub import keys
from hub.bodies import read_body
from hub.clock import now_ms
from hub.errors import Forbidden
from parsers import decode_group, decode_profile, decode_view
from storage.model import Event

routes = web.RouteTableDef()

JOB_DONE = {"Info": "Job done"}


async def _announce(app: web.Application, event: Event) -> web.Response:
    for listener in app[keys.EVENT_LISTENERS]:
        await listener(event)
    app[keys.METRICS].uploads.labels(event.kind).inc()
    return web.json_response({**JOB_DONE, "seq": event.seq})


@routes.post("/view")
async def post_view(request: web.Request) -> web.Response:
    """A player's view: the tiles around them and what stands on them."""
    settings = request.app[keys.SETTINGS]
    body = await read_body(request)
    tiles = decode_view(body, max_tiles=settings.max_tiles, max_entities=settings.max_entities)
    event = await request.app[keys.STORE].apply_view(request[keys.MEMBER], tiles, body, now_ms())
    return await _announce(request.app, event)


@routes.post(r"/pc/{player_id:[0-9]{1,10}}")
async def post_profile(request: web.Request) -> web.Response:
    """The uploader's own profile; a token bound to a player may only post that player."""
    member = request[keys.MEMBER]
    path_id = int(request.match_info["player_id"])
    if member.player_id is not None and member.player_id != path_id:
        raise Forbidden(f"this token belongs to player {member.player_id}", "id")
    body = await read_body(request)
    profile = decode_profile(body, path_id=path_id)
    event = await request.app[keys.STORE].apply_profile(member, profile, body, now_ms())
    return await _announce(request.app, event)


@routes.post("/gdc")
async def post_group(request: web.Request) -> web.Response:
    """The hunting group: every listed player is updated."""
    body = await read_body(request)
    group = decode_group(body)
    event = await request.app[keys.STORE].apply_group(request[keys.MEMBER], group, body, now_ms())
    return await _announce(request.app, event)
