"""`python -m bench.mixed`: uploads, reads and a live audience at once, for a minute.

The hub (`python -m hub serve`, MariaDB) holds 1,000 subscribers (separate client
processes) while a separate client process sends, open loop at a steady total rate,
70% POST /view (8 members walking), 20% GET /minimap (radius 4 around a member) and
10% GET /gdc. Reported: errors, latency per route, delivery to the subscribers
(events received vs expected, slow-consumer closes), and the hub's RSS sampled every
second: after warm-up (the first quarter) it must not keep growing.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import msgspec

from bench import common
from bench.fanout import GUILD, Subscribers
from bench.workload import GuildWorkload

MEMBERS = 8


async def _client(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    workload = GuildWorkload(args["seed"], MEMBERS, 4, GUILD)
    per_member = int(args["rate"] * args["seconds"] * 0.7 / MEMBERS) + 4
    walks = workload.member_views(per_member)
    turns = [0] * MEMBERS
    rng = random.Random(args["seed"])
    headers = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"}
               for t in args["tokens"]]
    latencies: dict[str, list[float]] = {"view": [], "minimap": [], "gdc": []}
    errors: dict[str, int] = {"view": 0, "minimap": 0, "gdc": 0}
    last_seq = 0
    async with aiohttp.ClientSession() as session:

        async def one(route: str, member: int) -> None:
            nonlocal last_seq
            start = time.perf_counter()
            if route == "view":
                body = walks[member][turns[member] % per_member]
                turns[member] += 1
                req = session.post(args["url"] + "/view", data=body, headers=headers[member])
            elif route == "minimap":
                m = workload.members[member]
                req = session.get(f"{args['url']}/minimap/{m.x}/{m.y}/4", headers=headers[member])
            else:
                req = session.get(args["url"] + "/gdc", headers=headers[member])
            async with req as resp:
                data = await resp.read()
            latencies[route].append(time.perf_counter() - start)
            if resp.status != 200:
                errors[route] += 1
            elif route == "view":
                last_seq = max(last_seq, int(msgspec.json.decode(data)["seq"]))

        tasks = []
        start = time.monotonic()
        total = int(args["rate"] * args["seconds"])
        for i in range(total):
            delay = start + i / args["rate"] - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            roll = rng.random()
            route = "view" if roll < 0.7 else "minimap" if roll < 0.9 else "gdc"
            tasks.append(asyncio.create_task(one(route, rng.randrange(MEMBERS))))
        await asyncio.gather(*tasks)
    return {"last_seq": last_seq, "routes": {
        r: {"requests": len(v), "errors": errors[r], **common.latency_summary(v)}
        for r, v in latencies.items()}, "views_sent": len(latencies["view"])}


def run(subscribers: int, seconds: float, rate: float, per_process: int,
        seed: int) -> dict[str, Any]:
    """One run on a fresh database."""
    with common.fresh_databases("mysql") as (url,):
        names = [f"Membre{i}" for i in range(MEMBERS)]
        tokens = asyncio.run(common.add_tokens(url, GUILD, names))
        with common.HubProcess(url) as hub:
            subs = Subscribers("hub", hub.url, tokens, subscribers, per_process,
                               timeout=30)
            try:
                connected = subs.wait_ready()
                samples: list[tuple[float, int]] = []
                client = common.spawn_role("bench.mixed", {
                    "url": hub.url, "tokens": tokens, "seed": seed, "rate": rate,
                    "seconds": seconds})
                start = time.monotonic()
                while client.poll() is None:
                    samples.append((round(time.monotonic() - start, 1), hub.rss_kib()))
                    time.sleep(1.0)
                figures = common.collect(client)
                results = subs.finish(figures["last_seq"])
            except BaseException:
                for p in subs.procs:
                    p.kill()
                raise
    received = sum(len(times) for r in results for times in r["arrivals"].values())
    closed: dict[str, int] = {}
    for r in results:
        for code, n in r["closed"].items():
            closed[code] = closed.get(code, 0) + n
    warm = [kib for t, kib in samples if t >= seconds / 4]
    return {
        "subscribers": connected, "seconds": seconds, "rate_per_s": rate, **figures,
        "events_expected": (figures["views_sent"] - figures["routes"]["view"]["errors"]) * connected,
        "events_received": received, "closed": closed,
        "rss_mib": {"start": round(samples[0][1] / 1024, 1) if samples else None,
                    "after_warmup": round(warm[0] / 1024, 1) if warm else None,
                    "end": round(samples[-1][1] / 1024, 1) if samples else None,
                    "every_10s": [round(k / 1024, 1) for t, k in samples if int(t) % 10 == 0],
                    "max": round(max(k for _, k in samples) / 1024, 1) if samples else None},
    }


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = [[route, f["requests"], f["errors"], f["p50_ms"], f["p95_ms"], f["p99_ms"], f["max_ms"]]
            for route, f in result["routes"].items()]
    rss = result["rss_mib"]
    return common.table(
        f"mixed: {result['rate_per_s']:.0f} req/s (70% POST /view, 20% /minimap, 10% /gdc) for "
        f"{result['seconds']:.0f} s with {result['subscribers']:,} subscribers",
        ["route", "requests", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows) + (
        f"\nevents delivered {result['events_received']:,} of {result['events_expected']:,}, "
        f"closed sockets {result['closed'] or 'none'}; hub RSS MiB start {rss['start']}, "
        f"after warm-up {rss['after_warmup']}, end {rss['end']}, max {rss['max']}")


def main() -> None:
    """Orchestrate, or play the client role."""
    if common.play_role({"client": _client}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.mixed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 subscribers, 10 s")
    p.add_argument("--subscribers", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--rate", type=float, default=30.0, help="requests per second, all routes")
    p.add_argument("--per-process", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    common.raise_nofile()
    result = run(a.subscribers or (200 if a.quick else 1000),
                 a.seconds or (10.0 if a.quick else 60.0), a.rate, a.per_process, a.seed)
    common.report("mixed", render(result), result)


if __name__ == "__main__":
    main()
