"""Websocket subscribers in a separate process: many sockets, one event loop, cheap parsing.

`python -m bench.wsclient --role-args '{...}'` opens `sockets` connections to a hub
(`kind` "hub"), to the bare broadcast server ("bare", same handshake) or to the
python-socketio peer ("sio", Engine.IO v4 over a websocket), authenticates, subscribes,
prints `ready`, and records when each event arrives (time.monotonic, which is the same
clock in every process of the machine). It then waits on stdin for `expect <seq>` and
stops when every socket has seen that seq or is closed (or after `timeout`), or for
`stop`. Its answer is one JSON line.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from bench import common

_SEQ = re.compile(rb'"seq":(\d+)')
_EVENT_PREFIXES = (b'{"type":"event"', b'42["event"')


class Subscriber:
    """One socket: handshake, then record every event's seq and arrival time."""

    def __init__(self, index: int, record: list[bytes] | None) -> None:
        self.index = index
        self.last_seq = 0
        self.close_code: int | None = None
        self.record = record

    async def run(self, session: aiohttp.ClientSession, args: dict[str, Any],
                  arrivals: dict[int, list[float]], ready: asyncio.Event,
                  done: asyncio.Event) -> None:
        kind = args["kind"]
        token = args["tokens"][self.index % len(args["tokens"])]
        url = args["url"].replace("http", "ws", 1)
        if kind == "sio":
            url += "/socket.io/?EIO=4&transport=websocket"
        else:
            url += "/ws"
        ws = await session.ws_connect(url, autoping=True, max_msg_size=0, heartbeat=None)
        try:
            if kind == "sio":
                await ws.receive()  # Engine.IO open: 0{"sid":...}
                await ws.send_str("40" + json.dumps({"token": token}))
                reply = await ws.receive()
                if not str(reply.data).startswith("40"):
                    raise RuntimeError(f"socket.io connect refused: {reply.data!r}")
            else:
                await ws.receive()  # auth_required
                await ws.send_bytes(b'{"type":"auth","token":"%s"}' % token.encode())
                reply = await ws.receive()
                if b'"auth_ok"' not in as_bytes(reply.data):
                    raise RuntimeError(f"auth refused: {reply.data!r}")
                await ws.send_bytes(b'{"id":1,"type":"subscribe"}')
                while True:
                    reply = await ws.receive()
                    if reply.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        raise RuntimeError(f"closed while subscribing: {reply}")
                    head = as_bytes(reply.data)[:40]
                    # The hub follows the result with a snapshot (the bare server does not):
                    # events before it are inside it, so only then is the socket ready.
                    if (b'"type":"snapshot"' in head
                            or (kind == "bare" and b'"type":"result"' in head)):
                        break
            ready.set()
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    data = as_bytes(msg.data)
                    if data.startswith(_EVENT_PREFIXES):
                        now = time.monotonic()
                        match = _SEQ.search(data, 0, 200)
                        if match:
                            seq = int(match.group(1))
                            arrivals[seq].append(now)
                            self.last_seq = max(self.last_seq, seq)
                            if self.record is not None:
                                self.record.append(data)
                            done.set()
                    elif kind == "sio" and data == b"2":
                        await ws.send_str("3")  # Engine.IO ping
                else:
                    self.close_code = ws.close_code
                    done.set()
                    return
        finally:
            await ws.close()


async def until_ready(task: asyncio.Task[None], ready: asyncio.Event) -> bool:
    """Whether `ready` was set before `task` ended (or 60 s passed)."""
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({waiter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    return ready.is_set()


def as_bytes(data: Any) -> bytes:
    """A websocket message's data as bytes, whether it came as text or binary."""
    return data if isinstance(data, bytes) else str(data).encode()


async def _main(args: dict[str, Any]) -> dict[str, Any]:
    common.raise_nofile()
    arrivals: dict[int, list[float]] = defaultdict(list)
    record: list[bytes] | None = [] if args.get("record") else None
    subs = [Subscriber(i + args.get("offset", 0), record if i == 0 else None)
            for i in range(args["sockets"])]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    done = asyncio.Event()
    failed = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks: list[asyncio.Task[None]] = []
        for start in range(0, len(subs), 50):  # connect in batches: a handshake storm helps nobody
            group = subs[start:start + 50]
            readies = [asyncio.Event() for _ in group]
            new = [asyncio.create_task(s.run(session, args, arrivals, e, done))
                   for s, e in zip(group, readies, strict=True)]
            tasks += new
            ok = await asyncio.gather(*(until_ready(t, e) for t, e in zip(new, readies, strict=True)))
            failed += ok.count(False)
        sys.stdout.write(f"ready {len(subs) - failed}\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        line = (await reader.readline()).decode().split()
        expect = int(line[1]) if line and line[0] == "expect" else None
        deadline = time.monotonic() + float(args.get("timeout", 30))
        while expect is not None and time.monotonic() < deadline:
            if all(s.last_seq >= expect or s.close_code is not None for s in subs):
                break
            done.clear()
            try:
                await asyncio.wait_for(done.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
        rss = common.rss_kib(os.getpid())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if record is not None:
        import msgspec

        # Once, after every socket is closed: nothing is left to block.
        Path(args["record"]).write_bytes(msgspec.msgpack.encode(record))  # noqa: ASYNC240
    closes: dict[str, int] = defaultdict(int)
    for s in subs:
        if s.close_code is not None:
            closes[str(s.close_code)] += 1
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {"sockets": len(subs), "failed": failed, "closed": dict(closes),
            "arrivals": {str(k): v for k, v in arrivals.items()},
            "rss_kib": rss, "cpu_s": round(cpu.ru_utime + cpu.ru_stime, 2)}


def main() -> None:
    """Play the subscriber role."""
    args = common.role_args()
    assert args is not None
    common.emit(asyncio.run(_main(args)))


if __name__ == "__main__":
    main()
