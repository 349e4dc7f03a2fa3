"""Alert rules and the outbox of alerts, shared by every replica through the database.

An alert is queued once: its rule's cooldown for the subject is checked and renewed in
the same transaction that inserts it, and its dedupe key is unique. It is sent once: a
replica claims a row (for a lease longer than any request to Discord) before sending,
and records the answer right after; a replica that dies holding a claim only delays the
alert until the lease runs out.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec

from storage.backend import Backend, Row, Tx
from storage.model import EntityState
from storage.tables import ENTITY_TABLES

QUEUED, SENT, DROPPED = "queued", "sent", "dropped"


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """A rule as evaluation needs it: everything but the webhook, which is a secret."""

    id: int
    guild_id: int
    kind: str
    cooldown_ms: int
    percent: int | None = None
    min_level: int | None = None
    within: int | None = None
    minutes: int | None = None
    member: str | None = None
    quiet: str | None = None


class RuleInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A rule as `alerts list` shows it: the webhook masked, and whether it is disabled."""

    rule: Rule
    webhook: str
    created_at: int
    disabled_at: int | None
    disabled_reason: str | None


class AlertMessage(msgspec.Struct, kw_only=True):
    """What an alert says; the outbox keeps it and the sender renders it for Discord."""

    kind: str
    title: str
    # The guildmate concerned, and the monster, player or condition seen.
    who: str
    what: str
    x: int | None = None
    y: int | None = None
    distance: int | None = None
    seen_at: int
    seen_by: str | None = None


class Fired(msgspec.Struct, frozen=True, kw_only=True):
    """A rule that fired: queued unless its subject is still in its cooldown."""

    rule_id: int
    kind: str
    # Cooldowns count per rule and subject ("monster:12", "player:7", "member:Alice").
    subject: str
    # Unique per alert: the same upload or the same turn never queues it twice.
    dedupe_key: str
    cooldown_ms: int
    at: int
    message: AlertMessage


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """A queued alert this replica holds the claim on, with where to send it."""

    id: int
    rule_id: int
    kind: str
    webhook: str
    message: AlertMessage
    attempts: int
    fired_at: int

    def __repr__(self) -> str:  # never print the webhook, even in a traceback
        return f"Claimed(id={self.id}, rule_id={self.rule_id}, kind={self.kind!r})"


_MESSAGE = msgspec.json.Decoder(AlertMessage)
_RULE_COLUMNS = ("id, guild_id, kind, cooldown_ms, percent, min_level, within_hexes, minutes,"
                 " member, quiet")


