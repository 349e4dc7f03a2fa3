// The page: the token, the connection, and the one-way flow socket -> state -> frame.

import { connect } from "./nacritan-client.js";
import { ALL, GuildState } from "./guild-state.js";
import { distance, hexId } from "./hex.js";
import { MapView } from "./map-view.js";
import { attachInput } from "./map-input.js";
import { HexDetails, MembersPanel, StatusBar, fillAgeChoices, readFilters } from "./panels.js";

const TOKEN_KEY = "nacritan.token";
const CAMERA_KEY = "nacritan.camera";
// The subscribed disk is this much wider than the screen, so small pans need nothing new.
const AREA_MARGIN = 1.5;
const AREA_EXTRA = 6;
const MAX_AREA_RADIUS = 400;
const MEMBERS_REFRESH_MS = 60000;
const RESUBSCRIBE_DELAY_MS = 150;

const $ = (sel) => document.querySelector(sel);

/** The token of a `/#token=...` link, taken out of the address bar; else the stored one. */
function takeToken() {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    localStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
    return token;
  }
  return localStorage.getItem(TOKEN_KEY);
}

function savedCamera() {
  try {
    const cam = JSON.parse(localStorage.getItem(CAMERA_KEY));
    if (Number.isFinite(cam?.x) && Number.isFinite(cam?.y) && Number.isFinite(cam?.size)) return cam;
  } catch { /* none */ }
  return null;
}

class MapPage {
  constructor(token) {
    this.state = new GuildState();
    this.serverOffset = 0;
    this.frameWanted = false;
    this.panelsDirty = true;
    this.detailsDirty = true;
    this.hover = null;
    this.selected = null;
    this.followed = null;
    this.subscription = null;
    this.resubscribeTimer = null;
    this.matches = [];
    this.matchIndex = 0;

    this.status = new StatusBar($("#conn-state"), $("#last-update"));
    // The socket first: its handshake and auth overlap with building the rest of the page.
    this.authenticated = new Promise((resolve) => { this.onAuthenticated = resolve; });
    this.client = connect(location.origin, token, { onState: (s) => this.connectionChanged(s) });
    this.details = new HexDetails($("#hex-details"));
    this.members = new MembersPanel($("#members-list"), {
      onCentre: (m) => this.goTo(m.player.x, m.player.y),
      onFollow: (m) => this.follow(this.followed === m.name ? null : m.name),
    });
    this.view = new MapView($("#map"), $("#overlay"), this.state, {
      clock: () => Date.now() + this.serverOffset,
      onCamera: () => this.cameraMoved(),
      requestFrame: () => this.requestFrame(),
    });
    attachInput($("#overlay"), this.view, {
      onHover: (hex) => { this.hover = hex; this.view.setHover(hex); this.detailsDirty = true; },
      onTap: (hex) => this.select(hex),
      onDrag: () => this.follow(null),
    });
    new ResizeObserver(() => this.view.resize()).observe($("#map"));

    const filters = $("#filters");
    fillAgeChoices(filters.elements.maxAge);
    filters.addEventListener("input", () => { this.view.setFilters(readFilters(filters)); });
    this.view.setFilters(readFilters(filters));
    $("#search").addEventListener("submit", (ev) => { ev.preventDefault(); this.search($("#search-text").value); });
    $("#zoom-in").addEventListener("click", () => this.view.zoomAt(1.25));
    $("#zoom-out").addEventListener("click", () => this.view.zoomAt(0.8));

    // Countdowns and "seen ... ago" move on with the clock.
    this.ticker = setInterval(() => {
      this.members.tick(this.now());
      this.detailsDirty = true;
      this.requestFrame();
    }, 1000);
    // Ages cross their buckets as time passes: repaint the fading once a minute.
    this.fader = setInterval(() => { this.view.redrawAll(); }, 60000);
    this.membersTimer = setInterval(() => this.loadMembers(), MEMBERS_REFRESH_MS);
    this.start();
  }

  now() {
    return Date.now() + this.serverOffset;
  }

  async start() {
    const camera = savedCamera();
    if (camera) {
      // Where the member looked last time: subscribe there at once.
      this.view.camera.size = camera.size;
      this.view.centerOn(camera.x, camera.y);
      this.subscribeAround();
      return;
    }
    // First visit: centre on the token's own player once the members are known (they
    // are loaded as soon as the socket is authenticated).
    await this.authenticated;
    await this.membersLoading;
    const members = this.state.members();
    const mine = members.find((m) => m.name === this.client.member && m.player?.x != null)
      || members.find((m) => m.player?.x != null);
    if (mine) this.view.centerOn(mine.player.x, mine.player.y);
    this.subscribeAround();
  }

  async loadMembers() {
    try {
      const { members } = await this.client.members();
      this.state.applyMembers(members);
      this.panelsDirty = true;
      this.requestFrame();
    } catch (exc) {
      if (exc.status === 401) this.refused();
    }
  }

  connectionChanged(s) {
    this.status.setConnection(s);
    if (s.state === "live") {
      this.state.guild = this.client.guild;
      this.state.me = this.client.member;
      this.membersLoading = this.loadMembers();
      this.onAuthenticated();
    } else if (s.state === "refused") this.refused();
  }

  refused() {
    this.client.close();
    this.status.setConnection({ state: "refused" });
    clearInterval(this.membersTimer);
  }

