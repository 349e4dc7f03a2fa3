// The map: a canvas of the guild's hexes, its camera and hit-testing. It draws from the
// guild state only, once per animation frame, and only the hexes marked dirty unless the
// camera moved. A second canvas on top holds the hover and selection outlines.

import { coveringRadius, corners, fromPixel, hexId, hexOf, round, toPixel } from "./hex.js";
import { ALL } from "./guild-state.js";

const BACKGROUND = "#15191e";
const TERRAIN = {
  "plaine": "#8fbf5a", "plaine fleurie": "#b7d77a", "forêt": "#2f7d3a", "foret": "#2f7d3a",
  "forêt dense": "#1f5a28", "montagne": "#8a7566", "colline": "#a4916b", "marais": "#4f6f55",
  "désert": "#e0cd86", "desert": "#e0cd86", "rivière": "#4a9fd8", "riviere": "#4a9fd8",
  "eau": "#3b7fc4", "océan": "#2c5f9e", "ocean": "#2c5f9e", "espace pavé": "#9e9e9e", "terre battue": "#b08a5a", "lac": "#3b7fc4", "mer": "#2c5f9e", "route": "#b9a58a", "pavé": "#9e9e9e",
  "ville": "#a1887f", "neige": "#eef2f5", "toundra": "#b8c4b0", "steppe": "#c9c27a", "lave": "#c2452d",
};

/** Age buckets of a sighting: the map fades what is old, the filters cut by them. */
export const AGES = [
  { name: "fresh", label: "fresh (10 min)", upTo: 10 * 60e3, alpha: 1 },
  { name: "hour", label: "within an hour", upTo: 3600e3, alpha: 0.78 },
  { name: "day", label: "within a day", upTo: 86400e3, alpha: 0.52 },
  { name: "older", label: "older", upTo: Infinity, alpha: 0.3 },
];

export function ageIndex(ageMs) {
  return AGES.findIndex((a) => ageMs <= a.upTo);
}

/** What a marker stands for: guildmates apart from other players. */
export function category(e, guild) {
  return e.kind === "player" ? (guild !== null && e.guild_id === guild ? "member" : "player") : e.kind;
}

// Where each category sits in its hex (fractions of the hex size), its colour and shape.
const MARKERS = {
  member: { dx: -0.42, dy: -0.22, color: "#34e36f", shape: "circle" },
  player: { dx: 0.42, dy: -0.22, color: "#ff9d1c", shape: "circle" },
  monster: { dx: 0, dy: 0.38, color: "#ef3b36", shape: "diamond" },
  place: { dx: 0, dy: -0.56, color: "#b45bd1", shape: "square" },
  resource: { dx: -0.44, dy: 0.3, color: "#ffe03a", shape: "triangle" },
  object: { dx: 0.44, dy: 0.3, color: "#3fe0f5", shape: "circle" },
};
const PRIORITY = ["member", "monster", "player", "place", "resource", "object"];

const UNKNOWN_TERRAIN = ["#7f8c6a", "#8c7f6a", "#6a7f8c", "#8c6a7f", "#7a8c8c", "#8c8c6a"];

