/**
 * Parley Web SDK: seed 003's visitor client over Parley's native WebSocket protocol
 * (docs/protocol.md) and the webchat REST API (`/chat-widget/*`).
 *
 *   const client = createClient({ host: "https://chat.example.com", key: "pk_…" })
 *   client.on("initialized", (data) => render(data.messages))
 *   client.on("chat.message_received", ({ message }) => append(message)) // dedupe by id
 *   await client.connect()
 *   const message = await client.chatMessage({ content: { type: "text", text: "Hello" } })
 *
 * How it works:
 * - connect() opens (or finds) the visitor's conversation with POST /chat-widget/session, which
 *   answers refusals with a clear error (a refused WebSocket handshake carries none), then opens
 *   a reconnecting socket (partysocket) to /ws/visitor. Each reconnect's URL carries
 *   `since=<last seq>&epoch=<epoch>`, so the server replays exactly what was missed; when it says
 *   `resync_required` the history is fetched over REST instead.
 * - Every (re)connection's first frame (`ready`) fires `initialized` with the latest data; after
 *   a reconnect, messages that arrived meanwhile also come once each as `chat.message_received`.
 * - Flow control: a `received` frame every 50 message frames (or 256 KiB) tells the server how far
 *   this socket has read; a socket that falls 300 messages or 4 MiB behind is closed with 4009
 *   (slow_consumer) and reconnects and resumes like after any drop.
 * - Sends carry a client_msg_id; unacknowledged sends are resent with the same id after a
 *   reconnect (the server recognises a retry), and chatMessage() resolves to the stored message.
 * - Events are delivered asynchronously, in order; a message id is never delivered twice.
 * - Parley's own widget (widget/app.js) is built on this client: there is one visitor client.
 *
 * No DOM, no Node APIs: browsers and Node 22+ (global WebSocket, fetch, EventTarget).
 */
import ReconnectingWebSocket from "partysocket/ws";
import type { AccountStatus, Message as WireMessage, QueueStatus, SenderType, ServerFrame as WireServerFrame, Session, TypedRichMedia } from "../../src/core/wire.ts";
import { CLOSING_ERRORS, CONFIRM_EVERY_CHARS, CONFIRM_EVERY_MESSAGES } from "../../src/core/wire.js";

// ---- the wire model (Parley's message object, seed 001's rich media) -----------------------

// The types are the server's own (src/core/wire.ts, shared with the Worker), so the two cannot drift.
export type { AccountStatus, Button, CarouselMedia, ContentType, DeliveryStatus, DropdownMedia, FileMedia, ImageMedia, QueueStatus, QuickButtonMedia, SenderType, Session } from "../../src/core/wire.ts";

/** A stored message. `content_type` tells which `rich_media` shape it carries. */
export type Message = Omit<WireMessage, "session_id" | "content_type" | "rich_media"> & {
  /** Absent on messages fetched from the webchat history endpoint. */
  session_id?: string;
} & TypedRichMedia;

/** An upload slot: PUT the bytes to `url` (or POST multipart field `file`), then chatUploadFinish(token). */
export interface UploadInfo {
  token: string;
  url: string;
  expires_at: string;
  max_bytes: number;
}

// ---- events ----------------------------------------------------------------------------------

export interface InitializedData {
  account: { status: AccountStatus };
  visitor: { id: string; name: string | null };
  conversation: { id: string; session: Session | null };
  /** The conversation as the visitor sees it (the latest 100 on a first connect), oldest first. */
  messages: Message[];
  /** How far this visitor (any tab) has read: the seq passed to chatRead(). */
  read: { contact_read_seq: number };
  /** False on the first connect, true after a reconnect. */
  reconnected: boolean;
  /**
   * The channel shows agents what the visitor types before sending it (`chatDraft`). Tell the
   * visitor so wherever they type (the widget does).
   */
  typing_preview: boolean;
}

export interface AgentTypingData {
  typing: boolean;
  agent: { id: string; name: string | null; type: "agent" | "bot" | "system" };
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** Event name -> the payload its listeners receive. */
export interface ParleyEvents {
  /** Every (re)connection: the latest data. Refresh the view from it. */
  initialized: InitializedData;
  /** At least one agent online, or none. */
  "account.status_updated": AccountStatus;
  /** A new message (the visitor's own included); each id once. */
  "chat.message_received": { message: Message };
  /** An agent started or stopped typing. */
  "chat.agent_typing": AgentTypingData;
  /** This visitor read up to a seq (in this tab or another). */
  "chat.contact_read": { contact_read_seq: number };
  /** Parley: the support session opened, was assigned, handed off or resolved. */
  "chat.session_updated": { session: Session };
  /** Parley: the visitor's place in the agents' queue. */
  "chat.queue_updated": QueueStatus;
  /** Parley: an agent (or bot) read the conversation up to a seq (read receipts: "Seen"). */
  "chat.agent_read": { agent_read_seq: number };
  /** Parley: the connection's state. */
  "connection.state_changed": { state: ConnectionState };
  /** Parley: a problem not tied to a call (a failed resync, a refusal after connecting). */
  error: ParleyError;
}
export type ParleyEventName = keyof ParleyEvents;
export type Listener<E extends ParleyEventName> = (data: ParleyEvents[E]) => void;

// ---- options and errors ----------------------------------------------------------------------

export interface ClientOptions {
  /** Parley's address, e.g. "https://chat.example.com" (https:// is assumed without a scheme). */
  host: string;
  /** A public API key (`pk_…`): the organisation's default webchat channel. */
  key?: string;
  /** A webchat channel's embed token (`ew_…`). */
  embedToken?: string;
  /** The visitor's stable id. Omit it the first time: the server makes one (client.visitorId); store it. */
  visitorId?: string;
  /** The visitor's display name. */
  name?: string;
  /** HMAC-SHA256 hex of the visitor id with the channel's identity secret, where the channel requires it. */
  identityHash?: string;
  /** A WebSocket constructor, where there is no global one (e.g. the `ws` package). */
  WebSocket?: new (url: string, protocols?: string | string[]) => unknown;
  /** A fetch implementation, where there is no global one. */
  fetch?: typeof fetch;
  /** Reconnect backoff: from minDelayMs (default 1000, with jitter) growing to maxDelayMs (default 10000). */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number };
  /** Heartbeat period (default 20000); a connection silent for 2.25 periods is replaced. 0 disables. */
  heartbeatMs?: number;
  /** REST request timeout (default 15000). */
  requestTimeoutMs?: number;
}

