"""Upload bodies that never arrive whole: a deadline (408), a client gone (499), bad UTF-8."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import pytest

from tests.conftest import add_token
from tests.edge.conftest import exchange, read_reply, request
from tests.support.dump import query
from tests.support.servers import HubProcess

VIEW = b'[{"x": 101, "y": 102, "type": "Plaine"}]'
BODY_TIMEOUT = 1.5


def _status_counts(metrics: str, route: str) -> dict[str, float]:
    pattern = re.compile(
        r'nacritan_http_request_seconds_count\{method="POST",route="' + re.escape(route)
        + r'",status="(\d+)"\} (\S+)')
    return {m.group(1): float(m.group(2)) for m in pattern.finditer(metrics)}


async def test_a_client_that_leaves_mid_body_is_counted_as_499_without_an_error(
        sqlite_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    token = await add_token(sqlite_url)
    hub: HubProcess = await hub_factory(sqlite_url)  # type: ignore[misc]
    leavers = 5
    for _ in range(leavers):
        _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(request("POST", "/view", f"Authorization: Bearer {token}", length=4000)
                     + VIEW[:10])
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is reading the body
        writer.transport.abort()
        writer.close()
    log = await hub.wait_for_log('"POST /view HTTP/1.1" 499', leavers)
    reply = await exchange(hub.port, request("GET", "/metrics"))
    assert reply is not None and reply.status == 200
    counts = _status_counts(reply.body.decode(), "/view")
    assert counts == {"499": leavers}, counts
    assert log.count('"POST /view HTTP/1.1" 499') == leavers, log
    assert "Traceback" not in log, log
    assert not [line for line in log.splitlines() if " ERROR " in line], log
    assert query(sqlite_url, "SELECT COUNT(*) FROM uploads") == [(0,)]


@pytest.mark.parametrize("send", [
    # One byte at a time, slower than the deadline allows in total.
    "trickle",
    # A Content-Length larger than the body that was sent.
    "short-body",
])
async def test_a_body_that_does_not_arrive_in_time_is_a_408(
        send: str, sqlite_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    token = await add_token(sqlite_url)
    hub: HubProcess = await hub_factory(  # type: ignore[misc]
        sqlite_url, NACRITAN_BODY_TIMEOUT=str(BODY_TIMEOUT))
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    head = request("POST", "/view", f"Authorization: Bearer {token}",
                   length=len(VIEW) + (0 if send == "trickle" else 100))
    started = time.monotonic()
    writer.write(head if send == "trickle" else head + VIEW)
    await writer.drain()
    reply_task = asyncio.ensure_future(read_reply(reader))
    sent = 0
    while send == "trickle" and not reply_task.done() and sent < len(VIEW):
        writer.write(VIEW[sent:sent + 1])
        sent += 1
        await asyncio.wait({reply_task}, timeout=0.5)
    reply = await asyncio.wait_for(reply_task, 10 * BODY_TIMEOUT)
    elapsed = time.monotonic() - started
    writer.close()

    assert reply is not None, "the hub dropped the connection without answering"
    assert reply.status == 408, reply
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"]["code"] == "request_timeout"
    # Functional bound: the deadline ended the read (today the handler waits forever).
    assert elapsed >= BODY_TIMEOUT
    assert sent < len(VIEW) or send == "short-body"
    assert query(sqlite_url, "SELECT COUNT(*) FROM uploads") == [(0,)]
    # The hub still serves.
    good = await exchange(hub.port, request("POST", "/view", f"Authorization: Bearer {token}",
                                            body=VIEW))
    assert good is not None and good.status == 200, good


@pytest.mark.parametrize(("route", "body"), [
    ("/view", b'[{"x": 101, "y": 102, "type": "Plaine", "note": "\xff\xfe"}]'),
    ("/view", b'[{"x": 101, "y": 102, "type": "Plaine", "n\xc3": 1}]'),
    ("/gdc", b'[{"id": 5, "name": "Bob", "x": 1, "y": 2, "extra": {"a": "\xed\xa0\x80"}}]'),
    ("/pc/4242", b'{"id": 4242, "name": "Al", "x": 1, "y": 2, "future": ["\xc0\xaf"]}'),
])
async def test_invalid_utf8_anywhere_in_the_body_is_refused_and_not_journaled(
        route: str, body: bytes, sqlite_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    token = await add_token(sqlite_url)
    hub: HubProcess = await hub_factory(sqlite_url)  # type: ignore[misc]
    reply = await exchange(hub.port, request("POST", route, f"Authorization: Bearer {token}",
                                             body=body))
    assert reply is not None and reply.status == 400, reply
    error = reply.json()["error"]
    assert (error["code"], error["path"]) == ("invalid_json", "$"), error
    assert "UTF-8" in error["message"]
    assert query(sqlite_url, "SELECT COUNT(*) FROM uploads") == [(0,)]
    # The same body with the bad bytes replaced is accepted: only the bytes were wrong.
    fixed = body.decode("utf-8", "replace").encode()
    reply = await exchange(hub.port, request("POST", route, f"Authorization: Bearer {token}",
                                             body=fixed))
    assert reply is not None and reply.status == 200, reply
    assert query(sqlite_url, "SELECT COUNT(*) FROM uploads") == [(1,)]
