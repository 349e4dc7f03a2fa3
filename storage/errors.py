"""Domain errors the store raises; handlers translate them, never the driver's own."""
from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """The database failed the operation; nothing of it was kept."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now; the same request may succeed later."""


class DatabaseUnusable(StoreError):
    """The configured database can never work as given (a path that cannot be written,
    credentials refused): waiting will not help, the setting must change."""


class CommitUncertain(StoreUnavailable):
    """The database stopped answering after COMMIT was sent: the transaction may or may
    not have been committed; only reading the database again will tell."""


class DuplicateUpload(Exception):
    """An upload repeated with an idempotency key already used for it: nothing was
    stored again; `status` and `seq` are the first upload's answer."""

    def __init__(self, status: int, seq: int) -> None:
        super().__init__(f"already stored as seq {seq}")
        self.status = status
        self.seq = seq


class IdempotencyKeyReused(Exception):
    """An idempotency key already used for a different upload (another route or body)."""


class TokenNotFound(Exception):
    """No token matches the name or prefix given."""


class AmbiguousToken(Exception):
    """A hash prefix matches several live tokens; `matches` lists them (no secrets)."""

    def __init__(self, prefix: str, matches: list[Any]) -> None:
        super().__init__(prefix)
        self.matches = matches
