"""SIGTERM under load: uploads whose body is still arriving complete, then the hub exits.

Every request's outcome is recorded and checked against the database afterwards: each
2xx upload is journaled exactly once with its event, nothing else is, and every
request sent whole got an answer (200, or the JSON 503 of a hub that is stopping).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import msgspec

from tests.conftest import add_token
from tests.edge.conftest import Reply, exchange, read_reply, request
from tests.support.dump import query
from tests.support.servers import HubProcess

SHUTDOWN_TIMEOUT = 10.0
SLOW_CLIENTS = 12
BUSY_CLIENTS = 4


def view(index: int) -> bytes:
    """An upload whose tile says which request it was."""
    return msgspec.json.encode([{"x": 1 + index % 1000, "y": 1 + index // 1000,
                                 "type": f"T{index}"}])


async def _slow_upload(port: int, token: str, index: int, signalled: asyncio.Event,
                       half_sent: asyncio.Event, started: list[int]) -> Reply | None:
    body = view(index)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request("POST", "/view", f"Authorization: Bearer {token}",
                             length=len(body)) + body[:len(body) // 2])
        await writer.drain()
        started.append(index)
        if len(started) == SLOW_CLIENTS:
            half_sent.set()
        await signalled.wait()
        await asyncio.sleep(0.5)  # the rest of the body arrives after SIGTERM
        writer.write(body[len(body) // 2:])
        await writer.drain()
        return await asyncio.wait_for(read_reply(reader), SHUTDOWN_TIMEOUT * 2)
    finally:
        writer.close()


async def _busy_uploader(port: int, token: str, first: int, stop: asyncio.Event,
                         outcomes: list[tuple[int, str, Reply | None]]) -> None:
    # Keep-alive uploads back to back until the hub stops taking connections.
    index = first
    reader = writer = None
    while True:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return  # refused: the hub no longer listens
        assert reader is not None
        body = view(index)
        writer.write(request("POST", "/view", f"Authorization: Bearer {token}", body=body))
        try:
            await writer.drain()
            reply = await asyncio.wait_for(read_reply(reader), SHUTDOWN_TIMEOUT * 2)
        except ConnectionError:
            reply = None
        outcomes.append((index, "busy", reply))
        index += 1
        if reply is None or reply.headers.get("connection", "").lower() == "close":
            writer.close()
            writer = None
            if stop.is_set():
                return


async def test_sigterm_lets_bodies_in_flight_complete_then_exits_at_once(
        mysql_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    token = await add_token(mysql_url)
    hub: HubProcess = await hub_factory(  # type: ignore[misc]
        mysql_url, NACRITAN_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT))
    signalled, half_sent = asyncio.Event(), asyncio.Event()
    started: list[int] = []
    busy: list[tuple[int, str, Reply | None]] = []
    slow = [asyncio.ensure_future(_slow_upload(hub.port, token, i, signalled, half_sent, started))
            for i in range(SLOW_CLIENTS)]
    busy_tasks = [asyncio.ensure_future(_busy_uploader(hub.port, token, 10_000 * (b + 1),
                                                       signalled, busy))
                  for b in range(BUSY_CLIENTS)]
    await asyncio.wait_for(half_sent.wait(), 10)
    await asyncio.sleep(1.0)  # the busy uploaders are going
    assert hub.proc is not None
    sent_at = time.monotonic()
    hub.proc.send_signal(15)
    signalled.set()
    exit_code = await asyncio.wait_for(asyncio.to_thread(hub.proc.wait), SHUTDOWN_TIMEOUT * 3)
    exit_seconds = time.monotonic() - sent_at
    slow_replies = await asyncio.gather(*slow)
    await asyncio.gather(*busy_tasks)

    outcomes = [(i, "slow", r) for i, r in enumerate(slow_replies)] + busy
    statuses = Counter(r.status if r is not None else None for _, _, r in outcomes)
    # Every slow upload was answered, and stored: its body arrived after SIGTERM.
    assert [r.status if r is not None else None for r in slow_replies] == [200] * SLOW_CLIENTS
    # Busy uploads: each sent whole got an answer; only a last one on a connection the hub
    # closed as it stopped may have none (it was never read, so nothing was stored).
    for index, _, reply in busy:
        assert reply is None or reply.status in (200, 503), (index, reply)
        if reply is not None and reply.status == 503:
            assert reply.json()["error"]["code"] == "shutting_down"
    assert statuses[200] >= SLOW_CLIENTS + BUSY_CLIENTS, statuses

    # The database holds exactly the 2xx uploads, each with its event and tile.
    accepted = {index: reply.json()["seq"] for index, _, reply in outcomes
                if reply is not None and reply.status == 200}
    journaled = query(mysql_url, "SELECT COUNT(*) FROM uploads")[0][0]
    seqs = {row[0] for row in query(mysql_url, "SELECT seq FROM events")}
    terrains = {row[0] for row in query(mysql_url, "SELECT terrain FROM tiles")}
    assert journaled == len(accepted), (journaled, len(accepted))
    assert set(accepted.values()) <= seqs
    assert {f"T{index}" for index in accepted} == terrains

    assert exit_code == 0, hub.log()
    # Functional bound: the hub exits once the last body is answered, not after its
    # whole shutdown timeout (the slow bodies end 0.5 s after the signal).
    assert exit_seconds < SHUTDOWN_TIMEOUT / 2, (exit_seconds, hub.log())
    log = hub.log()
    assert "Traceback" not in log, log
    assert token not in log
    print(f"requests {len(outcomes)}, statuses {dict(statuses)}, rows {journaled}, "
          f"exit {exit_seconds:.2f} s")


async def test_sigterm_answers_503_to_a_body_that_never_ends_within_the_timeout(
        sqlite_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    token = await add_token(sqlite_url)
    timeout = 3.0
    hub: HubProcess = await hub_factory(  # type: ignore[misc]
        sqlite_url, NACRITAN_SHUTDOWN_TIMEOUT=str(timeout))
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    body = view(1)
    writer.write(request("POST", "/view", f"Authorization: Bearer {token}", length=len(body))
                 + body[:5])
    await writer.drain()
    await asyncio.sleep(0.3)
    assert hub.proc is not None
    sent_at = time.monotonic()
    hub.proc.send_signal(15)
    reply = await asyncio.wait_for(read_reply(reader), timeout * 3)
    answered = time.monotonic() - sent_at
    exit_code = await asyncio.wait_for(asyncio.to_thread(hub.proc.wait), timeout * 3)
    exit_seconds = time.monotonic() - sent_at
    writer.close()

    assert reply is not None, "no answer: the hub dropped the upload"
    assert reply.status == 503, reply
    assert reply.json()["error"]["code"] == "shutting_down"
    assert "Retry-After" in {k.title(): v for k, v in reply.headers.items()}
    assert answered < timeout, answered
    assert exit_code == 0
    assert exit_seconds < timeout + 2.0, exit_seconds
    assert query(sqlite_url, "SELECT COUNT(*) FROM uploads") == [(0,)]
    assert not await _listening(hub.port)


async def _listening(port: int) -> bool:
    try:
        reply = await exchange(port, request("GET", "/healthz"))
    except OSError:
        return False
    return reply is not None