/** Every failure the SDK reports: the server's error code (docs: README "Errors") or a local one. */
export class ParleyError extends Error {
  override readonly name = "ParleyError";
  /** The server's code (`unauthorized`, `rate_limited`, `invalid_text`, …) or `network_error`, `not_connected`, `disconnected`, `resync_failed`. */
  readonly code: string;
  /** The HTTP status of a refused REST call, else null. */
  readonly status: number | null;
  readonly retryable: boolean;
  constructor(code: string, message: string, opts: { status?: number | null; retryable?: boolean } = {}) {
    super(message);
    this.code = code;
    this.status = opts.status ?? null;
    this.retryable = opts.retryable ?? false;
  }
}

// ---- the native protocol's frames (server -> client) ------------------------------------------

type ServerFrame = WireServerFrame<Message>;

interface SessionAnswer {
  conversation_id: string;
  external_id: string;
  end_user?: { display_name: string | null };
  channel?: { id: string; title: string };
}

/** The visitor's profile, saved on the end user (`identify`). */
export interface VisitorProfile {
  name?: string;
  email?: string;
  /** Free key/value pairs shown to agents (at most 50; keys up to 100 characters, values up to 1000). */
  attributes?: Record<string, string>;
}

interface PendingSend {
  clientMsgId: string;
  frame: string;
  text: string;
  resolve: (m: Message) => void;
  reject: (e: ParleyError) => void;
}

/** The server's limits (src/core/message.ts): a larger frame would close the socket (1009). */
const MAX_CONTENT_BYTES = 16 * 1024;
const PING_FRAME = '{"type":"ping"}';
/** Close codes after which reconnecting cannot help (the principal was refused). */
const FATAL_CLOSE_CODES = new Set([4403]);
// Flow control (docs/protocol.md): `received` goes out after CONFIRM_EVERY_MESSAGES message
// frames or CONFIRM_EVERY_CHARS of them (src/core/wire.ts); a socket the server closes with 4009
// (slow_consumer) reconnects and resumes like after any drop.
/** Refusal re-checks over REST while the socket cannot connect, at most this often. */
const REFUSAL_CHECK_MS = 5_000;
/** typing:true is repeated at most this often (the server's indicator lasts 6 s). */
const TYPING_REFRESH_MS = 3_000;
/** Typing preview: a draft goes out at most this often (the latest one always does). */
const DRAFT_INTERVAL_MS = 300;
/** The server's limit for a draft (src/conversation/protocol.ts). */
const MAX_DRAFT_CHARS = 2_000;

export function createClient(options: ClientOptions): ParleyClient {
  return new ParleyClient(options);
}

export class ParleyClient {
  /** The conversation's id, once connect() has opened it. */
  conversationId: string | null = null;
  private _visitorId: string | null;
  private visitorName: string | null;
  private _state: ConnectionState = "idle";

  private readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly listeners = new Map<ParleyEventName, Set<(data: any) => void>>();

  private socket: ReconnectingWebSocket | null = null;
  /** Socket generations: one per opened socket; `readyGen` is the last whose `ready` was handled. */
  private gen = 0;
  private readyGen = 0;
  private everReady = false;
  /** Message frames of the current socket that came before its `ready`. */
  private early: Message[] = [];
  private frames: Promise<void> = Promise.resolve();

  /** The visitor's view: id -> message. */
  private known = new Map<string, Message>();
  /** Ids delivered to the caller (in `initialized` or `chat.message_received`): never again. */
  private readonly delivered = new Set<string>();
  private lastSeq: number | null = null;
  private epoch: string | null = null;
  /** After `invalid_seq`: the next `ready` replaces the view. */
  private resetOnReady = false;
  private status: AccountStatus | null = null;
  private _session: Session | null = null;
  private contactReadSeq = 0;
  private _agentReadSeq = 0;
  private _queue: QueueStatus | null = null;
  private _channel: { id: string; title: string } | null = null;
  /** Profile fields for the next POST /chat-widget/session (identify before connect). */
  private profile: { email?: string; attributes?: Record<string, string> } = {};
  private readonly onOnline = () => this.reconnectNow();
  private readonly pending = new Map<string, PendingSend>();

