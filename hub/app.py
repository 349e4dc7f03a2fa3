"""The application factory: routes, middlewares, and the resources the app owns."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp_cors
from aiohttp import web

from hub import keys, ops, page, reads, uploads, ws
from hub.alerts.service import alerts_ctx
from hub.auth import Authenticator, auth_middleware
from hub.clock import now_ms
from hub.drain import InFlight, inflight_middleware
from hub.errors import error_middleware
from hub.feed import Feed
from hub.feed.bus import Bus, LocalBus, RedisBus
from hub.forwarded import forwarded_middleware, parse_networks
from hub.metrics import Metrics, get_metrics, metrics_middleware
from hub.settings import Settings
from hub.worldmap import WorldMapCache
from storage import StoreError, open_store

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 600


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store (pool or SQLite connections) lives exactly as long as the app."""
    store = await open_store(app[keys.SETTINGS].db, query_timeout=app[keys.SETTINGS].db_timeout)
    app[keys.STORE] = store
    settings = app[keys.SETTINGS]
    app[keys.AUTH] = Authenticator(store, settings.token_cache_seconds,
                                   settings.auth_failures_per_minute)
    app[keys.WORLDMAP] = WorldMapCache(store)
    yield
    await store.close()


async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
    """The live feed and its bus (in-process, or Redis between replicas) live as long as
    the app."""
    settings = app[keys.SETTINGS]
    bus: Bus = RedisBus(settings.redis, app[keys.METRICS]) if settings.redis else LocalBus()
    feed = Feed(app[keys.STORE], settings, bus)
    await feed.start()
    app[keys.FEED] = feed
    yield
    await feed.close()


async def _prune_forever(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    while True:
        # Pruning waits its turn: start-up (and a short-lived test app) is not the time.
        await asyncio.sleep(PRUNE_INTERVAL_SECONDS)
        try:
            journal, events = await app[keys.STORE].prune(
                now_ms(),
                journal_ms=int(settings.journal_days * 86_400_000),
                events_ms=int(settings.events_hours * 3_600_000),
                events_max=settings.events_max,
            )
            upload_keys = await app[keys.STORE].prune_upload_keys(now_ms())
            if journal or events or upload_keys:
                log.info("pruned %d journal entries, %d events and %d idempotency keys",
                         journal, events, upload_keys)
        except StoreError as exc:
            log.warning("prune skipped: %s", exc)


async def prune_ctx(app: web.Application) -> AsyncIterator[None]:
    """Retention of the upload journal and the feed's events, as a background task."""
    task = asyncio.create_task(_prune_forever(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: Settings) -> web.Application:
    """Build the hub for these settings; nothing touches the network until it starts."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[inflight_middleware, forwarded_middleware, metrics_middleware,
                     error_middleware, auth_middleware],
    )
    app[keys.SETTINGS] = settings
    app[keys.HOSTNAME] = socket.gethostname()
    app[keys.TRUSTED_PROXIES] = parse_networks(settings.trusted_proxies)
    app[keys.METRICS] = Metrics()
    app[keys.INFLIGHT] = InFlight()
    app[keys.READINESS_CHECKS] = []
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(prune_ctx)
    app.add_routes(ops.routes)
    app.add_routes(uploads.routes)
    app.add_routes(reads.routes)
    app.router.add_get("/metrics", get_metrics)
    app.cleanup_ctx.append(feed_ctx)
    ws.setup_websockets(app)
    app.cleanup_ctx.append(alerts_ctx)
    page.setup_page(app)
    _setup_cors(app, settings)
    return app


def _setup_cors(app: web.Application, settings: Settings) -> None:
    # Auth is by token, never by cookie, so credentials stay off and "*" is safe.
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        allow_headers=("Authorization", "Content-Type", "Idempotency-Key"),
        expose_headers=("Idempotent-Replayed",),
        allow_methods=("GET", "POST"),
        max_age=3600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in settings.cors_origins})
    for route in list(app.router.routes()):
        if route.method in ("GET", "POST"):
            cors.add(route)
