"""Members' tokens: stored as digests, looked up, added in bulk, listed, revoked."""
from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from storage.backend import Row, Statement
from storage.base import StoreBase
from storage.errors import AmbiguousToken, TokenNotFound
from storage.model import Member, TokenInfo
from storage.tables import placeholders

# Tokens per multi-row statement of an import: SQLite allows 32766 parameters per
# statement, six per token.
_TOKENS_PER_STATEMENT = 1000
_PREFIX_LENGTH = 8
_TOKEN_COLUMNS = "token_hash, token_prefix, guild_id, name, player_id, created_at"


def hash_token(token: str) -> str:
    """Tokens are stored only as their SHA-256 (they are random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _chunks(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


class Tokens(StoreBase):
    """Who may upload: one row per token, the secret known only by its digest."""

    async def find_member_by_hash(self, token_hash: str) -> Member | None:
        """The member whose live token has this digest (`hash_token`), or None.

        The lookup is by the digest itself, an index equality on a value the caller
        already holds: there is nothing left to compare in constant time.
        """
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self.dialect.sql("SELECT id, guild_id, name, player_id FROM tokens "
                                 "WHERE token_hash = %s AND revoked_at IS NULL"),
                (token_hash,))
        return Member(*rows[0]) if rows else None

    async def add_token(self, guild_id: int, name: str, player_id: int | None, now: int,
                        token: str | None = None) -> str:
        """Store a token (a new random one unless given) and return it."""
        token = token or secrets.token_urlsafe(32)
        await self.add_tokens(guild_id, {token: (name, player_id)}, now)
        return token

    async def add_tokens(self, guild_id: int, tokens: Mapping[str, tuple[str, int | None]],
                         now: int) -> int:
        """Store several tokens of one guild in one transaction; known ones are skipped.

        One batch reads which digests are already stored, one batch inserts the others.
        """
        digests = {hash_token(tok): value for tok, value in tokens.items()}
        # `token list` shows the start of the hash, never of the secret itself.
        rows = sorted((digest, digest[:_PREFIX_LENGTH], guild_id, name, player_id, now)
                      for digest, (name, player_id) in digests.items())
        if not rows:
            return 0
        reads: list[Statement] = [
            (self.dialect.sql(f"SELECT token_hash FROM tokens "
                              f"WHERE token_hash IN ({placeholders(len(chunk))})"),
             [row[0] for row in chunk])
            for chunk in _chunks(rows, _TOKENS_PER_STATEMENT)
        ]

        def plan(found: list[list[Row]]) -> tuple[list[Statement], int]:
            known = {str(digest) for chunk in found for (digest,) in chunk}
            new = [row for row in rows if row[0] not in known]
            writes: list[Statement] = [
                (self.dialect.sql(f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES "
                                  + ", ".join([f"({placeholders(6)})"] * len(chunk))),
                 [value for row in chunk for value in row])
                for chunk in _chunks(new, _TOKENS_PER_STATEMENT)
            ]
            return writes, len(new)

        return await self.backend.read_then_write(reads, plan)

    async def revoked_tokens(self, token_ids: Sequence[int]) -> set[int]:
        """Which of these token ids have been revoked."""
        if not token_ids:
            return set()
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                self.dialect.sql(f"SELECT id FROM tokens WHERE revoked_at IS NOT NULL "
                                 f"AND id IN ({placeholders(len(token_ids))})"),
                list(token_ids))
        return {int(row[0]) for row in rows}

    async def list_tokens(self) -> list[TokenInfo]:
        """Every token, revoked ones included, without secrets."""
        async with self.backend.read() as tx:
            rows = await tx.fetchall(
                "SELECT token_prefix, guild_id, name, player_id, created_at, revoked_at "
                "FROM tokens ORDER BY guild_id, name, created_at"
            )
        return [TokenInfo(*row) for row in rows]

    async def revoke_tokens(self, name_or_prefix: str, now: int,
                            guild_id: int | None = None) -> int:
        """Revoke the live tokens of a member name, or the one whose hash starts so.

        A name wins over a prefix. A prefix (any length of the hex digest `token list`
        shows the start of) must match one live token: AmbiguousToken lists the
        matches otherwise. Player names are only unique within a guild: `guild_id`
        limits the revocation to one guild.
        """
        in_guild = "" if guild_id is None else " AND guild_id = %s"
        scope: list[Any] = [] if guild_id is None else [guild_id]
        prefix = name_or_prefix.lower()
        reads: list[Statement] = [(self.dialect.sql(
            "SELECT id FROM tokens WHERE revoked_at IS NULL AND name = %s" + in_guild
            + " ORDER BY id"), [name_or_prefix, *scope])]
        if re.fullmatch(r"[0-9a-f]{1,64}", prefix) is not None:
            # Hex digits only, so the LIKE pattern holds no wildcard but its own.
            reads.append((self.dialect.sql(
                "SELECT id, token_prefix, guild_id, name, player_id, created_at, revoked_at "
                "FROM tokens WHERE revoked_at IS NULL AND token_hash LIKE %s" + in_guild
                + " ORDER BY guild_id, name"), [prefix + "%", *scope]))

        def plan(found: list[list[Row]]) -> tuple[list[Statement], int]:
            by_name, *by_prefix = found
            if by_name:
                ids = [row[0] for row in by_name]
            elif by_prefix and len(by_prefix[0]) > 1:
                raise AmbiguousToken(name_or_prefix, [TokenInfo(*row[1:]) for row in by_prefix[0]])
            elif by_prefix and by_prefix[0]:
                ids = [by_prefix[0][0][0]]
            else:
                raise TokenNotFound(name_or_prefix)
            return [(self.dialect.sql(f"UPDATE tokens SET revoked_at = %s "
                                      f"WHERE id IN ({placeholders(len(ids))})"),
                     [now, *ids])], len(ids)

        return await self.backend.read_then_write(reads, plan)
