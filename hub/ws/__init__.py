"""The live feed's websocket API (docs/protocol.md), shaped like Home Assistant's
websocket_api: `http` (the upgrade and the auth handshake), `connection` (one writer per
socket, bounded queue), `session` (commands in order, subscriptions as unsubscribe
calls), `registry` and `commands` (typed command handlers), `revocation`."""
from __future__ import annotations

import weakref

from aiohttp import web

from hub import keys
from hub.ws import commands  # noqa: F401  (registers the commands)
from hub.ws.http import close_sockets, routes
from hub.ws.revocation import revocation_ctx


def setup_websockets(app: web.Application) -> None:
    """Add `GET /ws`, the revocation check, and the shutdown hook closing every socket."""
    app[keys.WEBSOCKETS] = weakref.WeakKeyDictionary()
    app[keys.SESSIONS] = weakref.WeakSet()
    app.cleanup_ctx.append(revocation_ctx)
    app.on_shutdown.append(close_sockets)
    app.add_routes(routes)
