"""`python -m bench.snapshots`: 8 simultaneous whole-guild subscribes on a 100k-tile guild.

The database is seeded with a year of one guild's sightings (`bench.reads`: 100,000
tiles and the entities on them, about 25 MB as JSON). A client process then opens 8
websockets that each subscribe to the whole guild at the same moment and read their
snapshots to the end, while 2 other members of the guild read `/api/v1/state r=5` in a
loop (in a process of their own). The orchestrator samples the hub's RSS every 20 ms. Printed: the hub's RSS before
and at its peak, each snapshot's size, parts, largest frame and time, and the reads'
latency during the snapshots against the same reads with no snapshot running.
Targets: RSS < 300 MiB, reads p99 < 200 ms, no frame over 1 MiB.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from bench import common
from bench.reads import seed

GUILD = 501
SUBSCRIBERS = 8
READERS = 2
RSS_TARGET_MIB = 300
READ_P99_TARGET_MS = 200
FRAME_LIMIT = 1024 * 1024


class _Part(msgspec.Struct):
    """What the subscriber needs of a message: what it is, and how many rows it holds."""

    type: str
    success: bool = True
    more: bool = False
    tiles: list[msgspec.Raw] = []
    players: list[msgspec.Raw] = []
    monsters: list[msgspec.Raw] = []
    places: list[msgspec.Raw] = []
    resources: list[msgspec.Raw] = []
    objects: list[msgspec.Raw] = []


_PART = msgspec.json.Decoder(_Part)


async def _snapshot(session: Any, url: str, token: str, start_at: float) -> dict[str, Any]:
    import aiohttp

    async with session.ws_connect(f"{url}/ws", headers={"Authorization": f"Bearer {token}"},
                                  max_msg_size=0) as ws:
        assert _PART.decode((await ws.receive()).data).type == "auth_ok"
        await asyncio.sleep(max(0.0, start_at - time.time()))
        start = time.perf_counter()
        await ws.send_json({"id": 1, "type": "subscribe"})
        frames = size = largest = rows = 0
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg.type
            part = _PART.decode(msg.data)
            if part.type == "result":
                assert part.success, msg.data
                continue
            assert part.type == "snapshot", part.type
            frames += 1
            size += len(msg.data)
            largest = max(largest, len(msg.data))
            rows += sum(len(x) for x in (part.tiles, part.players, part.monsters, part.places,
                                         part.resources, part.objects))
            if not part.more:
                break
        return {"seconds": time.perf_counter() - start, "frames": frames, "bytes": size,
                "largest": largest, "rows": rows}


async def _subscribers(args: dict[str, Any]) -> dict[str, Any]:
    """The subscribers' role: every socket opened, then all subscribe at `start_at`."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        started = time.time()
        done = await asyncio.gather(*(_snapshot(session, args["url"], t, args["start_at"])
                                      for t in args["subscribers"]))
    return {"snapshots": done, "all_seconds": time.time() - max(started, args["start_at"])}


async def _reads(session: Any, url: str, token: str, region: list[int], until: Any,
                 rng: random.Random) -> list[float]:
    x0, y0, w, h = region
    latencies = []
    while not until():
        x, y = rng.randint(x0 + 6, x0 + w - 6), rng.randint(y0 + 6, y0 + h - 6)
        start = time.perf_counter()
        async with session.get(f"{url}/api/v1/state?x={x}&y={y}&r=5",
                               headers={"Authorization": f"Bearer {token}"}) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        latencies.append(time.perf_counter() - start)
    return latencies


async def _readers(args: dict[str, Any]) -> dict[str, Any]:
    """The readers' role (its own process: the subscribers' decoding must not delay it):
    reads until `start_at` (quiet), then until the stop file exists (during)."""
    import aiohttp

    rng = random.Random(args["seed"])
    url, region, stop_file = args["url"], args["region"], Path(args["stop_file"])
    async with aiohttp.ClientSession() as session:
        await _reads(session, url, args["readers"][0], region,
                     lambda: time.time() > args["start_at"] - args["baseline_seconds"], rng)
        quiet = await asyncio.gather(*(_reads(session, url, t, region,
                                              lambda: time.time() > args["start_at"], rng)
                                       for t in args["readers"]))
        during = await asyncio.gather(*(_reads(session, url, t, region, stop_file.exists, rng)
                                        for t in args["readers"]))
    q = [lat for r in quiet for lat in r]
    d = [lat for r in during for lat in r]
    return {"reads_quiet": common.latency_summary(q) | {"requests": len(q)},
            "reads_during": common.latency_summary(d) | {"requests": len(d)}}


