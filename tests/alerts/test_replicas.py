"""Two replicas (two app instances on one database) queue and send each alert once."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from hub import keys
from hub.app import create_app
from hub.settings import Settings
from storage import Store
from storage.alerts import AlertStore
from tests.alerts.kit import FakeDiscord, eventually, monster, view
from tests.alerts.test_delivery import all_recorded, metric
from tests.alerts.test_firing import GUILD, add_rule, post
from tests.conftest import TokenMaker

ROUNDS = 8


async def test_two_replicas_send_each_alert_once(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord,
        settings: Settings, aiohttp_client: Callable[[web.Application], Awaitable[TestClient]],
) -> None:
    a = client
    b = await aiohttp_client(create_app(settings))
    hook = discord.webhook()
    await add_rule(a.app, store, GUILD, "monster", hook, min_level=1, within=6)
    await b.app[keys.ALERTS].refresh_rules()
    alice = await make_token(GUILD, "Alice")
    bob = await make_token(GUILD, "Bob")
    seen: set[int] = set()
    for k in range(ROUNDS):
        # Alice (through A) and Bob (through B), side by side, upload at the same time:
        # both report the round's new monster and the old ones, which moved.
        ids = list(range(100, 101 + k))
        seen.update(ids)
        spots = {(501 + (i + k) % 3, 500 - (i + k) % 2): [monster(mid, 5, f"M{mid}")]
                 for i, mid in enumerate(ids[-3:])}
        await asyncio.gather(post(a, "/view", alice, view(500, 500, 4, npcs=spots)),
                             post(b, "/view", bob, view(502, 500, 4, npcs=spots)))
    await a.app[keys.ALERTS].idle()
    await b.app[keys.ALERTS].idle()
    await eventually(lambda: len(discord.delivered(hook)) >= len(seen))
    await all_recorded(store, len(seen))
    # A few more rounds of both senders: nothing else is sent.
    for _ in range(3):
        await a.app[keys.ALERTS].deliver_due()
        await b.app[keys.ALERTS].deliver_due()
    titles = Counter(r.body["embeds"][0]["title"].split(": ")[1].split(" ")[0]
                     for r in discord.received)
    assert titles == Counter({f"M{mid}": 1 for mid in seen})
    outbox = await AlertStore(store.backend).outbox()
    assert len(outbox) == len(seen) and {row[3] for row in outbox} == {"sent"}
    texts = [await (await c.get("/metrics")).text() for c in (a, b)]
    for name in ("nacritan_alerts_fired_total", "nacritan_alerts_sent_total"):
        assert sum(metric(t, name, "monster") for t in texts) == len(seen)
