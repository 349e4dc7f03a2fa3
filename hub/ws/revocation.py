"""Open feeds of revoked tokens are closed: a token is checked when its socket opens, and
again here, all sockets in one query, as often as the token cache expires."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hub import feed_protocol as proto
from hub import keys
from storage import StoreError

log = logging.getLogger(__name__)

# Floor of the interval between checks that open feeds' tokens are still live.
MIN_REVOCATION_CHECK_SECONDS = 0.5


async def close_revoked_forever(app: web.Application) -> None:
    """Every interval, close the sessions whose token was revoked since they opened."""
    interval = max(app[keys.SETTINGS].token_cache_seconds, MIN_REVOCATION_CHECK_SECONDS)
    while True:
        await asyncio.sleep(interval)
        sessions = [*app[keys.SESSIONS]]
        if not sessions:
            continue
        try:
            revoked = await app[keys.STORE].revoked_tokens(
                sorted({s.member.token_id for s in sessions}))
        except StoreError as exc:
            log.warning("revocation check skipped: %s", exc)
            continue
        for session in sessions:
            if session.member.token_id in revoked:
                session.conn.kick(proto.CLOSE_AUTH, "token revoked")


async def revocation_ctx(app: web.Application) -> AsyncIterator[None]:
    """The revocation check runs as long as the app."""
    task = asyncio.create_task(close_revoked_forever(app), name="ws-revocations")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
