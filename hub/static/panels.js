// The DOM around the map: connection status, members, the hex under the pointer, filters.
// Every string from an upload is untrusted: it only ever goes into textContent.

import { AGES, category } from "./map-view.js";

const STALE_AFTER_MS = 3600e3;
const KIND_LABEL = { member: "guildmate", player: "player", monster: "monster", place: "place", resource: "resource", object: "object" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Change a node's text only when it differs: no DOM mutation for an unchanged value. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function formatAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** "1 h 02 min 05 s" */
export function formatDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h} h ${two(m)} min ${two(sec)} s` : m ? `${m} min ${two(sec)} s` : `${sec} s`;
}

const PARIS = (() => {
  try {
    return new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  } catch { return null; }
})();

/** A game date "YYYY-MM-DD HH:MM:SS" (the game's clock: Paris time) as epoch ms, or null. */
export function parseGameDate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(String(text ?? ""));
  if (!m) return null;
  const asUtc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
  if (!PARIS) return asUtc;
  // The offset of Paris at that moment: format the UTC guess there and compare.
  const parts = Object.fromEntries(PARIS.formatToParts(new Date(asUtc)).map((p) => [p.type, p.value]));
  const shown = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return asUtc - (shown - asUtc);
}

export class StatusBar {
  constructor(stateNode, clockNode) {
    this.stateNode = stateNode;
    this.clockNode = clockNode;
    this._timer = null;
  }

  setConnection({ state, retryInMs = 0 }) {
    clearInterval(this._timer);
    const node = this.stateNode;
    node.dataset.state = state;
    if (state === "reconnecting") {
      const until = Date.now() + retryInMs;
      const show = () => { node.textContent = `reconnecting (${Math.max(0, Math.ceil((until - Date.now()) / 1000))} s)`; };
      show();
      this._timer = setInterval(show, 250);
    } else {
      node.textContent = { live: "live", refused: "token refused", connecting: "connecting", closed: "disconnected" }[state] || state;
    }
  }

  setLastUpdate(ms) {
    if (ms) this.clockNode.textContent = `last update ${new Date(ms).toLocaleTimeString()}`;
  }
}

export class MembersPanel {
  constructor(list, { onCentre, onFollow }) {
    this.list = list;
    this.onCentre = onCentre;
    this.onFollow = onFollow;
    this.rows = new Map();
  }

  _row(name) {
    let row = this.rows.get(name);
    if (row) return row;
    const li = el("li", "member");
    li.dataset.name = name;
    const head = el("div", "member-head");
    const who = el("span", "member-name", name);
    const level = el("span", "member-level");
    head.append(who, level);
    const hp = el("div", "hp");
    const bar = el("div", "hp-bar");
    const fill = el("div", "hp-fill");
    bar.append(fill);
    const hpText = el("span", "hp-text");
    hp.append(bar, hpText);
    const line = el("div", "member-line");
    const pos = el("button", "member-pos");
    pos.type = "button";
    const follow = el("button", "member-follow", "follow");
    follow.type = "button";
    follow.setAttribute("aria-pressed", "false");
    line.append(pos, follow);
    const turn = el("div", "member-turn");
    const upload = el("div", "member-upload");
    li.append(head, hp, line, turn, upload);
    row = { li, level, fill, bar, hpText, pos, follow, turn, upload, member: null };
    pos.addEventListener("click", () => row.member && this.onCentre(row.member));
    follow.addEventListener("click", () => row.member && this.onFollow(row.member));
    this.rows.set(name, row);
    return row;
  }

  /** Bring the list in line with the members, updating rows in place. */
  render(members, now, followed) {
    const names = new Set(members.map((m) => m.name));
    for (const [name, row] of this.rows) if (!names.has(name)) { row.li.remove(); this.rows.delete(name); }
    members.forEach((m, i) => {
      const row = this._row(m.name);
      row.member = m;
      const p = m.player;
      setText(row.level, p?.level != null ? `level ${p.level}` : "");
      if (p?.pv != null && p?.pv_max) {
        const ratio = Math.max(0, Math.min(1, p.pv / p.pv_max));
        const width = `${Math.round(ratio * 100)}%`;
      if (row.fill.style.width !== width) row.fill.style.width = width;
        row.fill.dataset.level = ratio > 0.6 ? "high" : ratio > 0.3 ? "mid" : "low";
        setText(row.hpText, `${p.pv}/${p.pv_max} HP`);
        row.bar.hidden = false;
      } else {
        row.bar.hidden = true;
        setText(row.hpText, "HP unknown");
      }
      const placed = p?.x != null && p?.y != null;
      setText(row.pos, placed ? `${p.x}, ${p.y}` : "position unknown");
      row.pos.disabled = !placed;
      row.follow.disabled = !placed;
      const following = followed === m.name;
      row.follow.setAttribute("aria-pressed", String(following));
      setText(row.follow, following ? "following" : "follow");
      row.dla = parseGameDate(p?.dla);
      row.lastUpload = m.lastUpload;
      this._tick(row, now);
      if (this.list.children[i] !== row.li) this.list.insertBefore(row.li, this.list.children[i] || null);
    });
  }

  /** Countdowns and ages move every second without anything else changing. */
  tick(now) {
    for (const row of this.rows.values()) this._tick(row, now);
  }

  _tick(row, now) {
    if (row.dla === null) setText(row.turn, "next turn unknown");
    else setText(row.turn, row.dla > now ? `next turn in ${formatDuration(row.dla - now)}` : "turn open");
    const age = row.lastUpload === null ? null : now - row.lastUpload;
    setText(row.upload, age === null ? "no upload yet" : `last upload ${formatAge(age)}`);
    const stale = age === null || age > STALE_AFTER_MS;
    row.li.classList.toggle("stale", stale);
    row.li.dataset.stale = String(stale);
  }
}

export class HexDetails {
  constructor(root) {
    this.root = root;
    this.title = root.querySelector(".hex-title");
    this.terrain = root.querySelector(".hex-terrain");
    this.list = root.querySelector(".hex-items");
  }

  /** List everything on a hex (all of it, whatever the map's filters hide). */
  show(hex, contents, now, guild) {
    if (!hex) {
      this.title.textContent = "No hex selected";
      this.terrain.textContent = "Hover, tap or search a hex to list what is on it.";
      this.list.replaceChildren();
      this.root.dataset.hex = "";
      return;
    }
    const [x, y] = hex;
    this.root.dataset.hex = `${x},${y}`;
    this.title.textContent = `Hex ${x}, ${y}`;
    const t = contents.tile;
    this.terrain.textContent = t ? `${t.type} · seen ${formatAge(now - t.seen_at)} by ${t.seen_by}` : "never seen";
    const order = ["member", "player", "monster", "place", "resource", "object"];
    const items = contents.entities.map((e) => ({ e, cat: category(e, guild) }))
      .sort((a, b) => order.indexOf(a.cat) - order.indexOf(b.cat) || a.e.name.localeCompare(b.e.name));
    this.list.replaceChildren(...items.map(({ e, cat }) => {
      const li = el("li", `item item-${cat}`);
      li.dataset.kind = e.kind;
      li.dataset.category = cat;
      li.dataset.name = e.name;
      if (e.level != null) li.dataset.level = String(e.level);
      if (e.id != null) li.dataset.id = String(e.id);
      const name = el("span", "item-name", e.name);
      const details = [KIND_LABEL[cat]];
      if (e.level != null) details.push(`level ${e.level}`);
      if (e.wounds) details.push(e.wounds);
      if (e.kind === "player" && e.guild_name) details.push(e.guild_name);
      if (e.kind === "place" && e.town_name) details.push(e.town_name);
      const what = el("span", "item-what", ` ${details.join(", ")}`);
      const seen = el("span", "item-seen", ` · seen ${formatAge(now - e.seen_at)} by ${e.seen_by}`);
      seen.dataset.seenAt = String(e.seen_at);
      li.append(name, what, seen);
      return li;
    }));
  }
}

/** The filter form as a filter object for the map. */
export function readFilters(form) {
  const categories = new Set([...form.querySelectorAll("input[name=category]:checked")].map((i) => i.value));
  const min = Number(form.elements.minLevel.value);
  const max = Number(form.elements.maxLevel.value);
  return {
    categories,
    minLevel: form.elements.minLevel.value === "" ? 0 : min,
    maxLevel: form.elements.maxLevel.value === "" ? Infinity : max,
    maxAge: Number(form.elements.maxAge.value),
  };
}

/** Fill the age choice from the map's buckets. */
export function fillAgeChoices(select) {
  select.replaceChildren(...AGES.map((a, i) => {
    const option = el("option", "", i === AGES.length - 1 ? "any age" : `up to ${a.label}`);
    option.value = String(i);
    return option;
  }));
  select.value = String(AGES.length - 1);
}
