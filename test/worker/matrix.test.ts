/**
 * The authorization matrix (RELIABILITY.md S1-S3, S5, S6, S8-S10): every REST route and native
 * WebSocket endpoint x every kind of caller -> the expected status, as one table. Each answer is
 * also checked for shape (errors are the JSON envelope, never a 500), for cross-org leaks
 * (another org's callers never see org A's ids, emails or message text) and for secrets (no
 * secret key, session token, embed token or password hash in any body; a channel's identity
 * secret only from the endpoints that exist to show it).
 *
 * Then the cross-cutting rules: CSRF on every cookie state change, secret keys refused from
 * browsers, cookie flags, login throttling, and secrets stored hashed (read from D1 directly).
 */
import { env, exports } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sha256Hex } from "../../src/core/crypto";
import { BASE, call, newOrg, openSocket, type Res } from "./helpers";

/** The session cookie on https (the tests speak https://parley.test): `__Host-session=<token>`. */
const SESSION_PREFIX = "__Host-session=";

type Headers_ = Record<string, string>;
type Org = Awaited<ReturnType<typeof newOrg>>;

interface Caller {
  name: string;
  /** Agent credentials (cookie + CSRF, or a key), sent as headers. */
  headers: Headers_;
  /** Visitor credentials, where the caller is an end user. */
  visitor?: { pk: string; external_id: string };
  /** A new live session of the same user, for routes that end the session (logout). */
  fresh?: () => Promise<Headers_>;
  /** The caller belongs to org B: nothing of org A may reach it. */
  foreign?: boolean;
  /** The caller is an end user other than the conversation's. */
  otherEndUser?: boolean;
}

const COLUMNS = ["anon", "endUser", "otherEndUser", "revokedPk", "agent", "admin", "owner", "secretKey", "crossSite", "otherAgent", "otherAdmin", "revokedKey", "loggedOut", "expired"] as const;
type Column = (typeof COLUMNS)[number];

interface Ctx {
  a: Org;
  b: Org;
  convA: string;
  /** The first support session of convA, resolved (so it has a transcript). */
  sessionA: string;
  /** Org A's mobile channel (for the bot settings routes: no visitor ever writes to it). */
  mobileA: string;
  /** Org A's routing queue and one of its agents. */
  queueA: string;
  agentIdA: string;
  /** An agent of org A that the PATCH row changes (idempotently: role agent, enabled). */
  targetAgentA: string;
  /** A conversation of org A with one message, made for routes that change its state. */
  freshConversation(): Promise<string>;
  /** A throwaway public key of org A, for the revoke route. */
  freshKeyId(): Promise<string>;
}

interface Req {
  method: string;
  path: string;
  body?: unknown;
  ws?: boolean;
  /** The success is not JSON (a PDF): its body is summarized as its content type. */
  binary?: boolean;
  /** A Socket.IO session over Engine.IO long-polling: CONNECT, then this event with an ack. */
  sio?: { event?: [string, unknown] };
}

interface Row {
  route: string;
  req: (ctx: Ctx, caller: Caller) => Req | Promise<Req>;
  /** Expected status per column, in COLUMNS order (101 = upgraded). */
  expect: string;
  /** Routes that end the caller's session get a fresh one. */
  fresh?: boolean;
  /** The route hands out the data of whoever's credentials are in the body (login): no leak check. */
  public?: boolean;
  /** Extra checks on a success; returns a problem or null. */
  check?: (res: Res, ctx: Ctx, caller: Caller) => string | null;
}

const q = (v: Record<string, string | undefined>) =>
  Object.entries(v)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => `${k}=${encodeURIComponent(x!)}`)
    .join("&");

//                                anon endU othU rvPk agnt admn ownr sKey xSit oAgt oAdm rvKy lgdO expd
const ADMIN_WRITE = /*         */ "401  401  401  401  403  200  200  200  403  403  404  401  401  401";
const ADMIN_OWN_READ = /*      */ "401  401  401  401  403  200  200  200  200  403  404  401  401  401";
const AGENT_READ = /*          */ "401  401  401  401  200  200  200  200  200  200  200  401  401  401";
const ADMIN_READ = /*          */ "401  401  401  401  403  200  200  200  200  403  200  401  401  401";
const ADMIN_CREATE = /*        */ "401  401  401  401  403  201  201  201  403  403  201  401  401  401";
const CONV_READ = /*           */ "401  401  401  401  200  200  200  200  200  404  404  401  401  401";
const CONV_WRITE = /*          */ "401  401  401  401  200  200  200  200  403  404  404  401  401  401";
const VISITOR = /*             */ "400  200  200  401  400  400  400  400  400  400  400  400  400  400";

