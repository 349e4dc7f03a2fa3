"""`python -m bench.ingest`: POST /view throughput and latency against the database's ceiling.

The hub runs as `python -m hub serve`; a separate client process posts pre-generated
views (seeded walk of a 32-member guild, radius 4) at concurrency 1, 8 and 32 for a
fixed duration. In the same run, a third process measures, on fresh databases of its
own, with the same views at the same concurrency and the same pool size:

- `store`: `Store.apply_view` called directly with pre-decoded tiles (no HTTP, no
  parsing), recording every statement of every committed transaction;
- `ceiling`: those recorded transactions (same statements, same rows, in commit
  order, in the same round trips: two batches on MariaDB, one trip to a thread per
  transaction on SQLite) replayed with bare aiomysql (for SQLite, stdlib sqlite3 in a
  one-thread executor): no HTTP, no parsing, no merge. This is the "bare aiomysql script
  applying the exact same transactions": replaying captured statements (instead of
  calling the Store) keeps the Store's own Python out of the ceiling, so the ratio
  charges the hub for all of it.

Every side opens its connections (and the hub fills its token cache) before the clock
starts. The ratio hub / ceiling is reported per concurrency; the parse cost alone is
measured too.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from bench import common, parse
from bench.workload import GuildWorkload

log = logging.getLogger(__name__)

GUILD = 501
MEMBERS = 32
POOL_SIZE = 10  # the hub's MySQLBackend.open default


def _views_file(path: Path, seed: int, radius: int, per_member: int) -> None:
    views = GuildWorkload(seed, MEMBERS, radius, GUILD).member_views(per_member)
    path.write_bytes(msgspec.msgpack.encode(views))


def _load_views(path: str) -> list[list[bytes]]:
    return msgspec.msgpack.decode(Path(path).read_bytes(), type=list[list[bytes]])


def _worker_queues(views: list[list[bytes]], concurrency: int) -> list[list[tuple[int, bytes]]]:
    """Worker w uploads for members w, w+c, ...: each member's views stay in walking order."""
    queues: list[list[tuple[int, bytes]]] = [[] for _ in range(concurrency)]
    for w in range(concurrency):
        mine = [m for m in range(len(views)) if m % concurrency == w]
        for turn in range(len(views[0])):
            queues[w] += [(m, views[m][turn]) for m in mine]
    return queues


