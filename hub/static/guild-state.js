// The guild's merged tactical state as the page knows it: snapshots and events applied in
// the order of docs/protocol.md. Pure (no DOM, no network); every change returns the set
// of hexes it touched, so the renderer redraws those only.

import { distance, disk, hexId } from "./hex.js";

export const KINDS = ["player", "monster", "place", "resource", "object"];
const LISTS = { player: "players", monster: "monsters", place: "places", resource: "resources", object: "objects" };
export const ALL = "all";

/** Resources are keyed by position and name, everything else by kind and id. */
export function entityKey(e) {
  return e.kind === "resource" ? `resource:${e.x},${e.y},${e.name}` : `${e.kind}:${e.id}`;
}

export class GuildState {
  constructor() {
    this.tiles = new Map(); // hexId -> tile
    this.entities = new Map(); // key -> entity
    this.byHex = new Map(); // hexId -> Set of keys
    this.entries = []; // token holders: {name, player_id, player}
    this.lastUpload = new Map(); // member name -> ms
    this.guild = null;
    this.me = null;
    this.seq = null;
    this.lastUpdate = null;
  }

  // -- reading ----------------------------------------------------------------------------

  /** The tile and everything standing on a hex. */
  at(x, y) {
    const id = hexId(x, y);
    const keys = this.byHex.get(id);
    return { tile: this.tiles.get(id) || null, entities: keys ? [...keys].map((k) => this.entities.get(k)) : [] };
  }

  /** Entities whose name contains `text` (case-insensitive), guildmates first. */
  find(text) {
    const needle = text.trim().toLowerCase();
    if (!needle) return [];
    const out = [];
    for (const e of this.entities.values()) if (e.name.toLowerCase().includes(needle)) out.push(e);
    return out.sort((a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind) || a.name.localeCompare(b.name));
  }

  /** Token holders with their player and when they last uploaded, sorted by name. */
  members() {
    return this.entries.map((entry) => ({ ...entry, lastUpload: this.lastUpload.get(entry.name) ?? null }));
  }

  // -- changing --------------------------------------------------------------------------

  _index(key, e, dirty) {
    const id = hexId(e.x, e.y);
    let set = this.byHex.get(id);
    if (!set) this.byHex.set(id, (set = new Set()));
    set.add(key);
    dirty.add(id);
  }

  _unindex(key, e, dirty) {
    const id = hexId(e.x, e.y);
    const set = this.byHex.get(id);
    if (set) {
      set.delete(key);
      if (set.size === 0) this.byHex.delete(id);
    }
    dirty.add(id);
  }

  _set(e, dirty) {
    const key = entityKey(e);
    const old = this.entities.get(key);
    if (old) this._unindex(key, old, dirty);
    this.entities.set(key, e);
    this._index(key, e, dirty);
    if (e.kind === "player") this._playerSeen(e);
  }

  _remove(e, dirty) {
    const key = entityKey(e);
    const old = this.entities.get(key);
    if (old) {
      this._unindex(key, old, dirty);
      this.entities.delete(key);
    }
    dirty.add(hexId(e.x, e.y));
    if (e.kind === "player") this._playerGone(e);
  }

  _stamp(by, at) {
    if (by && at && (this.lastUpload.get(by) ?? 0) < at) this.lastUpload.set(by, at);
  }

  _entryFor(profile) {
    return this.entries.find((en) => (en.player_id !== null ? en.player_id === profile.id : en.player?.id === profile.id
      || (en.player === null && profile.profile_by === en.name)));
  }

  _playerSeen(e) {
    const entry = this._entryFor(e);
    if (entry?.player) Object.assign(entry.player, { x: e.x, y: e.y, level: e.level, seen_at: e.seen_at, seen_by: e.seen_by });
  }

  _playerGone(e) {
    const entry = this._entryFor(e);
    if (entry?.player && entry.player.x === e.x && entry.player.y === e.y) Object.assign(entry.player, { x: null, y: null });
  }

  /** The guild's token holders as `GET /api/v1/members` lists them. */
  applyMembers(list) {
    this.entries = list.map((m) => ({ name: m.name, player_id: m.player_id, player: m.player ? { ...m.player } : null }));
    for (const { player } of this.entries) {
      if (!player) continue;
      this._stamp(player.profile_by, player.profile_at);
      this._stamp(player.group_by, player.group_at);
      this._stamp(player.seen_by, player.seen_at);
    }
  }

  /** Start over from a snapshot of an area: what it shows is the whole truth there. */
  applySnapshot(snap) {
    const { x, y, r } = snap.area;
    for (const id of [...this.tiles.keys()]) {
      const t = this.tiles.get(id);
      if (distance(x, y, t.x, t.y) <= r) this.tiles.delete(id);
    }
    for (const t of snap.tiles) this.tiles.set(hexId(t.x, t.y), t);
    // Entities elsewhere were not followed since the last snapshot: drop them, unverified.
    this.entities.clear();
    this.byHex.clear();
    const ignored = new Set();
    for (const kind of KINDS) for (const e of snap[LISTS[kind]]) this._set(e, ignored);
    this.seq = snap.seq;
    this.lastUpdate = snap.now;
    return ALL;
  }

  /** Apply one event; returns the hexIds it changed. */
  applyEvent(ev) {
    const dirty = new Set();
    for (const t of ev.tiles) {
      this.tiles.set(hexId(t.x, t.y), t);
      dirty.add(hexId(t.x, t.y));
    }
    for (const e of ev.left) this._remove(e, dirty);
    for (const e of ev.appeared) this._set(e, dirty);
    for (const e of ev.moved) this._set(e, dirty);
    for (const e of ev.changed) this._set(e, dirty);
    if (ev.kind === "view") {
      const seen = ev.covered ?? (ev.area ? disk(ev.area.x, ev.area.y, ev.area.r) : []);
      for (const [hx, hy] of seen) {
        const id = hexId(hx, hy);
        const tile = this.tiles.get(id);
        if (tile) {
          tile.seen_at = ev.at;
          tile.seen_by = ev.by;
          dirty.add(id);
        }
        const keys = this.byHex.get(id);
        if (keys) {
          for (const key of keys) {
            const e = this.entities.get(key);
            e.seen_at = ev.at;
            e.seen_by = ev.by;
            if (e.kind === "player") this._playerSeen(e);
          }
        }
      }
    }
    for (const profile of ev.members) {
      const entry = this._entryFor(profile);
      if (entry) entry.player = { ...(entry.player || {}), ...profile };
    }
    this._stamp(ev.by, ev.at);
    this.seq = ev.seq;
    this.lastUpdate = ev.at;
    return dirty;
  }
}
