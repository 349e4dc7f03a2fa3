"""What every part of the store holds: the backend and its SQL dialect."""
from __future__ import annotations

from storage.backend import Backend


class StoreBase:
    """The backend a store part runs its transactions on, and the dialect of its SQL."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.dialect = backend.dialect

    async def close(self) -> None:
        """Close the backend's connections (idempotent)."""
        await self.backend.close()
