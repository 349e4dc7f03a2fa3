"""Guessing tokens costs: past N failures a minute, an address gets 429 and no DB lookup.

The hub runs on its own MariaDB database behind a trusted proxy (X-Forwarded-For from
127.0.0.1), so each "client address" is a forwarded one. To show that a limited
address no longer reaches the database, the database is dropped mid-test: a lookup
would then fail (503), a refusal before any lookup stays 429.
"""
from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable

import aiohttp

from storage.mysql import mysql_params
from tests.conftest import _mysql_admin, add_token
from tests.support.servers import HubProcess

LIMIT = 5
ATTEMPTS = 500


def _from(address: str, token: str | None = None) -> dict[str, str]:
    headers = {"X-Forwarded-For": address}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


async def test_failed_authentications_are_limited_per_forwarded_address(
        mysql_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    good = await add_token(mysql_url)
    hub: HubProcess = await hub_factory(  # type: ignore[misc]
        mysql_url, NACRITAN_AUTH_FAILURES_PER_MINUTE=str(LIMIT))
    base = f"http://127.0.0.1:{hub.port}"
    guessed = [f"guess-{secrets.token_urlsafe(24)}" for _ in range(ATTEMPTS)]
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    # One keep-alive connection, as fast as it goes: a brute force from one address.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
        for token in guessed:
            async with http.get(base + "/infos", headers=_from("203.0.113.7", token)) as resp:
                statuses[resp.status] += 1
                assert token not in await resp.text()
                body = await resp.json()
                if resp.status == 429:
                    retry_after.add(resp.headers["Retry-After"])
                    assert body["error"]["code"] == "too_many_auth_failures", body
        assert statuses == {401: LIMIT, 429: ATTEMPTS - LIMIT}, statuses
        assert retry_after and all(1 <= int(v) <= 60 for v in retry_after), retry_after
        # The limited address is refused even with a good token, until its minute is over.
        async with http.get(base + "/infos", headers=_from("203.0.113.7", good)) as resp:
            assert resp.status == 429
        # Another address is not punished for it.
        async with http.get(base + "/infos", headers=_from("203.0.113.8", good)) as resp:
            assert resp.status == 200, await resp.text()

        # Websockets: failures on the upgrade and in-band count; then the upgrade is a 429.
        for _ in range(LIMIT - 2):
            async with http.get(base + "/ws", headers={
                    **_from("198.51.100.4", "bad-" + secrets.token_hex(8)),
                    "Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version": "13"}) as resp:
                assert resp.status == 401, await resp.text()
        for _ in range(2):
            async with http.ws_connect(base + "/ws", headers=_from("198.51.100.4")) as ws:
                assert (await ws.receive_json())["type"] == "auth_required"
                await ws.send_json({"type": "auth", "token": "bad-" + secrets.token_hex(8)})
                assert (await ws.receive_json())["type"] == "auth_invalid"
        try:
            async with http.ws_connect(base + "/ws", headers=_from("198.51.100.4")):
                raise AssertionError("the upgrade was accepted")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 429
            assert exc.headers is not None and 1 <= int(exc.headers["Retry-After"]) <= 60

        # No database behind the hub any more: limited addresses still get 429 at once.
        _mysql_admin(f"DROP DATABASE {mysql_params(mysql_url)['db']}")
        async with http.get(base + "/infos",
                            headers=_from("192.0.2.99", "fresh-" + secrets.token_hex(8))) as resp:
            # A token lookup now fails: this is what touching the database looks like.
            assert resp.status == 503, await resp.text()
        after_drop: Counter[int] = Counter()
        for _ in range(100):
            async with http.get(base + "/infos", headers=_from(
                    "203.0.113.7", "again-" + secrets.token_hex(8))) as resp:
                after_drop[resp.status] += 1
        assert after_drop == {429: 100}, after_drop

    log = hub.log()
    for token in (good, *guessed):
        assert token not in log
