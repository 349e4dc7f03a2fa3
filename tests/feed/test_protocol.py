"""The websocket protocol: auth, origin, commands, every error code (docs/protocol.md)."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub import feed_protocol as proto
from hub import keys
from hub.app import create_app
from hub.settings import Settings
from storage import StoreUnavailable
from tests.conftest import TokenMaker, auth
from tests.feed.kit import login, recv, recv_close, subscribe
from tests.support.payloads import ViewMaker

ClientMaker = Callable[..., Awaitable[TestClient]]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The protocol does not depend on the database: one backend is enough here."""
    return str(request.param)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(db=db_url, token_cache_seconds=0.0, ws_auth_timeout=0.5,
                    cors_origins=("https://ok.example",), ws_max_msg_bytes=2048)


async def test_auth_timeout_closes_4001(client: TestClient) -> None:
    ws = await client.ws_connect("/ws")
    assert await recv(ws) == {"type": "auth_required"}
    code, seen = await recv_close(ws)
    assert seen == [{"type": "auth_invalid", "message": "auth timeout"}]
    assert code == proto.CLOSE_AUTH


@pytest.mark.parametrize("message", [
    {"type": "auth", "token": "not-a-token"},
    {"type": "auth"},
    {"type": "subscribe", "id": 1},
    "garbage",
])
async def test_bad_auth_closes_4001(client: TestClient, message: Any) -> None:
    ws = await client.ws_connect("/ws")
    assert await recv(ws) == {"type": "auth_required"}
    await ws.send_str(json.dumps(message) if not isinstance(message, str) else message)
    code, seen = await recv_close(ws)
    assert [m["type"] for m in seen] == ["auth_invalid"]
    assert code == proto.CLOSE_AUTH


async def test_auth_in_band_and_by_header(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(7, "Alice")
    ws = await client.ws_connect("/ws")
    assert await login(ws, token) == {"type": "auth_ok", "guild": 7, "member": "Alice"}
    await ws.close()
    ws = await client.ws_connect("/ws", headers=auth(token))
    assert await recv(ws) == {"type": "auth_ok", "guild": 7, "member": "Alice"}
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws", headers=auth("wrong"))
    assert info.value.status == 401


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True), ("https://ok.example", True), ("https://evil.example", False),
])
async def test_origin_is_checked(client: TestClient, make_token: TokenMaker,
                                 origin: str | None, allowed: bool) -> None:
    token = await make_token(7, "Alice")
    headers = {"Origin": origin} if origin else {}
    if allowed:
        ws = await client.ws_connect("/ws", headers=headers)
        await login(ws, token)
        await ws.close()
    else:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect("/ws", headers=headers)
        assert info.value.status == 403


async def test_any_origin_with_star(aiohttp_client: ClientMaker, db_url: str,
                                    make_token: TokenMaker) -> None:
    client = await aiohttp_client(create_app(Settings(db=db_url, cors_origins=("*",))))
    token = await make_token(7, "Alice")
    ws = await client.ws_connect("/ws", headers={"Origin": "https://anything.example"})
    await login(ws, token)
    await ws.close()


# Sent in this order on one connection: each line is (message, expected id, expected code).
ERROR_CASES: list[tuple[str, int | None, str]] = [
    ("not json", None, proto.ERR_INVALID_JSON),
    ("[1, 2]", None, proto.ERR_INVALID_JSON),
    ('{"id": 1, "type": "fly"}', 1, proto.ERR_UNKNOWN_COMMAND),
    ('{"type": "ping"}', None, proto.ERR_INVALID_FORMAT),
    ('{"id": "2", "type": "ping"}', None, proto.ERR_INVALID_FORMAT),
    ('{"id": 2, "type": "subscribe", "area": {"x": 1}}', 2, proto.ERR_INVALID_FORMAT),
    ('{"id": 3, "type": "subscribe", "since": 4}', 3, proto.ERR_INVALID_FORMAT),
    ('{"id": 4, "type": "ping", "extra": true}', 4, proto.ERR_INVALID_FORMAT),
    ('{"id": 3, "type": "ping"}', 3, proto.ERR_ID_REUSE),
    ('{"id": 5, "type": "unsubscribe", "subscription": 9}', 5, proto.ERR_NOT_FOUND),
]


