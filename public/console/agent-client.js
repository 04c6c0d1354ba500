/**
 * The agent console's client for the native WebSocket protocol (docs/protocol.md): agents'
 * conversation sockets (`/ws/conversations/:id`, cookie auth) and the inbox (`/ws/org`).
 * Visitors (the widget, customers' own code) use the Web SDK (sdk/src/index.ts) instead, which
 * speaks only the visitor side.
 *
 * - ReconnectingSocket: one WebSocket that reconnects with exponential backoff (1 s … 10 s),
 *   optionally heartbeats with the exact `{"type":"ping"}` frame, and reports its state.
 * - ConversationClient: one conversation over a ReconnectingSocket: resume with since/epoch,
 *   resync over REST when the server asks, messages deduped by id and sorted by seq, and an
 *   outbox that resends unacknowledged messages with the same client_msg_id after reconnecting.
 *
 * No dependencies, no DOM: the pages render from the callbacks.
 */

export const PING_FRAME = '{"type":"ping"}';
const PING_EVERY_MS = 20_000;
/** No frame at all (a pong counts) for this long: the connection is presumed dead. */
const SILENCE_LIMIT_MS = 45_000;
const BACKOFF_MIN_MS = 1_000;
/** The server's limits (src/core/message.ts, src/conversation/protocol.ts). */
const MAX_CONTENT_BYTES = 16 * 1024;
const MAX_FRAME_BYTES = 64 * 1024;
const BACKOFF_MAX_MS = 10_000;
/** Close codes after which reconnecting cannot help. */
const FATAL_CLOSE_CODES = new Set([4403]);
/**
 * Flow control (docs/protocol.md): a conversation socket confirms with `received` after this many
 * message frames or characters of them. The server closes one 300 messages or 4 MiB behind with
 * 4009 (slow_consumer), after which the client reconnects and resumes like after any drop.
 * The same numbers as src/core/wire.ts (this file is served as written, without a build).
 */
const CONFIRM_EVERY_MESSAGES = 50;
const CONFIRM_EVERY_CHARS = 256 * 1024;
/** Error frames the server closes the socket right after: reconnect at once (src/core/wire.ts CLOSING_ERRORS, the same list). */
export const CLOSING_ERRORS = new Set(["slow_consumer", "invalid_seq"]);

/** ws(s)://this-origin/path */
export function socketUrl(path) {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
}

export function backoffDelay(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.max(0, attempt - 1));
  return Math.min(BACKOFF_MAX_MS, Math.round(base * (1 + Math.random() * 0.2)));
}

/**
 * States reported to onState(state, info):
 *   "connecting"  info.attempt         a socket is opening (attempt 0: the first since ready)
 *   "open"                             the socket is usable (the caller decides when: markReady)
 *   "waiting"   info.retryInMs, info.attempt, info.code   closed; the next attempt is scheduled
 *   "failed"    info.code, info.reason         closed for good (forbidden); call start() to retry
 *   "stopped"                          stop() was called
 */