def mask_webhook(url: str) -> str:
    """What may be shown of a webhook: scheme, host and its last 4 characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…{url[-4:]}"


def _rule(row: Row) -> Rule:
    (rule_id, guild_id, kind, cooldown_ms, percent, min_level, within, minutes, member,
     quiet) = row
    return Rule(id=int(rule_id), guild_id=int(guild_id), kind=str(kind),
                cooldown_ms=int(cooldown_ms), percent=percent, min_level=min_level,
                within=within, minutes=minutes, member=member, quiet=quiet)


def _in(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


class AlertStore:
    """Rules, cooldowns and the outbox, on the hub's database backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.dialect = backend.dialect

    # -- rules -----------------------------------------------------------------

    async def add_rule(self, guild_id: int, kind: str, webhook: str, *, cooldown_ms: int,
                       now: int, percent: int | None = None, min_level: int | None = None,
                       within: int | None = None, minutes: int | None = None,
                       member: str | None = None, quiet: str | None = None) -> int:
        """Store a rule and return its id."""
        params = (guild_id, kind, webhook, percent, min_level, within, minutes, member,
                  cooldown_ms, quiet, now)

        async def work(tx: Tx) -> int:
            await tx.execute(self.dialect.sql(
                "INSERT INTO alert_rules (guild_id, kind, webhook, percent, min_level,"
                " within_hexes, minutes, member, cooldown_ms, quiet, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"), params)
            rows = await tx.fetchall(self.dialect.sql(
                "SELECT MAX(id) FROM alert_rules WHERE guild_id = %s"), (guild_id,))
            return int(rows[0][0])

        return await self.backend.write(work)

    async def list_rules(self) -> list[RuleInfo]:
        """Every rule, disabled ones included, webhooks masked."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                f"SELECT {_RULE_COLUMNS}, webhook, created_at, disabled_at, disabled_reason"
                " FROM alert_rules ORDER BY guild_id, id")
        return [RuleInfo(rule=_rule(row[:10]), webhook=mask_webhook(str(row[10])),
                         created_at=int(row[11]), disabled_at=row[12],
                         disabled_reason=row[13]) for row in rows]

    async def active_rules(self) -> list[Rule]:
        """The rules that are not disabled, for evaluation."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(f"SELECT {_RULE_COLUMNS} FROM alert_rules"
                                     " WHERE disabled_at IS NULL ORDER BY id")
        return [_rule(row) for row in rows]

    async def webhook_of(self, rule_id: int) -> tuple[Rule, str] | None:
        """A rule and its webhook (for `alerts test`), or None."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(self.dialect.sql(
                f"SELECT {_RULE_COLUMNS}, webhook FROM alert_rules WHERE id = %s"), (rule_id,))
        return (_rule(rows[0][:10]), str(rows[0][10])) if rows else None

    async def remove_rule(self, rule_id: int) -> bool:
        """Delete a rule with its cooldowns and outbox; False when there was none."""

        async def work(tx: Tx) -> int:
            count = await tx.execute(self.dialect.sql("DELETE FROM alert_rules WHERE id = %s"),
                                     (rule_id,))
            for table in ("alert_outbox", "alert_cooldowns"):
                await tx.execute(self.dialect.sql(f"DELETE FROM {table} WHERE rule_id = %s"),
                                 (rule_id,))
            return count

        return await self.backend.write(work) > 0

    async def member_names(self, guild_ids: Iterable[int]) -> dict[int, set[str]]:
        """Names of each guild's live token holders (guildmates whatever they wear)."""
        ids = sorted(set(guild_ids))
        names: dict[int, set[str]] = {g: set() for g in ids}
        if not ids:
            return names
        async with self.backend.read() as tx:
            rows = await tx.fetchall(self.dialect.sql(
                "SELECT guild_id, name FROM tokens WHERE revoked_at IS NULL"
                f" AND guild_id IN ({_in(ids)})"), ids)
        for guild_id, name in rows:
            names[int(guild_id)].add(str(name))
        return names

    async def last_uploads(self, guild_id: int, since: int) -> dict[str, int]:
        """Each member's latest upload at or after `since` (epoch ms)."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(self.dialect.sql(
                "SELECT member, MAX(received_at) FROM uploads WHERE received_at >= %s"
                " AND guild_id = %s GROUP BY member"), (since, guild_id))
        return {str(member): int(at) for member, at in rows}

    async def surroundings(self, guild_id: int,
                           boxes: Sequence[tuple[int, int, int, int]]) -> list[EntityState]:
        """Monsters and positioned players of the guild inside the boxes
        (min x, max x, min y, max y); each read walks the (guild_id, x, y) index."""
        found: dict[tuple[str, int], EntityState] = {}
        async with self.backend.read() as tx:
            for kind in ("monster", "player"):
                table = ENTITY_TABLES[kind]
                for box in boxes:
                    rows = await tx.fetchall(self.dialect.sql(
                        f"SELECT {', '.join(table.columns)} FROM {table.name}"
                        " WHERE guild_id = %s AND x BETWEEN %s AND %s AND y BETWEEN %s AND %s"),
                        (guild_id, *box))
                    for row in rows:
                        found[(kind, int(row[0]))] = table.state(*row)
        return list(found.values())

    # -- queueing --------------------------------------------------------------

    def _cooldown_sql(self) -> str:
        if self.dialect.name == "mysql":
            # Affected rows: 1 inserted, 2 updated, 0 left alone (still in its cooldown).
            return ("INSERT INTO alert_cooldowns (rule_id, subject, fired_at) VALUES (%s, %s, %s)"
                    " ON DUPLICATE KEY UPDATE fired_at ="
                    " IF(fired_at <= %s, VALUES(fired_at), fired_at)")
        return self.dialect.sql(
            "INSERT INTO alert_cooldowns (rule_id, subject, fired_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (rule_id, subject) DO UPDATE SET fired_at = excluded.fired_at"
            " WHERE alert_cooldowns.fired_at <= %s")

    def _enqueue_sql(self) -> str:
        insert = ("INSERT INTO alert_outbox (rule_id, guild_id, kind, dedupe_key, fired_at,"
                  " payload, state, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")
        if self.dialect.name == "mysql":
            return insert + " ON DUPLICATE KEY UPDATE id = id"
        return self.dialect.sql(insert + " ON CONFLICT (dedupe_key) DO NOTHING")

    async def record(self, guild_id: int, fired: Sequence[Fired], now: int) -> list[Fired]:
        """Queue the alerts whose subject is out of its cooldown; returns those queued."""
        cooldown, enqueue = self._cooldown_sql(), self._enqueue_sql()
        ordered = sorted(fired, key=lambda f: (f.rule_id, f.subject))  # lock in one order

        async def work(tx: Tx) -> list[Fired]:
            queued: list[Fired] = []
            for f in ordered:
                if not await tx.execute(cooldown, (f.rule_id, f.subject, now,
                                                   now - f.cooldown_ms)):
                    continue
                if await tx.execute(enqueue, (f.rule_id, guild_id, f.kind, f.dedupe_key, now,
                                              msgspec.json.encode(f.message), QUEUED, now)):
                    queued.append(f)
            return queued

        return await self.backend.write(work) if ordered else []

    # -- delivery --------------------------------------------------------------

    async def claim_due(self, owner: str, now: int, lease_ms: int,
                        limit: int = 20) -> list[Claimed]:
        """Claim queued alerts whose time has come and that nobody holds; oldest first."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(self.dialect.sql(
                "SELECT id FROM alert_outbox WHERE state = %s AND next_attempt_at <= %s"
                " AND (claimed_until IS NULL OR claimed_until < %s) ORDER BY id LIMIT %s"),
                (QUEUED, now, now, limit))
        ids = [int(r[0]) for r in rows]
        if not ids:
            return []

        async def work(tx: Tx) -> list[Row]:
            # The conditions are checked again under the row locks: of two replicas
            # claiming the same row, the second finds it taken.
            await tx.execute(self.dialect.sql(
                "UPDATE alert_outbox SET claimed_by = %s, claimed_until = %s"
                f" WHERE id IN ({_in(ids)}) AND state = %s AND next_attempt_at <= %s"
                " AND (claimed_until IS NULL OR claimed_until < %s)"),
                (owner, now + lease_ms, *ids, QUEUED, now, now))
            return await tx.fetchall(self.dialect.sql(
                "SELECT o.id, o.rule_id, o.kind, r.webhook, o.payload, o.attempts, o.fired_at"
                " FROM alert_outbox o JOIN alert_rules r ON r.id = o.rule_id"
                " WHERE o.claimed_by = %s AND o.state = %s ORDER BY o.id"), (owner, QUEUED))

        return [Claimed(id=int(i), rule_id=int(r), kind=str(k), webhook=str(w),
                        message=_MESSAGE.decode(bytes(p)), attempts=int(a), fired_at=int(f))
                for i, r, k, w, p, a, f in await self.backend.write(work)]

    async def next_attempt(self, now: int) -> int | None:
        """When the next queued alert that nobody holds comes due (epoch ms), if any."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(self.dialect.sql(
                "SELECT MIN(next_attempt_at) FROM alert_outbox WHERE state = %s"
                " AND (claimed_until IS NULL OR claimed_until < %s)"), (QUEUED, now))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def mark_sent(self, alert_id: int, now: int) -> None:
        """Discord took the alert."""
        await self._finish(alert_id, SENT, now, None)

    async def drop(self, alert_id: int, now: int, reason: str) -> None:
        """Give up on an alert (stale, or its rule disabled)."""
        await self._finish(alert_id, DROPPED, now, reason)

    async def _finish(self, alert_id: int, state: str, now: int, error: str | None) -> None:
        async def work(tx: Tx) -> None:
            await tx.execute(self.dialect.sql(
                "UPDATE alert_outbox SET state = %s, sent_at = %s, last_error = %s,"
                " attempts = attempts + 1, claimed_by = NULL, claimed_until = NULL"
                " WHERE id = %s"), (state, now if state == SENT else None, error, alert_id))

        await self.backend.write(work)

    async def retry_later(self, alert_id: int, next_at: int, error: str, *,
                          attempt: bool = True) -> None:
        """Release the claim; the alert is due again at `next_at`."""
        async def work(tx: Tx) -> None:
            await tx.execute(self.dialect.sql(
                "UPDATE alert_outbox SET attempts = attempts + %s, next_attempt_at = %s,"
                " last_error = %s, claimed_by = NULL, claimed_until = NULL WHERE id = %s"),
                (1 if attempt else 0, next_at, error[:200], alert_id))

        await self.backend.write(work)

    async def hold_webhook(self, rule_id: int, until: int) -> None:
        """Discord's rate limit is per webhook: every alert queued for the rule's webhook
        (whichever rule it belongs to) waits. The webhook is named by a rule id, never
        passed as a parameter, which some drivers' debug logs print."""
        async def work(tx: Tx) -> None:
            await tx.execute(self.dialect.sql(
                "UPDATE alert_outbox SET next_attempt_at = %s WHERE state = %s"
                " AND next_attempt_at < %s AND rule_id IN"
                " (SELECT r.id FROM alert_rules r JOIN alert_rules held"
                " ON held.webhook = r.webhook WHERE held.id = %s)"),
                (until, QUEUED, until, rule_id))

        await self.backend.write(work)

    async def disable_rule(self, rule_id: int, now: int, reason: str) -> list[str]:
        """Disable a rule and drop its queued alerts; returns the kinds dropped."""
        async def work(tx: Tx) -> list[str]:
            await tx.execute(self.dialect.sql(
                "UPDATE alert_rules SET disabled_at = %s, disabled_reason = %s"
                " WHERE id = %s AND disabled_at IS NULL"), (now, reason[:200], rule_id))
            rows = await tx.fetchall(self.dialect.sql(
                "SELECT kind FROM alert_outbox WHERE rule_id = %s AND state = %s"),
                (rule_id, QUEUED))
            await tx.execute(self.dialect.sql(
                "UPDATE alert_outbox SET state = %s, last_error = %s, claimed_by = NULL,"
                " claimed_until = NULL WHERE rule_id = %s AND state = %s"),
                (DROPPED, reason[:200], rule_id, QUEUED))
            return [str(r[0]) for r in rows]

        return await self.backend.write(work)

    async def outbox(self) -> list[tuple[int, int, str, str, int]]:
        """(id, rule id, kind, state, attempts) of every alert, for operators and tests."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                "SELECT id, rule_id, kind, state, attempts FROM alert_outbox ORDER BY id")
        return [(int(i), int(r), str(k), str(s), int(a)) for i, r, k, s, a in rows]

    async def prune(self, before: int) -> int:
        """Forget sent and dropped alerts, and cooldowns, older than `before`."""
        async def work(tx: Tx) -> int:
            count = await tx.execute(self.dialect.sql(
                "DELETE FROM alert_outbox WHERE state <> %s AND fired_at < %s"),
                (QUEUED, before))
            await tx.execute(self.dialect.sql("DELETE FROM alert_cooldowns WHERE fired_at < %s"),
                             (before,))
            return count

        return await self.backend.write(work)
