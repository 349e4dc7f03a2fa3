"""`python -m bench.parse`: views decoded and validated per second on one core.

Measures `parsers.decode_view` (the hub's whole parse: typed decode, limits, checks) on
generated radius-4 and radius-6 views, compact and indented like the reference sample,
and on the reference sample itself. For scale, the same bytes decoded by msgspec into
plain dicts and lists without any type or limit (`untyped`): the floor of any JSON parse.
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from bench import common
from bench.workload import views

SAMPLE = common.ROOT / "tests" / "data" / "view-radius4.json"
TARGET = 20_000


def _rate(fn: Callable[[bytes], object], bodies: Sequence[bytes], seconds: float) -> float:
    """Calls per second, best of three rounds of about seconds/3 each."""
    for body in bodies[:50]:
        fn(body)
    best = 0.0
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for body in bodies:
                fn(body)
            n += len(bodies)
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def measure(*, seconds: float = 3.0, radii: Sequence[int] = (4, 6),
            pretty: Sequence[bool] = (False, True)) -> dict[str, Any]:
    """Decode rates per kind of input (one process, one thread)."""
    from parsers import decode_view

    with_affinity = hasattr(os, "sched_setaffinity")
    if with_affinity:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})  # one core, as the target says
    try:
        inputs: dict[str, list[bytes]] = {}
        for r in radii:
            for p in pretty:
                inputs[f"r{r}{' indented' if p else ''}"] = views(200, radius=r, pretty=p)
        if SAMPLE.exists():
            inputs["sample r4 indented"] = [SAMPLE.read_bytes()]
        rows = {}
        for name, bodies in inputs.items():
            rows[name] = {
                "bytes": round(sum(map(len, bodies)) / len(bodies)),
                "views_per_s": round(_rate(
                    lambda b: decode_view(b, max_tiles=400, max_entities=4000), bodies, seconds)),
                "untyped_per_s": round(_rate(msgspec.json.decode, bodies, seconds)),
            }
    finally:
        if with_affinity:
            os.sched_setaffinity(0, before)
    return {"target_r4_per_s": TARGET, "inputs": rows}


def render(result: dict[str, Any]) -> str:
    """The human table."""
    rows = [[name, f["bytes"], f["views_per_s"], f["untyped_per_s"],
             f"{f['views_per_s'] / f['untyped_per_s']:.0%}"]
            for name, f in result["inputs"].items()]
    return common.table(f"parse: decode_view on one core (target {TARGET:,} r4 views/s)",
                        ["input", "bytes", "views/s", "untyped/s", "vs untyped"], rows)


def main() -> None:
    """Run and report."""
    common.exit_on_sigterm()
    p = argparse.ArgumentParser(prog="python -m bench.parse", description=__doc__)
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    result = measure(seconds=0.6 if a.quick else 3.0)
    common.report("parse", render(result), result)


if __name__ == "__main__":
    main()