export class ReconnectingSocket {
  /**
   * @param {{ url: () => string, onFrame: (frame: any, chars: number) => void, onState?: (state: string, info?: any) => void,
   *           onOpen?: () => void, heartbeat?: boolean }} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.timer = null;
    this.heartbeatTimer = null;
    this.lastFrameAt = 0;
    this.onOnline = () => {
      if (this.state === "waiting") this.connectNow();
    };
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    this.connectNow();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.timer);
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "bye");
    this.setState("stopped");
  }

  /** Skips the remaining backoff wait (a "Retry now" button). */
  connectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close(1000, "reconnecting");
    }
    this.setState("connecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.opts.url());
    } catch (err) {
      this.setState("failed", { code: 0, reason: String(err) });
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      this.startHeartbeat();
      this.opts.onOpen?.();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && frame.type === "pong") return;
      this.opts.onFrame(frame, event.data.length);
    });
    ws.addEventListener("close", (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.stopHeartbeat();
      if (this.stopped) return;
      if (FATAL_CLOSE_CODES.has(event.code)) {
        this.setState("failed", { code: event.code, reason: event.reason });
        return;
      }
      this.scheduleReconnect(event.code);
    });
  }

  /** Call when the server's first frame arrived: resets the backoff. */
  markReady() {
    this.attempt = 0;
    this.setState("open");
  }

  /** Closes the current socket and reconnects after the backoff (e.g. after a protocol hiccup). */
  restart() {
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      this.stopHeartbeat();
      old.close(1000, "restart");
    }
    this.scheduleReconnect();
  }

  /** `code`: the close code that ended the last socket, if one did (1008: the session ended). */
  scheduleReconnect(code) {
    if (this.stopped) return;
    this.attempt += 1;
    const retryInMs = backoffDelay(this.attempt);
    this.setState("waiting", { retryInMs, attempt: this.attempt, at: Date.now() + retryInMs, code });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connectNow(), retryInMs);
  }

  /** Sends a JSON frame; false when the socket is not open (nothing was sent). */
  send(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  get isOpen() {
    return this.state === "open" && this.ws?.readyState === WebSocket.OPEN;
  }

  startHeartbeat() {
    this.stopHeartbeat();
    if (!this.opts.heartbeat) return;
    this.heartbeatTimer = setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
        // A half-open connection: nothing came back, not even a pong.
        this.restart();
        return;
      }
      this.send(PING_FRAME);
    }, PING_EVERY_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  setState(state, info) {
    this.state = state;
    this.opts.onState?.(state, info);
  }
}