  private connecting: Promise<InitializedData> | null = null;
  private connectWaiter: { resolve: (d: InitializedData) => void; reject: (e: ParleyError) => void } | null = null;
  private stopped = false;
  /** When typing:true was last sent (0: not typing, as far as the server knows). */
  private typingSentAt = 0;
  /** The channel's typing preview (from the last ready frame). */
  private typingPreview = false;
  private draftSentAt = 0;
  private pendingDraft: string | null = null;
  private draftTimer: ReturnType<typeof setTimeout> | null = null;
  private attempts = 0;
  private lastRefusalCheck = 0;

  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  /** Message frames of the current socket not confirmed with `received` yet. */
  private unconfirmed = 0;
  private unconfirmedChars = 0;

  private readonly queue: [ParleyEventName, unknown][] = [];
  private flushScheduled = false;
  /** While > 0, events wait (a REST call whose answer the caller should get first). */
  private holds = 0;

  constructor(private readonly options: ClientOptions) {
    if (!options || typeof options.host !== "string" || options.host.trim() === "") throw new TypeError("createClient: host is required");
    if (!options.key && !options.embedToken) throw new TypeError("createClient: key or embedToken is required");
    const host = options.host.trim().replace(/\/+$/, "");
    this.base = /^https?:\/\//i.test(host) ? host : `https://${host}`;
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("createClient: no fetch available; pass options.fetch");
    this.fetchImpl = f.bind(globalThis);
    this._visitorId = options.visitorId ?? null;
    this.visitorName = options.name ?? null;
  }

