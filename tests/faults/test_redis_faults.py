"""Two replicas on one private MariaDB and one private Redis: Redis is killed (and
restarted), then hung with SIGSTOP for 10 s, under uploads spread over both replicas.

/readyz must stay 200 on both throughout (Redis only carries hints), the outage must
show in /metrics (a hung Redis within a few seconds), and every subscriber, on either
replica, must get every committed event of its guild exactly once, in order, and soon
(by polling) while Redis is away."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from storage import migrate, open_store
from tests.faults.load import Subscriber, Uploader, event_fields, wait_for
from tests.support.servers import HubProcess, PrivateMariaDB, PrivateRedis

GUILDS = [201, 202]
DATABASE = "nacritan"
OUTAGE_SECONDS = 10.0
# Detection of a hung Redis ("a few seconds") plus a poll interval, with slack for a
# loaded machine; the routine poll of a replica that trusts its bus is 15 s.
DELIVERY_BOUND_SECONDS = 7.0
GUARD = 20.0


async def redis_gauge(session: aiohttp.ClientSession, hub: HubProcess) -> float | None:
    """The replica's `nacritan_redis_subscribed`, None when it reports none."""
    async with session.get(f"{hub.base}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("nacritan_redis_subscribed "):
                return float(line.split()[1])
    return None


class Probe:
    """/readyz and the Redis gauge of every replica, every 100 ms."""

    def __init__(self, hubs: list[HubProcess]) -> None:
        self.hubs = hubs
        self.readyz: dict[int, int] = {}
        self.gauge: list[tuple[float, int, float | None]] = []  # (time, hub index, value)

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            for i, hub in enumerate(self.hubs):
                try:
                    async with session.get(f"{hub.base}/readyz") as resp:
                        status = resp.status
                except aiohttp.ClientError:
                    status = 0
                self.readyz[status] = self.readyz.get(status, 0) + 1
                self.gauge.append((time.monotonic(), i, await redis_gauge(session, hub)))
            await asyncio.sleep(0.1)

    def first_down_after(self, t: float, hub: int) -> float | None:
        return next((at - t for at, i, v in self.gauge if i == hub and at >= t and v == 0), None)


async def test_redis_killed_then_hung_keeps_replicas_ready_and_loses_no_event(
        mariadb: PrivateMariaDB, redis: PrivateRedis, hubs: list[HubProcess],
        session: aiohttp.ClientSession, tmp_path: Path) -> None:
    url = mariadb.url(DATABASE)
    await migrate(url)
    store = await open_store(url)
    try:
        tokens = {g: await store.add_token(g, f"Uploader{g}", None, 1) for g in GUILDS}
    finally:
        await store.close()
    env = {"NACRITAN_DB": url, "NACRITAN_REDIS": redis.url, "NACRITAN_POLL_INTERVAL": "1.0",
           "NACRITAN_LOG_LEVEL": "INFO"}
    a, b = HubProcess(env, tmp_path / "a.log"), HubProcess(env, tmp_path / "b.log")
    hubs += [a, b]
    a.start()
    b.start()
    await a.wait_ready()
    await b.wait_ready()
    subscribers = [Subscriber(h.base, tokens[g]) for g in GUILDS for h in (a, b)]
    # The first guild's uploads go to both replicas in turn; the second's only to A, so
    # its subscriber on B hears of them through Redis or, while Redis is away, polling.
    uploaders = [Uploader([a.base, b.base], tokens[GUILDS[0]], GUILDS[0], pause=0.1),
                 Uploader([a.base], tokens[GUILDS[1]], GUILDS[1], pause=0.1)]
    probe = Probe([a, b])
    tasks = [asyncio.create_task(s.run(session)) for s in subscribers]
    for s in subscribers:
        await asyncio.wait_for(s.subscribed.wait(), GUARD)
    tasks += [asyncio.create_task(probe.run(session))]
    uploading = [asyncio.create_task(u.run(session)) for u in uploaders]
    try:
        await asyncio.sleep(2)
        killed_at = time.monotonic()
        redis.kill()
        await asyncio.sleep(OUTAGE_SECONDS)
        redis.start()
        restarted_at = time.monotonic()
        await asyncio.sleep(4)
        hung_at = time.monotonic()
        redis.hang()
        await asyncio.sleep(OUTAGE_SECONDS)
        resumed_at = time.monotonic()
        redis.resume()
        await asyncio.sleep(4)
        for up in uploaders:
            up.stopping.set()
        await asyncio.wait_for(asyncio.gather(*uploading), GUARD)
        heads = dict(mariadb.query(DATABASE, "SELECT guild_id, last_seq FROM feeds"))
        await wait_for(lambda: all(s.seq >= heads[g] for s, g in zip(
            subscribers, [g for g in GUILDS for _ in (a, b)], strict=True)),
            GUARD, "subscribers to catch up")
    finally:
        for task in [*tasks, *uploading]:
            task.cancel()
        await asyncio.gather(*tasks, *uploading, return_exceptions=True)

    uploads = [u for up in uploaders for u in up.uploads]
    attempts = [at for u in uploads for at in u.attempts]
    print(f"\nuploads {len(uploads)}, requests {len(attempts)}, "
          f"statuses {sorted({at.status for at in attempts})}, readyz {probe.readyz}")
    assert all(u.answered for u in uploads)
    assert set(probe.readyz) == {200}, probe.readyz
    assert all(v is not None for _, _, v in probe.gauge), "no Redis gauge in /metrics"

    # The outage shows in /metrics: the kill at once, the hang within a few seconds.
    for i in (0, 1):
        down_after_kill = probe.first_down_after(killed_at, i)
        down_after_hang = probe.first_down_after(hung_at, i)
        back = [at for at, j, v in probe.gauge if j == i and restarted_at <= at < hung_at
                and v == 1]
        print(f"replica {i}: gauge 0 {down_after_kill or float('nan'):.1f} s after the kill, back "
              f"{(back[0] - restarted_at) if back else float('nan'):.1f} s after the restart,"
              f" 0 {down_after_hang if down_after_hang is not None else float('nan'):.1f} s"
              " after the hang")
        assert down_after_kill is not None and down_after_kill < 3
        assert back, "the subscription never came back after the restart"
        assert down_after_hang is not None and down_after_hang < 6

    # The database against what the clients were told.
    journal = mariadb.query(DATABASE, "SELECT body FROM uploads")
    markers = sorted(json.loads(body)[0]["items"]["npcs"][0]["name"].split()[-1]
                     for (body,) in journal)
    assert markers == sorted(u.marker for u in uploads)  # each stored once
    events = {(g, s): json.loads(body) for g, s, body in mariadb.query(
        DATABASE, "SELECT guild_id, seq, body FROM events")}
    answered_at = {(u.guild_id, u.answered.body["seq"]): u.answered.at
                   for u in uploads if u.answered and u.answered.body}

    # Every subscriber: every event once, in order, as stored, and soon.
    worst = 0.0
    for s, g in zip(subscribers, [g for g in GUILDS for _ in (a, b)], strict=True):
        assert [e["seq"] for e in s.events] == list(range(1, heads[g] + 1))
        for event in s.events:
            assert event_fields(event) == events[(g, event["seq"])]
        for seq, at in s.arrived.items():
            if killed_at <= answered_at[(g, seq)] <= resumed_at:
                worst = max(worst, at - answered_at[(g, seq)])
    print(f"events checked {sum(len(s.events) for s in subscribers)} "
          f"({len(events)} stored), worst delivery while Redis was away {worst:.2f} s")
    assert worst <= DELIVERY_BOUND_SECONDS
