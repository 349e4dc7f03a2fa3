"""Real `python -m hub serve` processes: two replicas over one MariaDB and a Redis of the
test's own (stopped and restarted mid-test), and a SIGTERM shutdown followed by a resume."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import TokenMaker, auth
from tests.feed.kit import HANG_GUARD, recv, recv_close, subscribe
from tests.support.payloads import ViewMaker
from tests.support.servers import STARTUP_GUARD, HubProcess, PrivateRedis


@pytest.fixture(params=["mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Replicas share one database server: MariaDB."""
    return str(request.param)


async def readyz(session: aiohttp.ClientSession, replica: HubProcess) -> tuple[int, Any]:
    try:
        async with session.get(f"{replica.base}/readyz") as resp:
            return resp.status, await resp.json()
    except aiohttp.ClientConnectionError:
        return 0, None


async def redis_gauge(session: aiohttp.ClientSession, replica: HubProcess) -> float | None:
    """The replica's `nacritan_redis_subscribed` gauge, or None if it does not answer."""
    try:
        async with session.get(f"{replica.base}/metrics") as resp:
            text = await resp.text()
    except aiohttp.ClientConnectionError:
        return None
    for line in text.splitlines():
        if line.startswith("nacritan_redis_subscribed "):
            return float(line.split()[1])
    raise AssertionError("no nacritan_redis_subscribed gauge in /metrics")


async def wait_redis_gauge(session: aiohttp.ClientSession, replica: HubProcess,
                           value: float) -> None:
    """Poll /metrics until the Redis gauge reads `value` (a hang guard bounds it)."""
    async def poll() -> None:
        while await redis_gauge(session, replica) != value:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await asyncio.wait_for(poll(), STARTUP_GUARD)


def replica_env(db_url: str, redis_url: str | None) -> dict[str, str]:
    env = {"NACRITAN_DB": db_url, "NACRITAN_POLL_INTERVAL": "0.2",
           "NACRITAN_TOKEN_CACHE_SECONDS": "0", "NACRITAN_LOG_LEVEL": "INFO"}
    if redis_url:
        env["NACRITAN_REDIS"] = redis_url
    return env


async def upload(session: aiohttp.ClientSession, replica: HubProcess, token: str,
                 body: bytes) -> int:
    async with session.post(f"{replica.base}/view", data=body, headers=auth(token)) as resp:
        assert resp.status == 200, await resp.text()
        return int((await resp.json())["seq"])


async def test_two_replicas_share_the_feed_through_redis_and_polling(
        db_url: str, tmp_path: Path, redis: PrivateRedis, hubs: list[HubProcess],
        session: aiohttp.ClientSession, make_token: TokenMaker) -> None:
    token = await make_token(8, "Alice")
    env = replica_env(db_url, redis.url)
    a, b = HubProcess(env, tmp_path / "a.log"), HubProcess(env, tmp_path / "b.log")
    hubs += [a, b]
    a.start()
    b.start()
    await a.wait_ready()
    await b.wait_ready()
    maker = ViewMaker(seed=31)

    ws = await session.ws_connect(f"{b.base}/ws", headers=auth(token))
    await recv(ws)
    await subscribe(ws, 1)
    assert (await recv(ws))["seq"] == 0

    async def expect(seqs: list[int]) -> dict[str, Any]:
        event: dict[str, Any] = {}
        for seq in seqs:
            event = await recv(ws)
            assert event["type"] == "event" and event["seq"] == seq, event
        return event

    # Through Redis.
    await expect([await upload(session, a, token, maker.view()) for _ in range(3)])

    # Redis goes away: both replicas say so in /metrics (and stay ready), and delivery
    # goes on by polling, in order.
    redis.kill()
    await wait_redis_gauge(session, b, 0)
    assert (await readyz(session, b))[0] == 200
    seqs = [await upload(session, a, token, maker.view()) for _ in range(5)]
    assert seqs == [4, 5, 6, 7, 8]
    await expect(seqs)

    # Redis comes back: the subscriptions are re-established and delivery is live again.
    redis.start()
    await wait_redis_gauge(session, a, 1)
    await wait_redis_gauge(session, b, 1)
    last = await expect([await upload(session, a, token, maker.view()) for _ in range(3)])
    assert last["seq"] == 11
    # And the other way round: a subscriber of A resuming, fed by uploads through B.
    ws_a = await session.ws_connect(f"{a.base}/ws", headers=auth(token))
    await recv(ws_a)
    assert (await subscribe(ws_a, 1, since=9, epoch=last["epoch"]))["recovered"] is True
    assert [(await recv(ws_a))["seq"] for _ in range(2)] == [10, 11]
    seq = await upload(session, b, token, maker.view())
    assert (await recv(ws_a))["seq"] == seq == 12
    await expect([12])
    await ws.close()
    await ws_a.close()


async def test_sigterm_closes_1001_and_resume_misses_nothing(
        db_url: str, tmp_path: Path, hubs: list[HubProcess], session: aiohttp.ClientSession,
        make_token: TokenMaker) -> None:
    token = await make_token(9, "Alice")
    replica = HubProcess(replica_env(db_url, None), tmp_path / "hub.log")
    hubs.append(replica)
    replica.start()
    await replica.wait_ready()
    maker = ViewMaker(seed=41)

    ws = await session.ws_connect(f"{replica.base}/ws", headers=auth(token))
    await recv(ws)
    await subscribe(ws, 1)
    await recv(ws)
    for _ in range(2):
        await upload(session, replica, token, maker.view())
    last = [await recv(ws) for _ in range(2)][-1]
    assert last["seq"] == 2

    stopping = asyncio.get_running_loop().run_in_executor(None, replica.stop)
    code, seen = await recv_close(ws)
    assert code == aiohttp.WSCloseCode.GOING_AWAY
    assert seen == []
    assert await asyncio.wait_for(stopping, HANG_GUARD) == 0

    replica.start()
    await replica.wait_ready()
    missed = [await upload(session, replica, token, maker.view()) for _ in range(3)]
    ws = await session.ws_connect(f"{replica.base}/ws", headers=auth(token))
    await recv(ws)
    assert (await subscribe(ws, 1, since=last["seq"], epoch=last["epoch"]))["recovered"] is True
    assert [(await recv(ws))["seq"] for _ in missed] == missed == [3, 4, 5]
    await ws.close()