  /** The visitor's id: the one given, or the one the server made (store it for the next visit). */
  get visitorId(): string | null {
    return this._visitorId;
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** "online" | "offline", once connected. */
  get accountStatus(): AccountStatus | null {
    return this.status;
  }

  /** The messages this client knows, oldest first. */
  get messages(): Message[] {
    return [...this.known.values()].sort((a, b) => a.seq - b.seq);
  }

  /** The support session (null before the visitor's first message). */
  get session(): Session | null {
    return this._session;
  }

  /** The webchat channel (`{id, title}`), once connect() has opened the conversation. */
  get channel(): { id: string; title: string } | null {
    return this._channel;
  }

  /** How far an agent or bot has read (the highest seq in their read receipts). */
  get agentReadSeq(): number {
    return this._agentReadSeq;
  }

  /** The visitor's place in line as last reported (`chat.queue_updated`); null once an agent has the session. */
  get queueStatus(): QueueStatus | null {
    return this._queue;
  }

  /** Agent and bot messages after this visitor's read position. */
  get unreadCount(): number {
    let n = 0;
    for (const m of this.known.values()) if (m.sender_type !== "end_user" && m.seq > this.contactReadSeq) n++;
    return n;
  }

  // ---- events ------------------------------------------------------------------------------

  /** Listens to an event; returns a function that removes the listener. */
  on<E extends ParleyEventName>(event: E, listener: Listener<E>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off<E extends ParleyEventName>(event: E, listener: Listener<E>): void {
    this.listeners.get(event)?.delete(listener);
  }

  // ---- connecting --------------------------------------------------------------------------

  /**
   * Opens the visitor's conversation and its live connection. Resolves with the first
   * `initialized` data; rejects with a ParleyError when the server refuses (`unauthorized`,
   * `origin_not_allowed`, `identity_required`, …) or cannot be reached (`network_error`).
   * Calling it again while connecting or connected returns the same promise.
   */
  connect(): Promise<InitializedData> {
    if (this.connecting) return this.connecting;
    this.stopped = false;
    this.connecting = new Promise<InitializedData>((resolve, reject) => {
      this.connectWaiter = { resolve, reject };
    });
    this.setState("connecting");
    // Browsers say when the network is back: skip the rest of the backoff then.
    globalThis.addEventListener?.("online", this.onOnline);
    void this.start();
    return this.connecting;
  }

  /**
   * Reconnects at once instead of waiting out the backoff (a "Retry now" button; browsers also
   * do it on their `online` event). Nothing happens while connected or after disconnect() or a
   * refusal (`state` "closed": call connect() again).
   */
  reconnectNow(): void {
    if (this.stopped || !this.socket || this.isLive()) return;
    // A fresh socket: partysocket's own reconnect() waits out the current delay first.
    this.closeSocket();
    this.openSocket();
  }

  /**
   * Saves the visitor's profile (name, email, attributes) on the end user. Before connect() it is
   * remembered and sent with it; afterwards it is stored at once (resolves when it is). A new
   * name also renews the live connection, so agents see it on the visitor's next messages.
   * Rejects with the server's code (e.g. `validation_failed` for an invalid email).
   */
  async identify(profile: VisitorProfile): Promise<void> {
    const renamed = typeof profile.name === "string" && profile.name.trim() !== "" && profile.name.trim() !== this.visitorName;
    if (renamed) this.visitorName = profile.name!.trim();
    if (profile.email) this.profile.email = profile.email;
    if (profile.attributes) this.profile.attributes = { ...this.profile.attributes, ...profile.attributes };
    if (!this.connecting) return; // sent by connect()
    if (!this.conversationId) await this.connecting.catch(() => undefined);
    if (!this.conversationId || this.stopped) return;
    await this.openSession();
    if (renamed && this.socket) {
      this.closeSocket();
      this.openSocket();
    }
  }

  /** Closes the connection for good; pending sends are rejected (`disconnected`). connect() may be called again. */
  disconnect(): void {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.onOnline);
    this.attempts += 1;
    this.connecting = null;
    const waiter = this.connectWaiter;
    this.connectWaiter = null;
    waiter?.reject(new ParleyError("disconnected", "disconnect() was called"));
    this.closeSocket();
    this.rejectPending(new ParleyError("disconnected", "disconnect() was called before the server acknowledged the message"));
    this.setState("closed");
  }

  private async start() {
    const attempt = ++this.attempts;
    try {
      await this.openSession();
    } catch (err) {
      if (attempt === this.attempts && !this.stopped) this.fail(asParleyError(err));
      return;
    }
    // disconnect() (and maybe connect() again) happened meanwhile: that call owns the connection.
    if (attempt !== this.attempts || this.stopped) return;
    this.openSocket();
  }

  private async openSession(): Promise<void> {
    const o = this.options;
    const answer = await this.request<SessionAnswer>("POST", "/chat-widget/session", {
      ...(o.key ? { key: o.key } : { embed_token: o.embedToken }),
      ...(this._visitorId ? { session_id: this._visitorId } : {}),
      ...(this.visitorName ? { customer_name: this.visitorName } : {}),
      ...(o.identityHash ? { identity_hash: o.identityHash } : {}),
      ...this.profile,
    });
    this._visitorId = answer.external_id;
    this.conversationId = answer.conversation_id;
    if (answer.channel) this._channel = answer.channel;
    if (answer.end_user && answer.end_user.display_name !== undefined) this.visitorName = answer.end_user.display_name;
  }

  private openSocket() {
    const min = Math.max(0, this.options.reconnect?.minDelayMs ?? 1_000);
    const max = Math.max(min, this.options.reconnect?.maxDelayMs ?? 10_000);
    const socket = new ReconnectingWebSocket(() => this.socketUrl(), undefined, {
      WebSocket: this.options.WebSocket,
      // Jitter, so that many visitors do not all come back in the same instant.
      minReconnectionDelay: Math.round(min * (1 + Math.random() * 0.25)),
      maxReconnectionDelay: max,
      reconnectionDelayGrowFactor: 1.5,
      connectionTimeout: 10_000,
      // Nothing is buffered while offline: sends wait in this client's own outbox for `ready`.
      maxEnqueuedMessages: 0,
      shouldReconnectOnClose: (event) => !FATAL_CLOSE_CODES.has(event.code),
    });
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      this.gen += 1;
      this.early = [];
      this.lastFrameAt = Date.now();
      this.unconfirmed = 0;
      this.unconfirmedChars = 0;
    });
    socket.addEventListener("message", (event: MessageEvent) => {
      if (socket !== this.socket || typeof event.data !== "string") return;
      this.lastFrameAt = Date.now();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data) as ServerFrame;
      } catch {
        return;
      }
      if (!frame || typeof frame.type !== "string" || frame.type === "pong") return;
      if (frame.type === "message") this.confirmReceived(socket, frame.message?.seq, event.data.length);
      const gen = this.gen;
      // One frame at a time, in arrival order (a resync awaits REST in the middle).
      this.frames = this.frames.then(() => this.onFrame(frame, gen)).catch((err: unknown) => this.emit("error", asParleyError(err)));
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.onSocketClosed(event.code);
    });
    this.socket = socket;
  }

  /** Tells the server this socket took in messages up to `seq` (every 50 frames or 256 Ki characters). */
  private confirmReceived(socket: ReconnectingWebSocket, seq: unknown, chars: number) {
    this.unconfirmed += 1;
    this.unconfirmedChars += chars;
    if (this.unconfirmed < CONFIRM_EVERY_MESSAGES && this.unconfirmedChars < CONFIRM_EVERY_CHARS) return;
    this.unconfirmed = 0;
    this.unconfirmedChars = 0;
    if (Number.isInteger(seq) && socket.readyState === ReconnectingWebSocket.OPEN) socket.send(JSON.stringify({ type: "received", seq }));
  }

  /** The socket URL for the next (re)connection: a resume from the last seq seen, once there is one. */
  private socketUrl(): string {
    const o = this.options;
    const url = new URL(`${this.base.replace(/^http/i, "ws")}/ws/visitor`);
    if (o.key) url.searchParams.set("key", o.key);
    else if (o.embedToken) url.searchParams.set("embed_token", o.embedToken);
    if (this._visitorId) url.searchParams.set("external_id", this._visitorId);
    if (this.visitorName) url.searchParams.set("name", this.visitorName);
    if (o.identityHash) url.searchParams.set("identity_hash", o.identityHash);
    if (this.lastSeq !== null) {
      url.searchParams.set("since", String(this.lastSeq));
      if (this.epoch) url.searchParams.set("epoch", this.epoch);
    }
    return url.href;
  }

  private onSocketClosed(code: number) {
    const wasReady = this.socketOpenSinceReady;
    this.socketOpenSinceReady = false;
    this.stopHeartbeat();
    if (this.stopped) return;
    if (FATAL_CLOSE_CODES.has(code)) {
      this.fail(new ParleyError("forbidden", `the server closed the connection (${code}): this visitor may not use this conversation`));
      return;
    }
    this.setState(this.everReady ? "reconnecting" : "connecting");
    // A refused handshake tells the browser nothing: ask the REST API why (at most every 5 s).
    if (!wasReady && Date.now() - this.lastRefusalCheck > REFUSAL_CHECK_MS) {
      this.lastRefusalCheck = Date.now();
      this.openSession().catch((err: unknown) => {
        const e = asParleyError(err);
        if (!this.stopped && e.status !== null && e.status >= 400 && e.status < 500 && !e.retryable) this.fail(e);
      });
    }
  }

  /** True between a socket's `ready` and its close. */
  private socketOpenSinceReady = false;

  /** Gives up: a refusal that reconnecting cannot cure. */
  private fail(error: ParleyError) {
    this.stopped = true;
    globalThis.removeEventListener?.("online", this.onOnline);
    this.closeSocket();
    this.rejectPending(error);
    this.setState("closed");
    this.connecting = null;
    const waiter = this.connectWaiter;
    this.connectWaiter = null;
    if (waiter) waiter.reject(error);
    else this.emit("error", error);
  }

  /** The server is closing this socket (CLOSING_ERRORS): a new one now, resuming from lastSeq. */
  private reopenSocket() {
    if (!this.socket || this.stopped) return;
    this.onSocketClosed(1000);
    this.closeSocket();
    this.openSocket();
  }

  private closeSocket() {
    this.stopHeartbeat();
    const socket = this.socket;
    this.socket = null;
    this.socketOpenSinceReady = false;
    socket?.close(1000, "bye");
  }

  // ---- frames ------------------------------------------------------------------------------

  private async onFrame(frame: ServerFrame, gen: number): Promise<void> {
    switch (frame.type) {
      case "ready":
        if (gen === this.gen) await this.onReady(frame, gen);
        return;
      case "message":
        if (gen > this.readyGen) this.early.push(frame.message); // part of the coming `ready`
        else this.deliver(this.ingest(frame.message, true));
        return;
      case "ack":
        this.onAck(frame);
        return;
      case "error":
        this.onErrorFrame(frame, gen);
        return;
      case "typing":
        if (frame.sender_type === "end_user") return; // this visitor's other tabs
        this.emit("chat.agent_typing", { typing: frame.typing, agent: { id: frame.sender_id, name: frame.sender_name, type: frame.sender_type } });
        return;
      case "read":
        if (frame.reader_type !== "end_user") {
          if (frame.seq <= this._agentReadSeq) return;
          this._agentReadSeq = frame.seq;
          this.emit("chat.agent_read", { agent_read_seq: frame.seq });
          return;
        }
        if (frame.reader_id !== this._visitorId || frame.seq <= this.contactReadSeq) return;
        this.contactReadSeq = frame.seq;
        this.emit("chat.contact_read", { contact_read_seq: frame.seq });
        return;
      case "presence":
        this.setStatus(frame.account_status);
        return;
      case "session":
      case "handoff":
        this._session = frame.session;
        // The router stops reporting positions once an agent has the session (or it ended).
        if (frame.session.status !== "open" || frame.session.assigned_agent_id) this._queue = null;
        this.emit("chat.session_updated", { session: frame.session });
        return;
      case "queue": {
        const { type: _type, ...status } = frame;
        this._queue = status;
        this.emit("chat.queue_updated", status);
        return;
      }
      default:
        return;
    }
  }

  private async onReady(frame: Extract<ServerFrame, { type: "ready" }>, gen: number) {
    const reconnected = this.everReady;
    const early = this.early;
    this.early = [];
    const epochChanged = this.epoch !== null && frame.epoch !== this.epoch;
    const replace = frame.resync_required || epochChanged || this.resetOnReady;
    if (replace) {
      // Our copy cannot be patched: start over from the server's (REST when it asks for it).
      let list = frame.messages;
      if (frame.resync_required) {
        try {
          list = await this.fetchHistory();
        } catch (err) {
          // Keep our position so the next attempt asks again; try again shortly.
          this.emit("error", new ParleyError("resync_failed", `could not reload the history: ${asParleyError(err).message}`, { retryable: true }));
          setTimeout(() => gen === this.gen && this.socket?.reconnect(), 2_000);
          return;
        }
        if (gen !== this.gen) return; // that socket is gone; the next one starts again
      }
      this.known = new Map();
      for (const m of [...list, ...early]) this.ingest(m, false);
    } else {
      for (const m of [...frame.messages, ...early]) this.ingest(m, false);
    }
    this.epoch = frame.epoch;
    this.resetOnReady = false;
    // Resume from here next time (a replaced view starts from the server's head, not our old one).
    let seq = Math.max(replace ? 0 : (this.lastSeq ?? 0), frame.head_seq);
    for (const m of this.known.values()) if (m.seq > seq) seq = m.seq;
    this.lastSeq = seq;
    this._session = frame.session;
    if (!frame.session || frame.session.status !== "open" || frame.session.assigned_agent_id) this._queue = null;
    this.conversationId = frame.conversation_id;
    // Read positions: the ready frame's, else (older servers) agent and bot messages marked READ.
    if (frame.read) {
      this.contactReadSeq = Math.max(this.contactReadSeq, frame.read.end_user_seq);
      this._agentReadSeq = Math.max(this._agentReadSeq, frame.read.staff_seq);
    }
    for (const m of this.known.values()) if (m.sender_type !== "end_user" && m.status === "READ" && m.seq > this.contactReadSeq) this.contactReadSeq = m.seq;
    const previousStatus = this.status;
    this.status = frame.account_status;

    const list = this.messages;
    const fresh = list.filter((m) => !this.delivered.has(m.id));
    for (const m of list) this.delivered.add(m.id);

    this.readyGen = gen;
    this.typingSentAt = 0;
    this.typingPreview = frame.typing_preview === true;
    this.socketOpenSinceReady = true;
    this.everReady = true;
    this.startHeartbeat();
    this.setState("connected");
    const data: InitializedData = {
      account: { status: frame.account_status },
      visitor: { id: this._visitorId ?? "", name: this.visitorName },
      conversation: { id: frame.conversation_id, session: frame.session },
      messages: list,
      read: { contact_read_seq: this.contactReadSeq },
      reconnected,
      typing_preview: this.typingPreview,
    };
    this.emit("initialized", data);
    if (reconnected) {
      if (previousStatus !== null && previousStatus !== frame.account_status) this.emit("account.status_updated", frame.account_status);
      // What arrived while we were away: once each, in order.
      for (const m of fresh) this.emit("chat.message_received", { message: m });
    }
    // Sends the server never acknowledged go again, with the same ids (a retry is recognised).
    for (const p of this.pending.values()) this.socket?.send(p.frame);
    const waiter = this.connectWaiter;
    this.connectWaiter = null;
    waiter?.resolve(data);
  }

  /** Adds a message to the view (and settles our send it answers). Returns it when it is new to the caller. */
  private ingest(m: Message, live: boolean): Message | null {
    if (!m || typeof m.id !== "string" || !Number.isInteger(m.seq)) return null;
    const { duplicate: _d, ...message } = m as Message & { duplicate?: unknown };
    const stored = message as Message;
    this.known.set(stored.id, stored);
    if (live) this.lastSeq = Math.max(this.lastSeq ?? 0, stored.seq);
    if (stored.client_msg_id && stored.sender_type === "end_user" && stored.sender_id === this._visitorId) {
      const p = this.pending.get(stored.client_msg_id);
      if (p) {
        this.pending.delete(p.clientMsgId);
        this.typingSentAt = 0; // the server clears a sender's typing when they send
        this.pendingDraft = null;
        p.resolve(stored);
      }
    }
    return this.delivered.has(stored.id) ? null : stored;
  }

  private deliver(m: Message | null) {
    if (!m || this.delivered.has(m.id)) return;
    this.delivered.add(m.id);
    this.emit("chat.message_received", { message: m });
  }

  private onAck(frame: Extract<ServerFrame, { type: "ack" }>) {
    const p = frame.client_msg_id ? this.pending.get(frame.client_msg_id) : undefined;
    if (!p) return;
    const m = this.known.get(frame.id);
    if (m) {
      this.pending.delete(p.clientMsgId);
      p.resolve(m);
    } else if (frame.duplicate) {
      // A retry of a message stored while we were away whose copy we do not hold: look it up.
      void this.lookUp(p, frame.id, frame.seq);
    }
    // Otherwise the message frame follows right after the ack on this socket.
  }

  private async lookUp(p: PendingSend, id: string, seq: number) {
    let found: Message | undefined;
    try {
      found = (await this.fetchHistory()).find((m) => m.id === id);
    } catch {
      // fall through to the reconstruction below
    }
    if (!this.pending.has(p.clientMsgId)) return;
    const message: Message = found ?? {
      id,
      conversation_id: this.conversationId ?? "",
      seq,
      sender_type: "end_user",
      sender_id: this._visitorId ?? "",
      sender_name: this.visitorName,
      content_type: "text",
      content: p.text,
      rich_media: null,
      client_msg_id: p.clientMsgId,
      private: false,
      status: "SENT",
      created_at: new Date().toISOString(),
    };
    this.deliver(this.ingest(message, false));
    if (this.pending.delete(p.clientMsgId)) p.resolve(message);
  }

  private onErrorFrame(frame: Extract<ServerFrame, { type: "error" }>, gen: number) {
    if (frame.code === "invalid_seq") {
      // Our position is beyond the server's log (its state was reset): start over on the next connection.
      this.lastSeq = null;
      this.epoch = null;
      this.resetOnReady = true;
    }
    if (CLOSING_ERRORS.has(frame.code)) {
      if (gen === this.gen) this.reopenSocket();
      return;
    }
    const error = new ParleyError(frame.code, frame.message, { retryable: frame.retryable });
    const p = frame.client_msg_id ? this.pending.get(frame.client_msg_id) : undefined;
    if (p) {
      this.pending.delete(p.clientMsgId);
      p.reject(error);
    } else {
      this.emit("error", error);
    }
  }

  private setStatus(status: AccountStatus) {
    if (status === this.status) return;
    this.status = status;
    this.emit("account.status_updated", status);
  }

  // ---- chat ----------------------------------------------------------------------------------

  /**
   * Sends a text message. Resolves to the stored message once the server has it (durably);
   * while offline it waits and is sent after the reconnect, with the same client_msg_id.
   * Rejects with the server's code when refused (`invalid_text`, `rate_limited` (retryable), …).
   */
  chatMessage(input: { content: { type: "text"; text: string } }): Promise<Message> {
    const content = input?.content;
    if (!content || content.type !== "text" || typeof content.text !== "string") {
      return Promise.reject(new ParleyError("validation_failed", "chatMessage takes { content: { type: 'text', text } }"));
    }
    if (content.text.trim() === "") return Promise.reject(new ParleyError("validation_failed", "a text message needs text"));
    const bytes = new TextEncoder().encode(content.text).byteLength;
    if (bytes > MAX_CONTENT_BYTES) return Promise.reject(new ParleyError("validation_failed", `the text is ${bytes} bytes of UTF-8; at most ${MAX_CONTENT_BYTES}`));
    if (this.stopped || !this.connecting) return Promise.reject(new ParleyError("not_connected", "call connect() first"));
    const clientMsgId = newId();
    const frame = JSON.stringify({ type: "send", content: content.text, content_type: "text", rich_media: null, client_msg_id: clientMsgId });
    return new Promise<Message>((resolve, reject) => {
      this.pending.set(clientMsgId, { clientMsgId, frame, text: content.text, resolve, reject });
      if (this.isLive()) this.socket!.send(frame);
    });
  }

  /**
   * Tells the agents the visitor is (or stopped) typing. Call it on every keystroke if you like:
   * `true` goes out at most every 3 s (the server expires it after 6 s), `false` only after a `true`.
   * False when offline (nothing sent; typing is best effort).
   */
  chatTyping(typing: boolean): boolean {
    if (!this.isLive()) return false;
    const now = Date.now();
    if (typing ? now - this.typingSentAt < TYPING_REFRESH_MS : this.typingSentAt === 0) return true;
    this.typingSentAt = typing ? now : 0;
    return this.socket!.send(JSON.stringify({ type: "typing", typing: Boolean(typing) }));
  }

  /**
   * The composer's text, on every keystroke. Where the channel has the typing preview on
   * (`initialized.typing_preview`), agents see it as it is typed (at most every 300 ms; the latest
   * text always goes out); elsewhere it only drives `chatTyping`. Never stored by the server.
   */
  chatDraft(text: string): boolean {
    if (!this.typingPreview) return this.chatTyping(text.trim() !== "");
    if (!this.isLive()) return false;
    this.pendingDraft = text.trim() === "" ? "" : text.slice(0, MAX_DRAFT_CHARS);
    const wait = DRAFT_INTERVAL_MS - (Date.now() - this.draftSentAt);
    if (wait <= 0) this.flushDraft();
    else this.draftTimer ??= setTimeout(() => this.flushDraft(), wait);
    return true;
  }

  private flushDraft() {
    if (this.draftTimer) clearTimeout(this.draftTimer);
    this.draftTimer = null;
    const draft = this.pendingDraft;
    this.pendingDraft = null;
    if (draft === null || !this.isLive()) return;
    this.draftSentAt = Date.now();
    this.typingSentAt = draft === "" ? 0 : this.draftSentAt;
    this.socket!.send(JSON.stringify({ type: "typing", typing: draft !== "", draft }));
  }

  /**
   * Marks everything up to the newest message seen as read. Every tab of this visitor (this one
   * included) gets `chat.contact_read`. Returns the seq sent, or null (nothing to mark, or offline).
   */
  chatRead(): number | null {
    let seq = 0;
    for (const m of this.known.values()) if (m.seq > seq) seq = m.seq;
    if (seq === 0 || !this.isLive()) return null;
    this.socket!.send(JSON.stringify({ type: "read", seq }));
    return seq;
  }

  /** Asks for an upload slot: `{token, url}` (plus `expires_at`, `max_bytes`). Upload the bytes to `url` yourself. */
  async chatUploadInit(): Promise<UploadInfo> {
    const conversationId = await this.openedConversation();
    return this.request<UploadInfo>("POST", "/chat-widget/uploads", { conversation_id: conversationId, ...this.visitorCredentials() });
  }

  /**
   * Turns an uploaded file into an image or file message and resolves to it. Its
   * `chat.message_received` comes after this resolves (ignore it when you already have the id).
   */
  async chatUploadFinish(token: string, opts: { caption?: string } = {}): Promise<Message> {
    const conversationId = await this.openedConversation();
    this.holds += 1;
    try {
      const answer = await this.request<Message & { duplicate?: boolean }>("POST", `/chat-widget/uploads/${encodeURIComponent(token)}/finish`, {
        conversation_id: conversationId,
        ...this.visitorCredentials(),
        ...(opts.caption ? { caption: opts.caption } : {}),
      });
      const { duplicate: _d, ...message } = answer;
      return message as Message;
    } finally {
      this.holds -= 1;
      this.scheduleFlush();
    }
  }

  /**
   * The three upload steps in one: chatUploadInit, PUT the bytes to the upload URL (named by
   * `X-Filename`), chatUploadFinish. Resolves to the image or file message. `file` is a Blob or
   * File (its name is used unless `filename` is given) or raw bytes. Rejects with the server's
   * code: `unsupported_media_type` (not PNG, JPEG, GIF, WebP, PDF, ZIP or plain text),
   * `payload_too_large` (over `max_bytes`, checked before the bytes are sent), …
   */
  async chatUpload(file: Blob | ArrayBuffer | Uint8Array, opts: { filename?: string; caption?: string } = {}): Promise<Message> {
    const size = file instanceof Blob ? file.size : file.byteLength;
    const filename = opts.filename ?? (typeof (file as { name?: unknown }).name === "string" ? (file as File).name : "file");
    if (size === 0) throw new ParleyError("validation_failed", "the file is empty");
    const info = await this.chatUploadInit();
    if (size > info.max_bytes) throw new ParleyError("payload_too_large", `the file is ${size} bytes; at most ${info.max_bytes}`);
    const type = file instanceof Blob && file.type ? file.type : "application/octet-stream";
    const body: BodyInit = file instanceof Blob ? file : file instanceof Uint8Array ? (file as Uint8Array<ArrayBuffer>) : new Uint8Array(file);
    await this.http<unknown>("PUT", info.url, body, { "content-type": type, "x-filename": encodeURIComponent(filename) }, 120_000);
    return this.chatUploadFinish(info.token, opts.caption ? { caption: opts.caption } : {});
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private isLive(): boolean {
    return this.socket !== null && this.socketOpenSinceReady && this.readyGen === this.gen && this.socket.readyState === ReconnectingWebSocket.OPEN;
  }

  private async openedConversation(): Promise<string> {
    if (!this.conversationId && this.connecting) await this.connecting;
    if (!this.conversationId) throw new ParleyError("not_connected", "call connect() first");
    return this.conversationId;
  }

  private visitorCredentials() {
    return { external_id: this._visitorId ?? "", ...(this.options.identityHash ? { identity_hash: this.options.identityHash } : {}) };
  }

  private async fetchHistory(): Promise<Message[]> {
    const q = new URLSearchParams({ external_id: this._visitorId ?? "" });
    if (this.options.identityHash) q.set("identity_hash", this.options.identityHash);
    const list = await this.request<Message[]>("GET", `/chat-widget/history/${encodeURIComponent(this.conversationId ?? "")}?${q}`);
    return Array.isArray(list) ? list : [];
  }

  private request<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    return body === undefined
      ? this.http<T>(method, `${this.base}${path}`)
      : this.http<T>(method, `${this.base}${path}`, JSON.stringify(body), { "content-type": "application/json" });
  }

  private async http<T>(method: "GET" | "POST" | "PUT", url: string, body?: BodyInit, headers?: Record<string, string>, timeoutMs = this.options.requestTimeoutMs ?? 15_000): Promise<T> {
    // Never the upload URL's token in a message.
    const path = new URL(url).pathname.replace(/^\/uploads\/.*/, "/uploads/…");
    let res: Response;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers,
        body,
        signal: typeof AbortSignal !== "undefined" && "timeout" in AbortSignal ? AbortSignal.timeout(timeoutMs) : undefined,
      });
    } catch (err) {
      throw new ParleyError("network_error", `could not reach ${this.base}: ${err instanceof Error ? err.message : String(err)}`, { retryable: true });
    }
    const text = await res.text().catch(() => "");
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    if (!res.ok) {
      const e = json?.error;
      throw new ParleyError(typeof e?.code === "string" ? e.code : `http_${res.status}`, typeof e?.message === "string" ? e.message : `${method} ${path}: HTTP ${res.status}`, {
        status: res.status,
        retryable: typeof e?.retryable === "boolean" ? e.retryable : res.status >= 500 || res.status === 429,
      });
    }
    return json as T;
  }

  private startHeartbeat() {
    this.stopHeartbeat();
    const every = this.options.heartbeatMs ?? 20_000;
    if (!(every > 0)) return;
    this.heartbeat = setInterval(() => {
      if (!this.isLive()) return;
      // Half-open connections deliver nothing, not even the pong: replace the socket.
      if (Date.now() - this.lastFrameAt > every * 2.25) this.socket?.reconnect(4000, "silent");
      else this.socket?.send(PING_FRAME);
    }, every);
  }

  private stopHeartbeat() {
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private rejectPending(error: ParleyError) {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(error);
  }

  private setState(state: ConnectionState) {
    if (state === this._state) return;
    this._state = state;
    this.emit("connection.state_changed", { state });
  }

  /** Events go out asynchronously, in order: a promise the caller awaits settles before its event. */
  private emit<E extends ParleyEventName>(event: E, data: ParleyEvents[E]) {
    this.queue.push([event, data]);
    this.scheduleFlush();
  }

  private scheduleFlush() {
    if (this.flushScheduled || this.holds > 0 || this.queue.length === 0) return;
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      while (this.holds === 0 && this.queue.length > 0) {
        const [event, data] = this.queue.shift()!;
        for (const listener of [...(this.listeners.get(event) ?? [])]) {
          try {
            listener(data);
          } catch (err) {
            reportListenerError(err);
          }
        }
      }
    }, 0);
  }
}

function asParleyError(err: unknown): ParleyError {
  if (err instanceof ParleyError) return err;
  return new ParleyError("internal", err instanceof Error ? err.message : String(err));
}

function reportListenerError(err: unknown) {
  const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof report === "function") report(err);
  else console.error("parley-sdk: a listener threw", err);
}

function newId(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
