"""Who is calling: the member a token belongs to, cached briefly."""
from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from hub import keys
from hub.auth_failures import AuthFailures
from hub.errors import TooManyAuthFailures, Unauthorized
from storage import Store
from storage.model import Member
from storage.tokens import hash_token

# Routes anyone may call: probes, metrics, the websocket (it authenticates in-band) and
# the map page with its files (the page asks for the token itself).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/ws", "/"})
PUBLIC_PREFIX = "/static/"
_MAX_CACHED = 10_000
# A token is printable text without spaces. aiohttp hands over header bytes that are not
# UTF-8 as lone surrogates; such a "token" could never have been issued.
_TOKEN = re.compile(r"[^\x00-\x20\x7f\ud800-\udfff]{1,512}")


def token_from_header(value: str | None) -> str | None:
    """The raw token of `Basic <token>` (legacy: not base64) or `Bearer <token>`."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() not in ("basic", "bearer"):
        return None
    token = token.strip()
    return token or None


class Authenticator:
    """Resolves tokens to members; a revoked token stops working within `ttl` seconds.

    Wrong tokens are counted per client address: past the limit, the address gets 429
    for any token that would need a database lookup. A token already known to be good
    (cached) still passes, so a guesser behind the same address (a shared NAT, a guild's
    LAN) cannot lock its members out; a missing token guesses nothing and is not counted.
    """

    def __init__(self, store: Store, ttl: float, failures_per_minute: int) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[Member | None, float]] = {}
        self.failures = AuthFailures(failures_per_minute)

    def refuse_if_limited(self, address: str | None) -> None:
        """Raise 429 when this address failed too often in the last minute."""
        retry_after = self.failures.retry_after(address)
        if retry_after is not None:
            raise TooManyAuthFailures(retry_after)

    async def member(self, token: str, address: str | None = None) -> Member | None:
        """The member owning this token, or None (a failure of `address`) when unknown.

        Raises TooManyAuthFailures, without a lookup, for an address over its limit
        unless the token is cached as good.
        """
        if not _TOKEN.fullmatch(token):
            self.refuse_if_limited(address)
            self.failures.record(address)
            return None
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            member = cached[0]
            if member is not None:
                return member
            self.refuse_if_limited(address)
        else:
            self.refuse_if_limited(address)
            member = await self._store.find_member_by_hash(digest)
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (member, now + self._ttl)
        if member is None:
            self.failures.record(address)
        return member


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every route but the public ones needs a live token; the member goes on the request.

    The router answers first: an unknown path is 404 and a wrong method 405, token or not
    (the routes are documented, so hiding them behind a 401 protects nothing and misleads
    a client with a typo).
    """
    unmatched = request.match_info.http_exception
    if unmatched is not None:
        raise unmatched
    public = request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIX)
    if not public and request.method != "OPTIONS":
        token = token_from_header(request.headers.get("Authorization"))
        if token is None:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
        member = await request.app[keys.AUTH].member(token, request.remote)
        if member is None:
            raise Unauthorized("unknown or revoked token")
        request[keys.MEMBER] = member
    response: web.StreamResponse = await handler(request)
    return response
