/**
 * The audit log (RELIABILITY.md S2): every state-changing action of agents, admins and secret
 * keys leaves one entry {who, what, target, detail} in D1, written with the change; the log is
 * for owners and admins of the organisation only, newest first, and never holds a secret.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { asAgent, BASE, call, eventually, newOrg, withKey } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;
type Caller = { call: ReturnType<typeof asAgent>["call"] };

/** Every entry of the organisation's log (all pages), newest first, as the owner reads it. */
async function entries(o: Org, query = ""): Promise<any[]> {
  const all: any[] = [];
  let before: string | null = null;
  for (let page = 0; page < 50; page++) {
    const r: { status: number; body: any } = await o.agent.call(`/api/audit?limit=100${query}${before ? `&before=${before}` : ""}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    all.push(...r.body.entries);
    before = r.body.next_before;
    if (!before) return all;
  }
  throw new Error("too many pages");
}

async function login(email: string, password: string) {
  const r = await call("/auth/login", { body: { email, password } });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return asAgent(r.headers.get("set-cookie")!.split(";")[0]!, r.body.csrf_token);
}

async function addAgent(o: Org, role: "agent" | "admin" = "agent", password = "agent password") {
  const email = `${role}-${crypto.randomUUID()}@example.test`;
  const r = await o.agent.call("/api/company/agents", { body: { name: `An ${role}`, email, password, role } });
  expect(r.status).toBe(201);
  return { id: r.body.id as string, email, password, session: await login(email, password) };
}

async function conversation(o: Org, visitorId = `v-${crypto.randomUUID()}`) {
  const sent = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId, message: "hello" } });
  expect(sent.status).toBe(200);
  return (await call("/chat-widget/session", { body: { key: o.pk, session_id: visitorId } })).body.conversation_id as string;
}


/** One Socket.IO session over raw Engine.IO polling with the agent's cookie: CONNECT, then each event's ack. */
async function socketIoEvents(cookie: string, events: [string, unknown][]): Promise<any[]> {
  const engine = async (sid: string | null, body?: string) => {
    const res = await exports.default.fetch(
      new Request(`${BASE}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ""}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { cookie, ...(body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" }) },
        body,
      }),
    );
    return res.text();
  };
  const sid = JSON.parse((await engine(null)).slice(1)).sid as string;
  const take = async (prefix: string) => {
    for (let i = 0; i < 10; i++) {
      const hit = (await engine(sid)).split("\x1e").find((p) => p.startsWith(prefix));
      if (hit) return hit;
    }
    throw new Error(`no ${prefix} packet`);
  };
  const acks: any[] = [];
  try {
    await engine(sid, "40");
    await take("40");
    for (const [i, event] of events.entries()) {
      await engine(sid, `42${i + 1}${JSON.stringify(event)}`);
      acks.push(JSON.parse((await take(`43${i + 1}`)).slice(`43${i + 1}`.length))[0]);
    }
  } finally {
    await engine(sid, "1");
  }
  return acks;
}

const toPem = (der: ArrayBuffer) => `-----BEGIN PRIVATE KEY-----\n${btoa(String.fromCharCode(...new Uint8Array(der))).replace(/.{64}/g, "$&\n")}\n-----END PRIVATE KEY-----\n`;