class RssSampler:
    """The hub's VmRSS every 20 ms, in a thread of the orchestrator."""

    def __init__(self, hub: common.HubProcess) -> None:
        self.hub = hub
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.hub.rss_kib())
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(width: int, height: int, baseline_seconds: float, seed_: int,
        profile: str | None = None) -> dict[str, Any]:
    """Seed, serve, measure."""
    with common.fresh_databases("mysql") as (url,):
        started = time.perf_counter()
        counts = seed(url, [GUILD], width, height, seed_)
        seeded_s = time.perf_counter() - started
        names = [f"Abonne{i}" for i in range(SUBSCRIBERS)] + [f"Lecteur{i}" for i in range(READERS)]
        tokens = asyncio.run(common.add_tokens(url, GUILD, names))
        prof = f"{profile}/snapshots.txt" if profile else None
        with common.HubProcess(url, profile_to=prof) as hub:
            time.sleep(1)
            rss_before = hub.rss_kib()
            with RssSampler(hub) as sampler, tempfile.TemporaryDirectory() as tmp:
                common_args = {"url": hub.url, "seed": seed_,
                               "start_at": time.time() + baseline_seconds + 3}
                readers = common.spawn_role("bench.snapshots", {
                    **common_args, "role": "readers", "readers": tokens[SUBSCRIBERS:],
                    "region": [500, 300, width, height], "baseline_seconds": baseline_seconds,
                    "stop_file": f"{tmp}/stop"})
                figures = common.run_role("bench.snapshots", {
                    **common_args, "role": "subscribers", "subscribers": tokens[:SUBSCRIBERS]})
                Path(f"{tmp}/stop").touch()
                figures |= common.collect(readers)
            rss_after = hub.rss_kib()
    return {"rows": counts, "seed_seconds": round(seeded_s, 1),
            **({"profile_top": common.top_frames(prof)} if prof else {}),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_peak_mib": round(sampler.peak_kib / 1024, 1),
            "rss_after_mib": round(rss_after / 1024, 1),
            "targets": {"rss_mib": RSS_TARGET_MIB, "reads_p99_ms": READ_P99_TARGET_MS,
                        "frame_bytes": FRAME_LIMIT},
            **figures}


def render(r: dict[str, Any]) -> str:
    """The human tables."""
    rows = [[i + 1, s["rows"], round(s["bytes"] / 1048576, 1), s["frames"],
             round(s["largest"] / 1024, 1), round(s["seconds"], 2)]
            for i, s in enumerate(r["snapshots"])]
    text = [common.table(
        f"snapshots: {SUBSCRIBERS} simultaneous whole-guild subscribes "
        f"({', '.join(f'{k} {v:,}' for k, v in r['rows'].items())}), all done in "
        f"{r['all_seconds']:.1f} s",
        ["sub", "rows", "MiB", "frames", "largest KiB", "seconds"], rows)]
    text.append(f"\nhub RSS: {r['rss_before_mib']} MiB before, peak {r['rss_peak_mib']} MiB "
                f"(target < {RSS_TARGET_MIB}), {r['rss_after_mib']} MiB after")
    largest = max(s["largest"] for s in r["snapshots"])
    text.append(f"largest frame: {largest:,} bytes (limit {FRAME_LIMIT:,})")
    reads = [[name, f["requests"], f["p50_ms"], f["p95_ms"], f["p99_ms"], f["max_ms"]]
             for name, f in (("quiet", r["reads_quiet"]), ("during", r["reads_during"]))]
    text.append("\n" + common.table(
        f"other members' GET /api/v1/state r=5 ({READERS} readers in a loop), "
        f"target p99 < {READ_P99_TARGET_MS} ms",
        ["when", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms"], reads))
    if r.get("profile_top"):
        text += common.render_profiles({"hub": r})
    return "\n".join(text)


def main() -> None:
    """Orchestrate, or play the client role."""
    if common.play_role({"subscribers": _subscribers, "readers": _readers}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.snapshots", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a 10,000-tile guild")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", metavar="DIR", help="py-spy the hub, raw stacks into DIR")
    a = p.parse_args()
    result = (run(125, 80, 2.0, a.seed, a.profile) if a.quick
              else run(400, 250, 5.0, a.seed, a.profile))
    common.report("snapshots", render(result), result)


if __name__ == "__main__":
    main()
