// Socket.IO helpers for e2e tests: the real `socket.io-client` (Engine.IO v4 / Socket.IO v5)
// against the `wrangler dev` from global-setup.ts, with bounded waits everywhere, and raw Engine.IO
// clients (fetch long-polling, plain `ws`) for the protocol's edges a stock client never sends.
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { api, baseUrl, cookieFrom, expectStatus, type Client } from "./harness.ts";

export type { Socket };
export type SioOptions = Partial<ManagerOptions & SocketOptions>;

/** One thing a socket saw: a server event (with all its arguments) or a reserved client event. */
export interface Recorded {
  event: string;
  args: any[];
  /** Engine.IO transport in use when it arrived. */
  transport: string | undefined;
}

/** Client-side lifecycle events, recorded beside the server's events so tests can order them. */
const LIFECYCLE = ["connect", "connect_error", "disconnect"] as const;

const DEFAULT_WAIT_MS = 5_000;

class Recorder {
  /** Everything seen, in arrival order. */
  readonly all: Recorded[] = [];
  /** Not yet taken by nextEvent(). */
  pending: Recorded[] = [];
  private wakers = new Set<() => void>();

  constructor(readonly socket: Socket) {
    socket.onAny((event: string, ...args: any[]) => this.push(event, args));
    for (const event of LIFECYCLE) socket.on(event as any, (...args: any[]) => this.push(event, args));
  }

  private push(event: string, args: any[]) {
    const r: Recorded = { event, args, transport: this.socket.io.engine?.transport?.name };
    this.all.push(r);
    this.pending.push(r);
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }

  /** Resolves on the next recorded event, or after ms. */
  tick(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(wake, ms);
      function wake() {
        clearTimeout(timer);
        resolve();
      }
      this.wakers.add(wake);
    });
  }
}

const recorders = new WeakMap<Socket, Recorder>();

function recorder(socket: Socket): Recorder {
  const r = recorders.get(socket);
  if (!r) throw new Error("socket was not created by sio.ts (no recorder)");
  return r;
}

const describeEvents = (rs: Recorded[]) => JSON.stringify(rs.map((r) => [r.event, ...r.args])).slice(0, 2_000);

/**
 * Takes the first not-yet-taken event `name` (matching pred, if given) and returns all its
 * arguments, waiting up to timeoutMs. Earlier events stay pending for later calls.
 */
export async function nextEventArgs(socket: Socket, name: string, pred: (payload: any, args: any[]) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<any[]> {
  const r = recorder(socket);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const i = r.pending.findIndex((e) => e.event === name && pred(e.args[0], e.args));
    if (i >= 0) return r.pending.splice(i, 1)[0]!.args;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${name} event within ${timeoutMs} ms; pending: ${describeEvents(r.pending)}`);
    await r.tick(left);
  }
}

/** Takes the next event `name` (matching pred) and returns its payload (first argument). */
export async function nextEvent(socket: Socket, name: string, pred: (payload: any, args: any[]) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<any> {
  return (await nextEventArgs(socket, name, pred, timeoutMs))[0];
}

/** Every event this socket saw (optionally only `name`), in arrival order: [event, ...args]. */
export function seen(socket: Socket, name?: string): any[][] {
  return recorder(socket)
    .all.filter((e) => name === undefined || e.event === name)
    .map((e) => [e.event, ...e.args]);
}

/** Payloads of every event `name` this socket saw, in arrival order. */
export function payloads(socket: Socket, name: string): any[] {
  return recorder(socket)
    .all.filter((e) => e.event === name)
    .map((e) => e.args[0]);
}

/** Events not taken yet (optionally only `name`), as [event, ...args]. */
export function unread(socket: Socket, name?: string): any[][] {
  return recorder(socket)
    .pending.filter((e) => name === undefined || e.event === name)
    .map((e) => [e.event, ...e.args]);
}

/** Forgets events not taken yet (e.g. after a set-up phase whose events the test ignores). */
export function drain(socket: Socket): any[][] {
  const r = recorder(socket);
  const out = r.pending.map((e) => [e.event, ...e.args]);
  r.pending = [];
  return out;
}

/** Waits (bounded) until pred holds, re-checking whenever the socket records an event. */
export async function until(socket: Socket, pred: () => boolean, timeoutMs = DEFAULT_WAIT_MS, what = "condition"): Promise<void> {
  const r = recorder(socket);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (pred()) return;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`${what} not met within ${timeoutMs} ms; pending: ${describeEvents(r.pending)}`);
    await r.tick(Math.min(left, 50));
  }
}

/** Emits with an ack callback and returns the server's answer (bounded). */
export function ack<T = any>(socket: Socket, event: string, payload?: unknown, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
  return payload === undefined ? socket.timeout(timeoutMs).emitWithAck(event) : socket.timeout(timeoutMs).emitWithAck(event, payload);
}

/** Creates a socket (not connected yet) with its event recorder; forceNew, so never multiplexed. */
export function makeSocket(opts: SioOptions = {}, nsp = "/"): Socket {
  const socket = io(new URL(nsp, baseUrl()).toString(), { forceNew: true, autoConnect: false, ...opts });
  recorders.set(socket, new Recorder(socket));
  return socket;
}

export class ConnectRefused extends Error {
  constructor(readonly cause: Error & { data?: unknown }) {
    super(`Socket.IO connect refused: ${cause.message}`);
  }
}

/**
 * Connects (or reconnects) a socket from makeSocket(): resolves on `connect` (which it takes, so
 * nextEvent(socket, "connect") waits for a later one), rejects with ConnectRefused on
 * `connect_error` (and stops the client's retries) or on timeout.
 */
export function open(socket: Socket, timeoutMs = 10_000): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    };
    const onConnect = () => {
      done();
      // This connect is the caller's to know about: not left pending for nextEvent(socket, "connect").
      const r = recorders.get(socket);
      if (r) {
        const i = r.pending.findLastIndex((e) => e.event === "connect");
        if (i >= 0) r.pending.splice(i, 1);
      }
      resolve(socket);
    };
    const onError = (err: Error) => {
      done();
      socket.disconnect();
      reject(new ConnectRefused(err));
    };
    const timer = setTimeout(() => {
      done();
      socket.disconnect();
      reject(new Error(`Socket.IO connect: no connect or connect_error within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
    socket.connect();
  });
}

