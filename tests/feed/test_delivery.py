"""Delivery through the real app on both backends: order, completeness, isolation, resume,
area filter, slow consumers."""
from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub import feed_protocol as proto
from hub import keys
from hub.app import create_app
from hub.clock import now_ms
from hub.settings import Settings
from storage import Store
from storage.merge import hex_distance
from tests.conftest import TokenMaker, auth
from tests.feed.kit import (
    HANG_GUARD,
    Mirror,
    login,
    normalise,
    recv,
    recv_close,
    subscribe,
    subscribed,
)
from tests.support.hexes import disk
from tests.support.payloads import CENTRE, ViewMaker


async def upload(client: TestClient, token: str, body: bytes) -> int:
    resp = await client.post("/view", data=body, headers=auth(token))
    assert resp.status == 200, await resp.text()
    return int((await resp.json())["seq"])


async def api_state(client: TestClient, token: str, x: int = CENTRE[0], y: int = CENTRE[1],
                    r: int = 20) -> dict[str, Any]:
    resp = await client.get(f"/api/v1/state?x={x}&y={y}&r={r}", headers=auth(token))
    assert resp.status == 200
    state: dict[str, Any] = await resp.json()
    return state


async def follow(ws: aiohttp.ClientWebSocketResponse, mirror: Mirror, until_seq: int,
                 seen: list[int]) -> None:
    """Apply events until `until_seq`, recording every seq received."""
    while mirror.seq < until_seq:
        message = await recv(ws)
        assert message["type"] == "event", message
        seen.append(message["seq"])
        mirror.apply(message)


async def test_concurrent_uploads_reach_every_subscriber_in_order(
        client: TestClient, make_token: TokenMaker) -> None:
    tokens = [await make_token(3, name) for name in ("Alice", "Bob", "Carol")]
    per_member = 12
    total = per_member * len(tokens)
    started = asyncio.Event()

    async def listener(index: int) -> tuple[Mirror, list[int], int]:
        ws = await client.ws_connect("/ws")
        await login(ws, tokens[index % 3])
        if index >= 3:
            # Two subscribers join while the uploads are under way.
            await started.wait()
        assert (await subscribe(ws, 1))["recovered"] is False
        snapshot = await recv(ws)
        assert snapshot["type"] == "snapshot" and snapshot["subscription"] == 1
        mirror, seen = Mirror(), []
        mirror.load(snapshot)
        await follow(ws, mirror, total, seen)
        await ws.close()
        return mirror, seen, snapshot["seq"]

    async def uploader(index: int) -> None:
        maker = ViewMaker(seed=index)
        for n in range(per_member):
            await upload(client, tokens[index], maker.view())
            if n == 3:
                started.set()

    listeners = [asyncio.create_task(listener(i)) for i in range(5)]
    await asyncio.sleep(0)  # let the first three subscribe before the uploads start
    await asyncio.wait_for(asyncio.gather(*(uploader(i) for i in range(3))), HANG_GUARD * 3)
    results = await asyncio.wait_for(asyncio.gather(*listeners), HANG_GUARD)
    truth = normalise(await api_state(client, tokens[0]))
    assert truth["tiles"], "the generator produced no tiles"
    for mirror, seen, start in results:
        assert seen == list(range(start + 1, total + 1))
        assert mirror.as_state() == truth


async def test_guilds_are_isolated(client: TestClient, make_token: TokenMaker) -> None:
    alice = await make_token(1, "Alice")
    bruno = await make_token(2, "Bruno")
    maker = ViewMaker(seed=5)
    for _ in range(3):
        await upload(client, alice, maker.view())
    ws_a = await client.ws_connect("/ws", headers=auth(alice))
    ws_b = await client.ws_connect("/ws", headers=auth(bruno))
    for ws in (ws_a, ws_b):
        await recv(ws)
        await subscribe(ws, 1)
    snap_a, snap_b = await recv(ws_a), await recv(ws_b)
    assert snap_a["seq"] == 3 and snap_a["tiles"]
    assert snap_b["seq"] == 0 and snap_b["tiles"] == [] and snap_b["monsters"] == []
    await upload(client, alice, maker.view())
    await upload(client, bruno, maker.view())
    event_b = await recv(ws_b)
    assert event_b["seq"] == 1 and event_b["by"] == "Bruno" and event_b["guild_id"] == 2
    event_a = await recv(ws_a)
    assert event_a["seq"] == 4 and event_a["by"] == "Alice"
    # Nothing else is on its way to B: a ping is answered next.
    await ws_b.send_json({"id": 2, "type": "ping"})
    assert (await recv(ws_b))["id"] == 2


