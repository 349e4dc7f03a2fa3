"""The map page in headless Chromium: first map, upload-to-pixel latency, JS heap.

Starts the real hub (`python -m hub serve`) on a fresh SQLite file, fills one guild of
40 members with 20,000 known tiles (and monsters, players, places) through the upload
API, then opens the page with a `/#token=` link in Debian's Chromium and measures:

- first map: from navigation start to the first frame that draws tiles, at the page's
  default zoom and zoomed out over the whole guild (performance.now() in the page);
- upload to pixel: a member's page uploads a small view (fetch, as a userscript would)
  and the time from its response to the frame that redraws the changed hex; the event
  may even be drawn before the response is read (counted as 0);
- JS heap (after a forced GC) once warmed up and after N events from other members.

    .venv/bin/python -m bench.page            # 200 latency uploads, 10,000 events
    .venv/bin/python -m bench.page --quick    # 50 and 2,000, for CI
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright

from bench import common
from bench.workload import disk

GUILD = 17
MEMBERS = 40
CENTRE = (1000, 500)
TILES_RADIUS = 81  # 19,927 tiles: the guild's known world
TERRAINS = ["Plaine", "Plaine fleurie", "Forêt", "Montagne", "Marais", "Désert", "Rivière"]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}

# Before any page script: note the first frame with tiles, and let the bench wait for a hex.
PROBE = """
window.__firstMap = null;
window.__waiters = [];
document.addEventListener("mapdrawn", (ev) => {
  const t = performance.now();
  const d = ev.detail;
  if (window.__firstMap === null && d.full && d.tiles > 0) window.__firstMap = {ms: t, tiles: d.tiles};
  window.__waiters = window.__waiters.filter((w) => {
    if (d.full || d.hexes.includes(w.id)) { w.resolve(t); return false; }
    return true;
  });
});
window.__drawnHex = (id) => new Promise((resolve) => window.__waiters.push({id, resolve}));
// Where the first map's time goes: when the socket opened, authenticated, got its snapshot.
window.__feed = {};
const PageSocket = window.WebSocket;
window.WebSocket = class extends PageSocket {
  constructor(...args) {
    super(...args);
    const f = window.__feed;
    f.created ??= performance.now();
    this.addEventListener("open", () => { f.open ??= performance.now(); });
    this.addEventListener("message", (m) => {
      const head = String(m.data).slice(0, 40);
      if (head.includes('"auth_ok"')) f.auth_ok ??= performance.now();
      else if (head.includes('"snapshot"')) f.snapshot ??= performance.now();
    });
  }
};
"""

UPLOAD_AND_WAIT = """async ({token, tiles, hex}) => {
  const drawn = window.__drawnHex(hex);
  const resp = await fetch("/view", {method: "POST", body: JSON.stringify(tiles),
    headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"}});
  const answered = performance.now();
  if (!resp.ok) throw new Error("upload refused: " + resp.status);
  const drawnAt = await drawn;
  return drawnAt - answered;
}"""


def _tile(x: int, y: int, npcs: list[dict[str, Any]] | None = None,
          pcs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"x": x, "y": y, "type": TERRAINS[(x * 7 + y * 13) % len(TERRAINS)],
            "items": {"places": [], "pcs": pcs or [], "npcs": npcs or [], "resources": [], "objects": []}}


def _hex_id(x: int, y: int) -> int:
    return x * 1024 + y  # hub/static/hex.js


async def _post(http: aiohttp.ClientSession, url: str, token: str, body: Any) -> dict[str, Any]:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        resp.raise_for_status()
        return dict(await resp.json())


async def seed(http: aiohttp.ClientSession, base: str, tokens: list[str], names: list[str],
               rng: random.Random) -> int:
    """40 profiles, then views covering the guild's 20,000 tiles with what stands on them."""
    cells = disk(*CENTRE, TILES_RADIUS)
    rng.shuffle(cells)
    members = {i: cells[i] for i in range(MEMBERS)}
    for i, (name, token) in enumerate(zip(names, tokens, strict=True)):
        x, y = members[i]
        await _post(http, f"{base}/pc/{10_000 + i}", token, {
            "id": 10_000 + i, "name": name, "level": rng.randint(1, 40), "race": "Elfe",
            "dla": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + rng.randint(0, 40_000))),
            "x": x, "y": y, "caracs": {"pv": rng.randint(1, 80), "pvMax": 80}})
    by_cell = {cell: i for i, cell in members.items()}
    for n, start in enumerate(range(0, len(cells), 400)):
        tiles = []
        for x, y in cells[start:start + 400]:
            npcs = ([{"id": 100_000 + x * 1000 + y, "name": rng.choice(["Gobelin", "Loup", "Ogre"]),
                      "level": rng.randint(1, 30), "wounds": "Indemne"}] if rng.random() < 0.04 else [])
            pcs = []
            if (x, y) in by_cell:
                i = by_cell[(x, y)]
                pcs = [{"id": 10_000 + i, "name": names[i], "level": 10, "wounds": "Indemne",
                        "guildId": GUILD, "guildName": "Bench"}]
            tiles.append(_tile(x, y, npcs, pcs))
        await _post(http, f"{base}/view", tokens[n % MEMBERS], tiles)
    return len(cells)


