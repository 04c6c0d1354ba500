// Client sides of every target, behind one small interface, so each scenario drives the peer,
// the relay and Parley's surfaces with the same code:
//   target.openPair(conv, {sender: "end_user"|"agent", onMessage(key)}) ->
//     {send(key, content) -> Promise<void> (resolves on the ack, rejects on a refusal), close()}
//   target.openIdle(i) -> {close()}            one end-user connection, for S4
// `key` is the message's client id; the receiving side reports every message of the other side.
import { randomUUID } from "node:crypto";
import { io } from "socket.io-client";
import WebSocket from "ws";

const OPEN_TIMEOUT_MS = 20_000;
const ACK_TIMEOUT_MS = 10_000;

export class AckTimeout extends Error {}

function timeout(ms, what) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new AckTimeout(`${what}: no answer within ${ms} ms`)), ms);
  });
  return { p, clear: () => clearTimeout(timer) };
}

function withTimeout(promise, ms, what) {
  const t = timeout(ms, what);
  return Promise.race([promise, t.p]).finally(t.clear);
}

// ---- plain WebSocket helpers ------------------------------------------------------------------

/**
 * Opens a ws; resolves once `ready(frame)` is true for a received JSON frame (or on open without one).
 * `confirm`: Parley's flow control (docs/protocol.md): a `received` frame after every 50 message
 * frames or 256 KiB of them, as every native client must (the server closes a socket 300 messages
 * or 4 MiB behind with 4009).
 */
function openWs(url, { headers, ready, onFrame, confirm = false }) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate: false });
      let done = false;
      // Starting at a random count spreads the confirmations of a room's many sockets (L1: 2,000
      // sockets get each message at once and would all confirm on the same one).
      let unconfirmed = confirm ? Math.floor(Math.random() * 25) : 0;
      let unconfirmedBytes = 0;
      ws.on("message", (data) => {
        const frame = JSON.parse(String(data));
        if (confirm && frame.type === "message") {
          unconfirmed += 1;
          unconfirmedBytes += data.length;
          if (unconfirmed >= 50 || unconfirmedBytes >= 256 * 1024) {
            unconfirmed = 0;
            unconfirmedBytes = 0;
            if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "received", seq: frame.message.seq }));
          }
        }
        if (!done && ready?.(frame)) {
          done = true;
          resolve(ws);
          return;
        }
        onFrame?.(frame);
      });
      ws.once("open", () => {
        if (!ready) {
          done = true;
          resolve(ws);
        }
      });
      ws.once("unexpected-response", (_req, res) => reject(new Error(`${url}: HTTP ${res.statusCode}`)));
      ws.once("error", reject);
      ws.once("close", (code) => {
        if (!done) reject(new Error(`${url}: closed ${code} before ready`));
      });
    }),
    OPEN_TIMEOUT_MS,
    `open ${url}`,
  );
}

/** Pending sends keyed by client id: resolved by the ack frame, rejected by an error frame. */
class Pending {
  constructor(timeoutMs = ACK_TIMEOUT_MS) {
    this.map = new Map();
    this.timeoutMs = timeoutMs;
  }
  add(key) {
    return withTimeout(new Promise((resolve, reject) => this.map.set(key, { resolve, reject })), this.timeoutMs, `ack ${key}`).finally(() => this.map.delete(key));
  }
  resolve(key, value) {
    this.map.get(key)?.resolve(value);
  }
  reject(key, err) {
    this.map.get(key)?.reject(err);
  }
}

/** An idle connection for S4: alive(), and why it closed if it did. */
function wsIdle(ws) {
  let closed = null;
  ws.once("close", (code) => (closed = `ws close ${code}`));
  return { close: () => ws.close(), alive: () => ws.readyState === WebSocket.OPEN, closedReason: () => closed };
}

function sioIdle(socket) {
  let closed = null;
  socket.once("disconnect", (reason) => (closed = `socket.io ${reason}`));
  return { close: () => socket.close(), alive: () => socket.connected, closedReason: () => closed };
}

// ---- Socket.IO helpers ------------------------------------------------------------------------

function openSio(baseUrl, { cookie, query }) {
  const socket = io(baseUrl, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: OPEN_TIMEOUT_MS,
    ...(cookie ? { extraHeaders: { cookie } } : {}),
    ...(query ? { query } : {}),
  });
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", (err) => reject(new Error(`socket.io connect: ${err.message}`)));
    }),
    OPEN_TIMEOUT_MS,
    "socket.io connect",
  ).catch((err) => {
    socket.close();
    throw err;
  });
}