  // -- the subscription follows the camera -----------------------------------------------

  wantedArea() {
    const v = this.view.visibleDisk();
    return { x: v.x, y: v.y, r: Math.min(MAX_AREA_RADIUS, Math.ceil(v.r * AREA_MARGIN) + AREA_EXTRA), visible: v.r };
  }

  subscribeAround() {
    const { x, y, r } = this.wantedArea();
    const area = { x, y, r };
    this.subscribedArea = area;
    if (this.subscription) this.subscription.move(area);
    else {
      this.subscription = this.client.subscribe({
        area,
        onSnapshot: (snap) => this.snapshot(snap),
        onEvent: (ev) => this.event(ev),
      });
    }
  }

  cameraMoved() {
    const cam = this.view.camera;
    localStorage.setItem(CAMERA_KEY, JSON.stringify({ x: cam.x, y: cam.y, size: cam.size }));
    const area = this.subscribedArea;
    if (!area || !this.subscription) return;
    const want = this.wantedArea();
    if (distance(area.x, area.y, want.x, want.y) + want.visible <= area.r) return;
    clearTimeout(this.resubscribeTimer);
    this.resubscribeTimer = setTimeout(() => this.subscribeAround(), RESUBSCRIBE_DELAY_MS);
  }

  // -- socket -> state -----------------------------------------------------------------------

  snapshot(snap) {
    this.serverOffset = snap.now - Date.now();
    this.view.invalidate(this.state.applySnapshot(snap));
    this.status.setLastUpdate(snap.now);
    this.panelsDirty = true;
    this.detailsDirty = true;
    this.followMember();
  }

  event(ev) {
    const dirty = this.state.applyEvent(ev);
    this.view.invalidate(dirty);
    this.status.setLastUpdate(ev.at);
    this.panelsDirty = true;
    const shown = this.hover || this.selected;
    if (shown && dirty.has(hexId(shown[0], shown[1]))) this.detailsDirty = true;
    this.followMember();
  }

  // -- state -> screen, once per frame -----------------------------------------------------

  requestFrame() {
    if (this.frameWanted) return;
    this.frameWanted = true;
    requestAnimationFrame(() => {
      this.frameWanted = false;
      this.view.draw();
      const now = this.now();
      if (this.panelsDirty) {
        this.panelsDirty = false;
        this.members.render(this.state.members(), now, this.followed);
      }
      if (this.detailsDirty) {
        this.detailsDirty = false;
        const hex = this.hover || this.selected;
        this.details.show(hex, hex ? this.state.at(hex[0], hex[1]) : null, now, this.state.guild);
      }
    });
  }

  select(hex) {
    this.selected = hex;
    this.view.setSelected(hex);
    this.detailsDirty = true;
    this.requestFrame();
  }

  goTo(x, y) {
    this.view.centerOn(x, y);
    this.select([x, y]);
  }

  follow(name) {
    if (this.followed === name) return;
    this.followed = name;
    this.panelsDirty = true;
    this.followMember();
    this.requestFrame();
  }

  followMember() {
    if (!this.followed) return;
    const m = this.state.members().find((mm) => mm.name === this.followed);
    const p = m?.player;
    if (p?.x == null) return;
    const [cx, cy] = [Math.round(this.view.camera.x), Math.round(this.view.camera.y)];
    if (cx !== p.x || cy !== p.y) this.view.centerOn(p.x, p.y);
    this.select([p.x, p.y]);
  }

  /** "x, y" goes there; a name centres on the next entity or member matching it. */
  search(text) {
    const note = $("#search-note");
    const coords = /^\s*(-?\d+)\s*[,; ]\s*(-?\d+)\s*$/.exec(text);
    if (coords) {
      note.textContent = "";
      this.goTo(Number(coords[1]), Number(coords[2]));
      return;
    }
    if (text !== this.lastSearch) {
      this.lastSearch = text;
      const needle = text.trim().toLowerCase();
      const people = this.state.members().filter((m) => m.player?.x != null && m.name.toLowerCase().includes(needle))
        .map((m) => ({ name: m.name, x: m.player.x, y: m.player.y }));
      this.matches = needle ? [...people, ...this.state.find(text)] : [];
      this.matchIndex = 0;
    }
    if (!this.matches.length) {
      note.textContent = "no match in the area shown";
      return;
    }
    const hit = this.matches[this.matchIndex % this.matches.length];
    this.matchIndex += 1;
    note.textContent = `${hit.name} (${this.matchIndex}/${this.matches.length})`;
    this.goTo(hit.x, hit.y);
  }

  close() {
    for (const t of [this.ticker, this.fader, this.membersTimer]) clearInterval(t);
    this.client.close();
  }
}

function main() {
  const login = $("#login");
  let page = null;
  const begin = (token) => {
    login.hidden = true;
    $("#app").hidden = false;
    page = new MapPage(token);
  };
  login.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = login.elements.token.value.trim();
    if (!token) return;
    localStorage.setItem(TOKEN_KEY, token);
    login.elements.token.value = "";
    begin(token);
  });
  $("#forget").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    page?.close();
    // A fresh page: nothing of the forgotten token's guild stays in memory.
    location.replace(location.pathname);
  });
  const token = takeToken();
  if (token) begin(token);
  else login.hidden = false;
}

main();
