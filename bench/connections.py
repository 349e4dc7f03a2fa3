"""`python -m bench.connections`: resident memory per idle authenticated subscriber.

The hub (`python -m hub serve`, MariaDB) gets one upload (so the guild has a feed and a
state to snapshot) and one warm-up subscriber; its RSS is read; then N sockets connect
from separate client processes, authenticate, subscribe, receive their snapshot and
stay idle; after a pause the RSS is read again: (RSS after - RSS before) / N. The same
is measured on the bare aiohttp server (bench/peers.py), the floor of what aiohttp
itself keeps per websocket.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import time
from pathlib import Path
from typing import Any

import msgspec

from bench import common
from bench.fanout import GUILD, Subscribers, _serve_peer, _stop
from bench.workload import views

TARGET_KIB = 40


def _post_view(url: str, token: str) -> None:
    import urllib.request

    req = urllib.request.Request(url + "/view", data=views(1)[0], method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def _measure(kind: str, url: str, tokens: list[str], n: int, per_process: int,
             rss: Any) -> dict[str, Any]:
    warm = Subscribers(kind, url, tokens, 1, per_process)
    warm.wait_ready()
    time.sleep(1.0)
    before = rss()
    subs = Subscribers(kind, url, tokens, n, per_process)
    start = time.perf_counter()
    try:
        connected = subs.wait_ready()
        connect_s = time.perf_counter() - start
        time.sleep(2.0)  # idle: let writers park and buffers settle
        after = rss()
    finally:
        subs.finish(None)
        warm.finish(None)
    return {"sockets": connected, "rss_before_mib": round(before / 1024, 1),
            "rss_after_mib": round(after / 1024, 1),
            "kib_per_socket": round((after - before) / max(1, connected), 1),
            "connect_seconds": round(connect_s, 1)}


def run(levels: list[int], per_process: int) -> dict[str, Any]:
    """Hub and bare server at each number of sockets."""
    out: dict[str, Any] = {}
    for n in levels:
        level: dict[str, Any] = {}
        with common.fresh_databases("mysql") as (url,):
            tokens = asyncio.run(common.add_tokens(url, GUILD, [f"Membre{i}" for i in range(8)]))
            with common.HubProcess(url) as hub:
                _post_view(hub.url, tokens[0])
                level["hub"] = _measure("hub", hub.url, tokens, n, per_process, hub.rss_kib)
        import tempfile

        frames = Path(tempfile.mkstemp(prefix="nacritan_bench_frames_")[1])
        try:
            frames.write_bytes(msgspec.msgpack.encode([b'{"type":"event","seq":1}']))
            proc, peer_url = _serve_peer("bare", str(frames), ["t0"])
            try:
                level["bare"] = _measure("bare", peer_url, ["t0"], n, per_process,
                                         lambda pid=proc.pid: common.rss_kib(pid))
            finally:
                _stop(proc)
        finally:
            frames.unlink()
        out[str(n)] = level
        gc.collect()
    return {"target_kib_per_socket": TARGET_KIB, "levels": out}


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = [[n, kind, f["sockets"], f["rss_before_mib"], f["rss_after_mib"], f["kib_per_socket"],
             f["connect_seconds"]]
            for n, level in result["levels"].items() for kind, f in level.items()]
    return common.table(
        f"connections: RSS per idle authenticated subscriber (target <= "
        f"{result['target_kib_per_socket']} KiB at 10,000)",
        ["sockets", "server", "connected", "RSS before MiB", "RSS after MiB", "KiB/socket",
         "connect s"], rows)


def main() -> None:
    """Run and report."""
    common.exit_on_sigterm()
    p = argparse.ArgumentParser(prog="python -m bench.connections", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1,000 sockets only")
    p.add_argument("--sockets", help="comma list (default 1000,10000)")
    p.add_argument("--per-process", type=int, default=2500)
    a = p.parse_args()
    common.raise_nofile()
    levels = [int(x) for x in (a.sockets or ("1000" if a.quick else "1000,10000")).split(",")]
    result = run(levels, a.per_process)
    common.report("connections", render(result), result)


if __name__ == "__main__":
    main()
