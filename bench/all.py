"""`python -m bench.all [--quick]`: every benchmark in turn, then a summary against the targets.

Each benchmark runs as its own process (`python -m bench.<name>`), prints its table
and JSON line as it goes, and this prints a last summary table and JSON line. With
`--quick` (what CI runs) every benchmark is cut down to finish in under five
minutes in all; the figures are then only a smoke signal, not the README's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import common

BENCHMARKS = ("parse", "ingest", "uploads", "reads", "fanout", "connections", "mixed", "capacity", "heap",
              "page")
# Cut-down arguments for --quick, sized so the whole run stays below 5 minutes even
# on a busy 2-core machine (about 70 s when idle, plus 45-60 s for capacity and 30 s for
# the page in headless Chromium).
QUICK_ARGS: dict[str, list[str]] = {
    "parse": ["--quick"],
    "ingest": ["--quick", "--duration", "1.5"],
    "uploads": ["--quick", "--duration", "1"],
    "reads": ["--quick"],
    "fanout": ["--quick", "--subscribers", "100", "--seconds", "2"],
    "connections": ["--quick", "--sockets", "500"],
    "mixed": ["--quick", "--subscribers", "100", "--seconds", "6"],
    "capacity": ["--quick"],
    "heap": ["--quick"],
    "page": ["--quick"],
}
# --quick shares this many seconds between the benchmarks still to run, in proportion
# to their usual share; one that overruns its slice is stopped (SIGTERM: it drops its
# databases and stops its servers) and reported, which does not fail the run.
QUICK_BUDGET = 300.0
QUICK_WEIGHTS = {"parse": 7, "ingest": 27, "uploads": 20, "reads": 6, "fanout": 15, "connections": 9, "mixed": 8,
                 "capacity": 30, "heap": 8, "page": 15}


def _run(name: str, extra: list[str],
         timeout: float | None) -> tuple[dict[str, Any] | None, float, str]:
    """Run one benchmark; returns its JSON line (or None), seconds, and "ok"/"timeout"/"failed"."""
    start = time.perf_counter()
    proc = subprocess.Popen([common.PYTHON, "-m", f"bench.{name}", *extra], cwd=common.ROOT,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"bench.{name}: still running after {timeout:.0f} s, stopping it", file=sys.stderr)
        _stop_group(proc)
        reader.join(5)
        return None, time.perf_counter() - start, "timeout"
    reader.join(5)
    result = next((json.loads(line) for line in reversed(lines) if line.startswith("{")), None)
    if proc.returncode != 0 or result is None:
        print(f"bench.{name}: exit code {proc.returncode}", file=sys.stderr)
        return None, time.perf_counter() - start, "failed"
    return result, time.perf_counter() - start, "ok"


def _pump(stream: Any, lines: list[str]) -> None:
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    # The benchmark and everything it started (hub, clients) share its session.
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def summary(results: dict[str, Any]) -> list[list[Any]]:
    """One row per performance target: measured, target, met."""
    rows: list[list[Any]] = []
    ingest = results.get("ingest")
    if ingest:
        for backend, levels in ingest["backends"].items():
            counts = [c for c in levels if c.isdigit()]
            level = levels.get("8") or levels[max(counts, key=int)]
            rows.append([f"ingest {backend} c=8 vs bare ceiling", f"{level['ratio']:.0%}", ">= 70%",
                         level["ratio"] >= 0.7])
            if "gil_bound" in level:
                # The 70% target is missed by a margin the GIL explains (docs/performance.md,
                # Performance): the proposed target is a share of that bound instead.
                bound = level["gil_bound"]
                share = level["hub"]["views_per_s"] / bound["views_per_s"]
                rows.append([f"ingest {backend} c=8 GIL bound vs bare ceiling",
                             f"{bound['of_ceiling']:.0%}", "(bound)", "-"])
                rows.append([f"ingest {backend} c=8 GIL bound with merge vs ceiling",
                             f"{bound['with_merge']['of_ceiling']:.0%}", "(bound)", "-"])
                rows.append([f"ingest {backend} c=8 Python/view: 70% budget vs spent",
                             f"{bound['python_budget_at_70_ms']:.2f} vs "
                             f"{bound['python_spent_ms']:.2f} ms", "(diagnostic)", "-"])
                rows.append([f"ingest {backend} c=8 vs GIL bound", f"{share:.0%}",
                             ">= 55% (proposed)", share >= 0.55])
            if backend == "mysql":
                rows.append(["ingest mysql c=8 p99", f"{level['hub']['p99_ms']} ms", "<= 50 ms",
                             level["hub"]["p99_ms"] <= 50])
    parse = results.get("parse") or (ingest or {}).get("parse")
    if parse:
        r4 = parse["inputs"]["r4"]["views_per_s"]
        rows.append(["parse r4 views/s (one core)", f"{r4:,}", ">= 20,000", r4 >= 20_000])
    fanout = results.get("fanout")
    if fanout:
        for n, level in fanout["levels"].items():
            hub = level["hub"]
            # The targets are set at 1,000 subscribers (quick runs check them at
            # fewer); beyond, the figures say what one replica can carry.
            targeted = int(n) <= 1000
            rows.append([f"fanout {n} subs p99", f"{hub['p99_ms']} ms",
                         "<= 100 ms" if targeted else "(capacity)",
                         hub["p99_ms"] <= 100 if targeted else "-"])
            if "bare" in level:
                share = hub["steady_msgs_per_s"] / max(1, level["bare"]["steady_msgs_per_s"])
                rows.append([f"fanout {n} subs msg/s vs bare (20 views/s)", f"{share:.0%}",
                             ">= 80%" if targeted else "(capacity)",
                             share >= 0.8 if targeted else "-"])
                rows.append([f"fanout {n} subs burst msg/s vs bare", f"{level['ratio_burst']:.0%}",
                             "(capacity)", "-"])
            if "sio" in level:
                rows.append([f"fanout {n} subs p99 vs socketio", f"{hub['p99_ms']} vs "
                             f"{level['sio']['p99_ms']} ms", "faster",
                             hub["p99_ms"] < level["sio"]["p99_ms"]])
    conns = results.get("connections")
    if conns:
        for n, level in conns["levels"].items():
            kib = level["hub"]["kib_per_socket"]
            rows.append([f"memory per idle subscriber at {int(n):,}", f"{kib} KiB", "<= 40 KiB",
                         kib <= 40])
    uploads = results.get("uploads")
    if uploads:
        # No target: the figure two versions of the hub are compared by.
        for backend, kinds in uploads["backends"].items():
            cpu = [kinds[k]["8"]["cpu_ms_per_upload"] for k in ("view", "profile", "group")
                   if "8" in kinds.get(k, {})]
            if len(cpu) == 3:
                rows.append([f"uploads {backend} c=8 hub CPU per upload (loop): view / pc / gdc",
                             " / ".join(f"{c['loop_user'] + c['loop_system']:.2f}" for c in cpu)
                             + " ms", "(compare)", "-"])
    reads = results.get("reads")
    if reads:
        for backend, r in reads["backends"].items():
            for route in ("minimap", "state"):
                p99 = r[route]["p99_ms"]
                rows.append([f"{route} r=10 p99 {backend}", f"{p99} ms", "<= 20 ms", p99 <= 20])
    mixed = results.get("mixed")
    if mixed:
        errors = sum(f["errors"] for f in mixed["routes"].values())
        rows.append(["mixed errors / closed sockets", f"{errors} / {sum(mixed['closed'].values())}",
                     "0 / 0", errors == 0 and not mixed["closed"]])
    capacity = results.get("capacity")
    if capacity:
        # No target: how many guilds (and at what upload rate) one hub process holds.
        for g, level in capacity["levels"].items():
            best = level["best_rate"]
            measured = [s for s in level["steps"] if "passed" in s and s["kind"] == "step"]
            # CPU at the best rate, or at the lowest when none passed.
            at = [s for s in measured if s["rate"] == best and s["passed"]] or measured[:1]
            rows.append([f"capacity {g} guilds ({level['sockets']:,} sockets): uploads/s with "
                         "p99 upload <= 100 / delivery <= 200 ms",
                         f"{best:g}" if best else "none", "(capacity)", "-"])
            rows.append([f"capacity {g} guilds: hub CPU per upload / RSS per socket",
                         (f"{at[0]['hub_cpu_ms_per_upload']:.1f} ms at {at[0]['rate']:g}/s"
                          if at else "-")
                         + f" / {level['hub_kib_per_socket']} KiB", "(capacity)", "-"])
        if capacity.get("best_vs_ceiling") is not None:
            c = capacity["ceiling"]
            rows.append([f"capacity {c['guilds']} guilds vs bare ceiling "
                         f"({c['ceiling']['views_per_s']:,.0f} views/s, c={c['concurrency']})",
                         f"{capacity['best_vs_ceiling']:.0%}", "(capacity)", "-"])
    page = results.get("page")
    if page:
        first = page["first_map_default"]
        rows.append([f"map page first map, default zoom ({first['tiles']:,} tiles)",
                     f"{first['ms']:.0f} ms", "<= 500 ms", first["ms"] <= 500])
        rows.append(["map page upload -> pixel p99", f"{page['latency']['p99_ms']:.1f} ms",
                     "<= 100 ms", page["latency"]["p99_ms"] <= 100])
        rows.append([f"map page JS heap growth over {page['events']:,} events",
                     f"{page['heap_growth_mib']:+.2f} MiB", "flat (<= +1 MiB)",
                     page["heap_growth_mib"] <= 1])
    heap = results.get("heap")
    if heap:
        rows.append([f"hub heap growth over {heap['uploads']:,} uploads after warm-up",
                     f"{heap['growth_kib']:+} KiB", "(diagnostic)", "-"])
    return rows


def main() -> None:
    """Run every benchmark; exit non-zero if one of them failed to run."""
    p = argparse.ArgumentParser(prog="python -m bench.all", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="cut down, for CI (< 5 minutes)")
    p.add_argument("--only", help="comma list of benchmarks")
    p.add_argument("--out", help="write every benchmark's JSON here")
    a = p.parse_args()
    names = a.only.split(",") if a.only else list(BENCHMARKS)
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    failed = []
    start = time.perf_counter()
    timed_out = []
    for i, name in enumerate(names):
        print(f"\n== bench.{name} ==", flush=True)
        extra = QUICK_ARGS[name] if a.quick else []
        timeout = None
        if a.quick:
            left = QUICK_BUDGET - (time.perf_counter() - start)
            weights = [QUICK_WEIGHTS[n] for n in names[i:]]
            timeout = max(10.0, left * QUICK_WEIGHTS[name] / sum(weights))
        result, seconds, status = _run(name, extra, timeout)
        timings[name] = round(seconds, 1)
        if status == "ok":
            results[name] = result
        elif status == "timeout":
            timed_out.append(name)
        else:
            failed.append(name)
    rows = [[what, measured, target, "yes" if ok is True else "NO" if ok is False else ok]
            for what, measured, target, ok in summary(results)]
    print()
    print(common.table(f"summary{' (quick: smoke figures only)' if a.quick else ''}, "
                       f"{time.perf_counter() - start:.0f} s",
                       ["what", "measured", "target", "met"], rows))
    if timed_out:
        print(f"stopped for time (machine too busy to finish in the budget): {', '.join(timed_out)}")
    line = {"bench": "all", "quick": a.quick, "seconds": timings, "failed": failed,
            "timed_out": timed_out,
            "summary": [dict(zip(("what", "measured", "target", "met"), r, strict=True))
                        for r in rows], "machine": common.machine()}
    print(json.dumps(line))
    if a.out:
        Path(a.out).write_text(json.dumps({"all": line, **results}, indent=1))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