function newClientMsgId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * One conversation, live.
 *
 * Callbacks (all optional):
 *   onMessages(messages, pending)   the sorted message list or the outbox changed
 *   onReady(readyFrame)             every (re)connection's first frame, after resume/resync
 *   onTyping(frame)                 someone else's typing frame
 *   onDraft(draft)                  the visitor's unsent text (typing preview); "" once sent or cleared
 *   onRead(frame)                   a read receipt
 *   onSession(session)              the support session changed
 *   onPresence(status)              "online" | "offline" (the org's account status, visitors)
 *   onState(state, info)            see ReconnectingSocket
 *   onError(frame)                  an error frame not tied to one of our sends
 *   isSelf(typingOrMessage)         true for our own typing frames (ignored)
 */
export class ConversationClient {
  /**
   * @param {{ url: () => string, fetchHistory: () => Promise<any[]>, [k: string]: any }} opts
   *   url: the socket URL without since/epoch; fetchHistory: the latest messages over REST (resync).
   */
  constructor(opts) {
    this.opts = opts;
    this.messages = new Map(); // id -> message
    this.sorted = [];
    this.pending = new Map(); // client_msg_id -> { client_msg_id, content, content_type, rich_media, error, sentAt }
    this.lastSeq = null;
    this.epoch = null;
    this.session = null;
    this.unconfirmed = 0;
    this.unconfirmedChars = 0;
    this.socket = new ReconnectingSocket({
      url: () => this.url(),
      onFrame: (frame, chars) => {
        if (frame?.type === "message") this.confirmReceived(frame.message?.seq, chars);
        return this.onFrame(frame);
      },
      onOpen: () => {
        this.unconfirmed = 0;
        this.unconfirmedChars = 0;
      },
      onState: (state, info) => this.opts.onState?.(state, info),
      heartbeat: true,
    });
  }

  start() {
    this.socket.start();
  }

  stop() {
    this.socket.stop();
  }

  retryNow() {
    this.socket.start();
  }

  url() {
    const url = new URL(this.opts.url());
    if (this.lastSeq !== null) {
      url.searchParams.set("since", String(this.lastSeq));
      if (this.epoch) url.searchParams.set("epoch", this.epoch);
    }
    return url.href;
  }

  /**
   * Queues a message and sends it now if connected; it stays in the outbox (and is resent with
   * the same client_msg_id after each reconnect) until the server acknowledges it.
   */
  send({ content, content_type = "text", rich_media = null, private: isPrivate = false }) {
    const item = { client_msg_id: newClientMsgId(), content, content_type, rich_media, private: isPrivate, error: null, sentAt: Date.now() };
    // Refused here rather than by the server: a frame over its limit closes the socket (1009),
    // and the outbox would resend it after every reconnect.
    const bytes = new TextEncoder().encode(content).byteLength;
    if (bytes > MAX_CONTENT_BYTES) item.error = `too long: ${bytes} bytes, at most ${MAX_CONTENT_BYTES} (16 KiB)`;
    else if (new TextEncoder().encode(JSON.stringify(rich_media)).byteLength > MAX_FRAME_BYTES / 2) item.error = "rich media too large";
    this.pending.set(item.client_msg_id, item);
    if (!item.error) this.transmit(item);
    this.changed();
    return item.client_msg_id;
  }

  /** Drops a failed outbox entry. */
  discard(clientMsgId) {
    this.pending.delete(clientMsgId);
    this.changed();
  }

  typing(isTyping) {
    return this.socket.isOpen && this.socket.send({ type: "typing", typing: Boolean(isTyping) });
  }

  /** Tells the server this socket took in messages up to `seq` (every 50 frames or 256 Ki characters). */
  confirmReceived(seq, chars) {
    this.unconfirmed += 1;
    this.unconfirmedChars += chars;
    if (this.unconfirmed < CONFIRM_EVERY_MESSAGES && this.unconfirmedChars < CONFIRM_EVERY_CHARS) return;
    this.unconfirmed = 0;
    this.unconfirmedChars = 0;
    if (Number.isInteger(seq)) this.socket.send({ type: "received", seq });
  }

  markRead(seq) {
    if (this.socket.isOpen && Number.isInteger(seq) && seq > 0) this.socket.send({ type: "read", seq });
  }

  transmit(item) {
    if (!this.socket.isOpen) return false;
    const frame = { type: "send", client_msg_id: item.client_msg_id, content: item.content, content_type: item.content_type, rich_media: item.rich_media };
    if (item.private) frame.private = true; // a whisper: staff only (agents and bots may send one)
    return this.socket.send(frame);
  }

  async onFrame(frame) {
    if (!frame || typeof frame.type !== "string") return;
    switch (frame.type) {
      case "ready":
        await this.onReady(frame);
        return;
      case "message":
        this.merge([frame.message]);
        if (frame.message.sender_type === "end_user") this.opts.onDraft?.("");
        return;
      case "draft":
        this.opts.onDraft?.(frame.draft);
        return;
      case "ack": {
        // Stored. The message itself arrives as a "message" frame (normally just before the ack),
        // or in the replay after a reconnect: only then does it leave the outbox (see merge).
        const item = frame.client_msg_id ? this.pending.get(frame.client_msg_id) : null;
        if (!item) return;
        if (this.messages.has(frame.id)) this.pending.delete(frame.client_msg_id);
        else item.acked = true;
        this.changed();
        return;
      }
      case "typing":
        if (!this.opts.isSelf?.(frame)) this.opts.onTyping?.(frame);
        return;
      case "read":
        this.opts.onRead?.(frame);
        return;
      case "session":
        this.session = frame.session;
        this.opts.onSession?.(frame.session);
        return;
      case "presence":
        this.opts.onPresence?.(frame.account_status);
        return;
      case "error":
        this.onError(frame);
        return;
    }
  }

  async onReady(ready) {
    const epochChanged = this.epoch !== null && ready.epoch !== this.epoch;
    this.epoch = ready.epoch;
    this.session = ready.session ?? null;
    if (ready.resync_required || epochChanged) {
      // Our copy cannot be patched (a new epoch, or too much missed): start over from REST.
      this.messages.clear();
      this.sorted = [];
      this.lastSeq = ready.head_seq;
      this.changed();
      try {
        this.merge(await this.opts.fetchHistory());
      } catch (err) {
        this.opts.onError?.({ code: "resync_failed", message: `could not reload the history: ${err.message}`, retryable: true });
      }
    } else {
      this.merge(ready.messages ?? []);
      this.lastSeq = Math.max(this.lastSeq ?? 0, ready.head_seq ?? 0);
    }
    this.socket.markReady();
    this.opts.onSession?.(this.session);
    if (ready.account_status) this.opts.onPresence?.(ready.account_status);
    this.opts.onReady?.(ready);
    // Resend what the server never acknowledged, with the same ids: a duplicate is recognised.
    for (const item of this.pending.values()) if (!item.error && !item.acked) this.transmit(item);
  }

  onError(frame) {
    if (frame.code === "invalid_seq") {
      // Our position is beyond the server's log (its state was reset): reconnect from scratch.
      this.lastSeq = null;
      this.epoch = null;
      this.messages.clear();
      this.sorted = [];
      this.changed();
    }
    if (CLOSING_ERRORS.has(frame.code)) {
      this.socket.connectNow(); // the close event would come only when the connection ends (wire.ts)
      return;
    }
    const item = frame.client_msg_id ? this.pending.get(frame.client_msg_id) : null;
    if (!item) {
      this.opts.onError?.(frame);
      return;
    }
    if (frame.retryable) {
      // e.g. rate_limited: try again shortly with the same id.
      item.error = null;
      item.note = frame.message;
      setTimeout(() => this.pending.has(item.client_msg_id) && this.transmit(item), 3_000);
    } else {
      item.error = `${frame.code}: ${frame.message}`;
    }
    this.changed();
  }

  merge(list) {
    let touched = false;
    for (const m of list) {
      if (!m || typeof m.id !== "string" || !Number.isInteger(m.seq)) continue;
      if (m.client_msg_id && this.pending.delete(m.client_msg_id)) touched = true;
      if (this.messages.has(m.id)) continue;
      this.messages.set(m.id, m);
      this.lastSeq = Math.max(this.lastSeq ?? 0, m.seq);
      touched = true;
    }
    if (!touched) return;
    this.sorted = [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    this.changed();
  }

  changed() {
    this.opts.onMessages?.(this.sorted, [...this.pending.values()]);
  }
}

/**
 * Outgoing typing indicator: call input() on every keystroke and stop() after sending.
 * Sends typing:true at most every 3 s while typing, typing:false after 4 s of quiet.
 */
export class TypingSender {
  constructor(send) {
    this.send = send;
    this.lastTrueAt = 0;
    this.idle = null;
  }

  input(hasText) {
    clearTimeout(this.idle);
    if (!hasText) {
      this.stop(true);
      return;
    }
    if (Date.now() - this.lastTrueAt > 3_000 && this.send(true)) this.lastTrueAt = Date.now();
    this.idle = setTimeout(() => this.stop(true), 4_000);
  }

  /** notify: send typing:false (not needed after a send: the server clears it). */
  stop(notify) {
    clearTimeout(this.idle);
    if (notify && this.lastTrueAt) this.send(false);
    this.lastTrueAt = 0;
  }
}

/**
 * Incoming typing indicators: who is typing, each expiring 7 s after their last frame (the
 * server's own TTL is 6 s; a lost "typing:false" must not leave the indicator up forever).
 */
export class TypingWatcher {
  constructor(onChange) {
    this.onChange = onChange;
    this.who = new Map(); // key -> { name, timer }
  }

  update(frame) {
    const key = `${frame.sender_type}:${frame.sender_id}`;
    clearTimeout(this.who.get(key)?.timer);
    if (frame.typing) {
      this.who.set(key, { name: frame.sender_name, type: frame.sender_type, timer: setTimeout(() => this.update({ ...frame, typing: false }), 7_000) });
    } else {
      this.who.delete(key);
    }
    this.onChange([...this.who.values()]);
  }

  clear() {
    for (const t of this.who.values()) clearTimeout(t.timer);
    this.who.clear();
    this.onChange([]);
  }
}