async def first_map(browser: Any, base: str, token: str, size: float | None) -> dict[str, Any]:
    """Navigation start to the first frame with tiles, in a fresh browser profile."""
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.add_init_script(PROBE)
    if size is not None:
        camera = json.dumps({"x": CENTRE[0], "y": CENTRE[1], "size": size})
        await page.add_init_script(f"localStorage.setItem('nacritan.camera', {json.dumps(camera)})")
    await page.goto(f"{base}/#token={token}")
    await page.wait_for_function("() => window.__firstMap !== null", timeout=60_000)
    probe = dict(await page.evaluate("window.__firstMap"))
    feed = dict(await page.evaluate("window.__feed"))
    loaded = dict(await page.evaluate("""() => ({
      html: performance.getEntriesByType("navigation")[0].responseEnd,
      files: Math.max(...performance.getEntriesByType("resource")
        .filter((r) => r.name.includes("/static/")).map((r) => r.responseEnd))})"""))
    await context.close()
    return {"ms": round(probe["ms"], 1), "tiles": probe["tiles"],
            # The page's scripts until the socket is created; the hub's handshake, auth and
            # snapshot; the page's parse, apply and draw after the snapshot arrived.
            "html_ms": round(loaded["html"], 1), "files_ms": round(loaded["files"], 1),
            "scripts_ms": round(feed["created"], 1),
            "hub_ms": round(feed["snapshot"] - feed["created"], 1),
            "auth_ms": round(feed["auth_ok"] - feed["created"], 1),
            "draw_ms": round(probe["ms"] - feed["snapshot"], 1)}