function emitAck(socket, event, payload) {
  return withTimeout(
    new Promise((resolve, reject) =>
      socket.emit(event, payload, (reply) => (reply && reply.error ? reject(new Error(`${event}: ${reply.error.code} ${reply.error.message}`)) : resolve(reply))),
    ),
    ACK_TIMEOUT_MS,
    event,
  );
}

// ---- the peer (stock Node Socket.IO server, seed 001 events) ------------------------------------

export function peerTarget(server) {
  const agentCookie = "session=peer-agent";
  async function sioSide(conv, role, onMessage) {
    const socket = await openSio(server.baseUrl, { cookie: role === "agent" ? agentCookie : undefined });
    socket.on("message_received", (m) => {
      if (m.sender_type !== role) onMessage?.(m.client_msg_id);
    });
    await emitAck(socket, "join_conversation", role === "agent" ? { conversation_id: conv.id } : { conversation_id: conv.id, external_id: conv.ext });
    return socket;
  }
  return {
    name: "peer",
    label: "Node Socket.IO peer",
    server,
    /** The peer opens a conversation on the end user's first join: ids are made here. */
    async provision(n, tag) {
      return Array.from({ length: n }, (_, i) => ({ id: randomUUID(), ext: `${tag}-${i}-${randomUUID().slice(0, 8)}` }));
    },
    async openPair(conv, { sender, onMessage }) {
      const receiverRole = sender === "agent" ? "end_user" : "agent";
      // The end user joins first (it opens the conversation).
      const first = await sioSide(conv, "end_user", receiverRole === "end_user" ? onMessage : null);
      const second = await sioSide(conv, "agent", receiverRole === "agent" ? onMessage : null);
      const tx = sender === "agent" ? second : first;
      return {
        send: (key, content) =>
          emitAck(tx, "send_message", {
            conversation_id: conv.id,
            content,
            content_type: "text",
            sender_type: sender,
            ...(sender === "end_user" ? { external_id: conv.ext } : {}),
            client_msg_id: key,
          }),
        close() {
          first.close();
          second.close();
        },
      };
    },
    async openIdle(conv) {
      const s = await sioSide(conv, "end_user", null);
      return sioIdle(s);
    },
    /** S6: connect + join + first message, as the end user. */
    async coldFirst(conv, key) {
      const t0 = performance.now();
      const s = await sioSide(conv, "end_user", null);
      const t1 = performance.now();
      await emitAck(s, "send_message", { conversation_id: conv.id, content: "cold", content_type: "text", sender_type: "end_user", external_id: conv.ext, client_msg_id: key });
      const t2 = performance.now();
      await emitAck(s, "send_message", { conversation_id: conv.id, content: "warm", content_type: "text", sender_type: "end_user", external_id: conv.ext, client_msg_id: `${key}.w` });
      const t3 = performance.now();
      s.close();
      return { open: t1 - t0, first: t2 - t1, total: t2 - t0, second: t3 - t2 };
    },
  };
}

// ---- the bare Durable Object relay (the ceiling) ------------------------------------------------

export function relayTarget(server) {
  const wsUrl = (room) => `${server.baseUrl.replace("http", "ws")}/room/${room}`;
  async function side(room, onMessage, pending) {
    return openWs(wsUrl(room), {
      onFrame(f) {
        if (f.type === "message") onMessage?.(f.id);
        else if (f.type === "ack") pending?.resolve(f.id);
      },
    });
  }
  return {
    name: "relay",
    label: "bare DO relay",
    server,
    async provision(n, tag) {
      return Array.from({ length: n }, (_, i) => ({ id: `${tag}-${i}-${randomUUID().slice(0, 8)}` }));
    },
    async openPair(conv, { onMessage }) {
      const pending = new Pending();
      const tx = await side(conv.id, null, pending);
      const rx = await side(conv.id, onMessage, null);
      return {
        send(key, content) {
          const p = pending.add(key);
          tx.send(JSON.stringify({ id: key, body: content }));
          return p;
        },
        close() {
          tx.close();
          rx.close();
        },
      };
    },
    async openIdle(conv) {
      const ws = await side(conv.id, null, null);
      return wsIdle(ws);
    },
    async coldFirst(conv, key) {
      const pending = new Pending();
      const t0 = performance.now();
      const ws = await side(conv.id, null, pending);
      const t1 = performance.now();
      let p = pending.add(key);
      ws.send(JSON.stringify({ id: key, body: "cold" }));
      await p;
      const t2 = performance.now();
      p = pending.add(`${key}.w`);
      ws.send(JSON.stringify({ id: `${key}.w`, body: "warm" }));
      await p;
      const t3 = performance.now();
      ws.close();
      return { open: t1 - t0, first: t2 - t1, total: t2 - t0, second: t3 - t2 };
    },
  };
}

