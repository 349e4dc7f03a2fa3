// The nacritan hub's client: the live feed (/ws) with reconnection and resume, the read
// API and the legacy uploads. No DOM, no dependency: pages and userscripts import it as is.
// The protocol is docs/protocol.md; this module is documented in docs/client.md.

export const MIN_RETRY_MS = 500;
export const MAX_RETRY_MS = 20000;
const UPLOAD_ATTEMPTS = 6;
// Browsers cannot send websocket pings: a `ping` command unanswered this long (checked at
// the next tick) means the connection is dead although no close came (half-open TCP).
const PING_EVERY_MS = 20000;
const PING_TIMEOUT_MS = 10000;
const CLOSE_AUTH = 4001;

/** Full jitter: a uniform delay up to an exponential cap, never below the floor. */
export function backoffDelay(attempt, min = MIN_RETRY_MS, max = MAX_RETRY_MS, random = Math.random) {
  const cap = Math.min(max, min * 2 ** attempt);
  return Math.max(min, Math.round(random() * cap));
}

/** An error the hub answered, with its envelope's code and message. */
export class HubError extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.name = "HubError";
    this.status = status;
    this.code = code;
    this.path = path;
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function hubError(response) {
  let code = "http_error";
  let message = `HTTP ${response.status}`;
  let path;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message, path } = body.error);
  } catch { /* not JSON: keep the status */ }
  return new HubError(response.status, code, message, path);
}

/**
 * Open a client on the hub at `baseUrl` (its origin: the page's own, or the hub's address) with a token.
 * `onState({state, retryInMs, attempt, reason})` hears every change of the connection:
 * "connecting", "live", "reconnecting" (with the delay before the next attempt) and
 * "refused" (the token is unknown or revoked: the client stops), "closed".
 */
export function connect(baseUrl, token, options = {}) {
  return new Client(baseUrl, token, options);
}

class Client {
  constructor(baseUrl, token, { onState, WebSocket: Socket = globalThis.WebSocket, fetch: doFetch } = {}) {
    const base = new URL(baseUrl, globalThis.location?.href);
    this.baseUrl = base.origin;
    this._wsUrl = `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}/ws`;
    this._token = token;
    this._onState = onState || (() => {});
    this._Socket = Socket;
    this._fetch = doFetch || ((...args) => globalThis.fetch(...args));
    this._subs = new Set();
    this._socket = null;
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._closed = false;
    this._stop = new AbortController();
    this.connectionState = "connecting";
    this.member = null;
    this.guild = null;
    this.upload = {
      view: (tiles) => this._upload("/view", tiles),
      profile: (pc) => this._upload(`/pc/${encodeURIComponent(pc.id)}`, pc),
      group: (members) => this._upload("/gdc", members),
    };
    this._open();
  }

  // -- the connection's state machine -----------------------------------------------------

  _setState(state, extra = {}) {
    this.connectionState = state;
    this._onState({ state, ...extra });
  }

  _open() {
    if (this._closed) return;
    this._setState(this._attempt === 0 ? "connecting" : "reconnecting", { retryInMs: 0, attempt: this._attempt });
    const socket = new this._Socket(this._wsUrl);
    const conn = { socket, nextId: 1, pending: new Map(), bySubId: new Map(), live: false, pingSentAt: null };
    this._socket = conn;
    socket.onmessage = (message) => this._receive(conn, message.data);
    socket.onclose = (close) => this._lost(conn, close.code, close.reason);
    socket.onerror = () => { /* a close follows */ };
  }

  _send(conn, command) {
    command.id = conn.nextId++;
    conn.socket.send(JSON.stringify(command));
    return command.id;
  }

  _receive(conn, data) {
    if (conn !== this._socket) return;
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    switch (msg.type) {
      case "auth_required":
        conn.socket.send(JSON.stringify({ type: "auth", token: this._token }));
        break;
      case "auth_ok":
        this.member = msg.member;
        this.guild = msg.guild;
        conn.live = true;
        this._attempt = 0;
        this._setState("live");
        for (const sub of this._subs) this._startSub(conn, sub);
        this._startPings(conn);
        break;
      case "auth_invalid":
        conn.refused = msg.message || "token refused";
        break;
      case "result": {
        const pending = conn.pending.get(msg.id);
        conn.pending.delete(msg.id);
        if (pending) pending(msg);
        break;
      }
      case "snapshot":
      case "event": {
        const sub = conn.bySubId.get(msg.subscription);
        if (sub) sub._deliver(msg);
        break;
      }
      default:
        break;
    }
  }