async def test_resume_sends_exactly_the_missed_events(client: TestClient, store: Store,
                                                      make_token: TokenMaker) -> None:
    token = await make_token(4, "Alice")
    maker = ViewMaker(seed=9)
    for _ in range(5):
        await upload(client, token, maker.view())
    ws = await client.ws_connect("/ws", headers=auth(token))
    await recv(ws)
    await subscribe(ws, 1)
    mirror = Mirror()
    mirror.load(await recv(ws))
    await upload(client, token, maker.view())
    await follow(ws, mirror, 6, [])
    await ws.close()

    for _ in range(50):
        await upload(client, token, maker.view())
    ws = await client.ws_connect("/ws", headers=auth(token))
    await recv(ws)
    result = await subscribe(ws, 1, since=mirror.seq, epoch=mirror.epoch)
    assert result == {"subscription": 1, "recovered": True}
    seen: list[int] = []
    await follow(ws, mirror, 56, seen)
    assert seen == list(range(7, 57))
    # Then live ones.
    await upload(client, token, maker.view())
    await follow(ws, mirror, 57, seen)
    assert mirror.as_state() == normalise(await api_state(client, token))

    # A since that retention has pruned away cannot be replayed: a snapshot instead.
    await store.prune(now_ms(), journal_ms=10**12, events_ms=10**12, events_max=10)
    old = await client.ws_connect("/ws", headers=auth(token))
    await recv(old)
    assert (await subscribe(old, 1, since=6, epoch=mirror.epoch))["recovered"] is False
    snapshot = await recv(old)
    assert snapshot["type"] == "snapshot" and snapshot["recovered"] is False
    assert snapshot["seq"] == 57
    # The last 10 are still kept: a since within them is replayed.
    recent = await client.ws_connect("/ws", headers=auth(token))
    await recv(recent)
    assert (await subscribe(recent, 1, since=50, epoch=mirror.epoch))["recovered"] is True
    assert [(await recv(recent))["seq"] for _ in range(7)] == list(range(51, 58))


@pytest.mark.parametrize("case", ["wrong_epoch", "future_since", "after_reset"])
async def test_unreplayable_since_gets_a_snapshot(client: TestClient, store: Store,
                                                  make_token: TokenMaker, case: str) -> None:
    token = await make_token(4, "Alice")
    maker = ViewMaker(seed=2)
    for _ in range(3):
        await upload(client, token, maker.view())
    epoch, head = await store.feed_head(4)
    since = 1
    if case == "wrong_epoch":
        epoch = "0" * 32
    elif case == "future_since":
        since = head + 5
    else:
        await store.reset_feeds()
    ws = await client.ws_connect("/ws", headers=auth(token))
    await recv(ws)
    assert (await subscribe(ws, 1, since=since, epoch=epoch))["recovered"] is False
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot" and snapshot["seq"] == head
    assert snapshot["epoch"] == (await store.feed_head(4))[0]


async def test_feed_reset_asks_live_subscribers_to_resync(client: TestClient, store: Store,
                                                         make_token: TokenMaker) -> None:
    token = await make_token(4, "Alice")
    maker = ViewMaker(seed=3)
    await upload(client, token, maker.view())
    ws = await client.ws_connect("/ws", headers=auth(token))
    await subscribed(ws)
    await store.reset_feeds()  # what a restore does
    await upload(client, token, maker.view())
    code, seen = await recv_close(ws)
    assert code == proto.CLOSE_RESYNC
    assert all(m["seq"] == 1 for m in seen if m["type"] == "event")