const TABLE: Row[] = [
  // ---- /auth
  { route: "POST /auth/signup", req: () => ({ method: "POST", path: "/auth/signup", body: { organization_name: "New", name: "N", email: `n-${crypto.randomUUID()}@example.test`, password: "long enough pw" } }),
    expect: "201  201  201  201  201  201  201  201  201  201  201  201  201  201" },
  { route: "POST /auth/login", public: true, req: (ctx) => ({ method: "POST", path: "/auth/login", body: { email: ctx.a.email, password: "correct horse battery" } }),
    expect: "200  200  200  200  200  200  200  200  200  200  200  200  200  200" },
  { route: "GET /auth/me", req: () => ({ method: "GET", path: "/auth/me" }), expect: AGENT_READ },
  { route: "POST /auth/logout", fresh: true, req: () => ({ method: "POST", path: "/auth/logout" }),
    expect: "401  401  401  401  200  200  200  200  403  200  200  401  401  401" },
  // ---- /api/company
  { route: "GET /api/company/agents", req: () => ({ method: "GET", path: "/api/company/agents" }), expect: AGENT_READ },
  { route: "POST /api/company/agents", req: () => ({ method: "POST", path: "/api/company/agents", body: { name: "New agent", email: `ag-${crypto.randomUUID()}@example.test`, password: "agent password" } }), expect: ADMIN_CREATE },
  { route: "PATCH /api/company/agents/:id", req: (ctx) => ({ method: "PATCH", path: `/api/company/agents/${ctx.targetAgentA}`, body: { role: "agent", disabled: false } }), expect: ADMIN_WRITE },
  { route: "GET /api/company/api-keys", req: () => ({ method: "GET", path: "/api/company/api-keys" }), expect: ADMIN_READ },
  { route: "POST /api/company/api-keys", req: () => ({ method: "POST", path: "/api/company/api-keys", body: { name: "k", kind: "public" } }), expect: ADMIN_CREATE },
  { route: "DELETE /api/company/api-keys/:id", req: async (ctx) => ({ method: "DELETE", path: `/api/company/api-keys/${await ctx.freshKeyId()}` }),
    expect: "401  401  401  401  403  200  200  200  403  403  404  401  401  401" },
  // ---- /api/audit (owners and admins, org-scoped: org B's admin reads org B's log only)
  { route: "GET /api/audit", req: () => ({ method: "GET", path: "/api/audit?action=agent.created&limit=100" }), expect: ADMIN_READ,
    check: (res, ctx, c) => (res.body.entries.some((e: any) => e.target.id === ctx.targetAgentA) === !c.foreign ? null : c.foreign ? "org B reads org A's audit log" : "org A's log misses the agent it created") },
  // ---- /api/integrations
  { route: "GET /api/integrations", req: () => ({ method: "GET", path: "/api/integrations" }), expect: ADMIN_READ },
  { route: "POST /api/integrations/webchat", req: () => ({ method: "POST", path: "/api/integrations/webchat", body: { name: "w", allowed_origins: ["https://shop.example"] } }), expect: ADMIN_CREATE },
  { route: "PATCH /api/integrations/:id", req: (ctx) => ({ method: "PATCH", path: `/api/integrations/${ctx.a.webchat.channel_id}`, body: { allowed_origins: [], require_identity: false } }), expect: ADMIN_WRITE },
  { route: "POST /api/integrations/:id/embed-tokens", req: (ctx) => ({ method: "POST", path: `/api/integrations/${ctx.a.webchat.channel_id}/embed-tokens` }),
    expect: "401  401  401  401  403  201  201  201  403  403  404  401  401  401",
    check: (res) => (/^ew_[\w-]{20,}$/.test(res.body.token) ? null : "no new embed token") },
  { route: "POST /api/integrations/mobile", req: () => ({ method: "POST", path: "/api/integrations/mobile", body: { name: "m" } }), expect: ADMIN_CREATE },
  { route: "GET /api/integrations/:id/identity-secret", req: (ctx) => ({ method: "GET", path: `/api/integrations/${ctx.a.webchat.channel_id}/identity-secret` }),
    expect: "401  401  401  401  403  200  200  200  200  403  404  401  401  401",
    check: (res, ctx) => (res.body.identity_secret === ctx.a.webchat.identity_secret ? null : "shows the channel's secret") },
  // ---- bot settings per channel, Chat API channels (owners and admins; another org's channel is 404)
  { route: "PUT /api/integrations/:id/bot", req: (ctx) => ({ method: "PUT", path: `/api/integrations/${ctx.mobileA}/bot`, body: { kind: "flow", enabled: false, config: { intents: [] } } }), expect: ADMIN_WRITE },
  { route: "GET /api/integrations/:id/bot", req: (ctx) => ({ method: "GET", path: `/api/integrations/${ctx.mobileA}/bot` }), expect: ADMIN_OWN_READ },
  { route: "DELETE /api/integrations/:id/bot", req: (ctx) => ({ method: "DELETE", path: `/api/integrations/${ctx.mobileA}/bot` }), expect: ADMIN_WRITE },
  { route: "POST /api/integrations/chat-api", req: () => ({ method: "POST", path: "/api/integrations/chat-api", body: { name: "api" } }), expect: ADMIN_CREATE },
  // ---- /api/routing (owners and admins)
  { route: "POST /api/routing/queues", req: () => ({ method: "POST", path: "/api/routing/queues", body: { name: `q-${crypto.randomUUID()}`, auto_assign: false } }), expect: ADMIN_CREATE },
  { route: "GET /api/routing/queues", req: () => ({ method: "GET", path: "/api/routing/queues" }), expect: ADMIN_READ,
    check: (res, ctx, c) => ((res.body.some((q: any) => q.id === ctx.queueA)) === !c.foreign ? null : "queues of the wrong org") },
  { route: "PUT /api/routing/queues/:id", req: (ctx) => ({ method: "PUT", path: `/api/routing/queues/${ctx.queueA}`, body: { name: "billing", auto_assign: false } }), expect: ADMIN_WRITE },
  { route: "GET /api/routing/agents", req: () => ({ method: "GET", path: "/api/routing/agents" }), expect: ADMIN_READ,
    check: (res, ctx, c) => (res.body.some((a: any) => a.user_id === ctx.agentIdA) === !c.foreign ? null : "agents of the wrong org") },
  { route: "PUT /api/routing/agents/:user_id", req: (ctx) => ({ method: "PUT", path: `/api/routing/agents/${ctx.agentIdA}`, body: { skills: [], capacity: 0 } }), expect: ADMIN_WRITE },
  // ---- /api/connectors (a server sends to a connector channel's customer; owners, admins, secret keys)
  { route: "POST /api/connectors/:channel/messages", req: () => ({ method: "POST", path: "/api/connectors/sms/messages", body: { refId: "+15550100", text: "Your order shipped" } }), expect: ADMIN_CREATE },
  // ---- /api/conversations (seed 001's agent API)
  { route: "GET /api/conversations/", req: () => ({ method: "GET", path: "/api/conversations/?filter=all" }), expect: AGENT_READ,
    check: (res, ctx, c) => (res.body.some((x: any) => x.id === ctx.convA) === !c.foreign ? null : c.foreign ? "org B lists org A's conversation" : "org A's list misses its conversation") },
  { route: "GET /api/conversations/:id", req: (ctx) => ({ method: "GET", path: `/api/conversations/${ctx.convA}` }), expect: CONV_READ },
  { route: "GET /api/conversations/:id/messages", req: (ctx) => ({ method: "GET", path: `/api/conversations/${ctx.convA}/messages` }), expect: CONV_READ },
  { route: "POST /api/conversations/:id/messages", req: (ctx) => ({ method: "POST", path: `/api/conversations/${ctx.convA}/messages`, body: { content: "agent reply" } }),
    expect: "401  401  401  401  201  201  201  201  403  404  404  401  401  401" },
  { route: "POST /api/conversations/:id/assign", req: async (ctx) => ({ method: "POST", path: `/api/conversations/${await ctx.freshConversation()}/assign` }), expect: CONV_WRITE },
  { route: "POST /api/conversations/:id/resolve", req: async (ctx) => ({ method: "POST", path: `/api/conversations/${await ctx.freshConversation()}/resolve`, body: { tags: ["t"] } }), expect: CONV_WRITE },
  // Handing a conversation on: a plain agent only their own (this one is nobody's yet; the next is theirs).
  { route: "POST /api/conversations/:id/transfer", req: async (ctx) => ({ method: "POST", path: `/api/conversations/${await ctx.freshConversation()}/transfer`, body: { agent_id: ctx.targetAgentA } }),
    expect: "401  401  401  401  403  200  200  200  403  404  404  401  401  401",
    check: (res, ctx) => (res.body.assigned_agent_id === ctx.targetAgentA ? null : "not handed to the target") },
  { route: "POST /api/conversations/:id/unassign", req: async (ctx) => {
      const id = await ctx.freshConversation();
      const given = await ctx.a.agent.call(`/api/conversations/${id}/transfer`, { body: { agent_id: ctx.agentIdA } });
      if (given.status !== 200) throw new Error(`transfer: ${given.status}`);
      return { method: "POST", path: `/api/conversations/${id}/unassign` };
    },
    expect: CONV_WRITE,
    check: (res) => (res.body.assigned_agent_id === null ? null : "still assigned") },
  { route: "POST /api/conversations/:id/tags", req: (ctx) => ({ method: "POST", path: `/api/conversations/${ctx.convA}/tags`, body: { tags: ["vip"] } }), expect: CONV_WRITE },
  { route: "POST /api/conversations/:id/uploads", req: (ctx) => ({ method: "POST", path: `/api/conversations/${ctx.convA}/uploads` }),
    expect: "401  401  401  401  201  201  201  201  403  404  404  401  401  401" },
  // ---- visitor surfaces (credentials are the public key + external id, in the body or query)
  { route: "POST /chat-widget/session", req: (_ctx, c) => ({ method: "POST", path: "/chat-widget/session", body: { key: c.visitor?.pk, session_id: c.visitor?.external_id } }),
    expect: "401  200  200  401  401  401  401  401  401  401  401  401  401  401",
    check: (res, ctx, c) => ((res.body.conversation_id === ctx.convA) === !c.otherEndUser ? null : "opened the wrong conversation") },
  { route: "GET /chat-widget/history/:id", req: (ctx, c) => ({ method: "GET", path: `/chat-widget/history/${ctx.convA}?${q({ external_id: c.visitor?.external_id })}` }),
    expect: "400  200  404  404  400  400  400  400  400  400  400  400  400  400" },
  { route: "POST /chat-widget/uploads", req: (ctx, c) => ({ method: "POST", path: "/chat-widget/uploads", body: { conversation_id: ctx.convA, external_id: c.visitor?.external_id } }),
    expect: "400  201  404  404  400  400  400  400  400  400  400  400  400  400" },
  { route: "POST /api/customer/init", req: (_ctx, c) => ({ method: "POST", path: "/api/customer/init", body: { apiKey: c.visitor?.pk, Channel: "web", refId: c.visitor?.external_id } }),
    expect: "400  200  200  401  400  400  400  400  400  400  400  400  400  400",
    check: (res, ctx, c) => ((res.body.conversationId === ctx.convA) === !c.otherEndUser ? null : "opened the wrong conversation") },
  { route: "GET /api/customer/transcript/:id/pdf", req: (ctx, c) => ({ method: "GET", binary: true, path: `/api/customer/transcript/${ctx.sessionA}/pdf?${q({ apiKey: c.visitor?.pk, refId: c.visitor?.external_id })}` }),
    expect: "401  200  404  401  401  401  401  200  401  401  401  401  401  401",
    check: (res) => (res.body.content_type === "application/pdf" ? null : "not a PDF") },
  { route: "POST /api/chat/send", req: (_ctx, c) => ({ method: "POST", path: "/api/chat/send", body: { apiKey: c.visitor?.pk, visitorId: c.visitor?.external_id, message: "visitor says hi" } }), expect: VISITOR },
  { route: "GET /api/chat/poll", req: (_ctx, c) => ({ method: "GET", path: `/api/chat/poll?${q({ apiKey: c.visitor?.pk, visitorId: c.visitor?.external_id, lastTimestamp: "0" })}` }), expect: VISITOR,
    check: (res, _ctx, c) => (res.body.messages.some((m: any) => m.message === SECRET_TEXT) === !c.otherEndUser ? null : "a poll read the wrong conversation") },
  { route: "POST /api/chat/poll", req: (_ctx, c) => ({ method: "POST", path: "/api/chat/poll", body: { apiKey: c.visitor?.pk, visitorId: c.visitor?.external_id } }), expect: VISITOR },
  // ---- native WebSockets (101 = upgraded; the first frame is checked)
  { route: "WS /ws/visitor", req: (_ctx, c) => ({ method: "GET", ws: true, path: `/ws/visitor?${q({ key: c.visitor?.pk, external_id: c.visitor?.external_id })}` }),
    expect: "401  101  101  401  401  401  401  401  401  401  401  401  401  401",
    check: (res, ctx, c) => ((res.body.conversation_id === ctx.convA) === !c.otherEndUser ? null : "joined the wrong conversation") },
  { route: "WS /ws/conversations/:id", req: (ctx) => ({ method: "GET", ws: true, path: `/ws/conversations/${ctx.convA}` }),
    expect: "401  401  401  401  101  101  101  101  403  404  404  401  401  401" },
  { route: "WS /ws/org", req: () => ({ method: "GET", ws: true, path: "/ws/org" }),
    expect: "401  401  401  401  101  101  101  101  403  101  101  401  401  401" },
  // ---- Socket.IO (raw Engine.IO polling): CONNECT, then events with acks. 101 = connected,
  // 401 = CONNECT_ERROR; an event's ack {ok: true} = 200, an error ack = its code's status.
  // Visitors connect as seed 000 visitors (public key + visitorId), keys in the query, agents with
  // their cookie; without credentials a connection is anonymous (a seed 001 end user names its
  // external_id on each event), so dead cookies connect as nobody.
  { route: "SIO CONNECT", req: () => ({ method: "GET", path: "", sio: {} }),
    expect: "101  101  101  401  101  101  101  101  401  101  101  401  101  101" },
  { route: "SIO join_queue", req: () => ({ method: "GET", path: "", sio: { event: ["join_queue", {}] } }),
    expect: "401  401  401  401  200  200  200  200  401  200  200  401  401  401" },
  { route: "SIO join_conversation", req: (ctx, c) => ({ method: "GET", path: "", sio: { event: ["join_conversation", { conversation_id: ctx.convA, external_id: c.visitor?.external_id }] } }),
    expect: "401  200  404  401  200  200  200  200  401  404  404  401  401  401" },
  { route: "SIO send_message (seed 001)", req: (ctx, c) => ({ method: "GET", path: "", sio: { event: ["send_message", { conversation_id: ctx.convA, content: "over socket.io", content_type: "text", external_id: c.visitor?.external_id }] } }),
    expect: "401  200  404  401  200  200  200  200  401  404  404  401  401  401" },
];

