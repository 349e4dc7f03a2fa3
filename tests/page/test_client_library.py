"""nacritan-client.js in the browser against the real hub: resume, backoff, uploads."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.page.conftest import GUILD, Hub

pytestmark = pytest.mark.slow

START_CLIENT = """async (token) => {
  const lib = await import("/static/nacritan-client.js");
  window.lib = lib;
  window.seen = [];
  window.snapshots = [];
  window.states = [];
  window.client = lib.connect(location.origin, token, {onState: (s) => window.states.push(s.state)});
  window.client.subscribe({
    onSnapshot: (s) => window.snapshots.push(s.seq),
    onEvent: (e) => window.seen.push(e.seq),
  });
}"""


def _view(x: int, y: int, monster_id: int) -> list[dict[str, object]]:
    return [{"x": x, "y": y, "type": "Plaine", "items": {
        "places": [], "pcs": [], "resources": [], "objects": [],
        "npcs": [{"id": monster_id, "name": "Loup", "level": 2, "wounds": "Indemne"}]}}]


def test_a_forced_disconnect_mid_stream_loses_and_repeats_no_event(hub: Hub, page: Page,
                                                                   tmp_path: Path) -> None:
    token = hub.token(GUILD, "Alice")
    hub.post("/view", token, _view(500, 250, 1))
    page.goto(f"{hub.url}/healthz")
    page.evaluate(START_CLIENT, token)
    page.wait_for_function("window.snapshots.length === 1")
    start = page.evaluate("window.snapshots[0]")

    sent = [hub.post("/view", token, _view(500 + i, 250, 10 + i))["seq"] for i in range(10)]
    # The hub goes away while events are still being delivered; another replica takes
    # the uploads until it is back.
    hub.stop()
    other = Hub(hub.db_url, tmp_path / "other.log").start()
    try:
        sent += [other.post("/view", token, _view(520 + i, 250, 30 + i))["seq"] for i in range(10)]
    finally:
        other.stop()
    hub.start()
    page.wait_for_function("window.client.connectionState === 'live'", timeout=45_000)
    sent += [hub.post("/view", token, _view(540 + i, 250, 50 + i))["seq"] for i in range(10)]

    page.wait_for_function(f"window.seen.length >= {len(sent)}")
    page.wait_for_timeout(300)  # anything repeated would arrive now
    assert page.evaluate("window.seen") == sent == list(range(start + 1, start + 31))
    # Resumed with since/epoch: no second snapshot was needed.
    assert page.evaluate("window.snapshots") == [start]
    states = page.evaluate("window.states")
    assert "reconnecting" in states and states[-1] == "live", states


def test_backoff_is_full_jitter_between_half_a_second_and_twenty(hub: Hub, page: Page) -> None:
    page.goto(f"{hub.url}/healthz")
    delays = page.evaluate("""async () => {
      const {backoffDelay} = await import("/static/nacritan-client.js");
      const attempts = [...Array(10).keys()];
      return {high: attempts.map((a) => backoffDelay(a, undefined, undefined, () => 1)),
              low: attempts.map((a) => backoffDelay(a, undefined, undefined, () => 0)),
              mid: attempts.map((a) => backoffDelay(a, undefined, undefined, () => 0.5))};
    }""")
    assert delays["high"] == [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000, 20000]
    assert delays["low"] == [500] * 10
    assert delays["mid"] == [500, 500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000]


def test_uploads_carry_one_idempotency_key_and_retry_until_the_hub_is_back(hub: Hub,
                                                                           page: Page) -> None:
    token = hub.token(GUILD, "Alice")
    page.goto(f"{hub.url}/healthz")
    page.evaluate(START_CLIENT, token)
    page.wait_for_function("window.snapshots.length === 1")
    keys: list[str | None] = []
    page.on("request", lambda r: keys.append(r.headers.get("idempotency-key"))
            if r.url.endswith("/view") else None)

    hub.stop()
    page.evaluate("""(tiles) => { window.upload = window.client.upload.view(tiles)
        .then((r) => { window.uploaded = r; }, (e) => { window.uploaded = String(e); }); }""",
                  _view(600, 300, 77))
    page.wait_for_function("window.uploaded === undefined")
    page.wait_for_timeout(1200)  # a few attempts fail on the closed port
    hub.start()
    page.wait_for_function("window.uploaded !== undefined", timeout=30_000)
    answer = page.evaluate("window.uploaded")
    assert answer["Info"] == "Job done", answer
    assert len(keys) >= 2 and len(set(keys)) == 1 and keys[0], keys
    state = hub.get("/api/v1/state?x=600&y=300&r=0", token)
    assert [m["id"] for m in state["monsters"]] == [77]
    assert state["seq"] == answer["seq"] == 1

    # A refused upload is not retried: the error says why.
    page.evaluate("""() => window.client.upload.view([{"x": 1}])
        .then(() => { window.refused = null; }, (e) => { window.refused = [e.status, e.code]; })""")
    page.wait_for_function("window.refused !== undefined")
    assert page.evaluate("window.refused") == [422, "invalid_payload"]


def _field(x0: int, y0: int, width: int, height: int) -> list[dict[str, object]]:
    """A view of width x height plain tiles, each with one monster (ids from the position)."""
    return [{"x": x, "y": y, "type": "Plaine", "items": {
        "places": [], "pcs": [], "resources": [], "objects": [],
        "npcs": [{"id": x * 1000 + y, "name": "Rat", "level": 1, "wounds": "Indemne"}]}}
        for x in range(x0, x0 + width) for y in range(y0, y0 + height)]


def test_a_snapshot_sent_in_parts_reaches_the_subscriber_whole(hub: Hub, page: Page) -> None:
    token = hub.token(GUILD, "Alice")
    # 1,200 tiles and as many monsters: more than one part's 500 rows of a kind.
    uploaded = [tile for i in range(4) for tile in _field(300 + 20 * i, 300, 20, 15)]
    for i in range(4):
        hub.post("/view", token, uploaded[300 * i:300 * (i + 1)])
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda payload: frames.append(payload) if isinstance(payload, str) else None))
    page.goto(f"{hub.url}/healthz")
    page.evaluate("""async (token) => {
      const lib = await import("/static/nacritan-client.js");
      window.snaps = [];
      window.client = lib.connect(location.origin, token, {});
      window.client.subscribe({
        onSnapshot: (s) => window.snaps.push(s),
        onEvent: () => {},
      });
    }""", token)
    page.wait_for_function("window.snaps.length === 1")
    page.wait_for_timeout(300)  # a second, partial snapshot would show up now
    parts = [f for f in frames if '"type":"snapshot"' in f.replace(" ", "")]
    assert len(parts) > 1, "the hub sent the snapshot whole: this test needs parts"
    snap = page.evaluate("window.snaps[0]")
    assert page.evaluate("window.snaps.length") == 1
    assert "part" not in snap and "more" not in snap
    assert sorted((t["x"], t["y"]) for t in snap["tiles"]) == sorted(
        (t["x"], t["y"]) for t in uploaded)
    assert sorted(m["id"] for m in snap["monsters"]) == sorted(
        t["items"]["npcs"][0]["id"] for t in uploaded)  # type: ignore[index]