async def test_area_subscription_sees_only_its_disk(client: TestClient,
                                                    make_token: TokenMaker) -> None:
    token = await make_token(5, "Alice")
    maker = ViewMaker(seed=11)
    for _ in range(10):
        await upload(client, token, maker.view())
    area = {"x": CENTRE[0] + 3, "y": CENTRE[1] - 2, "r": 5}
    ws = await client.ws_connect("/ws", headers=auth(token))
    await recv(ws)
    await subscribe(ws, 1, area=area)
    snapshot = await recv(ws)
    assert snapshot["area"] == area
    mirror = Mirror()
    mirror.load(snapshot)
    total, touching = 60, 0
    cells = set(disk(area["x"], area["y"], area["r"]))
    for _ in range(total - 10):
        body = maker.view()
        seq = await upload(client, token, body)
        view_cells = {(t["x"], t["y"]) for t in json.loads(body)}
        if view_cells & cells:
            touching += 1
            # Events that touch the disk arrive; others (mostly) do not.
            while True:
                event = await recv(ws)
                assert event["type"] == "event" and event["seq"] <= seq
                mirror.seq = event["seq"] - 1  # gaps are expected in an area feed
                mirror.apply(event)
                if event["seq"] == seq:
                    break
    assert touching > 3, "the generator should touch the disk now and then"
    await ws.send_json({"id": 2, "type": "ping"})
    while (message := await recv(ws))["type"] == "event":
        mirror.seq = message["seq"] - 1
        mirror.apply(message)
    truth = normalise(await api_state(client, token, area["x"], area["y"], area["r"]))

    def inside(state: dict[str, Any]) -> dict[str, Any]:
        return {name: [e for e in items
                       if hex_distance(area["x"], area["y"], e["x"], e["y"]) <= area["r"]]
                for name, items in state.items()}

    assert inside(mirror.as_state()) == truth


def _tiny_receive_buffer(addr_info: Any) -> socket.socket:
    family, type_, proto_, _, _ = addr_info
    sock = socket.socket(family, type_, proto_)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    return sock


async def test_slow_consumer_is_closed_4008_others_keep_up(
        aiohttp_client: Callable[..., Awaitable[TestClient]], db_url: str,
        make_token: TokenMaker) -> None:
    # Small queues so that falling behind happens quickly.
    client = await aiohttp_client(create_app(Settings(
        db=db_url, token_cache_seconds=0.0, ws_queue_messages=8, ws_queue_bytes=64 * 1024)))
    token = await make_token(6, "Alice")
    maker = ViewMaker(seed=21)
    fast = []
    for _ in range(2):
        ws = await client.ws_connect("/ws", headers=auth(token))
        await subscribed(ws)
        fast.append(ws)
    # A client whose socket holds almost nothing and which never reads.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            socket_factory=_tiny_receive_buffer)) as session:
        slow = await session.ws_connect(client.make_url("/ws"), headers=auth(token))
        await subscribed(slow)

        received_fast: list[list[int]] = [[] for _ in fast]

        async def read(ws: aiohttp.ClientWebSocketResponse, into: list[int]) -> None:
            while True:
                into.append((await recv(ws))["seq"])

        # The others read as they go.
        readers = [asyncio.create_task(read(ws, into)) for ws, into in zip(fast, received_fast, strict=True)]
        slow_closed = client.app[keys.METRICS].ws_slow_closed
        # Large views until the kernel's buffers are full and the slow queue overflows.
        seqs: list[int] = []
        while slow_closed._value.get() == 0:
            assert len(seqs) < 1000, "the slow client was never closed"
            seqs.append(await upload(client, token, maker.view(radius=8)))
        seqs.append(await upload(client, token, maker.view(radius=8)))
        assert len(seqs) > 5  # the slow client did receive while its buffers had room

        async def caught_up() -> None:
            while any(len(into) < len(seqs) for into in received_fast):  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        await asyncio.wait_for(caught_up(), HANG_GUARD)
        for reader in readers:
            reader.cancel()
        assert received_fast == [seqs, seqs]
        code, seen = await recv_close(slow)
        assert code == proto.CLOSE_SLOW
        received = [m["seq"] for m in seen if m["type"] == "event"]
        assert received == seqs[: len(received)] and len(received) < len(seqs)
        # It resumes where it stopped and misses nothing.
        again = await session.ws_connect(client.make_url("/ws"), headers=auth(token))
        await recv(again)
        events = [m for m in seen if m["type"] == "event"]
        last = events[-1]["seq"] if events else 0
        epoch = events[-1]["epoch"] if events else ""
        assert (await subscribe(again, 1, since=last, epoch=epoch))["recovered"] is (last > 0)
        if last > 0:
            assert [(await recv(again))["seq"] for _ in range(seqs[-1] - last)] == \
                list(range(last + 1, seqs[-1] + 1))
        await again.close()


