"""The alerts of one hub process: what uploads fire, the outbox writer, the sender.

An upload's answer never waits for an alert: `notice` evaluates the committed
event against the rules held in memory (pure, no I/O) and hands what fired to the
writer task. One background task per process refreshes the rules, checks turn
reminders (they fire without an upload) and delivers due alerts from the shared outbox.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from itertools import count

import aiohttp
from aiohttp import web

from hub import keys
from hub.alerts.delivery import LEASE_MS, Sender, sleep_until_due
from hub.alerts.rules import (
    TURN_SOON,
    evaluate_event,
    evaluate_turns,
    surroundings,
    window_start,
)
from hub.clock import now_ms
from hub.metrics import Metrics
from hub.settings import Settings
from storage import Store, StoreError
from storage.alerts import AlertStore, Fired, Rule
from storage.model import Committed, Event

log = logging.getLogger(__name__)

# Fired alerts waiting for the writer; beyond this (a database outage) they are dropped.
MAX_PENDING = 1000
# Sent and dropped alerts, and old cooldowns, are forgotten after a week.
KEEP_MS = 7 * 86_400_000
PRUNE_EVERY_MS = 3_600_000
MIN_INTERVAL_SECONDS = 0.05
STARTUP_READ_SECONDS = 3.0


class Alerts:
    """Rules in memory, evaluation on events, and the outbox's writer and sender loops."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics,
                 session: aiohttp.ClientSession) -> None:
        self.store = store
        self.outbox = AlertStore(store.backend)
        self.metrics = metrics
        # Never a busy loop on the database, whatever the setting says.
        self.interval = max(MIN_INTERVAL_SECONDS, settings.alerts_interval)
        self.sender = Sender(self.outbox, session, metrics, settings.public_url,
                             settings.alerts_retry_seconds)
        self.rules: dict[int, list[Rule]] = {}
        self.members: dict[int, set[str]] = {}
        # Alerts fired, or an event whose surroundings must be read first.
        self._pending: asyncio.Queue[tuple[int, list[Fired] | Event]] = asyncio.Queue(
            MAX_PENDING)
        self._wake = asyncio.Event()
        # Claims are made in the name of one round of one process (at most 34 characters:
        # the column holds 40); a round's claims are all released long before its number
        # comes round again.
        self._owner = f"{socket.gethostname()[:12]}:{os.getpid()}:{secrets.token_hex(3)}"
        self._rounds = count()
        self._refreshed_at = 0
        # Start-up is not the time for pruning: the first one comes an hour later.
        self._pruned_at = now_ms()

    async def refresh_rules(self) -> None:
        """Reload the active rules and the names of their guilds' token holders."""
        rules = await self.outbox.active_rules()
        by_guild: dict[int, list[Rule]] = {}
        for rule in rules:
            by_guild.setdefault(rule.guild_id, []).append(rule)
        self.members = await self.outbox.member_names(by_guild)
        self.rules = by_guild
        self._refreshed_at = now_ms()

    def notice(self, committed: Committed) -> None:
        """An upload committed: evaluate it, or hand it over for its surroundings; no I/O."""
        event = committed.event
        rules = self.rules.get(event.guild_id)
        if not rules:
            return
        try:
            now = now_ms()
            if surroundings(rules, event, now):
                self._hand_over(event.guild_id, event)
                return
            fired = evaluate_event(rules, event, self.members.get(event.guild_id, set()), now)
        except Exception:
            # A bug in a rule must never fail the upload that triggered it.
            log.exception("alert evaluation failed for guild %d", event.guild_id)
            return
        if fired:
            self._hand_over(event.guild_id, fired)

    def _hand_over(self, guild_id: int, work: list[Fired] | Event) -> None:
        try:
            self._pending.put_nowait((guild_id, work))
        except asyncio.QueueFull:
            for f in work if isinstance(work, list) else []:
                self.metrics.alerts_dropped.labels(f.kind).inc()
            log.warning("alerts of guild %d dropped: %d uploads waiting for evaluation",
                        guild_id, MAX_PENDING)

    async def write_forever(self) -> None:
        """Queue what fired in the outbox (cooldowns checked there), then wake the sender."""
        while True:
            guild_id, work = await self._pending.get()
            try:
                fired = work if isinstance(work, list) else await self._evaluate(work)
                if fired:
                    await self._record(guild_id, fired)
            except Exception:
                log.exception("alerts of guild %d could not be queued", guild_id)
            finally:
                self._pending.task_done()

    async def _evaluate(self, event: Event) -> list[Fired]:
        # After the upload's answer: what the database knows around what it reported.
        rules = self.rules.get(event.guild_id, [])
        now = now_ms()
        try:
            around = await self.outbox.surroundings(event.guild_id,
                                                    surroundings(rules, event, now))
        except StoreError as exc:
            log.warning("alerts of guild %d: surroundings unread (%s); the upload alone"
                        " is evaluated", event.guild_id, exc)
            around = []
        return evaluate_event(rules, event, self.members.get(event.guild_id, set()), now,
                              around)

    async def idle(self) -> None:
        """Return once everything fired so far is in the outbox (or was given up)."""
        await self._pending.join()

    async def _record(self, guild_id: int, fired: list[Fired]) -> None:
        for attempt in range(3):
            try:
                queued = await self.outbox.record(guild_id, fired, now_ms())
                break
            except StoreError as exc:
                log.warning("alerts of guild %d not queued yet (%s)", guild_id, exc)
                await asyncio.sleep(self.interval * (attempt + 1))
        else:
            for f in fired:
                self.metrics.alerts_dropped.labels(f.kind).inc()
            return
        for f in queued:
            self.metrics.alerts_fired.labels(f.kind).inc()
        if queued:
            self._wake.set()

    async def check_turns(self) -> None:
        """Queue the turn reminders that are due now."""
        now = now_ms()
        for guild_id, rules in list(self.rules.items()):
            turn_rules = [r for r in rules if r.kind == TURN_SOON]
            if not turn_rules:
                continue
            entries = await self.store.read_members(guild_id)
            last = await self.outbox.last_uploads(guild_id, window_start(turn_rules, now))
            fired = evaluate_turns(turn_rules, entries, last, now)
            if fired:
                await self._record(guild_id, fired)

    async def deliver_due(self) -> None:
        """Claim and send every alert that is due, in rounds."""
        while True:
            owner = f"{self._owner}:{next(self._rounds) % 1_000_000}"
            claimed = await self.outbox.claim_due(owner, now_ms(), LEASE_MS)
            if not claimed:
                return
            await self.sender.deliver(claimed, now_ms)

    async def run_forever(self) -> None:
        """Refresh rules, check reminders, deliver; as often as the interval says, and
        sooner when an alert is queued here or a retry comes due."""
        while True:
            now = now_ms()
            wait = self.interval
            try:
                if now - self._refreshed_at >= self.interval * 1000:
                    await self.refresh_rules()
                    await self.check_turns()
                self._wake.clear()
                await self.deliver_due()
                if now - self._pruned_at >= PRUNE_EVERY_MS:
                    self._pruned_at = now
                    await self.outbox.prune(now - KEEP_MS)
                due = await self.outbox.next_attempt(now_ms())
                if due is not None:
                    wait = min(wait, (due - now_ms()) / 1000)
            except StoreError as exc:
                log.warning("alerts: %s; trying again", exc)
            except Exception:
                # The loop must outlive any bug, or alerts would silently stop.
                log.exception("alerts loop crashed; trying again")
            await sleep_until_due(self._wake, max(MIN_INTERVAL_SECONDS, wait))


async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
    """The webhook client session and the alert tasks live as long as the app."""
    settings = app[keys.SETTINGS]
    session = aiohttp.ClientSession(
        headers={"User-Agent": "nacritan-hub alerts"}, trust_env=False)
    alerts = Alerts(app[keys.STORE], settings, app[keys.METRICS], session)
    app[keys.ALERTS] = alerts
    try:
        # Bounded: a database that hangs must not hold up the start; the task retries.
        await asyncio.wait_for(alerts.refresh_rules(), STARTUP_READ_SECONDS)
    except (StoreError, TimeoutError) as exc:
        log.warning("alert rules not loaded yet (%s)", exc or "timed out")
    tasks = [asyncio.create_task(alerts.write_forever(), name="alerts-writer"),
             asyncio.create_task(alerts.run_forever(), name="alerts-sender")]
    yield
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await session.close()