  _startPings(conn) {
    clearInterval(this._pingTimer);
    this._pingTimer = setInterval(() => {
      if (conn !== this._socket || !conn.live) return;
      // Measured from the ping, not the last answer: a background tab's timers may run
      // only once a minute, while its socket messages still arrive at once.
      if (conn.pingSentAt !== null) {
        if (Date.now() - conn.pingSentAt > PING_TIMEOUT_MS) {
          conn.socket.close(4000, "ping timeout");
          this._lost(conn, 1006, "ping timeout");
        }
        return;
      }
      conn.pingSentAt = Date.now();
      const id = this._send(conn, { type: "ping" });
      conn.pending.set(id, () => { conn.pingSentAt = null; });
    }, PING_EVERY_MS);
  }

  _lost(conn, code, reason) {
    if (conn !== this._socket) return;
    this._socket = null;
    clearInterval(this._pingTimer);
    for (const sub of this._subs) sub._serverId = null;
    if (this._closed) return;
    if (code === CLOSE_AUTH || conn.refused) {
      this._closed = true;
      this._setState("refused", { reason: conn.refused || reason || "token refused" });
      return;
    }
    const delay = backoffDelay(this._attempt);
    this._attempt += 1;
    this._setState("reconnecting", { retryInMs: delay, attempt: this._attempt, reason: reason || `closed (${code})` });
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  /** Stop for good: no reconnection; every subscription ends. */
  close() {
    if (this._closed && !this._socket) return;
    this._closed = true;
    this._stop.abort();
    clearTimeout(this._retryTimer);
    clearInterval(this._pingTimer);
    const conn = this._socket;
    this._socket = null;
    if (conn) conn.socket.close(1000, "client closed");
    this._subs.clear();
    this._setState("closed");
  }

  // -- subscriptions ------------------------------------------------------------------------

  /**
   * Follow the guild's feed over `area` ({x, y, r}; omit it for the whole guild).
   * `onSnapshot(snapshot)` gets the state to start from (again after a reconnection the
   * server could not resume); `onEvent(event)` every later event, once each, in order.
   */
  subscribe({ area = null, onSnapshot = () => {}, onEvent = () => {}, onError = () => {} } = {}) {
    const sub = new Subscription(this, area, onSnapshot, onEvent, onError);
    this._subs.add(sub);
    if (this._socket?.live) this._startSub(this._socket, sub);
    return sub;
  }

  _startSub(conn, sub) {
    const command = { type: "subscribe" };
    if (sub.area) command.area = { x: sub.area.x, y: sub.area.y, r: sub.area.r };
    if (sub.seq !== null && sub.epoch !== null) {
      command.since = sub.seq;
      command.epoch = sub.epoch;
    }
    const id = this._send(conn, command);
    sub._commandId = id;
    conn.pending.set(id, (msg) => {
      if (sub._commandId !== id || !this._subs.has(sub)) {
        if (msg.success) this._send(conn, { type: "unsubscribe", subscription: msg.result.subscription });
        return;
      }
      if (!msg.success) {
        sub._onError(new HubError(0, msg.error.code, msg.error.message));
        return;
      }
      sub._serverId = msg.result.subscription;
      sub.recovered = msg.result.recovered;
      conn.bySubId.set(sub._serverId, sub);
    });
  }

  _stopSub(sub) {
    const conn = this._socket;
    sub._commandId = null;
    if (conn?.live && sub._serverId !== null) {
      conn.bySubId.delete(sub._serverId);
      this._send(conn, { type: "unsubscribe", subscription: sub._serverId });
    }
    sub._serverId = null;
  }

  // -- HTTP -----------------------------------------------------------------------------------

  async _get(path) {
    const response = await this._fetch(this.baseUrl + path, {
      headers: { Authorization: `Bearer ${this._token}` }, cache: "no-store",
    });
    if (!response.ok) throw await hubError(response);
    return response.json();
  }

  /** The guild's merged state over a disk, as `GET /api/v1/state` answers it. */
  state({ x, y, r }) {
    const q = new URLSearchParams({ x: String(x), y: String(y), r: String(r) });
    return this._get(`/api/v1/state?${q}`);
  }

  /** The guild's token holders and their players (`GET /api/v1/members`). */
  members() {
    return this._get("/api/v1/members");
  }

  async _upload(path, payload) {
    // One key per upload, the same on every attempt: a retried upload is stored once.
    const key = newKey();
    const body = JSON.stringify(payload);
    for (let attempt = 0; ; attempt++) {
      let response = null;
      try {
        response = await this._fetch(this.baseUrl + path, {
          method: "POST", body,
          headers: { Authorization: `Bearer ${this._token}`, "Content-Type": "application/json", "Idempotency-Key": key },
        });
      } catch (exc) {
        if (attempt + 1 >= UPLOAD_ATTEMPTS || this._stop.signal.aborted) throw exc;
      }
      if (response !== null) {
        if (response.ok) return response.json();
        if (response.status !== 503 || attempt + 1 >= UPLOAD_ATTEMPTS) throw await hubError(response);
      }
      const retryAfter = Number(response?.headers.get("Retry-After")) * 1000 || 0;
      await sleep(Math.max(retryAfter, backoffDelay(attempt)), this._stop.signal);
    }
  }
}

class Subscription {
  constructor(client, area, onSnapshot, onEvent, onError) {
    this._client = client;
    this.area = area ? { x: area.x, y: area.y, r: area.r } : null;
    this._onSnapshot = onSnapshot;
    this._onEvent = onEvent;
    this._onError = onError;
    // Where the subscriber stands in the feed: resumed from here after a reconnection.
    this.seq = null;
    this.epoch = null;
    this.recovered = null;
    this._serverId = null;
    this._commandId = null;
    // The snapshot being put together from its parts, if one is arriving.
    this._parts = null;
  }

