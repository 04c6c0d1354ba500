/**
 * Webhooks inside workerd: the admin API, the real local queues (producer in the conversation
 * object, consumer and dead-letter consumer in the Worker), and receivers the Worker reaches.
 *
 * The receivers: the Worker and these tests share one isolate, so the Worker's outbound
 * `fetch()` to `https://*.receiver.test` is answered here (the same interception MSW would do);
 * every other request goes to the real fetch. Parley's own code is not mocked.
 * vitest.config.ts sets WEBHOOK_BACKOFF_BASE_SECONDS=0, so retries on the real queue come at the
 * next batch (about a second locally) instead of after 10 s, 40 s, …
 */
import { createExecutionContext, createMessageBatch, evictDurableObject, getQueueResult, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import type { ConversationRoom } from "../../src/conversation/room";
import { backoffSeconds, parseRetryAfter } from "../../src/webhooks/deliver";
import { WEBHOOK_DLQ, WEBHOOK_QUEUE } from "../../src/webhooks/consumer";
import { ENDPOINT_CACHE_MS } from "../../src/webhooks/events";
import { sign, verify } from "../../src/webhooks/signature";
import { checkWebhookUrl } from "../../src/webhooks/url";
import { asAgent, call, dostiVisitor, eventually, newOrg } from "./helpers";
import { conversationOf } from "./invariants";

// ---- receivers ------------------------------------------------------------------------------

interface Hit {
  id: string;
  timestamp: string;
  signature: string;
  contentType: string | null;
  body: string;
  json: any;
  at: number;
}

/** `n`: how many times this webhook-id has arrived, this one included. */
type Behaviour = (hit: Hit, n: number, signal: AbortSignal) => Response | Promise<Response>;

const ok: Behaviour = () => new Response("ok");
const timeout: Behaviour = (_h, _n, signal) =>
  new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason ?? new DOMException("timed out", "TimeoutError"))));
const refused: Behaviour = () => {
  throw new TypeError("Network connection lost.");
};

class Receiver {
  readonly hits: Hit[] = [];
  constructor(
    readonly host: string,
    public behave: Behaviour,
  ) {}
  get url() {
    return `https://${this.host}/hooks/parley`;
  }
  count(id: string) {
    return this.hits.filter((h) => h.id === id).length;
  }
  ids() {
    return new Set(this.hits.map((h) => h.id));
  }
  events(type?: string) {
    const seen = new Map<string, any>();
    for (const h of this.hits) if (!type || h.json.type === type) seen.set(h.id, h.json);
    return [...seen.values()];
  }
}

const receivers = new Map<string, Receiver>();
let receiverCount = 0;
function receiver(behave: Behaviour = ok) {
  const r = new Receiver(`r${++receiverCount}-${crypto.randomUUID().slice(0, 8)}.receiver.test`, behave);
  receivers.set(r.host, r);
  return r;
}

const realFetch = globalThis.fetch;
beforeAll(() => {
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const r = receivers.get(new URL(req.url).hostname);
    if (!r) return realFetch(input, init);
    const body = await req.text();
    const hit: Hit = {
      id: req.headers.get("webhook-id") ?? "",
      timestamp: req.headers.get("webhook-timestamp") ?? "",
      signature: req.headers.get("webhook-signature") ?? "",
      contentType: req.headers.get("content-type"),
      body,
      json: JSON.parse(body),
      at: Date.now(),
    };
    r.hits.push(hit);
    expect(req.method).toBe("POST");
    expect(req.redirect).toBe("manual");
    return r.behave(hit, r.count(hit.id), init?.signal ?? req.signal);
  }) as typeof fetch;
});
afterAll(() => {
  globalThis.fetch = realFetch;
});

// ---- helpers --------------------------------------------------------------------------------

type Org = Awaited<ReturnType<typeof newOrg>>;

