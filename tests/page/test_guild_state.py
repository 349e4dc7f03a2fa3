"""guild-state.js and the map's filters, unit-tested in the browser (no hub data needed)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.page.conftest import Hub

pytestmark = pytest.mark.slow

SCENARIO = """async () => {
  const { GuildState } = await import("/static/guild-state.js");
  const { hexId } = await import("/static/hex.js");
  const ids = (set) => [...set].sort((a, b) => a - b);
  const s = new GuildState();
  const tile = (x, y, at = 1) => ({ x, y, type: "Plaine", seen_at: at, seen_by: "A" });
  const wolf = { kind: "monster", id: 7, name: "Loup", level: 3, wounds: null, x: 10, y: 10, seen_at: 1, seen_by: "A" };
  const wood = { kind: "resource", name: "Bois", level: 1, x: 11, y: 10, seen_at: 1, seen_by: "A" };
  s.applyMembers([{ name: "Alice", player_id: 42, player: { id: 42, name: "Alice", x: 10, y: 11, pv: 5, pv_max: 9 } }]);
  s.applySnapshot({ area: { x: 10, y: 10, r: 2 }, seq: 5, epoch: "e", now: 1,
    tiles: [tile(10, 10), tile(11, 10), tile(12, 12)], players: [], monsters: [wolf], places: [],
    resources: [wood], objects: [] });
  const out = { atStart: s.at(10, 10).entities.map((e) => e.name) };
  // The wolf moves, the wood runs out, a guildmate is seen: one view event.
  const moved = { ...wolf, x: 11, y: 10, seen_at: 9, seen_by: "B" };
  const alice = { kind: "player", id: 42, name: "Alice", level: 8, wounds: null, guild_id: 17,
                  guild_name: "G", x: 12, y: 12, seen_at: 9, seen_by: "B" };
  const dirty = s.applyEvent({ kind: "view", seq: 6, epoch: "e", at: 9, by: "B", area: { x: 11, y: 10, r: 1 },
    covered: [[11, 10], [10, 10]], tiles: [], appeared: [alice], moved: [moved], changed: [], left: [wood], members: [] });
  out.dirty = ids(dirty);
  out.expectedDirty = ids(new Set([hexId(10, 10), hexId(11, 10), hexId(12, 12)]));
  out.at10 = s.at(10, 10).entities.length;
  out.at11 = s.at(11, 10).entities.map((e) => [e.name, e.seen_by]);
  out.tile11 = [s.tiles.get(hexId(11, 10)).seen_at, s.tiles.get(hexId(11, 10)).seen_by];
  out.tile12 = s.tiles.get(hexId(12, 12)).seen_at;  // not covered: not refreshed
  out.alice = [s.entries[0].player.x, s.entries[0].player.y, s.entries[0].player.level];
  out.lastUpload = s.lastUpload.get("B");
  // A profile event updates the member's record; a group event another player's.
  s.applyEvent({ kind: "profile", seq: 7, epoch: "e", at: 10, by: "Alice", area: null, covered: null,
    tiles: [], appeared: [], moved: [], changed: [], left: [],
    members: [{ id: 42, name: "Alice", pv: 8, pv_max: 9, profile_at: 10, profile_by: "Alice" }] });
  out.pv = s.entries[0].player.pv;
  // A new snapshot of another area: its tiles replace those inside it, others stay.
  s.applySnapshot({ area: { x: 12, y: 12, r: 0 }, seq: 9, epoch: "e", now: 11,
    tiles: [], players: [], monsters: [], places: [], resources: [], objects: [] });
  out.afterSecond = [s.tiles.has(hexId(12, 12)), s.tiles.has(hexId(10, 10)), s.entities.size];
  out.found = s.find("lou").length;
  return out;
}"""

FILTERS = """async () => {
  const { GuildState } = await import("/static/guild-state.js");
  const { MapView } = await import("/static/map-view.js");
  const canvas = () => document.body.appendChild(document.createElement("canvas"));
  const s = new GuildState();
  s.guild = 17;
  const now = 10 * 86400e3;
  const view = new MapView(canvas(), canvas(), s, { clock: () => now, onCamera: null, requestFrame: () => {} });
  const e = [
    { kind: "monster", name: "old", level: 3, seen_at: now - 2 * 86400e3 },
    { kind: "monster", name: "strong", level: 30, seen_at: now },
    { kind: "player", name: "mate", guild_id: 17, level: 1, seen_at: now },
    { kind: "player", name: "stranger", guild_id: 3, level: 1, seen_at: now },
  ];
  const names = (f) => { view.setFilters(f); return view.shown(e, now).map((x) => x.name); };
  const all = new Set(["member", "player", "monster", "place", "resource", "object"]);
  return {
    all: names({ categories: all, minLevel: 0, maxLevel: Infinity, maxAge: 3 }),
    noStrangers: names({ categories: new Set(["member", "monster"]), minLevel: 0, maxLevel: Infinity, maxAge: 3 }),
    levels: names({ categories: all, minLevel: 10, maxLevel: 40, maxAge: 3 }),
    withinADay: names({ categories: all, minLevel: 0, maxLevel: Infinity, maxAge: 2 }),
  };
}"""


def test_events_apply_in_the_protocol_order_and_say_what_they_changed(hub: Hub, page: Page) -> None:
    page.goto(f"{hub.url}/healthz")
    out = page.evaluate(SCENARIO)
    assert out["atStart"] == ["Loup"]
    assert out["dirty"] == out["expectedDirty"]
    assert out["at10"] == 0
    assert out["at11"] == [["Loup", "B"]]  # moved, and the wood that left is gone
    assert out["tile11"] == [9, "B"]
    assert out["tile12"] == 1
    assert out["alice"] == [12, 12, 8]
    assert out["lastUpload"] == 9
    assert out["pv"] == 8
    assert out["afterSecond"] == [False, True, 0]
    assert out["found"] == 0


def test_map_filters_by_kind_level_and_age(hub: Hub, page: Page) -> None:
    page.goto(f"{hub.url}/healthz")
    out = page.evaluate(FILTERS)
    assert out["all"] == ["old", "strong", "mate", "stranger"]
    assert out["noStrangers"] == ["old", "strong", "mate"]
    assert out["levels"] == ["strong", "mate", "stranger"]
    assert out["withinADay"] == ["strong", "mate", "stranger"]