/** Tracks sockets so a test file can close whatever it opened (afterEach(pool.closeAll)). */
export class SioPool {
  private readonly sockets = new Set<Socket>();

  /** A new socket, connected (see open()). */
  async connect(opts: SioOptions = {}, timeoutMs?: number): Promise<Socket> {
    return open(this.make(opts), timeoutMs);
  }

  /** A new socket (of namespace nsp), not connected yet. */
  make(opts: SioOptions = {}, nsp = "/"): Socket {
    const socket = makeSocket(opts, nsp);
    this.sockets.add(socket);
    return socket;
  }

  closeAll = (): void => {
    for (const s of this.sockets) s.disconnect();
    this.sockets.clear();
  };
}

// ---- Connection options for the seeds' clients ------------------------------------------------

/** Transports: the stock default (polling, then the upgrade to WebSocket), polling only, WebSocket only. */
export const TRANSPORTS = {
  "polling then upgrade": {} as SioOptions,
  "polling only": { transports: ["polling"] } as SioOptions,
  "websocket only": { transports: ["websocket"] } as SioOptions,
};
export type TransportName = keyof typeof TRANSPORTS;

/** Seed 000's visitor: the query string of its Android/iOS examples. */
export const dostiVisitorOpts = (pk: string, visitorId: string, visitorName: string, extra: SioOptions = {}): SioOptions => ({
  query: { apiKey: pk, role: "visitor", visitorId, visitorName },
  ...extra,
});

/** An agent by session cookie (a Node client sends no Origin). */
export const agentOpts = (cookie: string, extra: SioOptions = {}): SioOptions => ({ extraHeaders: { cookie }, ...extra });

// ---- Organisation set-up ---------------------------------------------------------------------------

/** A second agent in the same organisation, logged in: its id and session cookie. */
export async function addAgent(owner: Client, name = "Second Agent"): Promise<{ id: string; name: string; cookie: string }> {
  const creds = { name, email: `agent-${randomUUID()}@e2e.parley.test`, password: `pw-${randomUUID()}` };
  expectStatus(await owner.api("/api/company/agents", { body: creds }), 201, "create agent");
  const login = expectStatus(await api("/auth/login", { body: { email: creds.email, password: creds.password } }), 200, "login");
  const cookie = cookieFrom(login.headers, "session");
  if (!cookie) throw new Error(`login: no session cookie in ${JSON.stringify(login.headers.getSetCookie())}`);
  return { id: login.json.user.id, name, cookie };
}

/** Opens (or finds) an end user's conversation on the public key's channel, as the widget does. */
export async function openConversation(pk: string, externalId: string, customerName?: string): Promise<string> {
  const body = { key: pk, session_id: externalId, ...(customerName ? { customer_name: customerName } : {}) };
  return expectStatus(await api("/chat-widget/session", { body }), 200, "POST /chat-widget/session").json.conversation_id;
}

// ---- Raw Engine.IO over HTTP long-polling ------------------------------------------------------

export const RECORD_SEPARATOR = "\x1e";

export interface Handshake {
  sid: string;
  upgrades: string[];
  pingInterval: number;
  pingTimeout: number;
  maxPayload: number;
}

/** A hand-written Engine.IO v4 polling client: every request bounded, nothing automatic. */
export class RawPolling {
  private constructor(
    readonly handshake: Handshake,
    readonly query: string,
  ) {}

  get sid() {
    return this.handshake.sid;
  }

  static async open(query = ""): Promise<RawPolling> {
    const res = await rawRequest(`/socket.io/?EIO=4&transport=polling${query}`);
    if (res.status !== 200 || !res.text.startsWith("0")) throw new Error(`handshake: ${res.status} ${res.text}`);
    return new RawPolling(JSON.parse(res.text.slice(1)) as Handshake, query);
  }

  url() {
    return `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(this.sid)}${this.query}`;
  }

