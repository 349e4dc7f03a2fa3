"""Every key under which the app and its requests keep state (no string keys)."""
from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from hub.settings import Settings
from storage import Store
from storage.model import Member

if TYPE_CHECKING:
    from hub.alerts.service import Alerts
    from hub.auth import Authenticator
    from hub.drain import InFlight
    from hub.feed import Feed
    from hub.metrics import Metrics
    from hub.page import PageAssets
    from hub.worldmap import WorldMapCache
    from hub.ws.session import Session

SETTINGS = web.AppKey("settings", Settings)
# This machine's name, as /infos reports it.
HOSTNAME = web.AppKey("hostname", str)
STORE = web.AppKey("store", Store)
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
WORLDMAP: web.AppKey[WorldMapCache] = web.AppKey("worldmap")
# Discord alerts: rules in memory, the outbox writer and the webhook sender.
ALERTS: web.AppKey[Alerts] = web.AppKey("alerts")
# The map page's files, read once at start-up (hub/page.py).
PAGE: web.AppKey[PageAssets] = web.AppKey("page")
# Networks whose X-Forwarded-For header is believed (NACRITAN_TRUSTED_PROXIES).
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
# Extra readiness checks, each returning a reason or None. Only what serving needs
# belongs here: Redis does not (delivery falls back to polling without it).
READINESS_CHECKS = web.AppKey("readiness_checks", list[Callable[[], str | None]])

# The live feed (hub/feed/): uploads are published to it, websockets subscribe to it.
FEED: web.AppKey[Feed] = web.AppKey("feed")
# The open websockets (hub/ws/), closed with 1001 on shutdown.
# Open websockets and their transports (to drop a client that will not take a close).
WEBSOCKETS: web.AppKey[
    weakref.WeakKeyDictionary[web.WebSocketResponse, asyncio.Transport | None]
] = web.AppKey("websockets")
# Authenticated feed sessions, so that revoking a token also closes its open sockets.
SESSIONS: web.AppKey[weakref.WeakSet[Session]] = web.AppKey("sessions")

# The HTTP requests being served, drained on SIGTERM (hub/drain.py).
INFLIGHT: web.AppKey[InFlight] = web.AppKey("inflight")

MEMBER = web.RequestKey("member", Member)