/** What org A's conversation holds, which no one else may ever read. */
const SECRET_TEXT = "alice's order number is 4417";

async function login(email: string, password: string): Promise<Headers_> {
  const r = await call("/auth/login", { body: { email, password } });
  if (r.status !== 200) throw new Error(`login ${email}: ${r.status}`);
  return { cookie: r.headers.get("set-cookie")!.split(";")[0]!, "x-csrftoken": r.body.csrf_token };
}

async function addAgent(o: Org, role: "agent" | "admin") {
  const email = `${role}-${crypto.randomUUID()}@example.test`;
  const r = await o.agent.call("/api/company/agents", { body: { name: `An ${role}`, email, password: "agent password", role } });
  if (r.status !== 201) throw new Error(`add ${role}: ${r.status}`);
  return { email, user: r.body, headers: await login(email, "agent password"), fresh: () => login(email, "agent password") };
}

const STATUS_OF: Record<string, number> = { unauthorized: 401, forbidden: 403, not_found: 404, validation_failed: 400, conflict: 409, rate_limited: 429 };

/** A Socket.IO session over raw Engine.IO polling, as one request/answer for the table. */
async function sioCall(req: Req, caller: Caller, headers: Headers_): Promise<Res> {
  const query = caller.visitor
    ? `&apiKey=${encodeURIComponent(caller.visitor.pk)}&role=visitor&visitorId=${encodeURIComponent(caller.visitor.external_id)}`
    : headers.authorization?.startsWith("Bearer sk_")
      ? `&apiKey=${encodeURIComponent(headers.authorization.slice(7))}`
      : "";
  const h: Headers_ = { ...headers };
  delete h.authorization;
  delete h["x-csrftoken"];
  const engine = async (sid: string | null, body?: string) => {
    const url = `${BASE}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : query}`;
    const res = await exports.default.fetch(new Request(url, { method: body === undefined ? "GET" : "POST", headers: { ...h, ...(body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" }) }, body }));
    return { status: res.status, text: await res.text() };
  };
  const hs = await engine(null);
  if (hs.status !== 200 || !hs.text.startsWith("0")) return { status: hs.status, body: { engine: hs.text }, headers: new Headers() };
  const sid = JSON.parse(hs.text.slice(1)).sid as string;
  const take = async (pred: (p: string) => boolean) => {
    for (let i = 0; i < 5; i++) {
      const got = await engine(sid);
      const hit = got.text.split("\x1e").find(pred);
      if (hit) return hit;
    }
    throw new Error(`socket.io: no matching packet for ${req.sio?.event?.[0] ?? "CONNECT"}`);
  };
  try {
    await engine(sid, "40");
    const connect = await take((p) => p.startsWith("40") || p.startsWith("44"));
    if (connect.startsWith("44")) return { status: 401, body: { error: { code: "unauthorized", retryable: false, ...JSON.parse(connect.slice(2)) } }, headers: new Headers() };
    if (!req.sio?.event) return { status: 101, body: JSON.parse(connect.slice(2)), headers: new Headers() };
    await engine(sid, `421${JSON.stringify(req.sio.event)}`);
    const ack = JSON.parse((await take((p) => p.startsWith("431"))).slice(3))[0];
    if (ack?.ok === true) return { status: 200, body: ack, headers: new Headers() };
    return { status: STATUS_OF[ack?.error?.code] ?? 500, body: { error: { retryable: false, ...ack?.error } }, headers: new Headers() };
  } finally {
    await engine(sid, "1"); // Engine.IO close
  }
}

async function send(req: Req, headers: Headers_, caller?: Caller): Promise<Res> {
  if (req.sio) return sioCall(req, caller!, headers);
  if (req.binary) {
    const res = await exports.default.fetch(new Request(BASE + req.path, { method: req.method, headers }));
    const type = res.headers.get("content-type") ?? "";
    if (type.startsWith("application/json")) return { status: res.status, body: await res.json(), headers: res.headers };
    await res.arrayBuffer();
    return { status: res.status, body: { content_type: type }, headers: res.headers };
  }
  if (!req.ws) return call(req.path, { method: req.method, body: req.body, headers });
  const res = await exports.default.fetch(new Request(BASE + req.path, { headers: { upgrade: "websocket", ...headers } }));
  if (!res.webSocket) {
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  }
  const ws = res.webSocket;
  const first = new Promise<any>((resolve, reject) => {
    ws.addEventListener("message", (e) => resolve(JSON.parse(e.data as string)));
    ws.addEventListener("close", (e) => reject(new Error(`closed ${e.code} before the first frame`)));
    setTimeout(() => reject(new Error("no first frame")), 5000);
  });
  ws.accept();
  const frame = await first;
  ws.close(1000, "done");
  return { status: 101, body: frame, headers: res.headers };
}

let ctx: Ctx;
let callers: Record<Column, Caller>;
/** Every secret a response body must never carry, by name. */
let secrets: Record<string, string>;

beforeAll(async () => {
  const a = await newOrg();
  const b = await newOrg();
  // Org A's conversation with its end user "alice", holding a message no one else may read.
  const sent = await call("/api/chat/send", { body: { apiKey: a.pk, visitorId: "alice", visitorName: "Alice", message: SECRET_TEXT } });
  if (sent.status !== 200) throw new Error("alice's first message");
  const convA = (await call("/chat-widget/session", { body: { key: a.pk, session_id: "alice" } })).body.conversation_id as string;
  // Her first support session ends (it has a transcript); her next message opens another.
  const resolved = await a.agent.call(`/api/conversations/${convA}/resolve`, { body: {} });
  if (resolved.status !== 200) throw new Error(`resolve: ${resolved.status}`);

  const agentA = await addAgent(a, "agent");
  const adminA = await addAgent(a, "admin");
  const targetA = await addAgent(a, "agent");
  const agentB = await addAgent(b, "agent");
  const adminB = await addAgent(b, "admin");
  const revokedSk = (await a.agent.call("/api/company/api-keys", { body: { name: "old", kind: "secret" } })).body;
  await a.agent.call(`/api/company/api-keys/${revokedSk.id}`, { method: "DELETE" });
  const revokedPk = (await a.agent.call("/api/company/api-keys", { body: { name: "old public", kind: "public" } })).body;
  await a.agent.call(`/api/company/api-keys/${revokedPk.id}`, { method: "DELETE" });
  const loggedOut = await login(agentA.email, "agent password");
  await call("/auth/logout", { method: "POST", headers: loggedOut });
  const expired = await login(agentA.email, "agent password");
  const expiredToken = expired.cookie!.slice(SESSION_PREFIX.length);
  await env.DB.prepare("UPDATE auth_sessions SET expires_at = ? WHERE id_hash = ?").bind(new Date(Date.now() - 1000).toISOString(), await sha256Hex(expiredToken)).run();
  const owner = { cookie: a.cookie, "x-csrftoken": a.csrf };
  const mobileA = (await a.agent.call("/api/integrations/mobile", { body: { name: "app" } })).body.channel_id as string;
  const queue = await a.agent.call("/api/routing/queues", { body: { name: "billing", auto_assign: false } });
  if (queue.status !== 201) throw new Error(`queue: ${queue.status} ${JSON.stringify(queue.body)}`);

  ctx = {
    a,
    b,
    convA,
    sessionA: resolved.body.session_id,
    mobileA,
    queueA: queue.body.id,
    agentIdA: agentA.user.id,
    targetAgentA: targetA.user.id,
    async freshConversation() {
      const visitorId = `fresh-${crypto.randomUUID()}`;
      await call("/api/chat/send", { body: { apiKey: a.pk, visitorId, message: "hello" } });
      return (await call("/chat-widget/session", { body: { key: a.pk, session_id: visitorId } })).body.conversation_id;
    },
    async freshKeyId() {
      return (await a.agent.call("/api/company/api-keys", { body: { name: "throwaway", kind: "public" } })).body.id;
    },
  };
  callers = {
    anon: { name: "anonymous", headers: {} },
    // End users present the channel's public key (also as a bearer token, which must not work for agent routes).
    endUser: { name: "the conversation's end user", headers: { authorization: `Bearer ${a.pk}` }, visitor: { pk: a.pk, external_id: "alice" } },
    otherEndUser: { name: "another end user of org A", headers: { authorization: `Bearer ${a.pk}` }, visitor: { pk: a.pk, external_id: "mallory" }, otherEndUser: true },
    revokedPk: { name: "a visitor with a revoked public key", headers: {}, visitor: { pk: revokedPk.key, external_id: "rita" }, otherEndUser: true },
    agent: { name: "an agent of org A", headers: agentA.headers, fresh: agentA.fresh },
    admin: { name: "an admin of org A", headers: adminA.headers, fresh: adminA.fresh },
    owner: { name: "the owner of org A", headers: owner, fresh: () => login(a.email, "correct horse battery") },
    secretKey: { name: "org A's secret key", headers: { authorization: `Bearer ${a.sk}` } },
    crossSite: { name: "org A's owner, from a page on another site", headers: { ...owner, origin: "https://evil.test", "sec-fetch-site": "cross-site" }, fresh: async () => ({ ...(await login(a.email, "correct horse battery")), origin: "https://evil.test", "sec-fetch-site": "cross-site" }) },
    otherAgent: { name: "an agent of org B", headers: agentB.headers, fresh: agentB.fresh, foreign: true },
    otherAdmin: { name: "an admin of org B", headers: adminB.headers, fresh: adminB.fresh, foreign: true },
    revokedKey: { name: "a revoked secret key", headers: { authorization: `Bearer ${revokedSk.key}` } },
    loggedOut: { name: "a logged-out session", headers: loggedOut },
    expired: { name: "an expired session", headers: expired },
  };
  secrets = {
    "org A secret key": a.sk,
    "org B secret key": b.sk,
    "revoked secret key": revokedSk.key,
    "org A embed token": a.webchat.token,
    "owner session token": a.cookie.slice(SESSION_PREFIX.length),
    "agent session token": agentA.headers.cookie!.slice(SESSION_PREFIX.length),
    "org B agent session token": agentB.headers.cookie!.slice(SESSION_PREFIX.length),
    "expired session token": expiredToken,
    "org A identity secret": a.webchat.identity_secret,
    "a password hash": "pbkdf2-sha256$",
  };
});

/** Every line the Worker and its objects log while this file runs (X1: no secret in any log line). */
const logged: string[] = [];
for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  const original = console[level].bind(console);
  vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
    logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a) ?? String(a))).join(" "));
    original(...args);
  });
}
afterAll(() => {
  const found = Object.entries(secrets).flatMap(([what, value]) => logged.filter((line) => line.includes(value)).map((line) => `${what} in: ${line.slice(0, 200)}`));
  expect(found).toEqual([]);
});