  /** One GET; its packets (split on the record separator). */
  async get(timeoutMs = 10_000): Promise<{ status: number; text: string; json: any; packets: string[] }> {
    const res = await rawRequest(this.url(), { timeoutMs });
    return { ...res, packets: res.status === 200 ? res.text.split(RECORD_SEPARATOR) : [] };
  }

  /** One POST of the given packets (joined with the record separator). */
  post(packets: string[] | string, timeoutMs = 10_000) {
    return rawRequest(this.url(), { method: "POST", body: Array.isArray(packets) ? packets.join(RECORD_SEPARATOR) : packets, timeoutMs });
  }

  /**
   * The Socket.IO CONNECT on the main namespace: POSTs `40` (with `auth` as its payload, if any)
   * and waits for the server's `40` answer; returns that answer's payload (sid, pid, ...).
   */
  async connect(auth?: object): Promise<any> {
    await this.post(auth === undefined ? "40" : `40${JSON.stringify(auth)}`);
    return JSON.parse((await this.until((p) => p.startsWith("40"))).packet.slice(2));
  }

  /** Packets a GET brought that until() has not looked at yet. */
  private unread: string[] = [];

  /**
   * Takes packets (from earlier GETs first, then new GETs) until one matches pred; answers pings
   * on the way unless told not to. Packets after the match stay for the next call.
   */
  async until(pred: (packet: string) => boolean, { timeoutMs = 10_000, answerPings = true } = {}): Promise<{ packet: string; before: string[] }> {
    const deadline = Date.now() + timeoutMs;
    const before: string[] = [];
    for (;;) {
      while (this.unread.length > 0) {
        const p = this.unread.shift()!;
        if (pred(p)) return { packet: p, before };
        before.push(p);
        if (p === "2" && answerPings) await this.post("3");
      }
      if (Date.now() >= deadline) throw new Error(`no matching packet within ${timeoutMs} ms; got ${JSON.stringify(before)}`);
      const r = await this.get(Math.max(1, deadline - Date.now()));
      if (r.status !== 200) throw new Error(`GET ${r.status}: ${r.text}; before: ${JSON.stringify(before)}`);
      this.unread.push(...r.packets);
    }
  }
}

/** A bounded HTTP request to the test server; never throws on a status. */
export async function rawRequest(path: string, opts: { method?: string; body?: string; timeoutMs?: number; headers?: Record<string, string> } = {}) {
  const res = await fetch(new URL(path, baseUrl()), {
    method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
    headers: { ...(opts.body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" }), ...opts.headers },
    body: opts.body,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, text, json, headers: res.headers };
}

// ---- Raw Engine.IO over WebSocket ------------------------------------------------------------

/** A hand-written Engine.IO v4 WebSocket client: text frames collected, nothing answered. */
export class RawWs {
  readonly frames: { text: string; at: number }[] = [];
  private taken = 0;
  closed: { code: number; reason: string; at: number } | null = null;
  private wakers = new Set<() => void>();

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      this.frames.push({ text: data.toString(), at: Date.now() });
      this.wake();
    });
    ws.on("close", (code, reason) => {
      this.closed = { code, reason: reason.toString(), at: Date.now() };
      this.wake();
    });
    ws.on("error", () => this.wake());
  }

  static open(query = "", timeoutMs = 10_000): Promise<RawWs> {
    const url = new URL(`/socket.io/?EIO=4&transport=websocket${query}`, baseUrl());
    url.protocol = "ws:";
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
    const raw = new RawWs(ws);
    return new Promise((resolve, reject) => {
      ws.once("open", () => resolve(raw));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => reject(new Error(`WebSocket refused: HTTP ${res.statusCode}`)));
    });
  }

  send(text: string) {
    this.ws.send(text);
  }

  /** The next not-yet-taken frame (matching pred, skipping others), within timeoutMs. */
  async next(pred: (text: string) => boolean = () => true, timeoutMs = DEFAULT_WAIT_MS): Promise<{ text: string; at: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.taken < this.frames.length) {
        const f = this.frames[this.taken++]!;
        if (pred(f.text)) return f;
      }
      if (this.closed) throw new Error(`closed ${JSON.stringify(this.closed)} while waiting for a frame; frames: ${JSON.stringify(this.frames.map((f) => f.text.slice(0, 200)))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames.map((f) => f.text.slice(0, 200)))}`);
      await this.tick(left);
    }
  }

  /**
   * Waits (bounded) for the server to close the socket; returns the code and reason of its Close
   * frame. Once that frame is in (CLOSING), the TCP connection is dropped from this side: `wrangler
   * dev` can take ~10 s to end it after an object closes a socket (see ws-client.ts).
   */
  async waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<{ code: number; reason: string; at: number }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (this.ws.readyState === WebSocket.CLOSING) this.ws.terminate();
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`not closed within ${timeoutMs} ms`);
      await this.tick(Math.min(left, 20));
    }
    return this.closed;
  }

  terminate() {
    this.ws.terminate();
  }

  private tick(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(wake, ms);
      function wake() {
        clearTimeout(timer);
        resolve();
      }
      this.wakers.add(wake);
    });
  }

  private wake() {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }
}
