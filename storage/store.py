"""The one storage interface the hub uses; the same logic runs on both backends.

`Store` is composed of one part per concern (storage/tokens.py, uploads.py, reads.py,
feed_log.py), each holding only the backend and its dialect (storage/base.py).
"""
from __future__ import annotations

from storage.feed_log import FeedLog
from storage.reads import Reads
from storage.tokens import Tokens
from storage.uploads import Uploads


class Store(Tokens, Uploads, Reads, FeedLog):
    """Guild-partitioned tactical state over a MariaDB or SQLite backend."""

    async def applied_migrations(self) -> set[str]:
        """Ids of the schema migrations recorded as applied."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall("SELECT migration_id FROM _yoyo_migration")
        return {str(row[0]) for row in rows}
