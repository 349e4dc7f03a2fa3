"""Upload handlers of the legacy API: read, parse, store, publish, answer."""
from __future__ import annotations

import re
from collections.abc import Awaitable

from aiohttp import web

from hub import keys
from hub.bodies import read_body
from hub.clock import now_ms
from hub.errors import Forbidden, InvalidParameter
from parsers import decode_group, decode_profile, decode_view
from storage import CommitUncertain, DuplicateUpload
from storage.model import Committed

routes = web.RouteTableDef()

JOB_DONE = {"Info": "Job done"}
IDEMPOTENCY_HEADER = "Idempotency-Key"
# A UUID, a random token in base64 or hex, a counter: what clients send. Quotes around
# it (the structured-field string form of the IETF draft) are accepted and not part of it.
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:~+/=-]{1,128}")


def idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key, None without one; InvalidParameter when malformed."""
    values = request.headers.getall(IDEMPOTENCY_HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(f"one {IDEMPOTENCY_HEADER} header at most", IDEMPOTENCY_HEADER)
    key = values[0].strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidParameter(
            f"{IDEMPOTENCY_HEADER} must be 1 to 128 characters among A-Z a-z 0-9 _ . : ~ + / = -",
            IDEMPOTENCY_HEADER)
    return key


async def _store_and_answer(request: web.Request, storing: Awaitable[Committed]) -> web.Response:
    """Await the store, publish the event, answer; a repeated key answers the first upload."""
    app = request.app
    try:
        committed = await storing
    except DuplicateUpload as repeat:
        return web.json_response({**JOB_DONE, "seq": repeat.seq}, status=repeat.status,
                                 headers={"Idempotent-Replayed": "true"})
    except CommitUncertain:
        # The upload may be in the database: the feed must look for it as soon as the
        # database answers again, not at its next routine poll.
        app[keys.FEED].commit_uncertain(request[keys.MEMBER].guild_id)
        raise
    # Live clients hear of it first; alerts are only evaluated (no I/O) before the answer.
    app[keys.FEED].publish(committed)
    app[keys.ALERTS].notice(committed)
    app[keys.METRICS].uploads.labels(committed.event.kind).inc()
    return web.json_response({**JOB_DONE, "seq": committed.seq})


@routes.post("/view")
async def post_view(request: web.Request) -> web.Response:
    """A player's view: the tiles around them and what stands on them."""
    settings = request.app[keys.SETTINGS]
    key = idempotency_key(request)
    body = await read_body(request)
    tiles = decode_view(body, max_tiles=settings.max_tiles, max_entities=settings.max_entities)
    return await _store_and_answer(request, request.app[keys.STORE].apply_view(
        request[keys.MEMBER], tiles, body, now_ms(), key))


@routes.post(r"/pc/{player_id:[0-9]{1,10}}")
async def post_profile(request: web.Request) -> web.Response:
    """The uploader's own profile; a token bound to a player may only post that player."""
    member = request[keys.MEMBER]
    path_id = int(request.match_info["player_id"])
    if member.player_id is not None and member.player_id != path_id:
        raise Forbidden(f"this token belongs to player {member.player_id}", "id")
    key = idempotency_key(request)
    body = await read_body(request)
    profile = decode_profile(body, path_id=path_id)
    return await _store_and_answer(request, request.app[keys.STORE].apply_profile(
        member, profile, body, now_ms(), key))


@routes.post("/gdc")
async def post_group(request: web.Request) -> web.Response:
    """The hunting group: every listed player is updated."""
    key = idempotency_key(request)
    body = await read_body(request)
    group = decode_group(body)
    return await _store_and_answer(request, request.app[keys.STORE].apply_group(
        request[keys.MEMBER], group, body, now_ms(), key))