  _deliver(msg) {
    if (msg.type === "snapshot") {
      const whole = this._assemble(msg);
      if (whole === null) return;
      this.seq = whole.seq;
      this.epoch = whole.epoch;
      this._onSnapshot(whole);
      return;
    }
    // Events carry absolute values, but a subscriber is promised each one once.
    if (this.epoch === msg.epoch && this.seq !== null && msg.seq <= this.seq) return;
    this.seq = msg.seq;
    this.epoch = msg.epoch;
    this._onEvent(msg);
  }

  // A large snapshot comes in parts (docs/protocol.md): part 0 starts it, each part's
  // lists add to it, and the part with `more: false` completes it. Subscribers only ever
  // see whole snapshots, so they need not know about parts.
  _assemble(msg) {
    if (msg.part === undefined) return msg;
    if (msg.part === 0 || this._parts === null) {
      const { part: _part, more: _more, ...first } = msg;
      this._parts = first;
    } else {
      for (const [key, value] of Object.entries(msg)) {
        if (Array.isArray(value) && Array.isArray(this._parts[key])) {
          for (const item of value) this._parts[key].push(item);
        } else if (Array.isArray(value)) {
          this._parts[key] = value.slice();
        }
      }
    }
    if (msg.more) return null;
    const whole = this._parts;
    this._parts = null;
    return whole;
  }

  /** Follow another area: a fresh snapshot of it comes, then its events. */
  move(area) {
    if (!this._client._subs.has(this)) return;
    this._client._stopSub(this);
    this.area = area ? { x: area.x, y: area.y, r: area.r } : null;
    this.seq = null;
    this.epoch = null;
    this._parts = null;
    const conn = this._client._socket;
    if (conn?.live) this._client._startSub(conn, this);
  }

  /** Stop this subscription. */
  close() {
    if (!this._client._subs.delete(this)) return;
    this._client._stopSub(this);
  }
}