async def _run_workers(queues: list[list[tuple[int, bytes]]], duration: float,
                       one: Callable[[int, bytes], Awaitable[bool]]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(queue: list[tuple[int, bytes]]) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < deadline:
            member, body = queue[i % len(queue)]
            i += 1
            start = time.perf_counter()
            ok = await one(member, body)
            latencies.append(time.perf_counter() - start)
            errors += not ok

    start = time.perf_counter()
    await asyncio.gather(*(worker(q) for q in queues))
    elapsed = time.perf_counter() - start
    done = len(latencies) - errors
    return {"views": done, "errors": errors, "seconds": round(elapsed, 3),
            "views_per_s": round(done / elapsed, 1), **common.latency_summary(latencies)}


# -- role: HTTP client ----------------------------------------------------------

async def _client(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    views = _load_views(args["views"])
    queues = _worker_queues(views, args["concurrency"])
    headers = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"}
               for t in args["tokens"]]
    url = args["url"] + "/view"
    connector = aiohttp.TCPConnector(limit=args["concurrency"])
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(member: int, body: bytes) -> bool:
            async with session.post(url, data=body, headers=headers[member]) as resp:
                await resp.read()
                return resp.status == 200

        async def warm(members: list[int]) -> None:
            for member in members:
                async with session.get(args["url"] + "/gdc", headers=headers[member]) as resp:
                    await resp.read()

        # Unmeasured and read-only (the database stays as the ceiling's copy of it): the
        # client's connections, the hub's pool connections and its token cache are made
        # before the clock starts, as the ceiling's are (see `_open_connections`).
        await asyncio.gather(*(warm(sorted({m for m, _ in q})) for q in queues))
        # The hub's CPU is read here, after the warm-up, so that it is not charged to views.
        cpu_before = common.thread_cpu_s(args["hub_pid"])
        result = await _run_workers(queues, args["duration"], one)
        result["cpu_ms_per_view"] = common.cpu_ms_per_unit(args["hub_pid"], cpu_before,
                                                           result["views"])
        return result


# -- role: Store direct, then bare replay --------------------------------------

# A recorded round trip: one statement (rows fetched or not), or a batch of statements
# sent together (Tx.run_batch), each with its parameters.
Op = tuple[str, list[tuple[str, list[Any]]]]


class _RecordingTx:
    def __init__(self, tx: Any, log: list[Op]) -> None:
        self._tx = tx
        self._log = log

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._log.append(("execute", [(sql, list(params))]))
        return int(await self._tx.execute(sql, params))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._log.append(("fetch", [(sql, list(params))]))
        return list(await self._tx.fetchall(sql, params))

    async def run_batch(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        self._log.append(("batch", [(sql, list(params)) for sql, params in statements]))
        return list(await self._tx.run_batch(statements))


class _RecordingBackend:
    """The real backend; each committed transaction's statements are kept, in commit order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.committed: list[list[Op]] = []

    async def write(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        attempt_log: list[list[Op]] = []

        async def recorded(tx: Any) -> Any:
            log: list[Op] = []
            attempt_log[:] = [log]  # a retried attempt replaces the rolled-back one
            return await work(_RecordingTx(tx, log))

        result = await self.inner.write(recorded)
        self.committed.append(attempt_log[0])
        return result

    async def read_then_write(self, reads: Sequence[tuple[str, Sequence[Any]]],
                              plan: Callable[[Any], Any]) -> Any:
        attempt_log: list[Op] = []

        def recorded(rows: Any) -> Any:
            writes, result = plan(rows)
            # A retried attempt replaces the rolled-back one.
            attempt_log[:] = [("batch", [(sql, list(p)) for sql, p in reads]),
                              ("batch", [(sql, list(p)) for sql, p in writes])]
            return writes, result

        result = await self.inner.read_then_write(reads, recorded)
        self.committed.append(list(attempt_log))
        return result

    def read(self) -> Any:
        return self.inner.read()

    async def close(self) -> None:
        await self.inner.close()


async def _store_direct(db: str, views: list[list[bytes]], tokens: list[str], concurrency: int,
                        duration: float, radius: int) -> tuple[dict[str, Any], list[Any]]:
    from parsers import decode_view
    from storage import Store, StoreError, open_store
    from storage.tokens import hash_token

    store = await open_store(db)
    recorder = _RecordingBackend(store.backend)
    recording = Store(recorder)
    # Concurrent lookups: they also open the pool's connections before the clock starts.
    members = await asyncio.gather(*(store.find_member_by_hash(hash_token(t)) for t in tokens))
    decoded = {body: decode_view(body, max_tiles=400, max_entities=4000)
               for per in views for body in per}
    queues = _worker_queues(views, concurrency)

    async def one(member: int, body: bytes) -> bool:
        m = members[member]
        assert m is not None
        try:
            await recording.apply_view(m, decoded[body], body, int(time.time() * 1000))
        except StoreError as exc:  # what the hub would answer 503 to: counted, not fatal
            log.warning("store-direct upload failed: %s", exc)
            return False
        return True

    try:
        result = await _run_workers(queues, duration, one)
    finally:
        await store.close()
    return result, recorder.committed


async def _open_connections(pool: Any, count: int) -> None:
    """Open `count` of the pool's connections now, not inside the measured window."""
    conns = await asyncio.gather(*(pool.acquire() for _ in range(min(count, pool.maxsize))))
    for conn in conns:
        pool.release(conn)


async def _replay_mysql(db: str, txs: list[Any], concurrency: int) -> dict[str, Any]:
    import aiomysql
    from pymysql.constants import CLIENT

    from storage.mysql import mysql_params

    pool = await aiomysql.create_pool(
        minsize=0, maxsize=POOL_SIZE, autocommit=True, charset="utf8mb4",
        init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        client_flag=CLIENT.MULTI_STATEMENTS, **mysql_params(db))
    await _open_connections(pool, concurrency)
    pending = iter(txs)
    latencies: list[float] = []

    async def worker() -> None:
        for statements in pending:
            start = time.perf_counter()
            async with pool.acquire() as conn:
                await conn.begin()
                async with conn.cursor() as cur:
                    for _, batch in statements:
                        # A batch is one multi-statement query, as storage/mysql.py sends it.
                        await cur.execute(";\n".join(cur.mogrify(sql, params or None)
                                                      for sql, params in batch))
                        await cur.fetchall()
                        for _ in batch[1:]:
                            await cur.nextset()
                            await cur.fetchall()
                await conn.commit()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    pool.close()
    await pool.wait_closed()
    return {"views": len(latencies), "errors": 0, "seconds": round(elapsed, 3),
            "views_per_s": round(len(latencies) / elapsed, 1),
            **common.latency_summary(latencies)}


def _replay_transaction(conn: Any, statements: list[Op]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for _, batch in statements:
        for sql, params in batch:
            conn.execute(sql, params).fetchall()
    conn.execute("COMMIT")


async def _replay_sqlite(db: str, txs: list[Any], concurrency: int) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from storage.sqlite import sqlite_path

    # The bare way to keep SQLite off the loop: one thread that owns the connection.
    thread = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    conn = await loop.run_in_executor(thread, lambda: sqlite3.connect(
        sqlite_path(db), isolation_level=None, check_same_thread=False))
    await loop.run_in_executor(thread, conn.execute, "PRAGMA journal_mode=WAL")
    await loop.run_in_executor(thread, conn.execute, "PRAGMA synchronous=NORMAL")
    lock = asyncio.Lock()
    pending = iter(txs)
    latencies: list[float] = []

    async def worker() -> None:
        for statements in pending:
            start = time.perf_counter()
            async with lock:  # SQLite has one writer, as in the hub
                # The whole transaction is one trip to the thread, as
                # SQLiteBackend.read_then_write sends a view's.
                await loop.run_in_executor(thread, _replay_transaction, conn, statements)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await loop.run_in_executor(thread, conn.close)
    thread.shutdown()
    return {"views": len(latencies), "errors": 0, "seconds": round(elapsed, 3),
            "views_per_s": round(len(latencies) / elapsed, 1),
            **common.latency_summary(latencies)}


async def _ceiling(args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level in args["levels"]:
        c = level["concurrency"]
        views = _load_views(level["views"])
        direct, txs = await _store_direct(args["store_db"], views, args["tokens"], c,
                                          args["duration"], args["radius"])
        replay = (_replay_mysql if args["backend"] == "mysql" else _replay_sqlite)
        out[str(c)] = {"store": direct, "ceiling": await replay(args["replay_db"], txs, c)}
        if args["backend"] == "sqlite":
            out[str(c)]["sqlite_gil"] = await _sqlite_gil_share(txs)
    return out


def _replay_alone(url: str, txs: list[Any]) -> float:
    """The transactions with plain sqlite3 on this thread; returns the seconds taken."""
    from storage.sqlite import sqlite_path

    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        start = time.perf_counter()
        for statements in txs:
            _replay_transaction(conn, statements)
        return time.perf_counter() - start
    finally:
        conn.close()


async def _sqlite_gil_share(txs: list[Any]) -> dict[str, Any]:
    """How much of SQLite's work, through Python's sqlite3, holds the GIL.

    The same transactions replayed by one thread, then by two threads at once on two
    files of their own: if SQLite ran without the GIL, two threads on two cores would
    do twice the work in the same time. With a share g of the work holding it, they
    do 1/g times the work of one (for g >= 1/2).
    """
    from storage import migrate

    with tempfile.TemporaryDirectory(prefix="nacritan_bench_gil_") as tmp:
        urls = [f"sqlite:///{tmp}/{i}.db" for i in range(3)]
        for url in urls:
            await migrate(url)
        alone = await asyncio.to_thread(_replay_alone, urls[0], txs)
        start = time.perf_counter()
        await asyncio.gather(*(asyncio.to_thread(_replay_alone, url, txs) for url in urls[1:]))
        both = time.perf_counter() - start
    speedup = 2 * alone / both
    return {"one_thread_tx_per_s": round(len(txs) / alone, 1),
            "two_threads_tx_per_s": round(2 * len(txs) / both, 1),
            "sql_ms_per_tx": round(1000 * alone / len(txs), 3),
            "gil_share": round(min(1.0, 1 / speedup), 2)}


# -- orchestrator --------------------------------------------------------------

def _gil_bound(figures: dict[str, Any]) -> dict[str, Any]:
    """How many views/s one CPython process can reach, given what holds its GIL per view.

    `views_per_s` (generous, any hub): the loop thread's Python (HTTP, auth, parsing:
    `loop_user`, measured on the hub) plus the GIL-holding share of the SQL (measured by
    `_sqlite_gil_share`), merge left out. `with_merge` (this hub): the driver thread's
    CPU per view (user and system, as the SQL's share is of wall time) less the SQL's
    GIL-free share, so the merge and that thread's own Python count too.
    `python_budget_at_70_ms`: the Python per view (loop and merge) a hub could afford
    at 70% of the ceiling, against `python_spent_ms`.
    """
    gil = figures["sqlite_gil"]
    cpu = figures["hub"]["cpu_ms_per_view"]
    ceiling = figures["ceiling"]["views_per_s"]
    sql_held_ms = gil["gil_share"] * gil["sql_ms_per_tx"]
    held_ms = cpu["loop_user"] + sql_held_ms
    sql_free_ms = (1 - gil["gil_share"]) * gil["sql_ms_per_tx"]
    held_with_merge_ms = cpu["loop_user"] + max(cpu["other_threads"] - sql_free_ms, sql_held_ms)
    views_per_s = 1000 / held_ms
    with_merge = 1000 / held_with_merge_ms
    return {"gil_held_ms_per_view": round(held_ms, 3), "views_per_s": round(views_per_s, 1),
            "of_ceiling": round(views_per_s / ceiling, 3),
            "with_merge": {"gil_held_ms_per_view": round(held_with_merge_ms, 3),
                           "views_per_s": round(with_merge, 1),
                           "of_ceiling": round(with_merge / ceiling, 3)},
            "python_budget_at_70_ms": round(1000 / (0.7 * ceiling) - sql_held_ms, 3),
            "python_spent_ms": round(held_with_merge_ms - sql_held_ms, 3)}


def _median_round(rounds: list[dict[str, Any]], ratio_of: str) -> dict[str, Any]:
    """The round whose hub / ceiling ratio is the median one (figures stay consistent)."""
    ranked = sorted(rounds, key=lambda r: r["hub"]["views_per_s"] / r[ratio_of]["views_per_s"])
    return ranked[len(ranked) // 2]


def run(backends: Sequence[str], levels: Sequence[int], duration: float, radius: int,
        seed: int, parse_seconds: float, profile: str | None = None,
        rounds: int = 1) -> dict[str, Any]:
    """Measure every backend at every concurrency; returns the JSON result.

    Each level runs `rounds` times, hub then ceiling back to back, so that a burst of
    load from elsewhere on the machine hits one pair rather than one side; the pair
    with the median ratio is reported (every round's figures are in `rounds`).
    """
    tmp = Path(tempfile.mkdtemp(prefix="nacritan_bench_views_"))
    # Enough turns that no worker runs out at ~1,500 views/s; it wraps around if it does.
    per_member = max(8, int(1500 * duration / MEMBERS))
    files: dict[tuple[int, int], str] = {}
    for i, c in enumerate(levels):
        for r in range(rounds):
            path = tmp / f"views-{c}-{r}.msgpack"
            _views_file(path, seed + 100 * i + r, radius, per_member)
            files[(c, r)] = str(path)
    names = GuildWorkload(seed, MEMBERS, radius, GUILD).names
    results: dict[str, Any] = {}
    try:
        for backend in backends:
            with common.fresh_databases(backend, backend, backend) as (hub_db, store_db, replay_db):
                hub_tokens = asyncio.run(common.add_tokens(hub_db, GUILD, names))
                store_tokens = asyncio.run(common.add_tokens(store_db, GUILD, names))
                per_level: dict[str, Any] = {}
                prof = f"{profile}/ingest-{backend}.txt" if profile else None
                with common.HubProcess(hub_db, profile_to=prof) as hub:
                    for c in levels:
                        pairs = []
                        for r in range(rounds):
                            views = files[(c, r)]
                            assert hub.proc is not None
                            figures = {"hub": common.run_role("bench.ingest", {
                                "role": "client", "url": hub.url, "tokens": hub_tokens,
                                "concurrency": c, "views": views, "duration": duration,
                                "hub_pid": hub.proc.pid})}
                            figures.update(common.run_role("bench.ingest", {
                                "role": "ceiling", "backend": backend, "store_db": store_db,
                                "replay_db": replay_db, "tokens": store_tokens,
                                "levels": [{"concurrency": c, "views": views}],
                                "duration": duration, "radius": radius})[str(c)])
                            pairs.append(figures)
                        chosen = dict(_median_round(pairs, "ceiling"))
                        hub_rate = chosen["hub"]["views_per_s"]
                        chosen["ratio"] = round(hub_rate / chosen["ceiling"]["views_per_s"], 3)
                        chosen["ratio_store"] = round(hub_rate / chosen["store"]["views_per_s"], 3)
                        if "sqlite_gil" in chosen:
                            chosen["gil_bound"] = _gil_bound(chosen)
                        chosen["round_ratios"] = [
                            round(f["hub"]["views_per_s"] / f["ceiling"]["views_per_s"], 3)
                            for f in pairs]
                        per_level[str(c)] = chosen
                results[backend] = per_level
                if prof:
                    results[backend]["profile_top"] = common.top_frames(prof)
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    parsing = parse.measure(seconds=parse_seconds, radii=(radius,), pretty=(False,))
    return {"radius": radius, "members": MEMBERS, "duration_s": duration, "rounds": rounds,
            "seed": seed, "backends": results, "parse": parsing}


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = []
    for backend, levels in result["backends"].items():
        for c, f in levels.items():
            if c == "profile_top":
                continue
            for who in ("hub", "store", "ceiling"):
                r = f[who]
                rows.append([backend, c, who, r["views_per_s"], r["p50_ms"], r["p95_ms"],
                             r["p99_ms"], r["errors"],
                             (f"{f['ratio']:.0%} (" + ", ".join(f"{x:.0%}" for x in f.get("round_ratios", [])) + ")") if who == "hub" else ""])
    text = common.table(
        f"ingest: POST /view, radius {result['radius']}, {result['members']} members walking, "
        f"{result['duration_s']} s per level, median of {result['rounds']} hub/ceiling pairs "
        "(ratio = hub / bare ceiling)",
        ["db", "conc", "who", "views/s", "p50 ms", "p95 ms", "p99 ms", "errors", "ratio"], rows)
    cpu = ["", "hub CPU per view, ms (the event loop thread's user time is Python "
           "holding the GIL):"]
    for backend, levels in result["backends"].items():
        for c, f in levels.items():
            if c == "profile_top":
                continue
            t = f["hub"]["cpu_ms_per_view"]
            cpu.append(f"  {backend:>6} c={c:<3} loop user {t['loop_user']:.3f}  "
                       f"loop system {t['loop_system']:.3f}  other threads {t['other_threads']:.3f}")
            if "gil_bound" in f:
                g, b = f["sqlite_gil"], f["gil_bound"]
                cpu.append(
                    f"  {'':>6} {'':<5} SQLite's work holds the GIL {g['gil_share']:.0%} of its "
                    f"{g['sql_ms_per_tx']:.3f} ms/view (one thread {g['one_thread_tx_per_s']:,.0f}"
                    f" tx/s, two on two files {g['two_threads_tx_per_s']:,.0f})")
                cpu.append(
                    f"  {'':>6} {'':<5} GIL bound, loop + SQL (any one-process hub): "
                    f"{b['views_per_s']:,.0f} views/s = {b['of_ceiling']:.0%} of the ceiling; "
                    f"with this hub's merge: {b['with_merge']['views_per_s']:,.0f} = "
                    f"{b['with_merge']['of_ceiling']:.0%}")
                cpu.append(
                    f"  {'':>6} {'':<5} 70% of the ceiling leaves {b['python_budget_at_70_ms']:.3f}"
                    f" ms of Python per view (loop and merge); this hub spends "
                    f"{b['python_spent_ms']:.3f}")
    profiles = common.render_profiles(result["backends"])
    return "\n".join([text, *cpu, "", parse.render(result["parse"]), *profiles])


def main() -> None:
    """Orchestrate, or play one role."""
    if common.play_role({"client": _client, "ceiling": _ceiling}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short levels, for CI")
    p.add_argument("--duration", type=float, help="seconds per level (default 6, quick 2)")
    p.add_argument("--concurrency", default=None, help="comma list (default 1,8,32; quick 1,8)")
    p.add_argument("--backends", default="mysql,sqlite")
    p.add_argument("--radius", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", metavar="DIR", help="py-spy the hub, raw stacks into DIR")
    p.add_argument("--rounds", type=int, help="hub/ceiling pairs per level (default 3, quick 1)")
    a = p.parse_args()
    duration = a.duration or (2.0 if a.quick else 6.0)
    levels = [int(c) for c in (a.concurrency or ("1,8" if a.quick else "1,8,32")).split(",")]
    result = run(a.backends.split(","), levels, duration, a.radius, a.seed,
                 parse_seconds=0.5 if a.quick else 3.0, profile=a.profile,
                 rounds=a.rounds or (1 if a.quick else 3))
    common.report("ingest", render(result), result)


if __name__ == "__main__":
    main()
