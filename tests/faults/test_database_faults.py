"""The database hangs (SIGSTOP) for 10 s and resumes, then hangs 10 s again and is killed
and restarted, under 8 concurrent uploaders retrying with their Idempotency-Key and one
subscriber per guild.

Every request's outcome is recorded, then the database is checked against it: every 2xx
upload is stored once (no duplicate although some 503s followed a commit), wholly (its
journal row, event, tile and key), uploads recover within 5 s of the database's return,
and each subscriber got every committed event of its guild exactly once, in order.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from hub.errors import COMMIT_UNCERTAIN_MESSAGE
from storage import migrate, open_store
from tests.faults.load import Subscriber, Uploader, event_fields, unique_view, wait_for
from tests.support.servers import HubProcess, PrivateMariaDB

GUILDS = list(range(101, 109))
DATABASE = "nacritan"
HANG_SECONDS = 10.0
RECOVERY_BOUND_SECONDS = 5.0
DB_TIMEOUT_SECONDS = 2.0
GUARD = 20.0


async def test_database_hang_and_kill_lose_nothing_and_store_nothing_twice(
        mariadb: PrivateMariaDB, hubs: list[HubProcess], session: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    url = mariadb.url(DATABASE)
    await migrate(url)
    store = await open_store(url)
    try:
        tokens = {g: await store.add_token(g, f"Uploader{g}", None, 1) for g in GUILDS}
    finally:
        await store.close()
    hub = HubProcess({"NACRITAN_DB": url, "NACRITAN_DB_TIMEOUT": str(DB_TIMEOUT_SECONDS),
                      "NACRITAN_POLL_INTERVAL": "0.2", "NACRITAN_LOG_LEVEL": "INFO"},
                     tmp_path / "hub.log")
    hubs.append(hub)
    hub.start()
    await hub.wait_ready()

    subscribers = {g: Subscriber(hub.base, tokens[g]) for g in GUILDS}
    uploaders = {g: Uploader([hub.base], tokens[g], g) for g in GUILDS}
    tasks = [asyncio.create_task(s.run(session)) for s in subscribers.values()]
    for s in subscribers.values():
        await asyncio.wait_for(s.subscribed.wait(), GUARD)
    uploading = [asyncio.create_task(u.run(session)) for u in uploaders.values()]
    try:
        await asyncio.sleep(2)
        # A hang the server resumes from, started while a COMMIT is being processed: it
        # is applied on resume, after the hub answered 503.
        caught_commit = await asyncio.to_thread(mariadb.hang_during_commit)
        await asyncio.sleep(HANG_SECONDS)
        mariadb.resume()
        await asyncio.sleep(3)
        # A hang it never resumes from: killed (as a crashed node) and restarted; the
        # COMMITs it held are lost, or recovered if they reached the log.
        await asyncio.to_thread(mariadb.hang_during_commit)
        await asyncio.sleep(HANG_SECONDS)
        mariadb.kill()
        mariadb.start()
        back_at = time.monotonic()
        # Until every uploader stored something after the database came back.
        await wait_for(lambda: all(
            any(u.answered and u.answered.at > back_at for u in up.uploads)
            for up in uploaders.values()), GUARD, "uploads to recover")
        await asyncio.sleep(2)
        for up in uploaders.values():
            up.stopping.set()
        await asyncio.wait_for(asyncio.gather(*uploading), GUARD)

        heads = dict(mariadb.query(DATABASE, "SELECT guild_id, last_seq FROM feeds"))
        await wait_for(lambda: all(s.seq >= heads[g] for g, s in subscribers.items()),
                       GUARD, "subscribers to catch up")
    finally:
        for task in [*tasks, *uploading]:
            task.cancel()
        await asyncio.gather(*tasks, *uploading, return_exceptions=True)

    # -- what the clients were told ----------------------------------------------------
    uploads = [u for up in uploaders.values() for u in up.uploads]
    attempts = [a for u in uploads for a in u.attempts]
    statuses: dict[int, int] = {}
    for a in attempts:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    uncertain = [u for u in uploads if any(
        a.status == 503 and a.body and a.body["error"]["message"] == COMMIT_UNCERTAIN_MESSAGE
        for a in u.attempts)]
    committed_while_uncertain = [u for u in uncertain if u.answered and u.answered.replayed]
    print(f"\nhang caught a COMMIT in flight: {caught_commit}")
    print(f"uploads {len(uploads)}, requests {len(attempts)}, statuses {statuses}, "
          f"uncertain-commit 503s on {len(uncertain)} uploads, of which "
          f"{len(committed_while_uncertain)} had been stored")
    assert all(u.answered for u in uploads)
    assert statuses.get(503, 0) > 0  # the faults did happen

    # -- the database against it -------------------------------------------------------
    journal = mariadb.query(DATABASE, "SELECT guild_id, body FROM uploads")
    by_marker: dict[str, int] = {}
    for _, body in journal:
        marker = json.loads(body)[0]["items"]["npcs"][0]["name"].split()[-1]
        by_marker[marker] = by_marker.get(marker, 0) + 1
    duplicates = {m: c for m, c in by_marker.items() if c > 1}
    assert not duplicates, f"stored twice: {sorted(duplicates)[:10]} ({len(duplicates)})"
    assert sorted(by_marker) == sorted(u.marker for u in uploads)  # none missing, none extra

    keys = {(g, k): s for g, k, s in mariadb.query(
        DATABASE, "SELECT guild_id, idempotency_key, seq FROM upload_keys")}
    tiles = set(mariadb.query(DATABASE, "SELECT guild_id, x, y FROM tiles"))
    events = {(g, s): json.loads(b) for g, s, b in mariadb.query(
        DATABASE, "SELECT guild_id, seq, body FROM events")}
    for u in uploads:
        answer = u.answered
        assert answer is not None and answer.body is not None
        seq = answer.body["seq"]
        assert keys[(u.guild_id, u.key)] == seq
        assert (u.guild_id, *u.tile) in tiles
        assert events[(u.guild_id, seq)]["tiles"][0]["x"] == u.tile[0]
    for g in GUILDS:
        count = sum(1 for u in uploads if u.guild_id == g)
        assert heads[g] == count
        assert sorted(s for gg, s in events if gg == g) == list(range(1, count + 1))

    # -- recovery ------------------------------------------------------------------------
    recovery = max(min(u.answered.at for u in up.uploads
                       if u.answered and u.answered.at > back_at) - back_at
                   for up in uploaders.values())
    print(f"recovery after the database returned: {recovery:.2f} s")
    assert recovery <= RECOVERY_BOUND_SECONDS

    # -- what the subscribers saw --------------------------------------------------------
    for g, sub in subscribers.items():
        got = [e["seq"] for e in sub.events]
        assert got == list(range(1, heads[g] + 1)), (g, got[:5], len(got), heads[g])
        for event in sub.events:
            assert event_fields(event) == events[(g, event["seq"])]
    print(f"events checked {sum(len(s.events) for s in subscribers.values())}, "
          f"rows checked: journal {len(journal)}, keys {len(keys)}, events {len(events)}, "
          f"subscriber reconnects {sum(s.reconnects for s in subscribers.values())}")


async def upload_until_refused(session: aiohttp.ClientSession, hub: HubProcess,
                               headers: dict[str, str], first: int,
                               answers: list[tuple[str, int, dict[str, Any]]]) -> None:
    """Unique views one after another, without retry, until one is answered 503."""
    n = first
    while True:
        n += 1
        body, _, marker = unique_view(GUILDS[0], n)
        async with session.post(f"{hub.base}/view", data=body, headers=headers) as resp:
            answers.append((marker, resp.status, await resp.json()))
        if resp.status == 503:
            return


async def test_an_upload_committed_after_its_503_reaches_the_feed_when_the_database_returns(
        mariadb: PrivateMariaDB, hubs: list[HubProcess], session: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    """No retry and no later upload here: only the hub itself can find the event, either
    as soon as the database answers again or at its routine poll (15 s with a healthy
    bus)."""
    url = mariadb.url(DATABASE)
    await migrate(url)
    store = await open_store(url)
    try:
        token = await store.add_token(GUILDS[0], "Uploader", None, 1)
    finally:
        await store.close()
    hub = HubProcess({"NACRITAN_DB": url, "NACRITAN_DB_TIMEOUT": "1",
                      "NACRITAN_LOG_LEVEL": "INFO"}, tmp_path / "hub.log")
    hubs.append(hub)
    hub.start()
    await hub.wait_ready()
    subscriber = Subscriber(hub.base, token)
    following = asyncio.create_task(subscriber.run(session))
    await asyncio.wait_for(subscriber.subscribed.wait(), GUARD)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for attempt in range(8):
            # Upload after upload until the database hangs during one's COMMIT.
            answers: list[tuple[str, int, dict[str, Any]]] = []
            uploading = asyncio.create_task(
                upload_until_refused(session, hub, headers, 1000 * attempt, answers))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(mariadb.hang_during_commit)
            await asyncio.wait_for(uploading, GUARD)
            await asyncio.sleep(0.5)
            mariadb.resume()
            resumed_at = time.monotonic()
            refused = answers[-1]
            assert refused[1] == 503, refused
            stored = mariadb.query(DATABASE, "SELECT seq FROM events WHERE body LIKE %s",
                                   (f"%{refused[0]}\"%",))
            if stored:
                break
            await hub.wait_ready()
        else:
            raise AssertionError("no hang caught a COMMIT the server then applied")
        (seq,), = stored
        await wait_for(lambda: seq in subscriber.arrived, GUARD, "the event")
        delay = subscriber.arrived[seq] - resumed_at
        print(f"\n503 then stored (attempt {attempt + 1}): {refused[2]['error']['message']!r};"
              f" on the feed {delay:.2f} s after the database resumed")
        assert delay <= RECOVERY_BOUND_SECONDS
        assert [e["seq"] for e in subscriber.events] == list(range(1, seq + 1))
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