async def first_maps(browser: Any, base: str, token: str, size: float | None,
                     samples: int) -> dict[str, Any]:
    """The median of several first maps (each a fresh profile), with its breakdown."""
    runs = sorted([await first_map(browser, base, token, size) for _ in range(samples)],
                  key=lambda r: r["ms"])
    median = runs[len(runs) // 2]
    return {**median, "min_ms": runs[0]["ms"], "max_ms": runs[-1]["ms"], "samples": samples}


async def heap_mib(page: Page) -> float:
    """Used JS heap after a full garbage collection."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("HeapProfiler.collectGarbage")
    usage = await cdp.send("Runtime.getHeapUsage")
    await cdp.detach()
    return round(usage["usedSize"] / 2**20, 2)


async def stream(http: aiohttp.ClientSession, base: str, tokens: list[str], count: int,
                 rng: random.Random, concurrency: int = 4) -> None:
    """`count` small views by other members: a pool of 300 monsters moving about."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            x, y = CENTRE[0] + rng.randint(-20, 20), CENTRE[1] + rng.randint(-12, 12)
            cells = disk(x, y, 1)
            tiles = [_tile(cx, cy) for cx, cy in cells]
            tiles[0]["items"]["npcs"] = [{"id": 900_000 + i % 300, "name": "Rôdeur", "level": 5,
                                          "wounds": "Indemne"}]
            await _post(http, f"{base}/view", tokens[1 + i % (MEMBERS - 1)], tiles)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def live_page(browser: Any, base: str, tokens: list[str], uploads: int, events: int,
                    rng: random.Random, http: aiohttp.ClientSession) -> dict[str, Any]:
    context = await browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    await page.add_init_script(PROBE)
    await page.add_init_script(
        f"localStorage.setItem('nacritan.camera', {json.dumps(json.dumps({'x': CENTRE[0], 'y': CENTRE[1], 'size': 16}))})")
    await page.goto(f"{base}/#token={tokens[0]}")
    await page.wait_for_function("() => window.__firstMap !== null", timeout=60_000)

    latencies = []
    early = 0
    for i in range(uploads):
        x, y = CENTRE[0] + rng.randint(-10, 10), CENTRE[1] + rng.randint(-6, 6)
        tiles = [_tile(cx, cy) for cx, cy in disk(x, y, 1)]
        tiles[0]["items"]["npcs"] = [{"id": 800_000 + i, "name": "Sanglier", "level": 3,
                                      "wounds": "Indemne"}]
        ms = await page.evaluate(UPLOAD_AND_WAIT, {"token": tokens[0], "tiles": tiles,
                                                   "hex": _hex_id(x, y)})
        early += ms < 0
        latencies.append(max(0.0, ms) / 1000)

    async def sync_point() -> None:
        # Events arrive in order: once this one is drawn, every earlier one was applied.
        x, y = CENTRE
        await page.evaluate(UPLOAD_AND_WAIT, {"token": tokens[0], "tiles": [_tile(x, y)],
                                              "hex": _hex_id(x, y)})

    warm = max(1, events // 10)
    await stream(http, base, tokens, warm, rng)
    await sync_point()
    heap_warm = await heap_mib(page)
    started = time.monotonic()
    await stream(http, base, tokens, events - warm, rng)
    await sync_point()
    stream_s = time.monotonic() - started
    heap_end = await heap_mib(page)
    await context.close()
    return {"latency": common.latency_summary(latencies), "drawn_before_response": early,
            "heap_warm_mib": heap_warm, "heap_end_mib": heap_end,
            "heap_growth_mib": round(heap_end - heap_warm, 2), "warm_events": warm,
            "events": events, "events_per_s": round((events - warm) / stream_s, 1)}


async def run(url: str, uploads: int, events: int, samples: int) -> dict[str, Any]:
    """Seed a guild on the database at `url`, then measure the page against its hub."""
    rng = random.Random(20)
    names = [f"Member{i:02d}" for i in range(MEMBERS)]
    tokens = await common.add_tokens(url, GUILD, names)
    with common.HubProcess(url, env={"NACRITAN_LOG_LEVEL": "WARNING"}) as hub:
        async with aiohttp.ClientSession() as http, async_playwright() as pw:
            tiles = await seed(http, hub.url, tokens, names, rng)
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                               args=CHROMIUM_ARGS)
            try:
                # The page centres on its own member, or on a saved camera (zoomed out).
                default = await first_maps(browser, hub.url, tokens[0], None, samples)
                whole = await first_maps(browser, hub.url, tokens[0], 5, samples)
                live = await live_page(browser, hub.url, tokens, uploads, events, rng, http)
            finally:
                await browser.close()
    return {"members": MEMBERS, "known_tiles": tiles, "first_map_default": default,
            "first_map_whole_guild": whole, "uploads": uploads, **live}


def render(r: dict[str, Any]) -> str:
    """The figures as a table, with the targets they are held to."""
    lat = r["latency"]
    rows = []
    for label, key in (("default zoom", "first_map_default"), ("whole guild", "first_map_whole_guild")):
        f = r[key]
        rows += [
            [f"first map, {label} (median of {f['samples']})", f"{f['ms']} ms",
             f"{f['tiles']:,} tiles, {f['min_ms']}-{f['max_ms']} ms", "<= 500 ms"],
            ["  html / all files / socket created",
             f"{f['html_ms']} / {f['files_ms']} / {f['scripts_ms']} ms", "", ""],
            ["  then hub (ws, auth, snapshot) / parse+draw",
             f"{f['hub_ms']} / {f['draw_ms']} ms", f"auth {f['auth_ms']} ms", ""],
        ]
    rows += [
        [f"upload -> pixel p50 ({r['uploads']} uploads)", f"{lat['p50_ms']} ms", "", ""],
        ["upload -> pixel p99", f"{lat['p99_ms']} ms", f"max {lat['max_ms']} ms", "<= 100 ms"],
        ["drawn before the response", str(r["drawn_before_response"]), "", ""],
        [f"JS heap after {r['warm_events']:,} events", f"{r['heap_warm_mib']} MiB", "", ""],
        [f"JS heap after {r['events']:,} events", f"{r['heap_end_mib']} MiB",
         f"{r['heap_growth_mib']:+} MiB", "flat"],
        ["events streamed", f"{r['events_per_s']} /s", "", ""],
    ]
    return common.table(f"map page: {r['members']} members, {r['known_tiles']:,} known tiles",
                        ["figure", "value", "", "target"], rows)


def main() -> None:
    """Parse the command line, run, print the table and the JSON line."""
    common.exit_on_sigterm()
    p = argparse.ArgumentParser(prog="python -m bench.page", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="50 latency uploads, 2,000 events, 3 first maps of each kind")
    p.add_argument("--uploads", type=int, help="latency uploads (default 200)")
    p.add_argument("--events", type=int, help="events for the heap figure (default 10,000)")
    p.add_argument("--samples", type=int, help="first maps measured of each kind (default 5)")
    args = p.parse_args()
    uploads = args.uploads or (50 if args.quick else 200)
    events = args.events or (2_000 if args.quick else 10_000)
    samples = args.samples or (3 if args.quick else 5)
    with common.fresh_databases("sqlite") as (url,):
        result = asyncio.run(run(url, uploads, events, samples))
    common.report("page", render(result), result)


if __name__ == "__main__":
    main()
