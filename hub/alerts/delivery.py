"""The sender: claimed alerts to Discord's webhook API, and what each answer means.

2xx: sent. 429: wait what Discord says (`retry_after` in the body, `Retry-After` or
`X-RateLimit-Reset-After` headers), for every alert of that webhook. 5xx, a timeout or
a network error: retry with exponential backoff capped at an hour. Any other answer
(404 unknown webhook, 401, 403, 400): the rule is disabled and its alerts dropped.
The webhook URL is a secret: no log line, error text or metric label carries it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hub.alerts.message import discord_payload
from hub.metrics import Metrics
from storage.alerts import AlertStore, Claimed

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
# Even when configured lower: an alert is never retried in a tight loop.
MIN_BACKOFF_SECONDS = 0.1
# Discord's own advice when a 429 says nothing usable.
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# An alert still undelivered after this long is old news: dropped.
MAX_AGE_MS = 24 * 3_600_000
# Longer than any request may take (REQUEST_TIMEOUT_SECONDS), so that a claim never
# runs out while its request may still reach Discord.
LEASE_MS = 60_000
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    """What Discord (or the network) said to one POST."""

    status: int | None  # None: no HTTP answer (timeout, refused, reset)
    retry_after: float | None = None
    detail: str = ""
    # Set on a success that used the bucket's last request (X-RateLimit-Remaining: 0).
    bucket_reset_after: float | None = None


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds < 86_400 else None


def retry_after_of(headers: Any, body: Any) -> float:
    """The longest wait a 429 asks for, from its body and headers (seconds)."""
    candidates = [_seconds(headers.get("Retry-After")),
                  _seconds(headers.get("X-RateLimit-Reset-After"))]
    if isinstance(body, dict):
        candidates.append(_seconds(body.get("retry_after")))
    waits = [c for c in candidates if c is not None]
    return max(waits) if waits else DEFAULT_RETRY_AFTER_SECONDS


async def post_webhook(session: aiohttp.ClientSession, webhook: str,
                       payload: dict[str, Any]) -> Answer:
    """POST one message; never raises for HTTP or network trouble, never leaks the URL."""
    try:
        async with session.post(webhook, json=payload,
                                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
                                allow_redirects=False) as resp:
            body: Any = None
            if resp.content_type == "application/json":
                try:
                    body = await resp.json()
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
            else:
                await resp.read()
            detail = ""
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                detail = body["message"][:100]
            if resp.status == 429:
                return Answer(429, retry_after_of(resp.headers, body), detail)
            reset = None
            if resp.headers.get("X-RateLimit-Remaining") == "0":
                reset = _seconds(resp.headers.get("X-RateLimit-Reset-After"))
            return Answer(resp.status, None, detail, reset)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        # str(exc) of some client errors holds the URL: only the error's class is kept.
        return Answer(None, detail=type(exc).__name__)


def backoff_seconds(base: float, attempts: int) -> float:
    """Delay before the next try after `attempts` failed ones: base, 2 base, 4 base..."""
    return float(min(MAX_BACKOFF_SECONDS, max(base, MIN_BACKOFF_SECONDS) * 2 ** min(attempts, 30)))


@dataclass
class Sender:
    """Delivers claimed alerts, one at a time, and records each answer."""

    store: AlertStore
    session: aiohttp.ClientSession
    metrics: Metrics
    public_url: str
    retry_base: float
    _held: dict[str, int] = field(default_factory=dict)

    async def deliver(self, claimed: list[Claimed], now_ms: Any) -> None:
        """Send each claimed alert and record the answer (`now_ms()` gives the time)."""
        self._held.clear()
        for alert in claimed:
            held = self._held.get(alert.webhook)
            if held is not None:
                # The webhook is rate limited: wait with it, without counting a try.
                await self.store.retry_later(alert.id, held, "429", attempt=False)
                continue
            if now_ms() - alert.fired_at > MAX_AGE_MS:
                await self.store.drop(alert.id, now_ms(), "too old")
                self.metrics.alerts_dropped.labels(alert.kind).inc()
                log.warning("alert %d (rule %d) dropped: undelivered for a day",
                            alert.id, alert.rule_id)
                continue
            answer = await post_webhook(self.session, alert.webhook,
                                        discord_payload(alert.message, self.public_url))
            await self._record(alert, answer, now_ms())

    async def _record(self, alert: Claimed, answer: Answer, now: int) -> None:
        status = answer.status
        if status is not None and 200 <= status < 300:
            await self.store.mark_sent(alert.id, now)
            self.metrics.alerts_sent.labels(alert.kind).inc()
            if answer.bucket_reset_after:
                self._hold(alert, now + int(answer.bucket_reset_after * 1000))
            return
        if status == 429:
            until = now + int((answer.retry_after or DEFAULT_RETRY_AFTER_SECONDS) * 1000)
            self._hold(alert, until)
            await self.store.hold_webhook(alert.rule_id, until)
            await self.store.retry_later(alert.id, until, "429")
            self.metrics.alerts_retried.labels(alert.kind).inc()
            log.info("alert %d (rule %d): rate limited, next try in %.1f s",
                     alert.id, alert.rule_id, (until - now) / 1000)
            return
        if status is None or status >= 500:
            delay = backoff_seconds(self.retry_base, alert.attempts)
            until = now + int(delay * 1000)
            error = str(status) if status is not None else answer.detail
            await self.store.retry_later(alert.id, until, error)
            self.metrics.alerts_retried.labels(alert.kind).inc()
            log.info("alert %d (rule %d): Discord unreachable (%s), next try in %.1f s",
                     alert.id, alert.rule_id, error, delay)
            return
        reason = f"Discord answered {status}" + (f" ({answer.detail})" if answer.detail else "")
        dropped = await self.store.disable_rule(alert.rule_id, now, reason)
        for kind in dropped:
            self.metrics.alerts_dropped.labels(kind).inc()
        log.warning("alert rule %d disabled: %s; %d queued alert(s) dropped",
                    alert.rule_id, reason, len(dropped))

    def _hold(self, alert: Claimed, until: int) -> None:
        self._held[alert.webhook] = until


async def sleep_until_due(wake: asyncio.Event, seconds: float) -> None:
    """Wait for a wake-up or `seconds`, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), max(0.0, seconds))
