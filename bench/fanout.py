"""`python -m bench.fanout`: one guild's events to 100, 1,000 and 5,000 websocket subscribers.

For each number of subscribers, three servers in turn, each in its own process:
the hub (`python -m hub serve` on MariaDB), the bare aiohttp broadcast (the ceiling)
and python-socketio's AsyncServer on aiohttp (the peer); see bench/peers.py. The
subscribers are spread over several client processes (bench/wsclient.py); a separate
uploader process posts views:

1. steady: 20 views/s for a fixed time. Delivery latency = event received by a
   subscriber - upload answered to the uploader (both `time.monotonic`, one clock for
   every process), over every (subscriber, event); also the worst subscriber's p99,
   and messages delivered per second against the 20 x N offered.
2. burst: B views as fast as the uploader gets answers; throughput = messages
   delivered / (last delivery - first post). The ratio to the bare server's is the
   one the target speaks of.

The bare server and the peer send the hub's own event frames, recorded by one hub
subscriber, so every server puts the same bytes on the wire.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.workload import GuildWorkload

GUILD = 501
RATE = 20.0


# -- role: uploader -------------------------------------------------------------

async def _uploader(args: dict[str, Any]) -> dict[str, Any]:
    import aiohttp
    import msgspec

    # Read before any socket is open: blocking here delays nobody.
    bodies = msgspec.msgpack.decode(Path(args["views"]).read_bytes(), type=list[bytes])  # noqa: ASYNC240
    headers = {"Authorization": f"Bearer {args['token']}", "Content-Type": "application/json"}
    answers: list[tuple[int, float]] = []
    errors = 0
    async with aiohttp.ClientSession() as session:

        async def post(body: bytes) -> None:
            nonlocal errors
            async with session.post(args["url"] + "/view", data=body, headers=headers) as resp:
                data = await resp.read()
                if resp.status != 200:
                    errors += 1
                    return
                answers.append((int(msgspec.json.decode(data)["seq"]), time.monotonic()))

        start = time.monotonic()
        if args["mode"] == "steady":
            interval = 1.0 / args["rate"]
            tasks = []
            for i in range(args["count"]):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post(bodies[i % len(bodies)])))
            await asyncio.gather(*tasks)
        else:
            queue = iter(range(args["count"]))

            async def worker() -> None:
                for i in queue:
                    await post(bodies[(args["offset"] + i) % len(bodies)])

            await asyncio.gather(*(worker() for _ in range(4)))
    return {"start": start, "answers": answers, "errors": errors,
            "seconds": round(time.monotonic() - start, 3)}


# -- orchestration ----------------------------------------------------------------

class Subscribers:
    """Client processes holding `total` sockets between them."""

    def __init__(self, kind: str, url: str, tokens: list[str], total: int, per_process: int,
                 record: str | None = None, timeout: float = 30) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        count = max(1, math.ceil(total / per_process))
        for i in range(count):
            n = total // count + (1 if i < total % count else 0)
            args = {"kind": kind, "url": url, "tokens": tokens, "sockets": n,
                    "offset": i * per_process, "timeout": timeout,
                    "record": record if i == 0 else None}
            self.procs.append(subprocess.Popen(
                [common.PYTHON, "-m", "bench.wsclient", "--role-args", __import__("json").dumps(args)],
                cwd=common.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, preexec_fn=common.raise_nofile))

    def wait_ready(self) -> int:
        """Block until every process has connected its sockets; returns how many did."""
        ready = 0
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().decode().split()
            if not line or line[0] != "ready":
                raise RuntimeError(f"subscriber process failed: {p.stderr.read().decode()[-2000:]}"
                                   if p.stderr else "subscriber process failed")
            ready += int(line[1])
        return ready

    def finish(self, expect: int | None) -> list[dict[str, Any]]:
        """Tell every process what to wait for, then collect their answers."""
        import json

        command = f"expect {expect}\n" if expect is not None else "stop\n"
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(command.encode())
            p.stdin.flush()
        out = []
        for p in self.procs:
            stdout, stderr = p.communicate(timeout=120)
            if p.returncode != 0:
                raise RuntimeError(f"subscriber process failed: {stderr.decode()[-2000:]}")
            out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
        return out


def _serve_peer(role: str, frames: str, tokens: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    import json
    import socket

    port = common.free_port()
    proc = subprocess.Popen([common.PYTHON, "-m", "bench.peers", "--role-args", json.dumps(
        {"role": role, "port": port, "frames": frames, "tokens": tokens})], cwd=common.ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=common.raise_nofile)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{role} server died: {proc.stderr.read().decode()[-2000:]}"
                                   if proc.stderr else "peer died") from None
            time.sleep(0.1)
    raise RuntimeError(f"{role} server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _analyse(results: list[dict[str, Any]], steady: dict[str, Any], burst: dict[str, Any],
             sockets: int, steady_seconds: float) -> dict[str, Any]:
    answered = dict(steady["answers"])
    burst_seqs = {seq for seq, _ in burst["answers"]}
    latencies: list[float] = []
    worst_p99 = 0.0
    steady_msgs = 0
    burst_msgs = 0
    last_burst = burst["start"]
    for r in results:
        for seq_text, times in r["arrivals"].items():
            seq = int(seq_text)
            if seq in answered:
                latencies += [t - answered[seq] for t in times]
                steady_msgs += len(times)
            elif seq in burst_seqs:
                burst_msgs += len(times)
                last_burst = max(last_burst, max(times))
    # Per-subscriber p99 is not separable once merged per process; the worst process's p99
    # over its own sockets bounds it from below, so report the worst per-process p99 too.
    for r in results:
        own = [t - answered[int(s)] for s, ts in r["arrivals"].items() if int(s) in answered
               for t in ts]
        if own:
            worst_p99 = max(worst_p99, common.percentile(own, 99))
    per_seq: dict[int, int] = dict.fromkeys(answered, 0)
    for r in results:
        for seq_text, times in r["arrivals"].items():
            if int(seq_text) in per_seq:
                per_seq[int(seq_text)] += len(times)
    short = {str(s): c for s, c in sorted(per_seq.items()) if c < sockets}
    closed: dict[str, int] = {}
    for r in results:
        for code, n in r["closed"].items():
            closed[code] = closed.get(code, 0) + n
    burst_seconds = max(1e-9, last_burst - burst["start"])
    offered = sockets * len(answered)
    return {
        "sockets": sum(r["sockets"] - r["failed"] for r in results),
        "failed_connects": sum(r["failed"] for r in results),
        "closed": closed,
        "steady_views": len(answered), "upload_errors": steady["errors"] + burst["errors"],
        "delivered_share": round(steady_msgs / offered, 4) if offered else 0.0,
        # Steady events some subscriber did not get (seq: subscribers that got it).
        "short_seqs": dict(list(short.items())[:10]),
        "steady_msgs_per_s": round(steady_msgs / steady_seconds),
        **{k: v for k, v in common.latency_summary(latencies).items()},
        "worst_process_p99_ms": round(worst_p99 * 1000, 2),
        "burst_views": len(burst_seqs), "burst_msgs": burst_msgs,
        "burst_msgs_per_s": round(burst_msgs / burst_seconds),
        # Uploads answered per second in the burst: when burst msgs/s is about this times
        # the sockets, the burst was bound by ingest (the database), not by the fan-out.
        "burst_views_per_s": round(len(burst_seqs) / max(1e-9, burst["seconds"]), 1),
        "client_cpu_s": round(sum(r["cpu_s"] for r in results), 1),
    }


def run(levels: list[int], steady_seconds: float, per_process: int, kinds: list[str],
        seed: int, profile: str | None = None) -> dict[str, Any]:
    """Every level, every server; returns the JSON result."""
    import msgspec

    tmp = Path(tempfile.mkdtemp(prefix="nacritan_bench_fanout_"))
    workload = GuildWorkload(seed, 8, 4, GUILD)
    steady_count = int(RATE * steady_seconds)
    views_path = tmp / "views.msgpack"
    per_member = math.ceil((steady_count + 400) / 8) + 1
    bodies = [b for turn in zip(*workload.member_views(per_member), strict=True) for b in turn]
    views_path.write_bytes(msgspec.msgpack.encode(bodies))
    out: dict[str, Any] = {}
    try:
        for n in levels:
            burst_count = max(20, min(300, 50_000 // n))
            # The hub's frames are recorded on the first level that runs the hub, and the
            # other servers send those frames at every level (peers.py renumbers a frame
            # when they run past the recording).
            frames_path = str(tmp / "frames.msgpack")
            level: dict[str, Any] = {}
            for kind in kinds:
                level[kind] = _one(kind, n, steady_count, burst_count, steady_seconds, per_process,
                                   str(views_path), frames_path, workload.names, profile)
            if "hub" in level and "bare" in level:
                level["ratio_burst"] = round(level["hub"]["burst_msgs_per_s"]
                                             / max(1, level["bare"]["burst_msgs_per_s"]), 3)
            if "hub" in level and "sio" in level:
                level["vs_sio_burst"] = round(level["hub"]["burst_msgs_per_s"]
                                              / max(1, level["sio"]["burst_msgs_per_s"]), 3)
            out[str(n)] = level
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return {"rate_views_per_s": RATE, "steady_seconds": steady_seconds,
            "per_process": per_process, "levels": out}


def _one(kind: str, n: int, steady_count: int, burst_count: int, steady_seconds: float,
         per_process: int, views: str, frames: str, names: list[str],
         profile: str | None) -> dict[str, Any]:
    tokens_for_subs = [f"t{i}" for i in range(16)]
    if kind == "hub":
        with common.fresh_databases("mysql") as (url,):
            tokens = asyncio.run(common.add_tokens(url, GUILD, [*names[:1], *names[1:2] * 15]))
            uploader, subs_tokens = tokens[0], tokens[1:]
            prof = f"{profile}/fanout-{n}.txt" if profile else None
            record = None if Path(frames).exists() else frames
            with common.HubProcess(url, profile_to=prof) as hub:
                result = _drive(kind, hub.url, n, uploader, subs_tokens, steady_count, burst_count,
                                steady_seconds, per_process, views, record, hub.rss_kib)
            if prof:
                result["profile_top"] = common.top_frames(prof)
            return result
    if not Path(frames).exists():
        raise RuntimeError("the peers send the hub's recorded frames: run the hub first")
    proc, url = _serve_peer(kind, frames, tokens_for_subs)
    try:
        return _drive(kind, url, n, "t0", tokens_for_subs, steady_count, burst_count,
                      steady_seconds, per_process, views, None,
                      lambda: common.rss_kib(proc.pid))
    finally:
        _stop(proc)


def _drive(kind: str, url: str, n: int, uploader_token: str, sub_tokens: list[str],
           steady_count: int, burst_count: int, steady_seconds: float, per_process: int,
           views: str, record: str | None, rss: Any) -> dict[str, Any]:
    rss_before = rss()
    subs = Subscribers(kind, url, sub_tokens, n, per_process, record=record)
    try:
        subs.wait_ready()
        rss_connected = rss()
        steady = common.run_role("bench.fanout", {
            "role": "uploader", "mode": "steady", "url": url, "token": uploader_token,
            "views": views, "count": steady_count, "rate": RATE, "offset": 0})
        burst = common.run_role("bench.fanout", {
            "role": "uploader", "mode": "burst", "url": url, "token": uploader_token,
            "views": views, "count": burst_count, "offset": steady_count})
        last = max([s for s, _ in burst["answers"]] or [s for s, _ in steady["answers"]] or [0])
        results = subs.finish(last)
    except BaseException:
        for p in subs.procs:
            p.kill()
        raise
    figures = _analyse(results, steady, burst, n, steady_seconds)
    figures["server_rss_mib"] = round(rss_connected / 1024, 1)
    figures["server_rss_per_socket_kib"] = round((rss_connected - rss_before) / max(1, n), 1)
    return figures


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = []
    for n, level in result["levels"].items():
        for kind in ("hub", "bare", "sio"):
            if kind not in level:
                continue
            f = level[kind]
            closed = ",".join(f"{k}x{v}" for k, v in f["closed"].items()) or "-"
            ratio = (f"{level['ratio_burst']:.0%}" if kind == "hub" and "ratio_burst" in level
                     else "")
            rows.append([n, kind, f["sockets"], f["p50_ms"], f["p99_ms"],
                         f["worst_process_p99_ms"], f"{f['delivered_share']:.1%}",
                         f["steady_msgs_per_s"], f["burst_views_per_s"], f["burst_msgs_per_s"], ratio, closed,
                         f["client_cpu_s"]])
    return common.table(
        f"fanout: one guild, {result['rate_views_per_s']:.0f} views/s for "
        f"{result['steady_seconds']} s, then a burst (ratio = hub burst msgs/s / bare)",
        ["subs", "server", "sockets", "p50 ms", "p99 ms", "worst proc p99", "delivered",
         "steady msg/s", "burst views/s", "burst msg/s", "ratio", "closed", "client cpu s"], rows) + "\n" + \
        "\n".join(common.render_profiles({f"{n} subscribers": lv["hub"]
                                          for n, lv in result["levels"].items() if "hub" in lv}))


def main() -> None:
    """Orchestrate, or play the uploader role."""
    if common.play_role({"uploader": _uploader}):
        return
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 subscribers, 3 s")
    p.add_argument("--subscribers", help="comma list (default 100,1000,5000)")
    p.add_argument("--seconds", type=float, help="steady phase length (default 10, quick 3)")
    p.add_argument("--per-process", type=int, default=500, help="sockets per client process")
    p.add_argument("--servers", default="hub,bare,sio")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", metavar="DIR", help="py-spy the hub, raw stacks into DIR")
    a = p.parse_args()
    common.raise_nofile()
    levels = [int(x) for x in (a.subscribers or ("200" if a.quick else "100,1000,5000")).split(",")]
    seconds = a.seconds or (3.0 if a.quick else 10.0)
    result = run(levels, seconds, a.per_process, a.servers.split(","), a.seed, a.profile)
    common.report("fanout", render(result), result)


if __name__ == "__main__":
    main()