async def test_each_command_error(client: TestClient, make_token: TokenMaker) -> None:
    ws = await client.ws_connect("/ws", headers=auth(await make_token(7, "Alice")))
    await recv(ws)
    for message, command_id, code in ERROR_CASES:
        await ws.send_str(message)
        reply = await recv(ws)
        # One shape for every error.
        assert reply == {"id": command_id, "type": "result", "success": False,
                         "error": {"code": code, "message": reply["error"]["message"]}}, message
        assert reply["error"]["message"]
    # The connection survives all of them.
    await ws.send_json({"id": 6, "type": "ping"})
    pong = await recv(ws)
    assert pong["id"] == 6 and pong["success"] is True and pong["result"]["now"] > 0


async def test_too_many_subscriptions(client: TestClient, make_token: TokenMaker) -> None:
    ws = await client.ws_connect("/ws", headers=auth(await make_token(7, "Alice")))
    await recv(ws)
    for n in range(1, proto.MAX_SUBSCRIPTIONS + 1):
        assert (await subscribe(ws, n))["subscription"] == n
        assert (await recv(ws))["type"] == "snapshot"
    await ws.send_json({"id": 100, "type": "subscribe"})
    reply = await recv(ws)
    assert reply["error"]["code"] == proto.ERR_TOO_MANY_SUBSCRIPTIONS


@pytest.mark.parametrize(("failure", "code"), [
    (StoreUnavailable("database went away"), proto.ERR_UNAVAILABLE),
    (RuntimeError("bug"), proto.ERR_INTERNAL),
])
async def test_subscribe_failure_codes(client: TestClient, app: web.Application,
                                       make_token: TokenMaker, monkeypatch: pytest.MonkeyPatch,
                                       failure: Exception, code: str) -> None:
    ws = await client.ws_connect("/ws", headers=auth(await make_token(7, "Alice")))
    await recv(ws)

    async def broken(*args: object) -> None:
        raise failure

    # The feed asks the store for the guild's head first: that is where it fails.
    monkeypatch.setattr(app[keys.STORE], "feed_head", broken)
    await ws.send_json({"id": 1, "type": "subscribe"})
    reply = await recv(ws)
    assert reply["id"] == 1 and reply["success"] is False
    assert reply["error"]["code"] == code
    monkeypatch.undo()
    # Nothing was left half-registered: a new subscription works.
    assert (await subscribe(ws, 2))["subscription"] == 2
    assert (await recv(ws))["type"] == "snapshot"


async def test_unsubscribe_stops_events(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(7, "Alice")
    ws = await client.ws_connect("/ws", headers=auth(token))
    await recv(ws)
    first = await subscribe(ws, 1)
    assert first == {"subscription": 1, "recovered": False}
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot" and snapshot["subscription"] == 1
    assert snapshot["seq"] == 0 and snapshot["recovered"] is False
    await subscribe(ws, 2)
    await recv(ws)
    await ws.send_json({"id": 3, "type": "unsubscribe", "subscription": 1})
    assert await recv(ws) == {"id": 3, "type": "result", "success": True, "result": None}
    resp = await client.post("/view", data=ViewMaker(1).view(), headers=auth(token))
    assert resp.status == 200
    event = await recv(ws)
    assert event["type"] == "event" and event["subscription"] == 2 and event["seq"] == 1
    await ws.send_json({"id": 4, "type": "ping"})
    assert (await recv(ws))["id"] == 4


async def test_oversized_message_closes_1009(client: TestClient, make_token: TokenMaker) -> None:
    ws = await client.ws_connect("/ws", headers=auth(await make_token(7, "Alice")))
    await recv(ws)
    await ws.send_str(json.dumps({"id": 1, "type": "ping", "pad": "x" * 4096}))
    code, _ = await recv_close(ws)
    assert code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