// ---- Parley ------------------------------------------------------------------------------------

const REST_TIMEOUT_MS = 30_000;
const timed = (ms = REST_TIMEOUT_MS) => AbortSignal.timeout(ms);

async function json(res, what) {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

/** Signs up an organisation and makes its keys. */
export async function parleyOrg(baseUrl, name) {
  const email = `bench-${randomUUID()}@bench.parley.test`;
  const res = await fetch(`${baseUrl}/auth/signup`, {
    signal: timed(),
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ organization_name: name, name: "Bench Agent", email, password: `pw-${randomUUID()}` }),
  });
  const body = await json(res, "signup");
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(";", 1)[0])
    .find((c) => c.startsWith("session="));
  const headers = { "content-type": "application/json", cookie, "x-csrftoken": body.csrf_token };
  const key = async (kind) =>
    (await json(await fetch(`${baseUrl}/api/company/api-keys`, { method: "POST", headers, body: JSON.stringify({ name: `bench ${kind}`, kind }), signal: timed() }), "api key")).key;
  return { cookie, csrf: body.csrf_token, pk: await key("public"), sk: await key("secret"), orgId: body.organization.id };
}

function parleyCommon(server, org) {
  const base = server.baseUrl;
  const wsBase = base.replace("http", "ws");
  return {
    server,
    org,
    /** Conversations opened through the webchat API (seed 001's widget session). */
    async provision(n, tag, { concurrency = 16 } = {}) {
      const convs = new Array(n);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, n) }, async () => {
          while (next < n) {
            const i = next++;
            const ext = `${tag}-${i}-${randomUUID().slice(0, 8)}`;
            const body = await json(
              await fetch(`${base}/chat-widget/session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: org.pk, session_id: ext }), signal: timed() }),
              "chat-widget/session",
            );
            convs[i] = { id: body.conversation_id, ext };
          }
        }),
      );
      return convs;
    },
    visitorUrl: (ext) => `${wsBase}/ws/visitor?key=${encodeURIComponent(org.pk)}&external_id=${encodeURIComponent(ext)}`,
    agentUrl: (id) => `${wsBase}/ws/conversations/${id}`,
  };
}

/**
 * Parley's native WebSocket protocol (docs/protocol.md). Each side resumes as the SDK does: after
 * a close it did not ask for (4009 `slow_consumer` when it falls too far behind), it reconnects with
 * `since=<last seq>&epoch=…`; the ready frame replays the gap, or says `resync_required` (more than
 * 300 behind) and the side fetches the gap over REST in `after=<seq>` pages. Everything that arrives
 * while it resumes (the replay, REST pages, live frames) is merged by seq, each message once; after
 * that every frame goes to the ledger as it comes, so a duplicate the server sends still counts.
 * `target.counters` counts the reconnects and the REST catch-ups.
 */
export function parleyWsTarget(server, org) {
  const c = parleyCommon(server, org);
  const counters = { resumes: 0, resyncs: 0 };
  const base = server.baseUrl;
  async function historyAfter(role, conv, after) {
    const url =
      role === "agent"
        ? `${base}/api/conversations/${conv.id}/messages?after=${after}&limit=100`
        : `${base}/chat-widget/history/${conv.id}?external_id=${encodeURIComponent(conv.ext)}&after=${after}&limit=100`;
    return json(await fetch(url, { headers: role === "agent" ? { cookie: org.cookie } : {}, signal: timed() }), "history after");
  }
  /**
   * One side's socket, replaced after an unasked-for close (unless `resume` is false: S4 and S6
   * measure one connection); `.ws` is the current one.
   */
  async function side(url, headers, role, onMessage, pending, { conv, resume: resumes = true } = {}) {
    const conn = { ws: null, lastSeq: null, epoch: null, conversationId: null, closing: false };
    const deliver = (m) => {
      conn.lastSeq = Math.max(conn.lastSeq ?? 0, m.seq);
      if (m.sender_type !== role) onMessage?.(m.client_msg_id);
    };
    const connect = async (resume) => {
      let held = []; // frames of a resume, merged by seq once it has caught up
      let ready = null;
      const q = resume ? `${url.includes("?") ? "&" : "?"}since=${conn.lastSeq}&epoch=${encodeURIComponent(conn.epoch)}` : "";
      const ws = await openWs(url + q, {
        headers,
        confirm: true,
        ready: (f) => f.type === "ready" && ((ready = f), true),
        onFrame(f) {
          if (f.type === "message") held ? held.push(f.message) : deliver(f.message);
          else if (f.type === "ack") pending?.resolve(f.client_msg_id);
          else if (f.type === "error" && f.client_msg_id) pending?.reject(f.client_msg_id, new Error(`${f.code}: ${f.message}`));
        },
      });
      conn.ws = ws;
      conn.epoch = ready.epoch;
      conn.conversationId = ready.conversation_id;
      ws.once("close", () => {
        if (conn.closing || !resumes) return;
        counters.resumes++;
        connect(true).catch((err) => console.error(`parley-ws resume failed: ${err.message}`));
      });
      if (!resume) conn.lastSeq = Math.max(ready.head_seq, ...held.map((m) => m.seq));
      else {
        held.push(...ready.messages);
        if (ready.resync_required) {
          counters.resyncs++;
          for (let after = conn.lastSeq; after < ready.head_seq; ) {
            const page = await historyAfter(role, conv, after);
            if (page.length === 0) break;
            held.push(...page);
            after = page.at(-1).seq;
          }
        }
        held.sort((a, b) => a.seq - b.seq);
        for (const m of held) if (m.seq > conn.lastSeq) deliver(m);
      }
      held = null;
    };
    await connect(false);
    return {
      get ws() {
        return conn.ws;
      },
      get conversationId() {
        return conn.conversationId;
      },
      close() {
        conn.closing = true;
        conn.ws.close();
      },
    };
  }
  const sendVia = (side, pending, key, content) => {
    const p = pending.add(key);
    side.ws.send(JSON.stringify({ type: "send", content, content_type: "text", client_msg_id: key }));
    return p;
  };
  return {
    ...c,
    name: "parley-ws",
    label: "Parley native WebSocket",
    counters,
    async openPair(conv, { sender, onMessage }) {
      const pending = new Pending();
      const visitor = await side(c.visitorUrl(conv.ext), undefined, "end_user", sender === "agent" ? onMessage : null, sender === "end_user" ? pending : null, { conv });
      const agent = await side(c.agentUrl(conv.id), { cookie: org.cookie }, "agent", sender === "end_user" ? onMessage : null, sender === "agent" ? pending : null, { conv });
      const tx = sender === "agent" ? agent : visitor;
      return {
        send: (key, content) => sendVia(tx, pending, key, content),
        close() {
          visitor.close();
          agent.close();
        },
      };
    },
    /** The agent's own socket on a conversation (S5's WebSocket sender): send(key, content) resolves on the ack. */
    async openAgent(conv) {
      const pending = new Pending();
      const agent = await side(c.agentUrl(conv.id), { cookie: org.cookie }, "agent", null, pending, { conv });
      return { send: (key, content) => sendVia(agent, pending, key, content), close: () => agent.close() };
    },
    /** A brand-new visitor: /ws/visitor with a fresh external id opens the conversation. */
    async openIdle(conv) {
      const visitor = await side(c.visitorUrl(conv.ext), undefined, "end_user", null, null, { resume: false });
      conv.id = visitor.conversationId;
      return wsIdle(visitor.ws);
    },
    async coldFirst(conv, key) {
      const pending = new Pending();
      const t0 = performance.now();
      const visitor = await side(c.visitorUrl(conv.ext), undefined, "end_user", null, pending, { resume: false });
      const t1 = performance.now();
      await sendVia(visitor, pending, key, "cold");
      const t2 = performance.now();
      await sendVia(visitor, pending, `${key}.w`, "warm");
      const t3 = performance.now();
      visitor.close();
      return { open: t1 - t0, first: t2 - t1, total: t2 - t0, second: t3 - t2 };
    },
  };
}

/** Parley's Socket.IO layer, seed 001's dialect. */
export function parleySioTarget(server, org) {
  const c = parleyCommon(server, org);
  async function side(conv, role, onMessage) {
    const socket = await openSio(server.baseUrl, { cookie: role === "agent" ? org.cookie : undefined });
    socket.on("message_received", (m) => {
      if (m.sender_type !== role) onMessage?.(m.client_msg_id);
    });
    await emitAck(socket, "join_conversation", role === "agent" ? { conversation_id: conv.id } : { conversation_id: conv.id, external_id: conv.ext });
    return socket;
  }
  return {
    ...c,
    name: "parley-sio",
    label: "Parley Socket.IO (seed 001)",
    async openPair(conv, { sender, onMessage }) {
      const visitor = await side(conv, "end_user", sender === "agent" ? onMessage : null);
      const agent = await side(conv, "agent", sender === "end_user" ? onMessage : null);
      const tx = sender === "agent" ? agent : visitor;
      return {
        send: (key, content) =>
          emitAck(tx, "send_message", {
            conversation_id: conv.id,
            content,
            content_type: "text",
            sender_type: sender,
            ...(sender === "end_user" ? { external_id: conv.ext } : {}),
            client_msg_id: key,
          }),
        close() {
          visitor.close();
          agent.close();
        },
      };
    },
    /**
     * A brand-new visitor over Socket.IO: seed 000's handshake (apiKey, role=visitor, visitorId)
     * opens the conversation and joins it at CONNECT, so no object is touched beforehand.
     */
    async openIdle(conv) {
      const socket = await openSio(server.baseUrl, { query: { apiKey: org.pk, role: "visitor", visitorId: conv.ext } });
      return sioIdle(socket);
    },
  };
}

/** Seed 000's REST: long-poll and send (S5, S6). */
export function parleyRest(server, org) {
  const base = server.baseUrl;
  return {
    poll(ext, lastTimestamp, waitS, signal) {
      const q = new URLSearchParams({ apiKey: org.pk, visitorId: ext, lastTimestamp: String(lastTimestamp), wait: String(waitS) });
      return fetch(`${base}/api/chat/poll?${q}`, { signal: AbortSignal.any([signal, timed(waitS * 1000 + 30_000)]) }).then((r) => json(r, "poll"));
    },
    visitorSend(ext, message, clientMessageId) {
      return fetch(`${base}/api/chat/send`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ apiKey: org.pk, visitorId: ext, message, clientMessageId }),
        signal: timed(),
      }).then((r) => json(r, "chat/send"));
    },
    agentSend(conversationId, content, clientMsgId) {
      return fetch(`${base}/api/conversations/${conversationId}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${org.sk}` },
        body: JSON.stringify({ content, client_msg_id: clientMsgId }),
        signal: timed(),
      }).then((r) => json(r, "agent send"));
    },
    me() {
      return fetch(`${base}/auth/me`, { headers: { cookie: org.cookie }, signal: timed() }).then((r) => json(r, "me"));
    },
  };
}

// ---- Parley conversation sockets that check their own log (bench/load.mjs) ------------------------

/**
 * One client's view of a conversation's log across reconnects: every message by seq, checked for
 * duplicates, gaps and order. `lastSeq` starts at the resume point (or just before the first
 * message seen).
 */
export class SeqLog {
  constructor() {
    this.lastSeq = null;
    this.epoch = null;
    this.connections = 0;
    this.keys = new Set();
    this.received = 0;
    this.duplicated = 0;
    this.gaps = 0;
    this.reordered = 0;
    this.trail = []; // the last few (where, seq) taken, for the first anomaly's report
    this.anomaly = null;
  }
  /** `where`: "ready" (the ready frame's replay) or "live" (a message frame), on connection n. */
  take(m, where = "live") {
    this.trail.push(`${where}#${this.connections}:${m.seq}`);
    if (this.trail.length > 8) this.trail.shift();
    if (this.anomaly && this.anomaly.length < 16) this.anomaly.push(`after: ${where}#${this.connections}:${m.seq}`);
    if (this.lastSeq === null) this.lastSeq = m.seq - 1;
    if (m.seq <= this.lastSeq) {
      if (m.client_msg_id && this.keys.has(m.client_msg_id)) this.duplicated++;
      else this.reordered++;
      this.anomaly ??= [...this.trail];
      return false;
    }
    if (m.seq > this.lastSeq + 1) {
      this.gaps += m.seq - this.lastSeq - 1;
      this.anomaly ??= [...this.trail];
    }
    this.lastSeq = m.seq;
    this.received++;
    if (m.client_msg_id) this.keys.add(m.client_msg_id);
    return true;
  }
  /** Resume query for the next connection ("" before the first ready). */
  resumeQuery() {
    return this.lastSeq === null || this.epoch === null ? "" : `since=${this.lastSeq}&epoch=${encodeURIComponent(this.epoch)}`;
  }
}

/**
 * A native Parley conversation socket (visitor or agent URL) feeding a SeqLog: the ready frame's
 * messages, then every `message` frame (onMessage(m, now) for each new one). send(key, content)
 * resolves with the ack frame and rejects with an error frame's code (or AckTimeout after
 * `ackTimeoutMs`, default 10 s). With `resume`, the log's
 * since/epoch are added to the URL. It confirms what it reads (flow control) unless `confirm` is false.
 */
export async function parleyLogSocket(url, { headers, log = new SeqLog(), resume = false, onMessage, onFrame, ackTimeoutMs, confirm = true } = {}) {
  const pending = new Pending(ackTimeoutMs);
  const q = resume ? log.resumeQuery() : "";
  const deliver = (m, where) => {
    const now = performance.now();
    if (log.take(m, where)) onMessage?.(m, now);
  };
  log.connections++;
  const s = { log, ready: null, closeCode: null, errors: {} };
  // The ready frame's replay is taken inside the frame handler: frames that arrive in the same read
  // are handled before any promise continuation, and must come after it.
  const onReady = (f) => {
    s.ready = f;
    log.epoch = f.epoch;
    log.trail.push(`ready#${log.connections}(since ${q ? log.lastSeq : "-"}, head ${f.head_seq}, ${(f.messages ?? []).length} replayed${f.recovered ? "" : ", not recovered"})`);
    for (const m of f.messages ?? []) deliver(m, "ready");
    return true;
  };
  s.ws = await openWs(q ? `${url}${url.includes("?") ? "&" : "?"}${q}` : url, {
    headers,
    confirm,
    ready: (f) => f.type === "ready" && onReady(f),
    onFrame(f) {
      if (f.type === "message") deliver(f.message, s.ready ? "live" : "before-ready");
      else if (f.type === "ack") pending.resolve(f.client_msg_id, f);
      else if (f.type === "error") {
        s.errors[f.code] = (s.errors[f.code] ?? 0) + 1;
        if (f.client_msg_id) pending.reject(f.client_msg_id, Object.assign(new Error(`${f.code}: ${f.message}`), { code: f.code }));
      } else onFrame?.(f);
    },
  });
  s.closed = new Promise((resolve) => s.ws.once("close", (code, reason) => resolve((s.closeCode = code), (s.closeReason = String(reason)))));
  s.send = (key, content) => {
    const p = pending.add(key);
    s.ws.send(JSON.stringify({ type: "send", content, content_type: "text", client_msg_id: key }));
    return p;
  };
  s.close = () => s.ws.close();
  return s;
}

/**
 * The bare relay's side of bench/load.mjs's L1 (bench/relay: `{id, body}` in, `ack` and `message`
 * frames carrying the client id as `id`), with parleyLogSocket's shape: a SeqLog, onMessage(m, now)
 * for each new message, send(key, content) resolving with the ack.
 */
export async function relayLogSocket(url, { log = new SeqLog(), onMessage, ackTimeoutMs } = {}) {
  const pending = new Pending(ackTimeoutMs);
  log.connections++;
  const s = { log, ready: null, closeCode: null, errors: {} };
  s.ws = await openWs(url, {
    onFrame(f) {
      if (f.type === "message") {
        const now = performance.now();
        const m = { seq: f.seq, client_msg_id: f.id };
        if (log.take(m)) onMessage?.(m, now);
      } else if (f.type === "ack") pending.resolve(f.id, f);
      else if (f.type === "error") s.errors.error = (s.errors.error ?? 0) + 1;
    },
  });
  s.closed = new Promise((resolve) => s.ws.once("close", (code) => resolve((s.closeCode = code))));
  s.send = (key, content) => {
    const p = pending.add(key);
    s.ws.send(JSON.stringify({ id: key, body: content }));
    return p;
  };
  s.close = () => s.ws.close();
  return s;
}
