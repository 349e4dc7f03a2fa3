"""`python -m bench.reads`: /minimap and /api/v1/state at radius 10 over a year of sightings.

A guild that has played for a year knows a large part of the world: the database is
seeded with the state such a year leaves behind (every explored tile, the last sighting
of every monster not yet seen gone, players, places, resources, objects), for the guild
under test and for other guilds sharing the tables. The hub (`python -m hub serve`) is
then read by a separate client process at random centres in the explored region,
radius 10 (331 tiles). The `EXPLAIN` of every query a read runs is printed.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any

import pymysql

from bench import common
from bench.workload import MONSTERS, OBJECTS, PLACES, RESOURCES, TERRAINS, WOUNDS

GUILD = 501
YEAR_MS = 365 * 86_400_000
RADIUS = 10


def _rows(guild: int, width: int, height: int, seed: int, now: int) -> dict[str, list[tuple[Any, ...]]]:
    """The state a year of a guild's sightings leaves, over a width x height region."""
    rng = random.Random(seed * 1000 + guild)
    x0, y0 = 500, 300
    members = [f"Membre{i}" for i in range(30)]

    def stamp() -> tuple[int, str]:
        return now - rng.randrange(YEAR_MS), rng.choice(members)

    out: dict[str, list[tuple[Any, ...]]] = {k: [] for k in
                                             ("tiles", "monsters", "players", "places",
                                              "resources", "objects")}
    mid = 1_000_000
    for x in range(x0, x0 + width):
        for y in range(y0, y0 + height):
            at, by = stamp()
            out["tiles"].append((guild, x, y, TERRAINS[(x // 3 + y // 3) % len(TERRAINS)], at, by))
            # Stale sightings pile up: about one monster per tile over a year.
            for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 2))):
                mid += 1
                out["monsters"].append((guild, mid, rng.choice(MONSTERS), rng.randint(1, 40),
                                        rng.choice(WOUNDS), x, y, *stamp()))
            roll = rng.random()
            if roll < 0.01:
                out["places"].append((guild, len(out["places"]) + 1, rng.choice(PLACES), 1, None,
                                      None, x, y, *stamp()))
            elif roll < 0.04:
                out["resources"].append((guild, x, y, rng.choice(RESOURCES), rng.randint(1, 9),
                                         *stamp()))
            elif roll < 0.09:
                out["objects"].append((guild, 500_000 + len(out["objects"]), rng.choice(OBJECTS),
                                       x, y, *stamp()))
            elif roll < 0.12:
                pid = 3000 + len(out["players"])
                out["players"].append((guild, pid, f"Joueur{pid}", rng.randint(1, 60),
                                       rng.choice(WOUNDS), rng.choice((guild, None, 777)), None,
                                       x, y, *stamp()))
    return out


_INSERTS = {
    "tiles": "INSERT INTO tiles (guild_id, x, y, terrain, seen_at, seen_by) VALUES ({})",
    "monsters": "INSERT INTO monsters (guild_id, id, name, level, wounds, x, y, seen_at, seen_by)"
                " VALUES ({})",
    "players": "INSERT INTO players (guild_id, id, name, level, wounds, pc_guild_id, pc_guild_name,"
               " x, y, seen_at, seen_by) VALUES ({})",
    "places": "INSERT INTO places (guild_id, id, name, level, town_id, town_name, x, y, seen_at,"
              " seen_by) VALUES ({})",
    "resources": "INSERT INTO resources (guild_id, x, y, name, level, seen_at, seen_by) VALUES ({})",
    "objects": "INSERT INTO objects (guild_id, id, name, x, y, seen_at, seen_by) VALUES ({})",
}


def seed(url: str, guilds: Sequence[int], width: int, height: int, seed_: int) -> dict[str, int]:
    """Bulk-load the year's state of every guild; returns row counts of the guild under test."""
    now = int(time.time() * 1000)
    counts: dict[str, int] = {}
    if url.startswith("sqlite"):
        from storage.sqlite import sqlite_path

        conn: Any = sqlite3.connect(sqlite_path(url))
        mark = "?"
    else:
        from storage.mysql import mysql_params

        p = mysql_params(url)
        conn = pymysql.connect(host=p["host"], port=p["port"], user=p["user"],
                               password=p["password"], database=p["db"], charset="utf8mb4")
        mark = "%s"
    try:
        cur = conn.cursor()
        for guild in guilds:
            rows = _rows(guild, width, height, seed_, now)
            for table, values in rows.items():
                sql = _INSERTS[table].format(", ".join([mark] * len(values[0])))
                for i in range(0, len(values), 5000):
                    cur.executemany(sql, values[i:i + 5000])
                if guild == guilds[0]:
                    counts[table] = len(values)
            cur.execute(f"INSERT INTO feeds (guild_id, epoch, last_seq) VALUES ({mark}, {mark}, {mark})",
                        (guild, "e" * 32, 1))
        conn.commit()
        if not url.startswith("sqlite"):
            for table in _INSERTS:
                cur.execute(f"ANALYZE TABLE {table}")
                cur.fetchall()
        else:
            cur.execute("ANALYZE")
    finally:
        conn.close()
    return counts


@asynccontextmanager
async def _recording_reads(store: Any, log: list[tuple[str, list[Any]]]) -> Any:
    inner = store.backend.read

    class Tx:
        def __init__(self, tx: Any) -> None:
            self.tx = tx

        async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
            log.append((sql, list(params)))
            return list(await self.tx.fetchall(sql, params))

        async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
            return int(await self.tx.execute(sql, params))

        async def run_batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
            log.extend((sql, list(params)) for sql, params in statements)
            return list(await self.tx.run_batch(statements))

    @asynccontextmanager
    async def read() -> Any:
        async with inner() as tx:
            yield Tx(tx)

    store.backend.read = read
    try:
        yield
    finally:
        store.backend.read = inner


async def explain(url: str, x: int, y: int) -> list[dict[str, Any]]:
    """The plan of every query `read_state` runs for one radius-10 disk."""
    from storage import open_store
    from storage.model import Area

    store = await open_store(url)
    log: list[tuple[str, list[Any]]] = []
    try:
        async with _recording_reads(store, log):
            await store.read_state(GUILD, Area(x, y, RADIUS), int(time.time() * 1000))
        plans = []
        async with store.backend.read() as tx:
            for sql, params in log:
                if url.startswith("sqlite"):
                    rows = await tx.fetchall("EXPLAIN QUERY PLAN " + sql, params)
                    plan = [str(r[-1]) for r in rows]
                else:
                    rows = await tx.fetchall("EXPLAIN " + sql, params)
                    # id, select_type, table, type, possible_keys, key, key_len, ref, rows, Extra
                    plan = [f"{r[2]}: type={r[3]} key={r[5]} key_len={r[6]} rows={r[8]} {r[9] or ''}"
                            for r in rows]
                plans.append({"sql": sql, "plan": plan})
        return plans
    finally:
        await store.close()


async def _client(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    rng = random.Random(args["seed"])
    x0, y0, w, h = args["region"]
    headers = {"Authorization": f"Bearer {args['token']}"}
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for name, path in (("minimap", "/minimap/{x}/{y}/10"),
                           ("state", "/api/v1/state?x={x}&y={y}&r=10")):
            latencies: list[float] = []
            errors = 0
            sizes = 0
            for i in range(args["requests"] + 20):
                # Centres far enough inside the region that the disk is all explored.
                x = rng.randint(x0 + 15, x0 + w - 15)
                y = rng.randint(y0 + 15, y0 + h - 15)
                start = time.perf_counter()
                async with session.get(args["url"] + path.format(x=x, y=y), headers=headers) as r:
                    body = await r.read()
                elapsed = time.perf_counter() - start
                if i < 20:
                    continue  # warm-up: connection, token cache, buffer pool
                latencies.append(elapsed)
                sizes += len(body)
                errors += r.status != 200
            out[name] = {"requests": len(latencies), "errors": errors,
                         "kib": round(sizes / len(latencies) / 1024, 1),
                         **common.latency_summary(latencies)}
    return out


def run(backends: Sequence[str], width: int, height: int, other_guilds: int, requests: int,
        seed_: int, profile: str | None = None) -> dict[str, Any]:
    """Seed, serve, read, explain, per backend."""
    results: dict[str, Any] = {}
    for backend in backends:
        with common.fresh_databases(backend) as (url,):
            start = time.perf_counter()
            counts = seed(url, [GUILD, *range(GUILD + 1, GUILD + 1 + other_guilds)], width,
                          height, seed_)
            seeded_s = time.perf_counter() - start
            token = asyncio.run(common.add_tokens(url, GUILD, ["Lecteur"]))[0]
            prof = f"{profile}/reads-{backend}.txt" if profile else None
            with common.HubProcess(url, profile_to=prof) as hub:
                figures = common.run_role("bench.reads", {
                    "role": "client", "url": hub.url, "token": token, "seed": seed_,
                    "region": [500, 300, width, height], "requests": requests})
            plans = asyncio.run(explain(url, 500 + width // 2, 300 + height // 2))
        results[backend] = {"rows": counts, "guilds": 1 + other_guilds,
                            "seed_seconds": round(seeded_s, 1), **figures, "explain": plans}
        if prof:
            results[backend]["profile_top"] = common.top_frames(prof)
    return {"radius": RADIUS, "tiles_per_read": 331, "target_p99_ms": 20, "backends": results}


def render(result: dict[str, Any]) -> str:
    """The human table and the plans."""
    rows = []
    for backend, r in result["backends"].items():
        for name in ("minimap", "state"):
            f = r[name]
            rows.append([backend, name, f["requests"], f["kib"], f["p50_ms"], f["p95_ms"],
                         f["p99_ms"], f["max_ms"], f["errors"]])
    first = next(iter(result["backends"].values()))
    text = [common.table(
        f"reads: radius {result['radius']} ({result['tiles_per_read']} tiles), a year of sightings "
        f"({', '.join(f'{k} {v:,}' for k, v in first['rows'].items())} in the guild, "
        f"{first['guilds']} guilds), target p99 <= {result['target_p99_ms']} ms",
        ["db", "route", "requests", "KiB", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"], rows)]
    for backend, r in result["backends"].items():
        text.append(f"\nEXPLAIN ({backend}) of the queries behind both routes:")
        for p in r["explain"]:
            text.append("  " + p["sql"][:110] + ("..." if len(p["sql"]) > 110 else ""))
            text += ["      " + line for line in p["plan"]]
    text += common.render_profiles(result["backends"])
    return "\n".join(text)




def main() -> None:
    """Orchestrate, or play the client role."""
    if common.play_role({"client": _client}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller world and fewer requests")
    p.add_argument("--backends", default="mysql,sqlite")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", metavar="DIR", help="py-spy the hub, raw stacks into DIR")
    a = p.parse_args()
    if a.quick:
        result = run(a.backends.split(","), 120, 80, 1, 100, a.seed, a.profile)
    else:
        result = run(a.backends.split(","), 400, 250, 2, 1000, a.seed, a.profile)
    common.report("reads", render(result), result)


if __name__ == "__main__":
    main()
