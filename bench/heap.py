"""`python -m bench.heap`: does the hub keep Python objects per upload? (tracemalloc diff)

`bench.mixed` reads the hub's RSS, which also moves with the C allocator's high-water
marks. This looks at the Python heap itself. The hub app is served from this process
on a fresh MariaDB database; a client process connects live subscribers (draining
their sockets) and sends uploads and reads. After a warm-up the hub's heap is
snapshotted (tracemalloc), the client sends more, and the growth between the two
snapshots is printed, largest first. The client runs in its own process so that
nothing it allocates is counted.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
from typing import Any

from bench import common
from bench.workload import GuildWorkload

GUILD = 17
MEMBERS = 32
SUBSCRIBERS = 20
FRAMES = 12


async def _client(args: dict[str, Any]) -> dict[str, Any]:
    """Subscribers and traffic: the warm-up, a line on stdout, then (after a line on
    stdin) the measured part."""
    import aiohttp

    stream = GuildWorkload(1, MEMBERS, 4).stream()
    headers = [{"Authorization": f"Bearer {t}"} for t in args["tokens"]]
    loop = asyncio.get_running_loop()

    async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for _ in ws:
            pass

    async with aiohttp.ClientSession(args["url"]) as session:

        async def traffic(count: int) -> None:
            for n in range(count):
                member, body = next(stream)
                async with session.post("/view", data=body, headers={
                        **headers[member], "Content-Type": "application/json"}) as resp:
                    assert resp.status == 200, await resp.text()
                if n % 5 == 0:  # reads too, as in bench.mixed
                    for path in ("/minimap/0/0/4", "/gdc"):
                        async with session.get(path, headers=headers[member]) as resp:
                            assert resp.status == 200, await resp.text()

        sockets = []
        for i in range(SUBSCRIBERS):
            ws = await session.ws_connect("/ws", headers=headers[i])
            await ws.receive()  # auth_ok
            await ws.send_json({"id": 1, "type": "subscribe"})
            sockets.append((ws, asyncio.create_task(drain(ws))))
        await traffic(args["warmup"])
        print("warm", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        await traffic(args["uploads"])
        for ws, task in sockets:
            await ws.close()
            await task
    return {"uploads": args["uploads"]}


async def _measure(url: str, warmup: int, uploads: int) -> dict[str, Any]:
    from aiohttp import web

    from hub.app import create_app
    from hub.settings import Settings

    tokens = await common.add_tokens(url, GUILD, GuildWorkload(1, MEMBERS, 4).names)
    port = common.free_port()
    runner = web.AppRunner(create_app(Settings(db=url)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = await asyncio.create_subprocess_exec(
        common.PYTHON, "-m", "bench.heap", "--role-args",
        json.dumps({"url": f"http://127.0.0.1:{port}", "tokens": tokens,
                    "warmup": warmup, "uploads": uploads}),
        cwd=common.ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert client.stdin is not None and client.stdout is not None
    try:
        assert (await client.stdout.readline()).strip() == b"warm", "client failed"
        gc.collect()
        tracemalloc.start(FRAMES)
        before = tracemalloc.take_snapshot()
        client.stdin.write(b"go\n")
        await client.stdin.drain()
        await client.stdout.read()
        if await client.wait() != 0:
            raise RuntimeError("client failed")
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()
        await runner.cleanup()
    growth = after.compare_to(before, "traceback")
    top = []
    for stat in growth[:8]:
        frames = list(stat.traceback)
        own = [f for f in frames if "/site-packages/" not in f.filename
               and "/lib/python3" not in f.filename] or frames
        top.append({"kib": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff,
                    "where": f"{'/'.join(own[-1].filename.rsplit('/', 2)[-2:])}:{own[-1].lineno}",
                    "innermost": f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}"})
    total = sum(s.size_diff for s in growth)
    return {"warmup_uploads": warmup, "uploads": uploads, "subscribers": SUBSCRIBERS,
            "growth_kib": round(total / 1024, 1),
            "bytes_per_upload": round(total / max(1, uploads), 1), "top": top}


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = [[t["kib"], t["blocks"], t["where"], t["innermost"]] for t in result["top"]]
    return common.table(
        f"heap: the hub's Python heap over {result['uploads']:,} uploads (+ reads, "
        f"{result['subscribers']} subscribers) after {result['warmup_uploads']:,} of warm-up: "
        f"{result['growth_kib']:+} KiB, {result['bytes_per_upload']:+} bytes per upload",
        ["KiB", "blocks", "allocated under", "innermost frame"], rows)


def main() -> None:
    """Measure on a fresh MariaDB database, or play the client."""
    if common.play_role({"client": _client}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.heap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100 + 300 uploads, for CI")
    p.add_argument("--uploads", type=int, help="measured uploads (default 2,000)")
    a = p.parse_args()
    warmup, uploads = (100, 300) if a.quick else (600, a.uploads or 2000)
    with common.fresh_databases("mysql") as (url,):
        result = asyncio.run(_measure(url, warmup, uploads))
    common.report("heap", render(result), result)


if __name__ == "__main__":
    main()
