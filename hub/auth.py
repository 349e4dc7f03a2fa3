"""Who is calling: the member a token belongs to, cached briefly."""
from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from hub import keys
from hub.errors import Unauthorized
from storage import Store
from storage.model import Member
from storage.store import hash_token

# Routes anyone may call: probes, metrics, the websocket (it authenticates in-band) and
# the map page with its files (the page asks for the token itself).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/ws", "/"})
PUBLIC_PREFIX = "/static/"
_MAX_CACHED = 10_000


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
    """Resolves tokens to members; a revoked token stops working within `ttl` seconds."""

    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[Member | None, float]] = {}

    async def member(self, token: str) -> Member | None:
        """The member owning this token, or None when unknown or revoked."""
        digest = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        member = await self._store.find_member(token)
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = (member, now + self._ttl)
        return member


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every route but the public ones needs a live token; the member goes on the request."""
    public = request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIX)
    if not public and request.method != "OPTIONS":
        token = token_from_header(request.headers.get("Authorization"))
        if token is None:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
        member = await request.app[keys.AUTH].member(token)
        if member is None:
            raise Unauthorized("unknown or revoked token")
        request[keys.MEMBER] = member
    response: web.StreamResponse = await handler(request)
    return response
