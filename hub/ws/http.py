"""`GET /ws`: the upgrade, the auth handshake, and closing every socket on shutdown."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from hub import feed_protocol as proto
from hub import keys
from hub.auth import token_from_header
from hub.errors import Forbidden, TooManyAuthFailures, Unauthorized
from hub.ws.connection import CLOSE_TIMEOUT_SECONDS, Connection, close_or_drop
from hub.ws.session import Session
from storage import StoreError
from storage.model import Member

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def _check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    # Browsers always send Origin on a websocket; other clients may not.
    origin = request.headers.get("Origin")
    if origin is not None and "*" not in allowed and origin not in allowed:
        raise Forbidden(f"origin {origin!r} is not allowed", "Origin")


async def _authenticate(ws: web.WebSocketResponse, app: web.Application,
                        address: str | None) -> Member | None:
    """Wait for the auth message; on failure say why and close with CLOSE_AUTH."""
    await ws.send_frame(proto.auth_required(), WSMsgType.TEXT)
    try:
        message = await ws.receive(timeout=app[keys.SETTINGS].ws_auth_timeout)
    except TimeoutError:
        reason = "auth timeout"
    else:
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None  # closed or failed before authenticating: nothing to say
        try:
            token = proto.decode_auth(message.data).token
        except Exception:
            reason = 'expected {"type": "auth", "token": "..."}'
        else:
            try:
                member = await app[keys.AUTH].member(token, address)
            except TooManyAuthFailures as refused:
                member, reason = None, refused.message
            else:
                reason = "unknown or revoked token"
            if member is not None:
                return member
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_frame(proto.auth_invalid(reason), WSMsgType.TEXT)
    await ws.close(code=proto.CLOSE_AUTH, message=reason.encode())
    return None


@routes.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The live feed (docs/protocol.md)."""
    app = request.app
    settings = app[keys.SETTINGS]
    _check_origin(request, settings.cors_origins)
    app[keys.AUTH].refuse_if_limited(request.remote)
    member: Member | None = None
    if "Authorization" in request.headers:
        # Non-browser clients may authenticate on the upgrade request itself.
        token = token_from_header(request.headers["Authorization"]) or ""
        member = await app[keys.AUTH].member(token, request.remote)
        if member is None:
            raise Unauthorized("unknown or revoked token")
    ws = web.WebSocketResponse(heartbeat=settings.ws_heartbeat or None,
                               max_msg_size=settings.ws_max_msg_bytes,
                               compress=False, timeout=CLOSE_TIMEOUT_SECONDS)
    await ws.prepare(request)
    app[keys.METRICS].ws_connections.inc()
    sockets = app[keys.WEBSOCKETS]
    sockets[ws] = request.transport
    try:
        if member is None:
            member = await _authenticate(ws, app, request.remote)
        if member is not None:
            conn = Connection(ws, request.transport, settings, app[keys.METRICS])
            session = Session(conn, member, app[keys.FEED])
            app[keys.SESSIONS].add(session)
            await session.run()
    except StoreError as exc:
        log.warning("websocket closed: database unavailable (%s)", exc)
        await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"database unavailable")
    finally:
        sockets.pop(ws, None)
    return ws


async def close_sockets(app: web.Application) -> None:
    """On shutdown, close every websocket with 1001 so clients reconnect elsewhere."""
    sockets = list(app[keys.WEBSOCKETS].items())
    if sockets:
        log.info("closing %d websockets for shutdown", len(sockets))
    await asyncio.gather(*(close_or_drop(ws, transport, WSCloseCode.GOING_AWAY, "server shutdown")
                           for ws, transport in sockets))