function terrainColor(type) {
  const known = TERRAIN[String(type).toLowerCase()];
  if (known) return known;
  let h = 0;
  for (const ch of String(type)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return UNKNOWN_TERRAIN[h % UNKNOWN_TERRAIN.length];
}

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** A colour faded over the background by alpha, as one little-endian RGBA pixel. */
function pixel(hex, alpha) {
  const [r, g, b] = rgb(hex);
  const [br, bg, bb] = rgb(BACKGROUND);
  const mix = (c, d) => Math.round(c * alpha + d * (1 - alpha));
  return ((255 << 24) | (mix(b, bb) << 16) | (mix(g, bg) << 8) | mix(r, br)) >>> 0;
}

// Below this many device pixels per hex, terrain is written as pixel spans (tens of
// thousands of hexes in a few milliseconds); above, each hex is one pre-drawn sprite.
const SPAN_BELOW_PX = 14;

export const MIN_SIZE = 3;
export const MAX_SIZE = 60;

export class MapView {
  constructor(canvas, overlay, state, { clock, onCamera, requestFrame }) {
    this.canvas = canvas;
    this.overlay = overlay;
    this.state = state;
    this.clock = clock;
    this.onCamera = null;
    this.requestFrame = () => {};
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.octx = overlay.getContext("2d");
    this.camera = { x: 1000, y: 500, size: 22 };
    this.filters = { categories: new Set(Object.keys(MARKERS)), minLevel: 0, maxLevel: Infinity, maxAge: AGES.length - 1 };
    this.hover = null;
    this.selected = null;
    this.followed = null;
    this._dirty = new Set();
    this._full = true;
    this._overlayDirty = true;
    this.width = 0;
    this.height = 0;
    this.resize();
    this.onCamera = onCamera;
    this.requestFrame = requestFrame;
  }

  // -- camera ------------------------------------------------------------------------------

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    for (const c of [this.canvas, this.overlay]) {
      c.width = Math.round(this.width * dpr);
      c.height = Math.round(this.height * dpr);
    }
    this.dpr = dpr;
    this._cameraMoved();
  }

  _cameraMoved() {
    this._full = true;
    this._overlayDirty = true;
    this.requestFrame();
    this.onCamera?.(this.camera);
  }

  centerOn(x, y) {
    this.camera.x = x;
    this.camera.y = y;
    this._cameraMoved();
  }

  panBy(dx, dy) {
    const [cx, cy] = toPixel(this.camera.x, this.camera.y, this.camera.size);
    [this.camera.x, this.camera.y] = fromPixel(cx - dx, cy - dy, this.camera.size);
    this._cameraMoved();
  }

  /** Zoom by `factor`, keeping the point under (sx, sy) where it is. */
  zoomAt(factor, sx = this.width / 2, sy = this.height / 2) {
    const size = Math.min(MAX_SIZE, Math.max(MIN_SIZE, this.camera.size * factor));
    const [q, r] = this._axialAt(sx, sy);
    this.camera.size = size;
    const [px, py] = toPixel(q, r, size);
    [this.camera.x, this.camera.y] = fromPixel(px - (sx - this.width / 2), py - (sy - this.height / 2), size);
    this._cameraMoved();
  }

  _axialAt(sx, sy) {
    const [cx, cy] = toPixel(this.camera.x, this.camera.y, this.camera.size);
    return fromPixel(sx - this.width / 2 + cx, sy - this.height / 2 + cy, this.camera.size);
  }

  /** The hex under a point of the canvas (CSS pixels). */
  hexAt(sx, sy) {
    return round(...this._axialAt(sx, sy));
  }

  _screen(x, y) {
    const size = this.camera.size;
    const [cx, cy] = toPixel(this.camera.x, this.camera.y, size);
    const [px, py] = toPixel(x, y, size);
    return [px - cx + this.width / 2, py - cy + this.height / 2];
  }

  /** The hex disk that covers the screen: centre hex and radius. */
  visibleDisk() {
    const [x, y] = round(this.camera.x, this.camera.y);
    return { x, y, r: coveringRadius(this.width, this.height, this.camera.size) };
  }

  // -- what to draw ----------------------------------------------------------------------------

  setFilters(filters) {
    this.filters = filters;
    this._full = true;
    this.requestFrame();
  }

  /** Entities of a hex that pass the filters. */
  shown(entities, now) {
    const f = this.filters;
    return entities.filter((e) => {
      if (!f.categories.has(category(e, this.state.guild))) return false;
      if (e.kind === "monster" && e.level !== null && (e.level < f.minLevel || e.level > f.maxLevel)) return false;
      return ageIndex(now - e.seen_at) <= f.maxAge;
    });
  }

  invalidate(dirty) {
    if (dirty === ALL) this._full = true;
    else for (const id of dirty) this._dirty.add(id);
    this._overlayDirty = true;
    this.requestFrame();
  }

  redrawAll() {
    this._full = true;
    this.requestFrame();
  }

  setHover(hex) {
    this.hover = hex;
    this._overlayDirty = true;
    this.requestFrame();
  }

  setSelected(hex) {
    this.selected = hex;
    this._overlayDirty = true;
    this.requestFrame();
  }

  // -- drawing (called once per animation frame) -----------------------------------------------

  draw() {
    const now = this.clock();
    let drawn = null;
    if (this._full) {
      this._drawAll(now);
      drawn = { full: true, hexes: [] };
    } else if (this._dirty.size) {
      const hexes = [...this._dirty];
      for (const id of hexes) this._drawHex(id, now);
      drawn = { full: false, hexes };
    }
    this._full = false;
    this._dirty.clear();
    if (this._overlayDirty) this._drawOverlay();
    this._overlayDirty = false;
    if (drawn) {
      drawn.tiles = this.state.tiles.size;
      this.canvas.dispatchEvent(new CustomEvent("mapdrawn", { bubbles: true, detail: drawn }));
    }
  }

  _hexPath(path, sx, sy, corner) {
    path.moveTo(sx + corner[0][0], sy + corner[0][1]);
    for (let i = 1; i < 6; i++) path.lineTo(sx + corner[i][0], sy + corner[i][1]);
    path.closePath();
  }

  _visibleRange() {
    const size = this.camera.size;
    const margin = size * 2;
    const [, rTop] = this._axialAt(0, -margin);
    const [, rBottom] = this._axialAt(0, this.height + margin);
    return { rMin: Math.floor(rTop), rMax: Math.ceil(rBottom), margin };
  }

  /** A hex of one terrain and age, pre-drawn at the current size: one drawImage per hex. */
  _sprite(type, age) {
    const size = this.camera.size;
    if (this._spriteSize !== size || this._spriteDpr !== this.dpr) {
      this._sprites = new Map();
      this._spriteSize = size;
      this._spriteDpr = this.dpr;
    }
    const key = `${type}|${age}`;
    let sprite = this._sprites.get(key);
    if (sprite) return sprite;
    const scale = this.dpr;
    const w = Math.ceil(Math.sqrt(3) * size * scale) + 2;
    const h = Math.ceil(2 * size * scale) + 2;
    const canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(scale, 0, 0, scale, w / 2, h / 2);
    const path = new Path2D();
    this._hexPath(path, 0, 0, corners(size));
    ctx.fillStyle = BACKGROUND;
    ctx.fill(path);
    ctx.globalAlpha = AGES[age].alpha;
    ctx.fillStyle = terrainColor(type);
    ctx.fill(path);
    ctx.globalAlpha = 1;
    // Outlines only where the full redraw draws them too (it writes spans when small).
    if (size * scale >= SPAN_BELOW_PX) {
      ctx.strokeStyle = "rgba(0,0,0,0.28)";
      ctx.lineWidth = 1 / scale;
      ctx.stroke(path);
    }
    sprite = { canvas, w, h };
    this._sprites.set(key, sprite);
    return sprite;
  }

  _stamp(tile, sx, sy, now) {
    const sprite = this._sprite(tile.type, ageIndex(now - tile.seen_at));
    const { ctx, dpr } = this;
    ctx.drawImage(sprite.canvas, Math.round(sx * dpr - sprite.w / 2), Math.round(sy * dpr - sprite.h / 2));
  }

  /** Each pixel row of a hex at this size: [dy, half width], in device pixels. */
  _spans() {
    const s = this.camera.size * this.dpr;
    if (this._spansFor === s) return this._spanRows;
    const rows = [];
    const half = (Math.sqrt(3) / 2) * s;
    for (let dy = -Math.floor(s); dy <= Math.floor(s); dy++) {
      const ay = Math.abs(dy);
      const w = ay <= s / 2 ? half : half * (s - ay) / (s / 2);
      if (w >= 0.5) rows.push([dy, Math.round(w - 0.5)]);
    }
    this._spansFor = s;
    this._spanRows = rows;
    return rows;
  }

  _drawAll(now) {
    const { ctx, dpr } = this;
    const size = this.camera.size;
    const spans = size * dpr < SPAN_BELOW_PX;
    const W = this.canvas.width;
    const H = this.canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    let buf = null;
    let rows = null;
    const colors = new Map();
    if (spans) {
      if (!this._image || this._image.width !== W || this._image.height !== H) {
        this._image = ctx.createImageData(W, H);
        this._pixels = new Uint32Array(this._image.data.buffer);
      }
      buf = this._pixels;
      buf.fill(pixel(BACKGROUND, 1));
      rows = this._spans();
    } else {
      ctx.fillStyle = BACKGROUND;
      ctx.fillRect(0, 0, W, H);
    }
    // Screen position of hex (q, r): ox + kq * (q + r / 2), oy + kr * r (no allocation per hex).
    const [camX, camY] = toPixel(this.camera.x, this.camera.y, size);
    const ox = this.width / 2 - camX;
    const oy = this.height / 2 - camY;
    const kq = size * Math.sqrt(3);
    const kr = size * 1.5;
    const tiles = this.state.tiles;
    const byHex = this.state.byHex;
    const marked = [];
    const { rMin, rMax, margin } = this._visibleRange();
    for (let r = rMin; r <= rMax; r++) {
      const sy = oy + kr * r;
      const qLeft = Math.floor((-margin - ox) / kq - r / 2);
      const qRight = Math.ceil((this.width + margin - ox) / kq - r / 2);
      for (let q = qLeft; q <= qRight; q++) {
        const id = q * 1024 + r; // hexId(q, r), inlined in the hottest loop
        const tile = tiles.get(id);
        const busy = byHex.has(id);
        if (tile === undefined && !busy) continue;
        const sx = ox + kq * (q + r / 2);
        if (tile !== undefined) {
          if (!spans) this._stamp(tile, sx, sy, now);
          else {
            const age = ageIndex(now - tile.seen_at);
            let byAge = colors.get(tile.type);
            if (byAge === undefined) colors.set(tile.type, (byAge = []));
            let color = byAge[age];
            if (color === undefined) color = byAge[age] = pixel(terrainColor(tile.type), AGES[age].alpha);
            const cx = Math.round(sx * dpr);
            const cy = Math.round(sy * dpr);
            for (let i = 0; i < rows.length; i++) {
              const y = cy + rows[i][0];
              if (y < 0 || y >= H) continue;
              const half = rows[i][1];
              const x0 = cx - half < 0 ? 0 : cx - half;
              const x1 = cx + half >= W ? W - 1 : cx + half;
              if (x1 >= x0) buf.fill(color, y * W + x0, y * W + x1 + 1);
            }
          }
        }
        if (busy) marked.push(q, r, sx, sy);
      }
    }
    if (spans) ctx.putImageData(this._image, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    for (let i = 0; i < marked.length; i += 4) this._drawMarkers(marked[i], marked[i + 1], marked[i + 2], marked[i + 3], now);
  }

  _drawHex(id, now) {
    const { ctx, dpr } = this;
    const size = this.camera.size;
    const [q, r] = hexOf(id);
    const [sx, sy] = this._screen(q, r);
    if (sx < -size || sy < -size || sx > this.width + size || sy > this.height + size) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const path = new Path2D();
    this._hexPath(path, sx, sy, corners(size + 0.5));
    ctx.save();
    ctx.clip(path);
    ctx.fillStyle = BACKGROUND;
    ctx.fill(path);
    const tile = this.state.tiles.get(id);
    if (tile !== undefined) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      this._stamp(tile, sx, sy, now);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    this._drawMarkers(q, r, sx, sy, now);
    ctx.restore();
  }

  _drawMarkers(q, r, sx, sy, now) {
    const { ctx } = this;
    const size = this.camera.size;
    const here = this.shown(this.state.at(q, r).entities, now);
    if (!here.length) return;
    const groups = new Map();
    for (const e of here) {
      const cat = category(e, this.state.guild);
      const g = groups.get(cat);
      const age = ageIndex(now - e.seen_at);
      if (!g) groups.set(cat, { count: 1, age, level: e.level ?? null });
      else {
        g.count += 1;
        g.age = Math.min(g.age, age);
        if (e.level !== null && (g.level === null || e.level > g.level)) g.level = e.level;
      }
    }
    if (size < 8) {
      // Too small for six slots: one dot of the most important kind.
      const cat = PRIORITY.find((c) => groups.has(c));
      ctx.globalAlpha = AGES[groups.get(cat).age].alpha;
      ctx.fillStyle = MARKERS[cat].color;
      ctx.beginPath();
      ctx.arc(sx, sy, Math.max(1.5, size * 0.55), 0, Math.PI * 2);
      ctx.fill();
      ctx.globalAlpha = 1;
      return;
    }
    const radius = size * 0.25;
    for (const [cat, g] of groups) {
      const m = MARKERS[cat];
      const x = sx + m.dx * size;
      const y = sy + m.dy * size;
      ctx.globalAlpha = AGES[g.age].alpha;
      ctx.fillStyle = m.color;
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1;
      ctx.beginPath();
      if (m.shape === "circle") ctx.arc(x, y, radius, 0, Math.PI * 2);
      else if (m.shape === "square") ctx.rect(x - radius, y - radius, radius * 2, radius * 2);
      else if (m.shape === "diamond") {
        const d = radius * 1.25;
        ctx.moveTo(x, y - d); ctx.lineTo(x + d, y); ctx.lineTo(x, y + d); ctx.lineTo(x - d, y); ctx.closePath();
      } else {
        ctx.moveTo(x, y - radius); ctx.lineTo(x + radius, y + radius); ctx.lineTo(x - radius, y + radius); ctx.closePath();
      }
      ctx.fill();
      ctx.stroke();
      if (size >= 20 && cat === "monster" && g.level !== null) {
        ctx.fillStyle = "#fff";
        ctx.font = `bold ${Math.round(size * 0.3)}px system-ui, sans-serif`;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(String(g.level), x, y + 0.5);
      }
      if (g.count > 1 && size >= 20) {
        ctx.fillStyle = "#fff";
        ctx.font = `${Math.round(size * 0.22)}px system-ui, sans-serif`;
        ctx.textAlign = "left";
        ctx.fillText(String(g.count), x + radius, y - radius);
      }
      ctx.globalAlpha = 1;
    }
  }

  _drawOverlay() {
    const { octx: ctx, dpr } = this;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    const outline = (hex, color, width) => {
      if (!hex) return;
      const [sx, sy] = this._screen(hex[0], hex[1]);
      const path = new Path2D();
      this._hexPath(path, sx, sy, corners(this.camera.size));
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.stroke(path);
    };
    outline(this.hover, "rgba(255,255,255,0.9)", 1.5);
    outline(this.selected, "#ffd54a", 2.5);
  }
}
