"""Each guild's feed history: its head, its kept events, their retention, its restart."""
from __future__ import annotations

import secrets

from storage.backend import Row, Statement, Tx
from storage.base import StoreBase
from storage.tables import feed_head_of, feed_head_statement
from storage.uploads import UPLOAD_KEY_TTL_MS


class FeedLog(StoreBase):
    """The numbered events of every guild (one epoch per history) and what is kept of them."""

    async def feed_head(self, guild_id: int) -> tuple[str, int]:
        """(epoch, last seq) of the guild's feed; ("", 0) before its first upload."""
        async with self.backend.read() as tx:
            return feed_head_of(await tx.fetchall(*feed_head_statement(self.dialect, guild_id)))

    async def feed_heads(self) -> dict[int, tuple[str, int]]:
        """(epoch, last seq) of every guild's feed."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall("SELECT guild_id, epoch, last_seq FROM feeds")
        return {int(g): (str(e), int(s)) for g, e, s in rows}

    async def events_after(self, guild_id: int, after_seq: int,
                           limit: int = 1000) -> list[tuple[int, bytes]]:
        """(seq, encoded event) of the guild's kept events after `after_seq`, in order."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self.dialect.sql("SELECT seq, body FROM events WHERE guild_id = %s AND seq > %s "
                                 "ORDER BY seq LIMIT %s"),
                (guild_id, after_seq, limit))
        return [(int(seq), bytes(body)) for seq, body in rows]

    async def oldest_event(self, guild_id: int) -> int | None:
        """The lowest seq still kept for replay, or None when none is kept."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self.dialect.sql("SELECT MIN(seq) FROM events WHERE guild_id = %s"), (guild_id,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    async def reset_feeds(self) -> dict[int, str]:
        """Start a new history for every guild's feed, as a restore must: each guild gets
        a fresh epoch of its own; seq and the kept events stay. Returns the new epochs.

        An interface holding an old epoch is then refused any replay and resynchronises
        from a snapshot, which carries the new epoch at the head's seq: the kept events,
        all at or below that seq, are never replayed under the new epoch and age out
        with the usual retention (and the restored database stays the backup's copy).
        """

        def plan(found: list[list[Row]]) -> tuple[list[Statement], dict[int, str]]:
            epochs = {int(guild_id): secrets.token_hex(16) for (guild_id,) in found[0]}
            update = self.dialect.sql("UPDATE feeds SET epoch = %s WHERE guild_id = %s")
            return [(update, (epoch, guild_id)) for guild_id, epoch in epochs.items()], epochs

        return await self.backend.read_then_write(
            [("SELECT guild_id FROM feeds ORDER BY guild_id", ())], plan)

    async def prune(self, now: int, *, journal_ms: int, events_ms: int,
                    events_max: int) -> tuple[int, int]:
        """Drop journal entries and events past their retention; returns both counts."""
        heads = await self.feed_heads()

        async def work(tx: Tx) -> tuple[int, int]:
            journal = await tx.execute(
                self.dialect.sql("DELETE FROM uploads WHERE received_at < %s"),
                (now - journal_ms,))
            events = await tx.execute(
                self.dialect.sql("DELETE FROM events WHERE at < %s"), (now - events_ms,))
            for guild_id, (_, last_seq) in sorted(heads.items()):
                events += await tx.execute(
                    self.dialect.sql("DELETE FROM events WHERE guild_id = %s AND seq <= %s"),
                    (guild_id, last_seq - events_max))
            return journal, events

        return await self.backend.write(work)

    async def prune_upload_keys(self, now: int) -> int:
        """Forget idempotency keys past their lifetime; returns how many."""

        async def work(tx: Tx) -> int:
            return await tx.execute(
                self.dialect.sql("DELETE FROM upload_keys WHERE created_at < %s"),
                (now - UPLOAD_KEY_TTL_MS,))

        return await self.backend.write(work)