async function endpoint(o: Org, url: string, events?: string[]) {
  const r = await o.agent.call("/api/webhooks", { body: { url, ...(events ? { events } : {}) } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body as { id: string; url: string; events: string[]; secret: string };
}

async function deliveries(o: Org, id: string, query = "") {
  const r = await o.agent.call(`/api/webhooks/${id}/deliveries${query}`);
  expect(r.status).toBe(200);
  return r.body as any[];
}

const signedOk = (secret: string, h: Hit) => verify(secret, { id: h.id, timestamp: h.timestamp, signature: h.signature }, h.body);

/** A delivery row as the fan-out writes it, for driving the consumer directly. */
async function seedDelivery(o: Org, webhookId: string, type = "message.created") {
  const id = `msg_test${crypto.randomUUID().replace(/-/g, "")}`;
  const event = { id: `evt_${crypto.randomUUID()}`, type, created_at: new Date().toISOString(), org_id: o.org.id, data: { probe: true } };
  await env.DB.prepare("INSERT INTO webhook_deliveries (id, webhook_id, org_id, event_type, event_id, payload, status, attempts) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0)")
    .bind(id, webhookId, o.org.id, type, event.id, JSON.stringify(event))
    .run();
  return id;
}

/**
 * Runs the Worker's exported `queue` handler on a batch built with the plugin's
 * `createMessageBatch`, and reads the outcome with `getQueueResult`. That result has no retry
 * delays, so each message's `retry` options are recorded on the side (the platform's message
 * object is observed, Parley's code is not touched).
 */
async function runConsumer(queue: string, items: { body: unknown; attempts?: number }[]) {
  const batch = createMessageBatch(
    queue,
    items.map((m, i) => ({ id: `m${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: m.attempts ?? 1, body: m.body })),
  );
  const delays = new Map<string, number | undefined>();
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    m.retry = (options?: QueueRetryOptions) => {
      delays.set(m.id, options?.delaySeconds);
      retry(options);
    };
  }
  const ctx = createExecutionContext();
  await worker.queue(batch, env);
  const result = await getQueueResult(batch, ctx);
  return { batch, result: { ...result, retryMessages: result.retryMessages.map((r) => ({ ...r, delaySeconds: delays.get(r.msgId) })) } };
}

const deliveryMsg = (id: string, attempts = 1) => ({ body: { v: 1, kind: "delivery", delivery_id: id }, attempts });

async function deliveryRow(id: string) {
  return (await env.DB.prepare("SELECT * FROM webhook_deliveries WHERE id = ?").bind(id).first()) as any;
}

// ---- admin API ------------------------------------------------------------------------------

describe("admin API", () => {
  it("creates an endpoint with a secret shown once, lists without secrets, deletes; org-scoped", async () => {
    const o = await newOrg();
    const other = await newOrg();
    const created = await endpoint(o, "https://hooks.example.com/parley", ["message.created", "message.created", "conversation.resolved"]);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(created.events).toEqual(["message.created", "conversation.resolved"]);
    const second = await endpoint(o, "https://hooks.example.com/other");
    expect(second.secret).not.toBe(created.secret);

    const list = await o.agent.call("/api/webhooks");
    expect(list.status).toBe(200);
    expect(list.body.map((e: any) => e.id)).toEqual([created.id, second.id]);
    expect(JSON.stringify(list.body)).not.toContain("whsec_");
    expect(list.body[1]).toMatchObject({ url: "https://hooks.example.com/other", events: [], active: true, disabled_reason: null });
    expect((await o.agent.call(`/api/webhooks/${created.id}`)).body).not.toHaveProperty("secret");

    // Another org sees none of it.
    expect((await other.agent.call("/api/webhooks")).body).toEqual([]);
    for (const [method, path] of [
      ["GET", `/api/webhooks/${created.id}`],
      ["DELETE", `/api/webhooks/${created.id}`],
      ["GET", `/api/webhooks/${created.id}/deliveries`],
      ["POST", `/api/webhooks/${created.id}/deliveries/msg_x/retry`],
      ["POST", `/api/webhooks/${created.id}/rotate-secret`],
    ] as const) {
      const r = await other.agent.call(path, { method });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.error.code).toBe("not_found");
    }

    const del = await o.agent.call(`/api/webhooks/${created.id}`, { method: "DELETE" });
    expect(del.body).toEqual({ id: created.id, deleted: true });
    expect((await o.agent.call(`/api/webhooks/${created.id}`)).status).toBe(404);
    expect((await o.agent.call("/api/webhooks")).body.map((e: any) => e.id)).toEqual([second.id]);
  });

  it("is for owners and admins, with CSRF on cookie writes or a secret key", async () => {
    const o = await newOrg();
    const email = `agent-${crypto.randomUUID()}@example.test`;
    expect((await o.agent.call("/api/company/agents", { body: { name: "Agent", email, password: "correct horse battery", role: "agent" } })).status).toBe(201);
    const login = await call("/auth/login", { body: { email, password: "correct horse battery" } });
    const agent = asAgent(login.headers.get("set-cookie")!.split(";")[0]!, login.body.csrf_token);
    expect((await agent.call("/api/webhooks")).status).toBe(403);
    expect((await agent.call("/api/webhooks", { body: { url: "https://hooks.example.com/x" } })).status).toBe(403);

    const noCsrf = await call("/api/webhooks", { body: { url: "https://hooks.example.com/x" }, headers: { cookie: o.cookie } });
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.error.code).toBe("csrf_failed");
    expect((await call("/api/webhooks", { body: { url: "https://hooks.example.com/x" } })).status).toBe(401);

    const byKey = await call("/api/webhooks", { body: { url: "https://hooks.example.com/by-key" }, headers: { authorization: `Bearer ${o.sk}` } });
    expect(byKey.status).toBe(201);
  });

  it("refuses URLs that are not public https (SSRF) and unknown events", async () => {
    const o = await newOrg();
    for (const url of [
      "http://hooks.example.com/plain-http",
      "https://10.0.0.5/hook",
      "https://169.254.169.254/latest/meta-data",
      "https://[fe80::1]/hook",
      "https://[::ffff:10.0.0.5]/hook",
      "https://[fd00::1]/hook",
      "https://0xa9.0xfe.0xa9.0xfe/",
      "https://192.168.1.10/hook",
      "https://metadata.google.internal/",
      "https://intranet/hook",
      "https://user:pass@hooks.example.com/",
      "ftp://hooks.example.com/",
      "not a url",
    ]) {
      const r = await o.agent.call("/api/webhooks", { body: { url } });
      expect(r.status, url).toBe(400);
      expect(r.body.error.code).toBe("validation_failed");
    }
    const badEvent = await o.agent.call("/api/webhooks", { body: { url: "https://hooks.example.com/", events: ["message.deleted"] } });
    expect(badEvent.status).toBe(400);
    // ALLOW_LOCAL_WEBHOOKS=true here (as in .dev.vars): a loopback receiver is allowed, over http too.
    expect((await o.agent.call("/api/webhooks", { body: { url: "http://127.0.0.1:9/hook" } })).status).toBe(201);
    expect((await o.agent.call("/api/webhooks", { body: { url: "http://localhost:9/hook" } })).status).toBe(201);
  });

  it("URL policy without ALLOW_LOCAL_WEBHOOKS: loopback refused, public https allowed", () => {
    for (const url of ["http://127.0.0.1:8080/", "https://127.0.0.1/", "https://[::1]/", "https://localhost/", "https://a.localhost/", "https://2130706433/", "https://[::ffff:127.0.0.1]/", "https://0.0.0.0/"]) {
      expect(checkWebhookUrl(url, false).ok, url).toBe(false);
    }
    expect(checkWebhookUrl("http://127.0.0.1:8080/", true).ok).toBe(true);
    expect(checkWebhookUrl("http://hooks.example.com/", true).ok).toBe(false);
    expect(checkWebhookUrl("https://hooks.example.com:8443/x?y=1", false)).toEqual({ ok: true, url: "https://hooks.example.com:8443/x?y=1" });
    expect(checkWebhookUrl("https://[2606:4700:4700::1111]/", false).ok).toBe(true);
    expect(checkWebhookUrl("https://[2001:db8::1]/", false).ok).toBe(false);
    expect(checkWebhookUrl("https://8.8.8.8/", false).ok).toBe(true);
  });
});

// ---- events through the real queue ------------------------------------------------------------

describe("events through the real queue", () => {
  it("message.created (whispers marked), conversation.created/assigned/resolved, signed per endpoint", { timeout: 40_000 }, async () => {
    const o = await newOrg();
    const rx = receiver();
    const hook = await endpoint(o, rx.url);
    const visitor = dostiVisitor(o.pk, "wh-visitor-1", "Wendy");
    expect((await visitor.send("Hello, I need help")).status).toBe(200);
    const first = await eventually(async () => rx.events("message.created")[0], "first message.created", 15_000);
    const conversationId = first.data.conversation.id as string;

    expect((await o.agent.call(`/api/conversations/${conversationId}/messages`, { body: { content: "VIP, be nice", private: true } })).status).toBe(201);
    expect((await o.agent.call(`/api/conversations/${conversationId}/assign`, { method: "POST" })).status).toBe(200);
    expect((await o.agent.call(`/api/conversations/${conversationId}/messages`, { body: { content: "Hi Wendy!" } })).status).toBe(201);
    expect((await o.agent.call(`/api/conversations/${conversationId}/resolve`, { body: { tags: ["billing"] } })).status).toBe(200);

    await eventually(async () => rx.ids().size >= 6, "six events", 15_000);
    const types = rx.events().map((e) => e.type);
    expect(types.sort()).toEqual(["conversation.assigned", "conversation.created", "conversation.resolved", "message.created", "message.created", "message.created"]);

    for (const h of rx.hits) {
      expect(h.contentType).toBe("application/json");
      expect(h.signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
      expect(await signedOk(hook.secret, h), `signature of ${h.id}`).toBe(true);
      expect(Math.abs(Number(h.timestamp) - Date.now() / 1000)).toBeLessThan(60);
      expect(Object.keys(h.json).sort()).toEqual(["created_at", "data", "id", "org_id", "type"]);
      expect(h.json.org_id).toBe(o.org.id);
      expect(h.json.id).toMatch(/^evt_[0-9a-f]{32}$/);
      expect(h.id).toMatch(/^msg_[0-9a-f]{32}$/);
      expect(h.json.data.conversation).toMatchObject({ id: conversationId, end_user: { external_id: "wh-visitor-1", display_name: "Wendy" } });
    }
    // Tampering with one byte, an old timestamp, or another endpoint's secret fails verification.
    const h0 = rx.hits[0]!;
    expect(await verify(hook.secret, { id: h0.id, timestamp: h0.timestamp, signature: h0.signature }, h0.body.replace("{", "{ "))).toBe(false);
    const old = String(Math.floor(Date.now() / 1000) - 6 * 60);
    expect(await verify(hook.secret, { id: h0.id, timestamp: old, signature: await sign(hook.secret, h0.id, Number(old), h0.body) }, h0.body)).toBe(false);
    const stranger = await endpoint(o, "https://hooks.example.com/stranger");
    expect(await signedOk(stranger.secret, h0)).toBe(false);

    const messages = rx.events("message.created").sort((a, b) => a.data.message.seq - b.data.message.seq);
    expect(messages.map((m) => [m.data.message.content, m.data.message.private, m.data.message.sender_type])).toEqual([
      ["Hello, I need help", false, "end_user"],
      ["VIP, be nice", true, "agent"],
      ["Hi Wendy!", false, "agent"],
    ]);
    expect(messages[0].data.message).toMatchObject({ conversation_id: conversationId, seq: 1, content_type: "text", rich_media: null, status: "SENT" });
    const [created] = rx.events("conversation.created");
    expect(created.data.session).toMatchObject({ status: "open", assigned_agent_id: null, id: messages[0].data.message.session_id });
    const [assigned] = rx.events("conversation.assigned");
    expect(assigned.data.session).toMatchObject({ status: "open", assigned_agent_id: o.user.id });
    expect(assigned.data.agent).toMatchObject({ id: o.user.id });
    const [resolved] = rx.events("conversation.resolved");
    expect(resolved.data.session).toMatchObject({ status: "resolved", tags: ["billing"] });

    // Every event arrived once and is logged delivered.
    expect(rx.hits.length).toBe(6);
    const log = await eventually(async () => {
      const rows = await deliveries(o, hook.id);
      return rows.length === 6 && rows.every((r) => r.status === "delivered") && rows;
    }, "all delivered in the log");
    expect(log.every((r: any) => r.attempts === 1 && r.last_status === 200 && r.last_error === null)).toBe(true);
    expect(new Set(log.map((r: any) => r.id))).toEqual(rx.ids());
  });

  it("an endpoint's event filter; a rotated secret signs twice, both verify", { timeout: 40_000 }, async () => {
    const o = await newOrg();
    const rx = receiver();
    const only = await endpoint(o, rx.url, ["conversation.resolved"]);
    const all = receiver();
    const allHook = await endpoint(o, all.url);
    const rotated = await o.agent.call(`/api/webhooks/${allHook.id}/rotate-secret`, { method: "POST" });
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(allHook.secret);

    await dostiVisitor(o.pk, "wh-filter").send("hi");
    const conversationId = (await eventually(async () => all.events("message.created")[0], "message", 15_000)).data.conversation.id;
    await o.agent.call(`/api/conversations/${conversationId}/resolve`, { body: {} });
    await eventually(async () => rx.hits.length === 1 && all.ids().size === 3, "resolved everywhere", 15_000);
    expect(rx.hits[0]!.json.type).toBe("conversation.resolved");
    expect(await signedOk(only.secret, rx.hits[0]!)).toBe(true);
    for (const h of all.hits) {
      expect(h.signature.split(" ")).toHaveLength(2);
      expect(await signedOk(rotated.body.secret, h)).toBe(true);
      expect(await signedOk(allHook.secret, h)).toBe(true);
    }
  });

  it("500 then 200: the same webhook-id twice, logged delivered; a healthy endpoint gets each event once, undelayed", { timeout: 40_000 }, async () => {
    const o = await newOrg();
    const flaky = receiver((_h, n) => (n === 1 ? new Response("boom", { status: 500 }) : new Response("ok")));
    const healthy = receiver();
    const flakyHook = await endpoint(o, flaky.url);
    const healthyHook = await endpoint(o, healthy.url);
    const visitor = dostiVisitor(o.pk, "wh-flaky");
    for (let i = 1; i <= 5; i++) expect((await visitor.send(`message ${i}`)).status).toBe(200);

    // 5 message.created + 1 conversation.created.
    await eventually(async () => healthy.ids().size === 6 && flaky.hits.length === 12, "every event at both endpoints", 20_000);
    for (const id of flaky.ids()) expect(flaky.count(id)).toBe(2);
    for (const id of healthy.ids()) expect(healthy.count(id)).toBe(1);
    expect(healthy.hits).toHaveLength(6);
    // Deliveries are per endpoint: different ids for the same event.
    expect([...flaky.ids()].some((id) => healthy.ids().has(id))).toBe(false);
    expect(new Set(flaky.events().map((e) => e.id))).toEqual(new Set(healthy.events().map((e) => e.id)));
    // The healthy endpoint's deliveries did not wait for the flaky one's retries.
    const retriesStarted = Math.min(...[...flaky.ids()].map((id) => flaky.hits.filter((h) => h.id === id)[1]!.at));
    const firstHealthy = Math.min(...healthy.hits.map((h) => h.at));
    expect(firstHealthy).toBeLessThanOrEqual(retriesStarted);

    const flakyLog = await eventually(async () => {
      const rows = await deliveries(o, flakyHook.id);
      return rows.length === 6 && rows.every((r) => r.status === "delivered") && rows;
    }, "flaky deliveries logged delivered");
    expect(flakyLog.every((r: any) => r.attempts === 2 && r.last_status === 200 && r.last_error === null)).toBe(true);
    const healthyLog = await deliveries(o, healthyHook.id);
    expect(healthyLog.every((r: any) => r.status === "delivered" && r.attempts === 1)).toBe(true);
  });

  it("after max retries the delivery is dead (via the dead-letter queue) with the last status; retry replays it", async () => {
    const o = await newOrg();
    let up = false;
    const rx = receiver(() => (up ? new Response("ok") : new Response("nope", { status: 503 })));
    const hook = await endpoint(o, rx.url, ["message.created"]);
    await dostiVisitor(o.pk, "wh-dead").send("are you there?");

    // wrangler.toml: max_retries = 8, so 9 attempts, then the DLQ consumer marks it dead.
    const [dead] = await eventually(async () => {
      const rows = await deliveries(o, hook.id, "?status=dead");
      return rows.length === 1 && rows;
    }, "dead letter", 40_000);
    expect(dead).toMatchObject({ status: "dead", attempts: 9, last_status: 503, event_type: "message.created" });
    expect(dead.last_error).toContain("HTTP 503");
    expect(rx.count(dead.id)).toBe(9);
    expect((await deliveries(o, hook.id)).map((r) => r.id)).toEqual([dead.id]);

    const detail = await o.agent.call(`/api/webhooks/${hook.id}/deliveries/${dead.id}`);
    expect(detail.body.payload).toMatchObject({ type: "message.created", data: { message: { content: "are you there?" } } });

    up = true;
    const replay = await o.agent.call(`/api/webhooks/${hook.id}/deliveries/${dead.id}/retry`, { method: "POST" });
    expect(replay.status).toBe(202);
    expect(replay.body).toMatchObject({ id: dead.id, status: "pending" });
    const done = await eventually(async () => {
      const [row] = await deliveries(o, hook.id);
      return row.status === "delivered" && row;
    }, "replayed delivery delivered", 15_000);
    expect(done).toMatchObject({ attempts: 10, last_status: 200, last_error: null });
    expect(rx.count(dead.id)).toBe(10);
    const last = rx.hits.at(-1)!;
    expect(last.id).toBe(dead.id);
    expect(last.body).toBe(rx.hits[0]!.body); // the same bytes, freshly signed
    expect(await signedOk(hook.secret, last)).toBe(true);

    const again = await o.agent.call(`/api/webhooks/${hook.id}/deliveries/${dead.id}/retry`, { method: "POST" });
    expect(again.status).toBe(409);
    expect((await o.agent.call(`/api/webhooks/${hook.id}/deliveries/msg_missing/retry`, { method: "POST" })).status).toBe(404);
  }, 60_000);
});

// ---- the consumer, one batch at a time ----------------------------------------------------------

describe("consumer outcomes (exported queue handler, createMessageBatch/getQueueResult)", () => {
  it("acks each message on its own: successes acked, failures retried per message, never the whole batch", async () => {
    const o = await newOrg();
    const good = receiver();
    const bad = receiver(() => new Response("down", { status: 500 }));
    const goodHook = await endpoint(o, good.url);
    const badHook = await endpoint(o, bad.url);
    const goodIds = await Promise.all(Array.from({ length: 3 }, () => seedDelivery(o, goodHook.id)));
    const badIds = await Promise.all(Array.from({ length: 7 }, () => seedDelivery(o, badHook.id)));
    const items = [...badIds.slice(0, 4), ...goodIds, ...badIds.slice(4)].map((id) => deliveryMsg(id, 3));
    const { batch, result } = await runConsumer(WEBHOOK_QUEUE, items);
    expect(result.outcome).toBe("ok");
    expect(result.ackAll).toBe(false);
    expect(result.retryBatch.retry).toBe(false);
    const idOf = new Map(batch.messages.map((m) => [(m.body as any).delivery_id, m.id]));
    expect(result.explicitAcks.sort()).toEqual(goodIds.map((id) => idOf.get(id)).sort());
    expect(result.retryMessages.map((r) => r.msgId).sort()).toEqual(badIds.map((id) => idOf.get(id)).sort());
    for (const id of badIds) expect(await deliveryRow(id)).toMatchObject({ status: "failed", attempts: 1, last_status: 500, last_error: "HTTP 500: down" });
    for (const id of goodIds) expect(await deliveryRow(id)).toMatchObject({ status: "delivered", attempts: 1, last_status: 200 });

    // The retry carries the backoff for the message's attempt count (base 0 in these tests).
    const again = await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(badIds[0]!, 4)]);
    expect(again.result.retryMessages).toEqual([{ msgId: again.batch.messages[0]!.id, delaySeconds: 0 }]);
    expect(await deliveryRow(badIds[0]!)).toMatchObject({ status: "failed", attempts: 2 });

    // Redelivery of an already delivered message (e.g. the consumer died before its ack) sends nothing.
    const before = good.hits.length;
    const redo = await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(goodIds[0]!, 2)]);
    expect(redo.result.explicitAcks).toHaveLength(1);
    expect(good.hits.length).toBe(before);
  });

  it("timeout (3 s), connection refused and redirects are failures; 429/503 Retry-After is honoured", async () => {
    const o = await newOrg();
    const cases: [string, Behaviour, Record<string, unknown>, number | undefined][] = [
      ["timeout", timeout, { last_status: null, last_error: "timed out after 3 s" }, undefined],
      ["refused", refused, { last_status: null }, undefined],
      ["redirect", () => new Response(null, { status: 302, headers: { location: "https://169.254.169.254/" } }), { last_status: 302 }, undefined],
      ["429", () => new Response("slow down", { status: 429, headers: { "retry-after": "120" } }), { last_status: 429 }, 120],
      ["503", () => new Response("", { status: 503, headers: { "retry-after": new Date(Date.now() + 30_000).toUTCString() } }), { last_status: 503 }, 30],
      ["400", () => new Response("bad", { status: 400 }), { last_status: 400, last_error: "HTTP 400: bad" }, undefined],
    ];
    for (const [name, behave, row, retryAfter] of cases) {
      const rx = receiver(behave);
      const hook = await endpoint(o, rx.url);
      const id = await seedDelivery(o, hook.id);
      const started = Date.now();
      const { result } = await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(id, 2)]);
      expect(result.explicitAcks, name).toEqual([]);
      expect(result.retryMessages, name).toHaveLength(1);
      if (retryAfter !== undefined) expect(Math.abs(result.retryMessages[0]!.delaySeconds! - retryAfter), name).toBeLessThanOrEqual(1);
      expect(await deliveryRow(id), name).toMatchObject({ status: "failed", attempts: 1, ...row });
      expect(rx.hits).toHaveLength(1);
      if (name === "timeout") expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
      if (name === "refused") expect((await deliveryRow(id)).last_error).toContain("connection failed");
      if (name === "redirect") expect((await deliveryRow(id)).last_error).toContain("redirects are not followed");
    }
  }, 20_000);

  it("410 Gone disables the endpoint: the delivery is dead at once, later ones too, until re-enabled", { timeout: 30_000 }, async () => {
    const o = await newOrg();
    let gone = true;
    const rx = receiver(() => (gone ? new Response("unsubscribed", { status: 410 }) : new Response("ok")));
    const hook = await endpoint(o, rx.url);
    const [a, b] = [await seedDelivery(o, hook.id), await seedDelivery(o, hook.id)];
    const first = await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(a)]);
    expect(first.result.explicitAcks).toHaveLength(1);
    expect(await deliveryRow(a)).toMatchObject({ status: "dead", attempts: 1, last_status: 410 });
    const shown = (await o.agent.call(`/api/webhooks/${hook.id}`)).body;
    expect(shown).toMatchObject({ active: false, disabled_reason: "the endpoint answered 410 Gone" });

    const second = await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(b)]);
    expect(second.result.explicitAcks).toHaveLength(1);
    expect(await deliveryRow(b)).toMatchObject({ status: "dead", attempts: 0 });
    expect(rx.hits).toHaveLength(1);

    const refused = await o.agent.call(`/api/webhooks/${hook.id}/deliveries/${b}/retry`, { method: "POST" });
    expect(refused.status).toBe(409);
    gone = false;
    expect((await o.agent.call(`/api/webhooks/${hook.id}`, { method: "PATCH", body: { active: true } })).body).toMatchObject({ active: true, disabled_reason: null });
    expect((await o.agent.call(`/api/webhooks/${hook.id}/deliveries/${b}/retry`, { method: "POST" })).status).toBe(202);
    await eventually(async () => (await deliveryRow(b)).status === "delivered", "replayed after re-enabling", 15_000);
  });

  it("the dead-letter consumer keeps the last status and error; a send-time URL check refuses a bad row", async () => {
    const o = await newOrg();
    const rx = receiver(() => new Response("nope", { status: 502 }));
    const hook = await endpoint(o, rx.url);
    const id = await seedDelivery(o, hook.id);
    await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(id, 9)]);
    expect(await deliveryRow(id)).toMatchObject({ status: "failed", last_status: 502 });
    const dlq = await runConsumer(WEBHOOK_DLQ, [deliveryMsg(id, 1)]);
    expect(dlq.result.explicitAcks).toHaveLength(1);
    expect(await deliveryRow(id)).toMatchObject({ status: "dead", attempts: 1, last_status: 502, last_error: "HTTP 502: nope" });

    // An endpoint row whose URL no longer passes the policy (written around the API) is never called.
    await env.DB.prepare("UPDATE webhooks SET url = ? WHERE id = ?").bind("https://169.254.169.254/latest", hook.id).run();
    const other = await seedDelivery(o, hook.id);
    const res = await runConsumer(WEBHOOK_QUEUE, [deliveryMsg(other)]);
    expect(res.result.explicitAcks).toHaveLength(1);
    expect(await deliveryRow(other)).toMatchObject({ status: "dead", attempts: 0 });
    expect((await deliveryRow(other)).last_error).toContain("URL refused");
    expect(rx.hits).toHaveLength(1);
  });

  it("a redelivered event re-creates no delivery and resends nothing that went out; unknown messages are dropped", { timeout: 30_000 }, async () => {
    const o = await newOrg();
    const rx = receiver();
    const hook = await endpoint(o, rx.url);
    const event = { id: "evt_0123456789abcdef0123456789abcdef", type: "message.created", created_at: new Date().toISOString(), org_id: o.org.id, data: { hello: 1 } };
    const first = await runConsumer(WEBHOOK_QUEUE, [{ body: { v: 1, kind: "event", event } }]);
    expect(first.result.explicitAcks).toHaveLength(1);
    await eventually(async () => (await deliveries(o, hook.id))[0]?.status === "delivered", "delivered", 15_000);
    const second = await runConsumer(WEBHOOK_QUEUE, [{ body: { v: 1, kind: "event", event } }, { body: { something: "else" } }]);
    expect(second.result.explicitAcks).toHaveLength(2);
    expect(await deliveries(o, hook.id)).toHaveLength(1);
    expect(rx.hits).toHaveLength(1);
    expect(rx.hits[0]!.json).toEqual(event);
  });
});

describe("backoff and Retry-After", () => {
  it("base x 4^(attempts-1), capped at 12 h; default base 10 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffSeconds({}, n))).toEqual([10, 40, 160, 640, 2560, 10240, 40960, 43200]);
    expect(backoffSeconds({ WEBHOOK_BACKOFF_BASE_SECONDS: "1" }, 3)).toBe(16);
    expect(backoffSeconds({ WEBHOOK_BACKOFF_BASE_SECONDS: "0" }, 9)).toBe(0);
    expect(backoffSeconds({ WEBHOOK_BACKOFF_BASE_SECONDS: "nonsense" }, 1)).toBe(10);
    expect(parseRetryAfter("120")).toBe(120);
    expect(parseRetryAfter("999999")).toBe(43200);
    expect(parseRetryAfter(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThanOrEqual(59);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe("the room's webhook outbox", () => {
  it("the queue refuses and the object is evicted: the events wait in the room's storage and arrive once each, in order", { timeout: 40_000 }, async () => {
    const o = await newOrg();
    const rx = receiver();
    await endpoint(o, rx.url);
    const { ref, stub } = await conversationOf(o.pk, "wh-outbox");
    let refused = 0;
    await runInDurableObject(stub, (r: ConversationRoom) => {
      const down = async () => {
        refused++;
        throw new Error("Queue send failed: the queue is unavailable");
      };
      r.webhookQueue = { send: down, sendBatch: down } as unknown as Queue;
    });
    const me = { type: "end_user" as const, id: "wh-outbox", name: null };
    for (const text of ["one", "two", "three"]) expect(await stub.send(ref, me, { content: text, client_msg_id: text })).toMatchObject({ ok: true });
    await eventually(async () => refused >= 1, "the queue refused the events");
    const waiting = () => runInDurableObject(stub, (r: ConversationRoom) => (r as unknown as { webhooks: { size(): number } }).webhooks.size());
    expect(await waiting()).toBe(4); // conversation.created and three message.created
    expect(rx.hits).toEqual([]);

    await evictDurableObject(stub); // the refusing queue goes with the instance; the outbox stays
    await runDurableObjectAlarm(stub);
    await eventually(async () => rx.ids().size >= 4, "every event delivered", 15_000);
    const messages = rx.events("message.created").sort((a, b) => a.data.message.seq - b.data.message.seq);
    expect(messages.map((m) => m.data.message.content)).toEqual(["one", "two", "three"]);
    expect(rx.events("conversation.created")).toHaveLength(1);
    expect(rx.hits).toHaveLength(4);
    expect(await waiting()).toBe(0);
  });
});

describe("the room's outbox drains", () => {
  it("run one at a time: the flush timer and the backstop alarm both due send each waiting event once", async () => {
    const o = await newOrg();
    const rx = receiver();
    await endpoint(o, rx.url);
    const { ref, stub } = await conversationOf(o.pk, "wh-once");
    const sent: string[] = [];
    await runInDurableObject(stub, (r: ConversationRoom) => {
      r.webhookQueue = {
        send: async () => {
          throw new Error("Queue send failed: the queue is unavailable");
        },
        sendBatch: async () => {
          throw new Error("Queue send failed: the queue is unavailable");
        },
      } as unknown as Queue;
    });
    const me = { type: "end_user" as const, id: "wh-once", name: null };
    for (const text of ["one", "two"]) expect(await stub.send(ref, me, { content: text, client_msg_id: text })).toMatchObject({ ok: true });
    const waiting = () => runInDurableObject(stub, (r: ConversationRoom) => (r as unknown as { webhooks: { size(): number } }).webhooks.size());
    await eventually(async () => (await waiting()) === 3, "three events wait (the queue refused them)");
    await runInDurableObject(stub, async (r: ConversationRoom) => {
      // A queue that holds each batch until a second one arrives (or 500 ms pass): two drains at
      // once would both have read the same oldest entries by then.
      let calls = 0;
      let second: () => void = () => {};
      const secondArrived = new Promise<void>((done) => (second = done));
      r.webhookQueue = {
        sendBatch: async (batch: { body: { event: { id: string } } }[]) => {
          if (calls++ > 0) second();
          await Promise.race([secondArrived, new Promise((done) => setTimeout(done, 500))]);
          for (const m of batch) sent.push(m.body.event.id);
        },
      } as unknown as Queue;
      const drain = () => (r as unknown as { drainOutboxes(): Promise<void> }).drainOutboxes();
      await Promise.all([drain(), drain()]);
    });
    expect(sent).toHaveLength(3);
    expect(new Set(sent).size).toBe(3);
    expect(await waiting()).toBe(0);
  });
});

describe("orgs without endpoints", () => {
  it("write no outbox entries, also once the cached answer is past its 10 s (it is renewed in the background meanwhile)", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "wh-none");
    const me = { type: "end_user" as const, id: "wh-none", name: null };
    const waiting = () => runInDurableObject(stub, (r: ConversationRoom) => (r as unknown as { webhooks: { size(): number } }).webhooks.size());
    // The first message: nothing known yet, so its events wait in the outbox until the drain asks D1 (none) and drops them.
    expect(await stub.send(ref, me, { content: "one", client_msg_id: "one" })).toMatchObject({ ok: true });
    await runDurableObjectAlarm(stub);
    await eventually(async () => (await waiting()) === 0, "the drain dropped the first events");
    expect(await stub.send(ref, me, { content: "two", client_msg_id: "two" })).toMatchObject({ ok: true });
    expect(await waiting()).toBe(0);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + ENDPOINT_CACHE_MS + 1_000);
      expect(await stub.send(ref, me, { content: "three", client_msg_id: "three" })).toMatchObject({ ok: true });
      expect(await waiting()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
