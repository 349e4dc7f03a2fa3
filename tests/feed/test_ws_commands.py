"""Pipelined websocket commands: each gets exactly one result, in order, at the pace the
client reads; only a client that does not read at all is closed as slow."""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

import hub.ws.connection
from hub import keys
from hub.app import create_app
from hub.settings import Settings
from tests.conftest import TokenMaker, auth
from tests.feed.kit import HANG_GUARD, recv, recv_close


async def results_until(ws: aiohttp.ClientWebSocketResponse, last_id: int) -> list[dict[str, Any]]:
    """Every message up to and including the result of command `last_id`."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await recv(ws)
        seen.append(message)
        if message["type"] == "result" and message["id"] == last_id:
            return seen


async def test_subscribe_then_unsubscribe_at_once_answers_both_in_order(
        client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(21, "Alice")
    ws = await client.ws_connect("/ws", headers=auth(token))
    assert (await recv(ws))["type"] == "auth_ok"
    pairs = 20
    for n in range(pairs):
        # Both in one write, so the server has the unsubscribe before answering anything.
        await ws.send_str(json.dumps({"id": 2 * n + 1, "type": "subscribe"}))
        await ws.send_str(json.dumps({"id": 2 * n + 2, "type": "unsubscribe",
                                      "subscription": n + 1}))
    await ws.send_json({"id": 2 * pairs + 1, "type": "ping"})
    seen = await results_until(ws, 2 * pairs + 1)
    results = [m for m in seen if m["type"] == "result"]
    assert [r["id"] for r in results] == list(range(1, 2 * pairs + 2))
    assert all(r["success"] for r in results), [r for r in results if not r["success"]]
    for n in range(pairs):
        assert results[2 * n]["result"] == {"subscription": n + 1, "recovered": False}
        assert results[2 * n + 1]["result"] is None
    # Nothing of a subscription arrives after its unsubscribe was answered.
    answered_at = {r["id"]: i for i, r in enumerate(seen) if r["type"] == "result"}
    for i, message in enumerate(seen):
        if message["type"] == "snapshot":
            sub = message["subscription"]
            assert answered_at[2 * sub - 1] < i < answered_at[2 * sub]
    await ws.close()


async def test_pipelined_pings_of_a_reading_client_are_all_answered(
        client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(22, "Alice")
    ws = await client.ws_connect("/ws", headers=auth(token))
    assert (await recv(ws))["type"] == "auth_ok"
    count = 5 * client.app[keys.SETTINGS].ws_queue_messages
    ids: list[int] = []

    async def read() -> None:
        while len(ids) < count:
            message = await recv(ws)
            assert message["type"] == "result" and message["success"], message
            ids.append(message["id"])

    reader = asyncio.create_task(read())
    frames = [json.dumps({"id": i, "type": "ping"}) for i in range(1, count + 1)]
    for frame in frames:
        await ws.send_str(frame)
    await asyncio.wait_for(reader, HANG_GUARD)
    assert ids == list(range(1, count + 1))
    assert client.app[keys.METRICS].ws_slow_closed._value.get() == 0
    await ws.close()


async def test_a_flood_from_a_client_that_never_reads_is_closed_as_slow(
        aiohttp_client: Callable[..., Awaitable[TestClient]], db_url: str,
        make_token: TokenMaker, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(hub.ws.connection, "WRITER_STALL_SECONDS", 1.0)
    client = await aiohttp_client(create_app(Settings(db=db_url, token_cache_seconds=0.0,
                                                      ws_queue_messages=50)))
    token = await make_token(23, "Alice")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(client.make_url("/ws"), headers=auth(token))
        assert (await recv(ws))["type"] == "auth_ok"
        slow_closed = client.app[keys.METRICS].ws_slow_closed
        frame = json.dumps({"id": 0, "type": "ping", "pad": "x" * 200})

        async def flood() -> None:
            # Unknown-field pings: each is answered with an error result (~300 bytes).
            n = 0
            while True:
                n += 1
                await ws.send_str(frame.replace('"id": 0', f'"id": {n}'))

        flooding = asyncio.create_task(flood())
        try:
            async def closed() -> None:
                while slow_closed._value.get() == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            with caplog.at_level(logging.INFO, logger="hub.ws"):
                await asyncio.wait_for(closed(), HANG_GUARD)
            # Now it reads: what was queued for it, in order, until the connection ends.
            # (Its own flood is still blocked in a send, which keeps aiohttp's client
            # from taking the close frame cleanly: the server's decision is checked
            # in its log and metrics instead of the client's close code.)
            _, seen = await recv_close(ws)
        finally:
            flooding.cancel()
            await asyncio.gather(flooding, return_exceptions=True)
        assert "closing a slow websocket" in caplog.text
        assert slow_closed._value.get() == 1
        ids = [m["id"] for m in seen]
        assert len(ids) > client.app[keys.SETTINGS].ws_queue_messages
        assert ids == list(range(1, len(ids) + 1))  # what it got came in order
