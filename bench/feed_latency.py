"""End-to-end live feed latency: upload response -> event received, for N subscribers.

Starts the real app (create_app) on a loopback port over a fresh SQLite file (or the
database in NACRITAN_DB), connects N websocket subscribers of one guild, uploads views one
after another, and records for each (upload, subscriber) the time from the upload's HTTP
response to that subscriber receiving the event. Bounded: `--uploads` uploads, then stops.

    .venv/bin/python -m bench.feed_latency --subscribers 100 --uploads 200
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.workload import GuildWorkload
from hub.app import create_app
from hub.settings import Settings
from storage import migrate, open_store


async def run(subscribers: int, uploads: int, db: str) -> dict[str, float]:
    await migrate(db)
    store = await open_store(db)
    token = await store.add_token(1, "Bench", None, 1)
    await store.close()
    runner = web.AppRunner(create_app(Settings(db=db, token_cache_seconds=60)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    received: dict[int, list[float]] = {}
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0)) as session:
            sockets = []
            for _ in range(subscribers):
                ws = await session.ws_connect(f"{base}/ws",
                                              headers={"Authorization": f"Bearer {token}"})
                await ws.receive()  # auth_ok
                await ws.send_json({"id": 1, "type": "subscribe"})
                await ws.receive()  # result
                await ws.receive()  # snapshot
                sockets.append(ws)

            async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        return
                    at = time.perf_counter()
                    received.setdefault(json.loads(msg.data)["seq"], []).append(at)

            listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
            # Small views (radius 2: 19 tiles) of guildmates walking the seeded world.
            views = GuildWorkload(seed=1, members=8, radius=2).stream()
            answered: dict[int, float] = {}
            for _ in range(uploads):
                _, body = next(views)
                async with session.post(f"{base}/view", data=body,
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
                    seq = (await resp.json())["seq"]
                    answered[seq] = time.perf_counter()
                # Wait for every subscriber before the next upload (bounded).
                for _ in range(2000):
                    if len(received.get(seq, [])) >= subscribers:
                        break
                    await asyncio.sleep(0.001)
            for task in listeners:
                task.cancel()
            for ws in sockets:
                await ws.close()
    finally:
        await runner.cleanup()
    latencies = sorted((at - answered[seq]) * 1000 for seq, ats in received.items()
                       if seq in answered for at in ats)
    missing = subscribers * uploads - len(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {"subscribers": subscribers, "uploads": uploads, "samples": len(latencies),
            "missing": missing, "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2),
            "max_ms": round(latencies[-1], 2), "mean_ms": round(statistics.fmean(latencies), 2)}


def main() -> None:
    """Parse arguments, run once, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--uploads", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.environ.get("NACRITAN_DB") or f"sqlite:///{tmp}/bench.db"
        print(json.dumps(asyncio.run(run(args.subscribers, args.uploads, db))))


if __name__ == "__main__":
    main()