describe("authorization matrix", () => {
  it("every route x every caller answers the expected status, leaks nothing across orgs, and shows no secret", async () => {
    const problems: string[] = [];
    const got: Record<string, string> = {};
    for (const row of TABLE) {
      const expected = row.expect.trim().split(/\s+/).map(Number);
      expect(expected, `${row.route}: one expectation per caller`).toHaveLength(COLUMNS.length);
      const statuses: number[] = [];
      for (const [i, col] of COLUMNS.entries()) {
        const caller = callers[col];
        const headers = row.fresh && caller.fresh ? await caller.fresh() : caller.headers;
        const req = await row.req(ctx, caller);
        const res = await send(req, headers, caller);
        statuses.push(res.status);
        const where = `${row.route} as ${caller.name}`;
        if (res.status !== expected[i]) problems.push(`${where}: expected ${expected[i]}, got ${res.status} ${JSON.stringify(res.body)}`);
        if (res.status >= 400) {
          const e = res.body?.error;
          if (!e || typeof e.code !== "string" || typeof e.message !== "string" || typeof e.retryable !== "boolean") problems.push(`${where}: not the error envelope: ${JSON.stringify(res.body)}`);
        } else if (row.check) {
          const p = row.check(res, ctx, caller);
          if (p) problems.push(`${where}: ${p}`);
        }
        if (res.status === 404 && caller.foreign && res.body?.error?.code !== "not_found") problems.push(`${where}: a cross-org 404 must be the plain not_found`);
        const text = JSON.stringify(res.body);
        if ((caller.foreign || caller.otherEndUser) && !row.public) {
          for (const [what, value] of [["org A's conversation id", ctx.convA], ["org A's message", SECRET_TEXT], ["org A's owner email", ctx.a.email], ["org A's id", ctx.a.org.id]] as const) {
            if (text.includes(value)) problems.push(`${where}: leaks ${what}`);
          }
        }
        for (const [what, value] of Object.entries(secrets)) {
          if (what === "org A identity secret" && row.route === "GET /api/integrations/:id/identity-secret") continue;
          if (text.includes(value)) problems.push(`${where}: response carries ${what}`);
        }
      }
      got[row.route] = statuses.map((s) => String(s).padEnd(4)).join(" ");
    }
    expect(problems, `matrix as run:\n${Object.entries(got).map(([r, s]) => `${r.padEnd(42)} ${s}`).join("\n")}`).toEqual([]);
  }, 120_000);

  it("a cross-org id answers exactly like an id that does not exist (no existence oracle)", async () => {
    const agentB = callers.otherAdmin.headers;
    for (const suffix of ["", "/messages"]) {
      const foreign = await call(`/api/conversations/${ctx.convA}${suffix}`, { headers: agentB });
      const missing = await call(`/api/conversations/${crypto.randomUUID()}${suffix}`, { headers: agentB });
      expect(foreign.status).toBe(404);
      expect(foreign.body).toEqual(missing.body);
    }
    const foreignWs = await send({ method: "GET", ws: true, path: `/ws/conversations/${ctx.convA}` }, agentB);
    const missingWs = await send({ method: "GET", ws: true, path: `/ws/conversations/${crypto.randomUUID()}` }, agentB);
    expect([foreignWs.status, foreignWs.body]).toEqual([404, missingWs.body]);
    // The object re-checks the org on every call (defence in depth), with the same answer.
    const stub = env.CONVERSATION.getByName(ctx.convA);
    const forged = { id: ctx.convA, org_id: ctx.b.org.id, channel_id: "x", end_user: { id: "x", external_id: "alice", display_name: null } };
    expect(await stub.history(forged, { audience: "staff", limit: 100 })).toMatchObject({ ok: false, error: { code: "not_found" } });
  });

  it("socket events: an end user cannot whisper or pose as someone else, and never hears another conversation", async () => {
    const alice = await openSocket(`/ws/visitor?key=${ctx.a.pk}&external_id=alice`);
    const aliceReady = await alice.next((f) => f.type === "ready");
    const mallory = await openSocket(`/ws/visitor?key=${ctx.a.pk}&external_id=mallory`);
    const malloryReady = await mallory.next((f) => f.type === "ready");
    expect(malloryReady.conversation_id).not.toBe(aliceReady.conversation_id);
    expect(JSON.stringify(malloryReady)).not.toContain(SECRET_TEXT);

    alice.send({ type: "send", content: "a whisper?", private: true, client_msg_id: "p-1" });
    expect(await alice.next((f) => f.type === "error")).toMatchObject({ code: "forbidden", client_msg_id: "p-1" });
    alice.send({ type: "send", content: "I am support", client_msg_id: "spoof-1", sender_type: "agent", sender_id: ctx.a.user.id, sender_name: "Support", status: "READ", seq: 1, id: "x" });
    const ack = await alice.next((f) => f.type === "ack" && f.client_msg_id === "spoof-1");
    const stored = (await call(`/api/conversations/${ctx.convA}/messages`, { headers: callers.owner.headers })).body.find((m: any) => m.id === ack.id);
    expect(stored).toMatchObject({ sender_type: "end_user", sender_id: "alice", status: "SENT" });
    expect(stored.seq).toBeGreaterThan(1);
    alice.send({ type: "typing", typing: true });
    alice.send({ type: "read", seq: 1 });
    mallory.send('{"type":"ping"}');
    await mallory.next((f) => f.type === "pong");
    expect(mallory.frames.map((f) => f.type)).toEqual(["ready", "pong"]);
    alice.close();
    mallory.close();
  });
});