async function pushCredentials() {
  const rsa = (await crypto.subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const ec = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  return {
    fcm: {
      type: "service_account",
      project_id: "parley-audit",
      private_key_id: "kid-audit",
      private_key: toPem((await crypto.subtle.exportKey("pkcs8", rsa.privateKey)) as ArrayBuffer),
      client_email: "push@parley-audit.iam.gserviceaccount.com",
      client_id: "1234567890",
      token_uri: "https://oauth2.googleapis.com/token",
    },
    apns: { team_id: "TEAM123456", key_id: "KEYAUDIT01", bundle_id: "com.example.audit", private_key: toPem((await crypto.subtle.exportKey("pkcs8", ec.privateKey)) as ArrayBuffer), environment: "sandbox" },
  };
}

/** Every value of `secrets` that occurs in `text`, by name. */
const found = (text: string, secrets: Record<string, string>) => Object.entries(secrets).filter(([, v]) => v && text.includes(v)).map(([k]) => k);

describe("audit log", () => {
  it("admin actions (keys, agents, channels, bots, push, webhooks, routing) each leave an entry with actor, action, target; no secret in any entry", async () => {
    const o = await newOrg();
    const key = withKey(o.sk);
    const secrets: Record<string, string> = { "org secret key": o.sk, "org public key": o.pk, "embed token": o.webchat.token, "identity secret": o.webchat.identity_secret };
    const ok = async (p: Promise<any>, status = 200) => {
      const r = await p;
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      return r.body;
    };

    // API keys: created (by the owner's cookie), revoked (by the secret key: the key is the actor).
    const made = await ok(o.agent.call("/api/company/api-keys", { body: { name: "CI server", kind: "secret" } }), 201);
    secrets["new secret key"] = made.key;
    await ok(key.call(`/api/company/api-keys/${made.id}`, { method: "DELETE" }));
    // Agents: created, renamed, re-roled, new password, disabled, enabled.
    const agent = await ok(o.agent.call("/api/company/agents", { body: { name: "Ann", email: `ann-${crypto.randomUUID()}@example.test`, password: "first password 1", role: "agent" } }), 201);
    secrets["agent's password"] = "first password 1";
    secrets["agent's new password"] = "second password 2";
    await ok(o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { name: "Ann B", role: "admin" } }));
    await ok(o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { role: "agent", password: "second password 2" } }));
    await ok(o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { disabled: true } }));
    await ok(o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { disabled: false } }));
    // Channels: webchat and mobile created, changed, another embed token, identity secret read, bots, push.
    const web = await ok(o.agent.call("/api/integrations/webchat", { body: { name: "Shop", allowed_origins: ["https://shop.example"] } }), 201);
    secrets["webchat token"] = web.token;
    secrets["webchat identity secret"] = web.identity_secret;
    await ok(o.agent.call(`/api/integrations/${web.channel_id}`, { method: "PATCH", body: { title: "Help", allowed_origins: ["https://shop.example", "https://www.shop.example"] } }));
    const another = await ok(o.agent.call(`/api/integrations/${web.channel_id}/embed-tokens`, { method: "POST" }), 201);
    secrets["another embed token"] = another.token;
    await ok(o.agent.call(`/api/integrations/${web.channel_id}/identity-secret`));
    await ok(o.agent.call(`/api/integrations/${web.channel_id}/bot`, { method: "PUT", body: { kind: "webhook", config: { url: "https://bot.example/hook?token=bot-url-token-123", secret: "bot-webhook-secret-0123456789" } } }));
    secrets["bot secret"] = "bot-webhook-secret-0123456789";
    secrets["bot url token"] = "bot-url-token-123";
    await ok(o.agent.call(`/api/integrations/${web.channel_id}/bot`, { method: "DELETE" }));
    const mobile = await ok(o.agent.call("/api/integrations/mobile", { body: { name: "App" } }), 201);
    secrets["mobile token"] = mobile.token;
    const creds = await pushCredentials();
    secrets["fcm private key"] = creds.fcm.private_key.split("\n")[2]!;
    secrets["apns private key"] = creds.apns.private_key.split("\n")[1]!;
    await ok(o.agent.call(`/api/integrations/${mobile.channel_id}/push`, { method: "PUT", body: creds }));
    await ok(o.agent.call(`/api/integrations/${mobile.channel_id}/push?platform=apns`, { method: "DELETE" }));
    const chatApi = await ok(o.agent.call("/api/integrations/chat-api", { body: { name: "API", webhook_url: "http://127.0.0.1:9/reply?sig=chat-api-url-secret" } }), 201);
    secrets["chat api token"] = chatApi.token;
    secrets["chat api webhook secret"] = chatApi.webhook_secret;
    secrets["chat api url secret"] = "chat-api-url-secret";
    // Webhooks: created, changed, secret rotated, a dead delivery retried, deleted.
    const hook = await ok(o.agent.call("/api/webhooks", { body: { url: "http://127.0.0.1:9/hook?key=hook-url-secret", events: ["message.created"] } }), 201);
    secrets["webhook secret"] = hook.secret;
    secrets["webhook url secret"] = "hook-url-secret";
    await ok(o.agent.call(`/api/webhooks/${hook.id}`, { method: "PATCH", body: { events: [] } }));
    const rotated = await ok(o.agent.call(`/api/webhooks/${hook.id}/rotate-secret`, { method: "POST" }));
    secrets["rotated webhook secret"] = rotated.secret;
    await env.DB.prepare("INSERT INTO webhook_deliveries (id, webhook_id, org_id, event_type, payload, status, attempts) VALUES (?, ?, ?, 'message.created', '{}', 'dead', 9)").bind("msg_audit_dead", hook.id, o.org.id).run();
    await ok(o.agent.call(`/api/webhooks/${hook.id}/deliveries/msg_audit_dead/retry`, { method: "POST" }), 202);
    await ok(o.agent.call(`/api/webhooks/${hook.id}`, { method: "DELETE" }));
    // Routing: a queue created and changed, an agent's skills and capacity.
    const queue = await ok(o.agent.call("/api/routing/queues", { body: { name: "billing", auto_assign: false } }), 201);
    await ok(o.agent.call(`/api/routing/queues/${queue.id}`, { method: "PUT", body: { name: "billing", auto_assign: true } }));
    await ok(key.call(`/api/routing/agents/${agent.id}`, { method: "PUT", body: { skills: [queue.id], capacity: 3 } }));

    const log = await entries(o);
    const owner = { type: "agent", id: o.user.id, name: o.user.name };
    const keyActor = { type: "key", id: expect.any(String), name: expect.stringContaining("secret") };
    const expected: [string, object, object, object?][] = [
      ["org.created", owner, { type: "organization", id: o.org.id }],
      ["api_key.created", owner, { type: "api_key", id: made.id }, { name: "CI server", kind: "secret", prefix: made.key.slice(0, 7) }],
      ["api_key.revoked", keyActor, { type: "api_key", id: made.id }],
      ["agent.created", owner, { type: "agent", id: agent.id }, { name: "Ann", role: "agent" }],
      ["agent.renamed", owner, { type: "agent", id: agent.id }, { from: "Ann", to: "Ann B" }],
      ["agent.role_changed", owner, { type: "agent", id: agent.id }, { from: "agent", to: "admin" }],
      ["agent.role_changed", owner, { type: "agent", id: agent.id }, { from: "admin", to: "agent" }],
      ["agent.password_set", owner, { type: "agent", id: agent.id }],
      ["agent.disabled", owner, { type: "agent", id: agent.id }],
      ["agent.enabled", owner, { type: "agent", id: agent.id }],
      ["channel.created", owner, { type: "channel", id: web.channel_id }, { kind: "webchat", name: "Shop", allowed_origins: ["https://shop.example"] }],
      ["channel.updated", owner, { type: "channel", id: web.channel_id }, { changed: ["allowed_origins", "title"] }],
      ["channel.embed_token_issued", owner, { type: "channel", id: web.channel_id }, { embed_token_id: another.id }],
      ["channel.identity_secret_viewed", owner, { type: "channel", id: web.channel_id }],
      ["channel.bot_set", owner, { type: "channel", id: web.channel_id }, { kind: "webhook", enabled: true }],
      ["channel.bot_removed", owner, { type: "channel", id: web.channel_id }],
      ["channel.created", owner, { type: "channel", id: mobile.channel_id }, { kind: "mobile_sdk" }],
      ["channel.push_set", owner, { type: "channel", id: mobile.channel_id }, { set: ["fcm", "apns"], removed: [] }],
      ["channel.push_removed", owner, { type: "channel", id: mobile.channel_id }, { platforms: ["apns"] }],
      ["channel.created", owner, { type: "channel", id: chatApi.channel_id }, { kind: "chat_api", webhook_id: chatApi.webhook_id, webhook_url: "http://127.0.0.1:9/reply" }],
      ["webhook.created", owner, { type: "webhook", id: hook.id }, { url: "http://127.0.0.1:9/hook", events: ["message.created"] }],
      ["webhook.updated", owner, { type: "webhook", id: hook.id }, { changed: ["events"], events: [] }],
      ["webhook.secret_rotated", owner, { type: "webhook", id: hook.id }, { previous_valid_until: rotated.previous_secret_expires_at }],
      ["webhook.delivery_retried", owner, { type: "webhook", id: hook.id }, { delivery_id: "msg_audit_dead" }],
      ["webhook.deleted", owner, { type: "webhook", id: hook.id }],
      ["routing.queue_created", owner, { type: "queue", id: queue.id }, { name: "billing", auto_assign: false }],
      ["routing.queue_updated", owner, { type: "queue", id: queue.id }, { auto_assign: true }],
      ["routing.agent_updated", keyActor, { type: "agent", id: agent.id }, { skills: [queue.id], capacity: 3 }],
    ];
    for (const [action, actor, target, detail] of expected) {
      const hit = log.filter((e) => e.action === action && e.target.id === (target as any).id);
      expect(hit.length, `${action} on ${(target as any).type}`).toBeGreaterThan(0);
      expect(hit.some((e) => expect.objectContaining({ actor, target, detail: expect.objectContaining(detail ?? {}) }).asymmetricMatch(e)), `${action}: ${JSON.stringify(hit)}`).toBe(true);
    }
    // Each entry is well-formed; newest first.
    for (const e of log) {
      expect(e).toEqual({ id: expect.any(String), at: expect.any(String), actor: { type: expect.stringMatching(/^(agent|key|system)$/), id: expect.any(String), name: expect.anything() }, action: expect.stringMatching(/^[a-z_]+\.[a-z_]+$/), target: { type: expect.any(String), id: expect.any(String) }, detail: expect.any(Object) });
    }
    expect(log.map((e) => e.at)).toEqual([...log.map((e) => e.at)].sort().reverse());
    // No secret in what the API shows, nor in what D1 stores.
    const rows = await env.DB.prepare("SELECT * FROM audit_log WHERE org_id = ?").bind(o.org.id).all();
    expect(rows.results.length).toBe(log.length);
    expect(found(JSON.stringify(log), secrets)).toEqual([]);
    expect(found(JSON.stringify(rows.results), secrets)).toEqual([]);
    expect(JSON.stringify(rows.results)).not.toMatch(/pbkdf2|whsec_|sk_[\w-]{20}|ew_[\w-]{20}|PRIVATE KEY/);
  });

  it("logins (success and failure, for the account) and logouts are recorded; an unknown email or a throttled attempt writes nothing", async () => {
    const o = await newOrg();
    const a = await addAgent(o, "agent", "the right password");
    const before = (await entries(o)).length;
    expect((await call("/auth/login", { body: { email: a.email, password: "the wrong password" } })).status).toBe(401);
    expect((await call("/auth/login", { body: { email: `nobody-${crypto.randomUUID()}@example.test`, password: "whatever it is" } })).status).toBe(401);
    const session = await login(a.email, "the right password");
    expect((await session.call("/auth/logout", { method: "POST" })).status).toBe(200);
    const log = await entries(o);
    const mine = log.filter((e) => e.target.id === a.id && e.action.startsWith("auth."));
    // Newest first: addAgent's login, the failure, the login, the logout.
    expect(mine.map((e) => e.action)).toEqual(["auth.logout", "auth.login", "auth.login_failed", "auth.login"]);
    expect(mine[0]).toMatchObject({ actor: { type: "agent", id: a.id, name: "An agent" }, detail: { via: "cookie" } });
    expect(mine[1]).toMatchObject({ actor: { type: "agent", id: a.id }, detail: { email: a.email } });
    expect(mine[2]).toMatchObject({ actor: { type: "system" }, target: { type: "agent", id: a.id }, detail: { email: a.email, reason: "wrong_password" } });
    expect(log.length - before).toBe(3);
    expect(JSON.stringify(log)).not.toContain("the wrong password");
    expect(JSON.stringify(log)).not.toContain("the right password");
    // A disabled account's attempt says so.
    await o.agent.call(`/api/company/agents/${a.id}`, { method: "PATCH", body: { disabled: true } });
    expect((await call("/auth/login", { body: { email: a.email, password: "the right password" } })).status).toBe(401);
    expect((await entries(o, "&action=auth.login_failed"))[0]).toMatchObject({ target: { id: a.id }, detail: { reason: "disabled" } });
    // Throttled attempts (after 10 failures) are refused before any account lookup: no entry each.
    for (let i = 0; i < 12; i++) await call("/auth/login", { body: { email: a.email, password: `wrong ${i} password` } });
    const failures = await entries(o, "&action=auth.login_failed");
    expect(failures.length).toBe(10);
  });

  it("conversations assigned, transferred, unassigned, tagged and resolved are recorded with who did it; messages are not", async () => {
    const o = await newOrg();
    const ann = await addAgent(o);
    const bob = await addAgent(o);
    const id = await conversation(o);
    expect((await ann.session.call(`/api/conversations/${id}/assign`, { method: "POST" })).status).toBe(200);
    expect((await ann.session.call(`/api/conversations/${id}/messages`, { body: { content: "hi, Ann here" } })).status).toBe(201);
    expect((await ann.session.call(`/api/conversations/${id}/transfer`, { body: { agent_id: bob.id } })).status).toBe(200);
    expect((await o.agent.call(`/api/conversations/${id}/unassign`, { method: "POST" })).status).toBe(200);
    expect((await withKey(o.sk).call(`/api/conversations/${id}/tags`, { body: { tags: ["billing"] } })).status).toBe(200);
    expect((await bob.session.call(`/api/conversations/${id}/resolve`, { body: { tags: ["billing", "done"] } })).status).toBe(200);
    const log = (await entries(o)).filter((e) => e.target.type === "conversation" && e.target.id === id).reverse();
    expect(log.map((e) => [e.action, e.actor.type, e.actor.id])).toEqual([
      ["conversation.assigned", "agent", ann.id],
      ["conversation.transferred", "agent", ann.id],
      ["conversation.unassigned", "agent", o.user.id],
      ["conversation.tagged", "key", expect.any(String)],
      ["conversation.resolved", "agent", bob.id],
    ]);
    expect(log[0].detail).toMatchObject({ agent_id: ann.id, session_id: expect.any(String) });
    expect(log[1].detail).toMatchObject({ to_agent_id: bob.id, to_agent_name: "An agent" });
    expect(log[3].detail).toMatchObject({ tags: ["billing"] });
    expect(log[4].detail).toMatchObject({ tags: ["billing", "done"] });
    expect(JSON.stringify(log)).not.toContain("hi, Ann here");
    // A refused change (already resolved) records nothing.
    expect((await bob.session.call(`/api/conversations/${id}/resolve`, { body: {} })).status).toBe(409);
    expect((await entries(o, "&action=conversation.resolved")).length).toBe(1);
    // Disabling an agent gives their conversations back: one entry each, by the admin, with the reason.
    const id2 = await conversation(o);
    expect((await bob.session.call(`/api/conversations/${id2}/assign`, { method: "POST" })).status).toBe(200);
    await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body.find((c: any) => c.id === id2)?.active_session?.assigned_agent_id === bob.id, "the claim in D1");
    const off = await o.agent.call(`/api/company/agents/${bob.id}`, { method: "PATCH", body: { disabled: true } });
    expect(off.body).toMatchObject({ released_conversations: 1 });
    expect((await entries(o, "&action=conversation.unassigned")).find((e) => e.target.id === id2)).toMatchObject({ actor: { id: o.user.id }, detail: { from_agent_id: bob.id, reason: "agent_disabled" } });
  });

  it("over Socket.IO too: an agent's claim_conversation and endConversation are recorded (via socket.io)", async () => {
    const o = await newOrg();
    const id = await conversation(o);
    const acks = await socketIoEvents(o.cookie, [
      ["claim_conversation", { conversation_id: id }],
      ["endConversation", { conversationId: id }],
    ]);
    expect(acks.map((a) => a?.ok)).toEqual([true, true]);
    const log = (await entries(o)).filter((e) => e.target.id === id).reverse();
    expect(log).toMatchObject([
      { action: "conversation.assigned", actor: { type: "agent", id: o.user.id }, detail: { agent_id: o.user.id, via: "socket.io" } },
      { action: "conversation.resolved", actor: { type: "agent", id: o.user.id }, detail: { via: "socket.io" } },
    ]);
  });

  it("a refused change to a conversation (another org's: 404 with no state change; someone else's: 403) is recorded for the attempt, in the caller's own organisation", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const id = await conversation(a);
    const mallory = await addAgent(b);
    for (const [path, body] of [["assign", undefined], ["resolve", {}], ["tags", { tags: ["x"] }], ["unassign", undefined], ["transfer", { agent_id: mallory.id }]] as const) {
      const r = await mallory.session.call(`/api/conversations/${id}/${path}`, { method: "POST", body });
      expect(r.status, path).toBe(404);
    }
    const state = await a.agent.call(`/api/conversations/${id}`);
    expect(state.body.active_session).toMatchObject({ status: "open", assigned_agent_id: null, tags: [] });
    const refused = await entries(b, "&action=conversation.change_refused");
    expect(refused.map((e) => e.detail.attempted).sort()).toEqual(["assign", "resolve", "tags", "transfer", "unassign"]);
    expect(refused.every((e) => e.actor.id === mallory.id && e.target.id === id && e.detail.code === "not_found")).toBe(true);
    expect(JSON.stringify(refused)).not.toContain(a.org.id);
    expect((await entries(a)).filter((e) => e.target.id === id)).toEqual([]);
    // Within the organisation: a plain agent handing on a teammate's conversation is 403, recorded.
    const ann = await addAgent(a);
    const bob = await addAgent(a);
    expect((await ann.session.call(`/api/conversations/${id}/assign`, { method: "POST" })).status).toBe(200);
    expect((await bob.session.call(`/api/conversations/${id}/unassign`, { method: "POST" })).status).toBe(403);
    expect((await entries(a, `&actor_id=${bob.id}&action=conversation`))).toMatchObject([{ action: "conversation.change_refused", target: { id }, detail: { attempted: "unassign", code: "forbidden" } }]);
  });

  it("is org-isolated, for owners and admins only (agents 403), newest first with before/limit pages and action/actor_id filters", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const admin = await addAgent(a, "admin");
    const agent = await addAgent(a, "agent");
    for (let i = 0; i < 5; i++) await a.agent.call("/api/routing/queues", { body: { name: `q${i}`, auto_assign: false } });
    await admin.session.call("/api/company/api-keys", { body: { name: "by admin", kind: "public" } });

    expect((await agent.session.call("/api/audit")).status).toBe(403);
    expect((await call("/api/audit")).status).toBe(401);
    const byAdmin = await admin.session.call("/api/audit?limit=100");
    expect(byAdmin.status).toBe(200);
    const aLog = await entries(a);
    expect(byAdmin.body.entries.map((e: any) => e.id)).toEqual(aLog.slice(0, 100).map((e) => e.id));
    // Org B sees none of org A's entries, and org A's entry id is no cursor for it.
    const bLog = await entries(b);
    const aIds = new Set(aLog.map((e) => e.id));
    expect(bLog.length).toBeGreaterThan(0);
    expect(bLog.filter((e) => aIds.has(e.id))).toEqual([]);
    expect(JSON.stringify(bLog)).not.toContain(a.org.id);
    expect(JSON.stringify(bLog)).not.toContain(a.email);
    expect((await b.agent.call(`/api/audit?before=${aLog[0].id}`)).status).toBe(400);
    // Pages: two at a time, newest first, the same entries as one read.
    const paged: any[] = [];
    let before: string | null = null;
    do {
      const r: any = await a.agent.call(`/api/audit?limit=2${before ? `&before=${before}` : ""}`);
      expect(r.body.entries.length).toBeLessThanOrEqual(2);
      paged.push(...r.body.entries);
      before = r.body.next_before;
    } while (before);
    expect(paged.map((e) => e.id)).toEqual(aLog.map((e) => e.id));
    // Filters: an exact action, an action's first part, an actor.
    const queues = await entries(a, "&action=routing.queue_created");
    expect(queues.map((e) => e.detail.name)).toEqual(["q4", "q3", "q2", "q1", "q0"]);
    expect((await entries(a, "&action=routing")).every((e) => e.action.startsWith("routing."))).toBe(true);
    expect((await entries(a, "&action=api_key")).map((e) => e.action)).toContain("api_key.created");
    const mine = await entries(a, `&actor_id=${admin.id}`);
    expect(mine.map((e) => e.action).sort()).toEqual(["api_key.created", "auth.login"]);
    expect((await a.agent.call("/api/audit?action=<script>")).status).toBe(400);
    expect((await a.agent.call("/api/audit?limit=0")).status).toBe(400);
  });

  it("an entry exists only with its change: a second revoke, removing no bot, or a refused change writes nothing", async () => {
    const o = await newOrg();
    const k = (await o.agent.call("/api/company/api-keys", { body: { name: "once", kind: "public" } })).body;
    expect((await o.agent.call(`/api/company/api-keys/${k.id}`, { method: "DELETE" })).status).toBe(200);
    expect((await o.agent.call(`/api/company/api-keys/${k.id}`, { method: "DELETE" })).status).toBe(404);
    expect((await entries(o, "&action=api_key.revoked")).length).toBe(1);
    expect((await o.agent.call(`/api/integrations/${o.webchat.channel_id}/bot`, { method: "DELETE" })).status).toBe(200);
    expect(await entries(o, "&action=channel.bot_removed")).toEqual([]);
    expect((await o.agent.call(`/api/routing/queues/${crypto.randomUUID()}`, { method: "PUT", body: { name: "x" } })).status).toBe(404);
    expect(await entries(o, "&action=routing.queue_updated")).toEqual([]);
    // A change that fails (duplicate queue name) leaves no entry either: the batch is all or nothing.
    expect((await o.agent.call("/api/routing/queues", { body: { name: "dup" } })).status).toBe(201);
    expect((await o.agent.call("/api/routing/queues", { body: { name: "dup" } })).status).toBe(409);
    expect((await entries(o, "&action=routing.queue_created")).length).toBe(1);
  });

  it("an audit failure never breaks chat: with the log unwritable, conversations are still claimed, answered and resolved", async () => {
    const o = await newOrg();
    const id = await conversation(o);
    await env.DB.prepare("ALTER TABLE audit_log RENAME TO audit_log_away").run();
    try {
      expect((await o.agent.call(`/api/conversations/${id}/assign`, { method: "POST" })).status).toBe(200);
      expect((await o.agent.call(`/api/conversations/${id}/messages`, { body: { content: "still here" } })).status).toBe(201);
      expect((await o.agent.call(`/api/conversations/${id}/tags`, { body: { tags: ["x"] } })).status).toBe(200);
      expect((await o.agent.call(`/api/conversations/${id}/resolve`, { body: {} })).status).toBe(200);
      const s = await call("/auth/login", { body: { email: o.email, password: "correct horse battery" } });
      expect(s.status).toBe(200);
    } finally {
      await env.DB.prepare("ALTER TABLE audit_log_away RENAME TO audit_log").run();
    }
  });
});