@pytest.mark.parametrize("resume", [False, True])
async def test_events_committed_during_catch_up_arrive_once(
        client: TestClient, make_token: TokenMaker, monkeypatch: pytest.MonkeyPatch,
        resume: bool) -> None:
    token = await make_token(7, "Alice")
    maker = ViewMaker(seed=13)
    for _ in range(2):
        await upload(client, token, maker.view())
    store = client.app[keys.STORE]
    # Hold the catch-up between registering the live listener and reading the database
    # (the snapshot for a new subscription, the replay check for a resume), and commit
    # uploads meanwhile: they reach the subscription twice, live and from the database.
    name = "oldest_event" if resume else "read_state_pages"
    original = getattr(store, name)
    reached, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any) -> Any:
        reached.set()
        await release.wait()
        return await original(*args)

    monkeypatch.setattr(store, name, held)
    ws = await client.ws_connect("/ws", headers=auth(token))
    await recv(ws)
    epoch = (await store.feed_head(7))[0]
    options = {"since": 1, "epoch": epoch} if resume else {}
    await ws.send_json({"id": 1, "type": "subscribe", **options})
    await asyncio.wait_for(reached.wait(), HANG_GUARD)
    for _ in range(3):
        await upload(client, token, maker.view())
    release.set()
    assert (await recv(ws))["result"]["recovered"] is resume
    first = 2
    if not resume:
        snapshot = await recv(ws)
        assert snapshot["type"] == "snapshot" and snapshot["seq"] == 5
        first = 6
    await upload(client, token, maker.view())
    assert [(await recv(ws))["seq"] for _ in range(first, 7)] == list(range(first, 7))
    await ws.send_json({"id": 2, "type": "ping"})
    assert (await recv(ws))["id"] == 2  # nothing twice, nothing after


async def test_slow_consumer_that_never_reads_is_released(
        aiohttp_client: Callable[..., Awaitable[TestClient]], db_url: str,
        make_token: TokenMaker) -> None:
    """A client closed for falling behind that never reads again must not keep its
    socket, handler and subscription on the server (a frozen tab would, forever)."""
    client = await aiohttp_client(create_app(Settings(
        db=db_url, token_cache_seconds=0.0, ws_queue_messages=8, ws_queue_bytes=64 * 1024,
        ws_close_grace=1.0)))
    token = await make_token(6, "Alice")
    maker = ViewMaker(seed=22)
    sockets = client.app[keys.WEBSOCKETS]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            socket_factory=_tiny_receive_buffer)) as session:
        slow = await session.ws_connect(client.make_url("/ws"), headers=auth(token))
        await subscribed(slow)
        slow_closed = client.app[keys.METRICS].ws_slow_closed
        uploads = 0
        while slow_closed._value.get() == 0:
            assert uploads < 1000, "the slow client was never closed"
            await upload(client, token, maker.view(radius=8))
            uploads += 1
        assert len(sockets) == 1

        async def released() -> None:
            while len(sockets):  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        # A hang guard, not a speed check: the close handshake gets its grace, then the
        # server must drop the transport.
        await asyncio.wait_for(released(), HANG_GUARD)
        await slow.close()


async def test_revoking_a_token_closes_its_open_feed(client: TestClient, store: Store,
                                                     make_token: TokenMaker) -> None:
    alice, eve = await make_token(6, "Alice"), await make_token(6, "Eve")
    ws = await client.ws_connect("/ws", headers=auth(eve))
    await subscribed(ws)
    await store.revoke_tokens("Eve", now_ms())
    code, seen = await asyncio.wait_for(recv_close(ws), HANG_GUARD)
    assert code == proto.CLOSE_AUTH
    assert [m for m in seen if m["type"] == "event"] == []
    # The guildmate's feed goes on.
    assert await upload(client, alice, ViewMaker(seed=23).view(radius=3)) == 1
    await ws.close()