describe("visitor identity (S4)", () => {
  it("a client-sent verified flag, an email alone, a blank or foreign hash never identify; an unverified caller never renames a verified end user", async () => {
    const { hmacSha256Hex } = await import("../../src/core/crypto");
    // Verification required: nothing but the right hash for the id opens the customer's thread.
    const strict = await newOrg({ require_identity: true });
    const secret = strict.webchat.identity_secret as string;
    const good = await hmacSha256Hex(secret, "42");
    const opened = await call("/chat-widget/session", { body: { embed_token: strict.webchat.token, session_id: "42", identity_hash: good, customer_name: "Carol", email: "c@example.test" } });
    expect(opened.status).toBe(200);
    for (const [what, body] of [
      ["no hash", { session_id: "42" }],
      ["an empty hash", { session_id: "42", identity_hash: "" }],
      ["the hash of another id", { session_id: "42", identity_hash: await hmacSha256Hex(secret, "43") }],
      ["an upper-cased hash of another id", { session_id: "42", identity_hash: (await hmacSha256Hex(secret, "43")).toUpperCase() }],
      ["the customer's email alone", { email: "c@example.test" }],
      ["a client-sent verified flag", { session_id: "42", verified: true, hmac_verified: true }],
    ] as const) {
      const r = await call("/chat-widget/session", { body: { embed_token: strict.webchat.token, ...body } });
      expect([what, r.status, r.body.error?.code]).toEqual([what, 401, "identity_required"]);
    }
    for (const path of [`/ws/visitor?embed_token=${strict.webchat.token}&external_id=42`, `/ws/visitor?embed_token=${strict.webchat.token}&external_id=42&identity_hash=${"0".repeat(64)}`]) {
      expect((await send({ method: "GET", ws: true, path }, {})).status).toBe(401);
    }
    expect((await call(`/chat-widget/history/${opened.body.conversation_id}?external_id=42`)).status).toBe(404);
    expect((await call(`/chat-widget/history/${opened.body.conversation_id}?external_id=42&identity_hash=${good}`)).status).toBe(200);

    // Verification optional: a verified end user keeps its name whatever unverified callers send.
    const loose = await newOrg();
    const looseSecret = loose.webchat.identity_secret as string;
    const hash = await hmacSha256Hex(looseSecret, "vip");
    expect((await call("/chat-widget/session", { body: { embed_token: loose.webchat.token, session_id: "vip", identity_hash: hash, customer_name: "Real Name" } })).status).toBe(200);
    await call("/chat-widget/session", { body: { embed_token: loose.webchat.token, session_id: "vip", customer_name: "Impostor", verified: true } });
    await call("/api/chat/send", { body: { apiKey: loose.pk, visitorId: "vip", visitorName: "Impostor", message: "hi" } });
    const row = await env.DB.prepare("SELECT display_name, verified FROM end_users WHERE external_id = 'vip' AND org_id = ?").bind(loose.org.id).first<{ display_name: string; verified: number }>();
    expect(row).toEqual({ display_name: "Real Name", verified: 1 });
  });
});

