"""Every key under which the app and its requests keep state (no string keys)."""
from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from hub.settings import Settings
from storage import Store
from storage.model import Event, Member

if TYPE_CHECKING:
    from hub.auth import Authenticator
    from hub.feed import Feed
    from hub.metrics import Metrics
    from hub.worldmap import WorldMapCache

EventListener = Callable[[Event], Awaitable[None]]

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
WORLDMAP: web.AppKey[WorldMapCache] = web.AppKey("worldmap")
# Networks whose X-Forwarded-For header is believed (NACRITAN_TRUSTED_PROXIES).
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)
# Called with each committed upload's event; the live feed registers itself here.
EVENT_LISTENERS = web.AppKey("event_listeners", list[EventListener])
# Extra readiness checks (e.g. the feed's Redis subscription): each returns a reason or None.
READINESS_CHECKS = web.AppKey("readiness_checks", list[Callable[[], str | None]])

# The live feed (hub/feed.py) and the open websockets, closed with 1001 on shutdown.
FEED: web.AppKey[Feed] = web.AppKey("feed")
WEBSOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")

MEMBER = web.RequestKey("member", Member)
