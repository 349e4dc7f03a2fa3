"""Prometheus metrics, in a registry owned by the app (no process-wide singleton)."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from hub import keys


class Metrics:
    """The hub's counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "nacritan_http_request_seconds", "HTTP request latency", ("route", "method", "status"),
            registry=self.registry,
        )
        self.uploads = Counter(
            "nacritan_uploads_total", "Accepted uploads", ("kind",), registry=self.registry)
        self.ws_connections = Counter(
            "nacritan_ws_connections_total", "Websocket connections opened", registry=self.registry)
        self.ws_slow_closed = Counter(
            "nacritan_ws_slow_consumers_total", "Websockets closed for falling behind",
            registry=self.registry)
        self.events_delivered = Counter(
            "nacritan_events_sent_total",
            "Feed messages written to websockets (live events and command results;"
            " snapshot and replay frames are not counted)",
            registry=self.registry)
        # Redis only carries hints between replicas (delivery falls back to polling), so
        # its state is reported here and in the log, never in /readyz.
        self.redis_subscribed = Gauge(
            "nacritan_redis_subscribed",
            "1 while the feed's Redis subscription is established, 0 while it is down "
            "or Redis is not configured", registry=self.registry)

        # Alerts by rule kind (never by webhook: webhooks are secrets).
        self.alerts_fired = Counter(
            "nacritan_alerts_fired_total", "Alerts queued (rule fired, subject out of cooldown)",
            ("kind",), registry=self.registry)
        self.alerts_sent = Counter(
            "nacritan_alerts_sent_total", "Alerts Discord accepted", ("kind",),
            registry=self.registry)
        self.alerts_retried = Counter(
            "nacritan_alerts_retried_total", "Alert deliveries to try again (429, 5xx, network)",
            ("kind",), registry=self.registry)
        self.alerts_dropped = Counter(
            "nacritan_alerts_dropped_total", "Alerts given up (rule disabled, too old, overflow)",
            ("kind",), registry=self.registry)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Time each request by its route pattern (not its raw path, which would explode labels)."""
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[keys.METRICS].requests.labels(route, request.method, str(status)).observe(
            time.perf_counter() - started)


async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus scrape endpoint."""
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