describe("browser rules", () => {
  it("every cookie state change needs the session's CSRF token and same-origin; nothing changes without them", async () => {
    const owner = callers.owner.headers;
    const other = callers.admin.headers;
    const flipped = owner["x-csrftoken"]!.replace(/^./, (ch) => (ch === "0" ? "1" : "0"));
    const variants: [string, Headers_, string?][] = [
      ["no token", { cookie: owner.cookie! }],
      ["another session's token", { cookie: owner.cookie!, "x-csrftoken": other["x-csrftoken"]! }],
      ["a token with a flipped bit", { cookie: owner.cookie!, "x-csrftoken": flipped }],
      ["JSON sent as text/plain, no token", { cookie: owner.cookie!, "content-type": "text/plain" }],
      ["no Content-Type, no token", { cookie: owner.cookie! }, "raw"],
      ["Sec-Fetch-Site: cross-site with a valid token", { ...owner, "sec-fetch-site": "cross-site" }],
      ["a foreign Origin with a valid token", { ...owner, origin: "https://evil.test" }],
    ];
    const before = await snapshot();
    for (const row of TABLE) {
      const probe = await row.req(ctx, callers.owner);
      if (probe.ws || probe.method === "GET" || !/^\/(auth\/logout|api\/company|api\/integrations|api\/conversations)/.test(probe.path)) continue;
      for (const [what, headers, mode] of variants) {
        const res =
          mode === "raw"
            ? await call(probe.path, { method: probe.method, raw: JSON.stringify(probe.body ?? {}), headers })
            : await call(probe.path, { method: probe.method, body: probe.body, headers });
        expect([row.route, what, res.status, res.body?.error?.code]).toEqual([row.route, what, 403, "csrf_failed"]);
      }
    }
    const after = await snapshot();
    expect(after.keys).toBe(before.keys + 1); // the throwaway key the DELETE row made, never revoked
    expect(after).toMatchObject({ messages: before.messages, users: before.users, channels: before.channels, sessions: before.sessions });
    // With the right token, a non-JSON body is still refused (415), and changes nothing.
    const plain = await call("/api/company/api-keys", { raw: '{"name":"k","kind":"public"}', headers: { ...owner, "content-type": "text/plain" } });
    expect([plain.status, plain.body.error.code]).toEqual([415, "unsupported_media_type"]);
    // GETs never change state: there is no GET form of a state change.
    const keyId = await ctx.freshKeyId();
    expect((await call(`/api/company/api-keys/${keyId}?action=delete`, { headers: owner })).status).toBe(404);
    expect((await call("/auth/logout", { headers: owner })).status).toBe(404);
    expect((await call("/auth/me", { headers: owner })).status).toBe(200);
    const keys = (await call("/api/company/api-keys", { headers: owner })).body;
    expect(keys.some((k: any) => k.id === keyId)).toBe(true);

    async function snapshot() {
      const n = async (sql: string) => (await env.DB.prepare(sql).first<{ n: number }>())!.n;
      return {
        keys: await n("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL"),
        users: await n("SELECT COUNT(*) AS n FROM users"),
        channels: await n("SELECT COUNT(*) AS n FROM channels"),
        sessions: await n("SELECT COUNT(*) AS n FROM auth_sessions"),
        messages: (await call(`/api/conversations/${ctx.convA}/messages?limit=100`, { headers: owner })).body.length,
      };
    }
  });

  it("a secret key sent by a browser (any Sec-Fetch-Site) is refused with 403 on REST and WebSockets", async () => {
    for (const site of ["cross-site", "same-site", "same-origin", "none"]) {
      const headers = { authorization: `Bearer ${ctx.a.sk}`, "sec-fetch-site": site };
      for (const path of ["/auth/me", "/api/conversations/?filter=all", `/api/conversations/${ctx.convA}/messages`, "/api/company/api-keys"]) {
        const r = await call(path, { headers });
        expect([path, site, r.status, r.body.error.code]).toEqual([path, site, 403, "forbidden"]);
      }
      const post = await call(`/api/conversations/${ctx.convA}/messages`, { body: { content: "from a browser" }, headers });
      expect(post.status).toBe(403);
      for (const path of [`/ws/conversations/${ctx.convA}`, "/ws/org"]) expect((await send({ method: "GET", ws: true, path }, headers)).status).toBe(403);
    }
  });

  it("session cookies: HttpOnly, SameSite=Lax, Secure on https, Path=/, no Domain; a new token per login; logout ends it server-side", async () => {
    const first = await call("/auth/login", { body: { email: ctx.a.email, password: "correct horse battery" } });
    const second = await call("/auth/login", { body: { email: ctx.a.email, password: "correct horse battery" } });
    for (const r of [first, second]) {
      const c = r.headers.get("set-cookie")!;
      const attrs = c.split(";").map((s) => s.trim().toLowerCase());
      expect(attrs[0]).toMatch(/^__host-session=[\w-]{40,}$/);
      expect(attrs).toEqual(expect.arrayContaining(["httponly", "samesite=lax", "secure", "path=/"]));
      expect(attrs.some((a) => a.startsWith("domain="))).toBe(false);
      expect(attrs.some((a) => a.startsWith("max-age="))).toBe(true);
    }
    const c1 = first.headers.get("set-cookie")!.split(";")[0]!;
    const c2 = second.headers.get("set-cookie")!.split(";")[0]!;
    expect(c1).not.toBe(c2);
    expect(first.body.csrf_token).not.toBe(second.body.csrf_token);
    const out = await call("/auth/logout", { method: "POST", headers: { cookie: c1, "x-csrftoken": first.body.csrf_token } });
    expect(out.status).toBe(200);
    expect(out.headers.get("set-cookie")).toMatch(/^__Host-session=;.*max-age=0/i);
    expect((await call("/auth/me", { headers: { cookie: c1 } })).status).toBe(401);
    expect((await call("/auth/me", { headers: { cookie: c2 } })).status).toBe(200);
    expect(await env.DB.prepare("SELECT 1 FROM auth_sessions WHERE id_hash = ?").bind(await sha256Hex(c1.slice(SESSION_PREFIX.length))).first()).toBeNull();
    // An http (local) request gets the same cookie without Secure.
    const local = await exports.default.fetch(new Request("http://localhost/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: ctx.a.email, password: "correct horse battery" }) }));
    expect(local.headers.get("set-cookie")).not.toMatch(/secure/i);
  });

  it("login is throttled per account after 10 failures in 15 minutes: 429 with Retry-After, never a 500; other accounts unaffected", async () => {
    const victim = await newOrg();
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await call("/auth/login", { body: { email: victim.email, password: `guess-${i}` } })).status);
    expect(statuses).toEqual([...Array(10).fill(401), 429, 429]);
    const limited = await call("/auth/login", { body: { email: victim.email.toUpperCase(), password: "correct horse battery" } });
    expect(limited.status).toBe(429);
    expect(limited.body.error).toMatchObject({ code: "rate_limited", retryable: true });
    expect(Number(limited.headers.get("retry-after"))).toBe(15 * 60);
    // Unknown accounts answer like wrong passwords (no account oracle), and are throttled the same way.
    expect((await call("/auth/login", { body: { email: `nobody-${crypto.randomUUID()}@example.test`, password: "whatever1" } })).body.error.code).toBe("invalid_credentials");
    expect((await call("/auth/login", { body: { email: ctx.a.email, password: "correct horse battery" } })).status).toBe(200);
  });

  it("D1 stores keys, embed tokens and session tokens only as SHA-256 hashes; no plaintext secret anywhere in D1", async () => {
    const keys = await env.DB.prepare("SELECT * FROM api_keys WHERE org_id = ?").bind(ctx.a.org.id).all<any>();
    const hashes = new Set(keys.results.map((k) => k.key_hash));
    expect(hashes.has(await sha256Hex(ctx.a.sk))).toBe(true);
    expect(hashes.has(await sha256Hex(ctx.a.pk))).toBe(true);
    for (const k of keys.results) expect(k.key_prefix.length).toBeLessThanOrEqual(7);
    const token = ctx.a.cookie.slice(SESSION_PREFIX.length);
    expect(await env.DB.prepare("SELECT 1 FROM auth_sessions WHERE id_hash = ?").bind(await sha256Hex(token)).first()).not.toBeNull();
    expect(await env.DB.prepare("SELECT 1 FROM embed_tokens WHERE token_hash = ?").bind(await sha256Hex(ctx.a.webchat.token)).first()).not.toBeNull();

    const tables = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%' AND name != 'd1_migrations'").all<{ name: string }>();
    expect(tables.results.map((t) => t.name)).toEqual(expect.arrayContaining(["api_keys", "auth_sessions", "embed_tokens", "users", "messages"]));
    const plaintext = { ...secrets, "org A public key": ctx.a.pk, "owner password": "correct horse battery", "agent password": "agent password" };
    delete (plaintext as Record<string, string>)["a password hash"];
    delete (plaintext as Record<string, string>)["org A identity secret"]; // kept: the HMAC needs it
    for (const { name } of tables.results) {
      const dump = JSON.stringify((await env.DB.prepare(`SELECT * FROM "${name}"`).all()).results);
      for (const [what, value] of Object.entries(plaintext)) expect(dump.includes(value), `${what} in D1 table ${name}`).toBe(false);
    }
  });
});
