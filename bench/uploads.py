"""`python -m bench.uploads`: what each kind of upload costs the hub, per upload.

`bench.ingest` measures views against a bare ceiling; this one puts the three upload
kinds side by side on the same hub: `POST /view` (a 61-tile view), `POST /pc/<id>` (a
profile page) and `POST /gdc` (a hunting group of six), from a separate client process
at concurrency 1 and 8, for a fixed duration each. For each it reports uploads/s,
latency and the hub's CPU per upload, split as in `bench.ingest` (the event loop's user
time is Python; its system time is the sockets; other threads are the database driver's).
CPU per upload is the figure to compare between two versions of the hub: on a shared
machine it moves much less than throughput or latency.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from bench import common
from bench.workload import GuildWorkload

GUILD = 502
MEMBERS = 32
KINDS = ("view", "profile", "group")
GROUP_SIZE = 6


def _profile(member: int, turn: int) -> dict[str, Any]:
    # The uploader's own page: hit points and position change from one turn to the next.
    return {
        "id": 3000 + member, "name": f"Member{member}", "race": "Doran", "level": 12,
        "img": "pics/avatars/doran_1.png", "dla": "2026-06-01 18:49:00", "pas": 4, "pos": 3,
        "xp": 200 + turn, "xpMax": 700, "x": 400 + (member + turn) % 40, "y": 440 + turn % 20,
        "caracs": {"pv": 40 + (member * 7 + turn) % 80, "pvMax": 129, "attM": 28, "defM": 31,
                   "degM": 14, "arm": 9, "mmM": 23, "pc": 2},
    }


def _group(member: int, turn: int) -> list[dict[str, Any]]:
    # The uploader's hunting group: the next few members, as they stand this turn.
    return [{"id": 3000 + (member + k) % MEMBERS, "name": f"Member{(member + k) % MEMBERS}",
             "race": "Humain", "level": 10 + k, "pc": 80 + (turn + k) % 15,
             "x": 500 + (member + k + turn) % 30, "y": 440 + k}
            for k in range(1, GROUP_SIZE + 1)]


def uploads(kind: str, per_member: int, seed: int) -> list[list[tuple[str, bytes]]]:
    """(path, body) of each member's uploads of this kind, in order."""
    if kind == "view":
        views = GuildWorkload(seed, MEMBERS, 4, GUILD).member_views(per_member)
        return [[("/view", body) for body in mine] for mine in views]
    encode = msgspec.json.encode
    if kind == "profile":
        return [[(f"/pc/{3000 + m}", encode(_profile(m, t))) for t in range(per_member)]
                for m in range(MEMBERS)]
    return [[("/gdc", encode(_group(m, t))) for t in range(per_member)] for m in range(MEMBERS)]


async def _client(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    work = uploads(args["kind"], args["per_member"], args["seed"])
    concurrency = args["concurrency"]
    headers = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"}
               for t in args["tokens"]]
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def warm(members: Sequence[int]) -> None:
            # Connections and the hub's token cache are made before the clock starts.
            for member in members:
                async with session.get(args["url"] + "/gdc", headers=headers[member]) as resp:
                    await resp.read()

        mine = [list(range(w, MEMBERS, concurrency)) for w in range(concurrency)]
        await asyncio.gather(*(warm(members) for members in mine))
        cpu_before = common.thread_cpu_s(args["hub_pid"])
        deadline = time.perf_counter() + args["duration"]

        async def worker(members: list[int]) -> None:
            nonlocal errors
            turn = 0
            while time.perf_counter() < deadline:
                member = members[turn % len(members)]
                path, body = work[member][(turn // len(members)) % len(work[member])]
                turn += 1
                start = time.perf_counter()
                async with session.post(args["url"] + path, data=body,
                                        headers=headers[member]) as resp:
                    await resp.read()
                    errors += resp.status != 200
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker(members) for members in mine))
        elapsed = time.perf_counter() - start
    done = len(latencies) - errors
    return {"uploads": done, "errors": errors, "seconds": round(elapsed, 3),
            "uploads_per_s": round(done / elapsed, 1), **common.latency_summary(latencies),
            "cpu_ms_per_upload": common.cpu_ms_per_unit(args["hub_pid"], cpu_before, done)}


def run(backends: Sequence[str], levels: Sequence[int], duration: float,
        seed: int) -> dict[str, Any]:
    """Every kind at every concurrency on every backend; returns the JSON result."""
    per_member = max(8, int(600 * duration / MEMBERS))
    names = [f"Member{m}" for m in range(MEMBERS)]
    results: dict[str, Any] = {}
    for backend in backends:
        with common.fresh_databases(backend) as (db,):
            tokens = asyncio.run(common.add_tokens(db, GUILD, names))
            per_kind: dict[str, Any] = {}
            with common.HubProcess(db) as hub:
                assert hub.proc is not None
                for kind in KINDS:
                    per_kind[kind] = {str(c): common.run_role("bench.uploads", {
                        "role": "client", "url": hub.url, "tokens": tokens, "kind": kind,
                        "concurrency": c, "duration": duration, "per_member": per_member,
                        "seed": seed, "hub_pid": hub.proc.pid}) for c in levels}
            results[backend] = per_kind
    return {"members": MEMBERS, "group_size": GROUP_SIZE, "duration_s": duration,
            "seed": seed, "backends": results}


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = []
    for backend, kinds in result["backends"].items():
        for kind, levels in kinds.items():
            for c, f in levels.items():
                cpu = f["cpu_ms_per_upload"]
                rows.append([backend, kind, c, f["uploads_per_s"], f["p50_ms"], f["p99_ms"],
                             cpu["loop_user"], cpu["loop_system"], cpu["other_threads"],
                             f["errors"]])
    return common.table(
        f"uploads by kind, {result['duration_s']} s per level",
        ["backend", "kind", "c", "uploads/s", "p50 ms", "p99 ms", "CPU loop user ms",
         "loop sys ms", "other threads ms", "errors"], rows)


def main() -> None:
    """Orchestrate, or play the client role."""
    if common.play_role({"client": _client}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.uploads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short levels, for CI")
    p.add_argument("--duration", type=float, help="seconds per level (default 6, quick 1.5)")
    p.add_argument("--concurrency", default="1,8", help="comma list (default 1,8)")
    p.add_argument("--backends", default="mysql,sqlite")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    duration = a.duration or (1.5 if a.quick else 6.0)
    result = run(a.backends.split(","), [int(c) for c in a.concurrency.split(",")], duration,
                 a.seed)
    common.report("uploads", render(result), result)


if __name__ == "__main__":
    main()
