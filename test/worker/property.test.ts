/**
 * Property-based bad input (RELIABILITY.md B1-B4, B6): fast-check throws random, truncated,
 * wrong-typed, deeply nested, huge and unicode-hostile input (lone surrogates, NUL, RTL
 * overrides, zero-width characters, emoji sequences, path-like strings, broken percent
 * escapes) at every REST body, query and path parameter, and at every native WebSocket frame.
 *
 * Every answer is JSON: a success for valid input or a 4xx `{error:{code,message,retryable}}`;
 * never a 5xx, never a hang (each request is bounded). Sockets answer bad frames with an `error`
 * frame and stay open (1009 only for frames over 64 KiB). Nothing already stored changes: the
 * conversations' messages are snapshotted before and compared after, and X1 holds at the end.
 *
 * Runs are bounded (NUM_RUNS per property) so the suite stays fast, and seeded (SEED) so that
 * `npm test` is repeatable: a shared CI must not fail at random on a bug nobody has seen yet. To
 * hunt for new bugs, run the file with `SEED = undefined` (a fresh random seed each run) a few
 * times; a failure prints its seed and the shrunk counterexample, which then reproduces here.
 */
import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERRORS } from "../../src/core/errors";
import { BASE, call, newOrg, openSocket } from "./helpers";
import { assertX1, conversationOf } from "./invariants";

const NUM_RUNS = 50;
const SEED: number | undefined = 20261122;
fc.configureGlobal({ seed: SEED });
const REQUEST_BOUND_MS = 8_000;
const ALLOWED = new Set([200, 201, 400, 401, 403, 404, 409, 413, 415, 429]);

// ---- arbitraries --------------------------------------------------------------------------

const EDGE = [
  "\ud800", "\udfff", "a\ud83d", "\ud83dz", "\u0000", "x\u0000y", "\u202e", "\u202d", "\u2066", "\u200b", "\u200c", "\u200d", "\ufeff",
  "\u2028", "\u2029", "\u00ad", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇳", "e\u0301", "\u0301".repeat(200), "𝕳𝖊𝖑𝖑𝖔", "аdmin", "ﬁ", "Å", "Å",
  "../../etc/passwd", "..%2f..%2fx", "%2e%2e%5cx", "/abs", "C:\\x", "a.png%00.html", "invoice\u202Egnp.exe", "x".repeat(1100),
  "<svg onload=alert(1)>", "javascript:alert(1)", "${7*7}", "'; DROP TABLE messages; --", "__proto__", "constructor", "prototype",
  "%", "%ZZ", "%ED%A0%80", "%C0%AE", "\\", '"', "null", "NaN", "-0", "1e309", "", " ", "\t\n",
];
const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const nastyString = fc.oneof(
  fc.constantFrom(...EDGE),
  fc.string({ unit: codeUnit, maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 30 }),
  fc.array(fc.constantFrom(...EDGE), { minLength: 1, maxLength: 4 }).map((a) => a.join("")),
);
const nastyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    nastyString,
    fc.integer(),
    fc.double(),
    fc.constantFrom(0, -1, 1e9, 2 ** 53, -(2 ** 63), 8.64e15 + 1),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(nastyString, tie("value"), { maxKeys: 3 }),
  ),
})).value;

/** A body: the valid one with each field kept, replaced, dropped or joined by strangers; or no object at all. */
function bodyFor(valid: Record<string, unknown>, fields: Record<string, fc.Arbitrary<unknown>> = {}): fc.Arbitrary<unknown> {
  const field = (k: string, v: unknown) => fc.oneof(fc.constant(v), fields[k] ?? nastyValue, fc.constant(undefined));
  const mutated = fc
    .tuple(fc.record(Object.fromEntries(Object.entries(valid).map(([k, v]) => [k, field(k, v)]))), fc.dictionary(nastyString, nastyValue, { maxKeys: 2 }))
    .map(([b, extra]) => ({ ...extra, ...Object.fromEntries(Object.entries(b).filter(([, v]) => v !== undefined)) }));
  return fc.oneof({ weight: 4, arbitrary: mutated }, { weight: 1, arbitrary: nastyValue });
}

interface Raw {
  text: string;
  contentType: string | null;
}

/** The body as sent on the wire: JSON of the value, or text JSON never produces. */
function wireFor(valid: Record<string, unknown>, fields?: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Raw> {
  const text = JSON.stringify(valid);
  const json = bodyFor(valid, fields).map((b) => JSON.stringify(b) ?? "null");
  const broken = fc.oneof(
    fc.nat({ max: text.length - 1 }).map((n) => text.slice(0, n)),
    fc.constant("\ufeff" + text),
    fc.constant(text + "garbage"),
    fc.constant(text.replace(/:("[^"]*"|true|false|\d+)/, ":NaN")),
    fc.integer({ min: 500, max: 30_000 }).map((d) => "[".repeat(d) + "]".repeat(d)),
    fc.integer({ min: 500, max: 10_000 }).map((d) => '{"a":'.repeat(d) + "1" + "}".repeat(d)),
    fc.integer({ min: 65 * 1024 - 20, max: 140 * 1024 }).map((n) => JSON.stringify({ ...valid, pad: "é".repeat(n / 2) })),
    nastyString,
  );
  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constant("application/json") },
    { weight: 1, arbitrary: fc.constantFrom(null, "text/plain", "application/x-www-form-urlencoded", "APPLICATION/JSON; charset=latin1", "application/jsonx", "multipart/form-data; boundary=x") },
  );
  return withExample(fc.record({ text: fc.oneof({ weight: 3, arbitrary: json }, { weight: 1, arbitrary: broken }), contentType }), { text, contentType: "application/json" });
}

/** Each property also runs its valid input once (fast-check `examples`), so a success is always reached. */
function withExample<T>(arb: fc.Arbitrary<T>, example: T): fc.Arbitrary<T> {
  return Object.assign(arb, { example });
}

/** A query value: valid, hostile, or absent. Encoded the way a browser would, or with broken escapes. */
const queryValue = (valid?: string) =>
  fc.oneof(
    fc.constant(valid === undefined ? undefined : encodeURIComponent(valid)),
    nastyString.map((s) => (s.isWellFormed() ? encodeURIComponent(s) : s.replace(/[&#]/g, ""))),
    fc.constantFrom("%", "%ZZ", "%ED%A0%80", "%00", "1e400", "-1", "NaN", "Infinity", "0x10", "1.5", "99999999999999999999", "[]", "{}"),
    fc.constant(undefined),
  );
function queryFor(valid: Record<string, string | undefined>): fc.Arbitrary<string> {
  const arb = fc
    .record(Object.fromEntries(Object.keys(valid).map((k) => [k, queryValue(valid[k])])))
    .map((q) => Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join("&"));
  return withExample(arb, Object.entries(valid).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${encodeURIComponent(v!)}`).join("&"));
}

/**
 * A path segment: valid, hostile, or with broken percent escapes. Dot segments (`..`, `%2e%2e`)
 * are left out: every URL parser, the client's included, resolves them before sending, so they
 * never reach the route under test (they reach its parent, another route).
 */
const staysOneSegment = (s: string) => {
  const path = new URL(`https://x/a/${s}/b`).pathname;
  return path.startsWith("/a/") && path.endsWith("/b") && path.split("/").length === 4;
};
const segment = (valid: string) =>
  fc
    .oneof(
      fc.constant(valid),
      nastyString.filter((s) => s.length > 0 && s.isWellFormed()).map((s) => encodeURIComponent(s)),
      fc.constantFrom("%", "%ZZ", "%ED%A0%80", "..%2f..%2f", "%2e%2e%2f", valid + "%00", valid.toUpperCase(), "x".repeat(3000)),
    )
    .filter(staysOneSegment);

// ---- the world and its snapshot ---------------------------------------------------------

let o: Awaited<ReturnType<typeof newOrg>>;
let victim: Awaited<ReturnType<typeof newOrg>>;
let convA: string;
let wsConv: string;
const owner = () => ({ cookie: o.cookie, "x-csrftoken": o.csrf });

async function snapshot(conversationId: string) {
  const r = await call(`/api/conversations/${conversationId}/messages?limit=100`, { headers: owner() });
  expect(r.status).toBe(200);
  // Everything a message is, except its delivery status (read receipts move that legitimately).
  return r.body.map(({ status: _status, ...m }: any) => m);
}
const snapshots = new Map<string, unknown[]>();

beforeAll(async () => {
  o = await newOrg();
  victim = await newOrg();
  const { ref } = await conversationOf(o.pk, "alice");
  convA = ref.id;
  await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "alice", visitorName: "Alice", message: "first words", clientMessageId: "alice-1" } });
  await call(`/api/conversations/${convA}/messages`, { body: { content: "a reply", content_type: "quick_button", rich_media: { buttons: [{ label: "Yes", value: "y" }] } }, headers: owner() });
  await call(`/api/conversations/${convA}/messages`, { body: { content: "a note", private: true }, headers: owner() });
  wsConv = (await conversationOf(o.pk, "ws-fuzz")).ref.id;
  await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "ws-fuzz", message: "before the fuzz" } });
  for (const id of [convA, wsConv]) snapshots.set(id, await snapshot(id));
});

afterAll(async () => {
  // Nothing stored before changed (new messages from valid input may follow), and X1 holds.
  for (const [id, before] of snapshots) {
    const after = await snapshot(id);
    expect(after.slice(0, before.length)).toEqual(before);
    await assertX1(id);
  }
  // No input made a second owner (agents are created as "agent" or "admin" only).
  const owners = await env.DB.prepare("SELECT COUNT(*) AS n FROM users WHERE org_id = ? AND role = 'owner'").bind(o.org.id).first<{ n: number }>();
  expect(owners?.n).toBe(1);
});

// ---- the checks ---------------------------------------------------------------------------

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${REQUEST_BOUND_MS} ms`)), REQUEST_BOUND_MS))]);
}

/** Sends one request and checks the answer's contract. */
async function probe(method: string, path: string, headers: Record<string, string>, raw?: Raw): Promise<{ status: number; body: any }> {
  const h: Record<string, string> = { ...headers };
  if (raw?.contentType) h["content-type"] = raw.contentType;
  const what = `${method} ${path.slice(0, 200)}${raw ? ` body ${raw.text.slice(0, 200)}` : ""}`;
  const res = await bounded(exports.default.fetch(new Request(BASE + path, { method, headers: h, body: raw?.text })), what);
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${what}: answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (!ALLOWED.has(res.status)) throw new Error(`${what}: answered ${res.status} ${text.slice(0, 300)}`);
  if (res.status >= 400) {
    const e = body?.error;
    const ok = e && typeof e.code === "string" && e.code in ERRORS && typeof e.message === "string" && e.retryable === ERRORS[e.code as keyof typeof ERRORS].retryable;
    if (!ok) throw new Error(`${what}: ${res.status} without the error envelope: ${text.slice(0, 300)}`);
    if (res.status === 429 && !res.headers.get("retry-after")) throw new Error(`${what}: 429 without Retry-After`);
  }
  seen.add(res.status);
  return { status: res.status, body };
}

/** Statuses answered during the current property, to show the generators reach both valid and invalid input. */
const seen = new Set<number>();
function reached(...statuses: number[]) {
  for (const st of statuses) expect(seen, `no input reached a ${st}`).toContain(st);
  seen.clear();
}

const LONG = 60_000;

const run = (arb: fc.Arbitrary<any>, fn: (x: any) => Promise<unknown>, numRuns = NUM_RUNS) =>
  fc.assert(
    fc.asyncProperty(arb, async (x) => {
      await fn(x);
    }),
    { numRuns, endOnFailure: true, examples: "example" in arb ? [[(arb as { example: unknown }).example]] : [] },
  );

/** Long-poll waits that are valid would park the request: keep those short. */
const shortWait = (v: unknown) => (Number(v) > 0 && Number(v) <= 30 ? 0.05 : v);

// ---- REST bodies --------------------------------------------------------------------------

describe("every REST body: random, truncated, wrong-typed, nested, huge, unicode", () => {
  it("POST /auth/signup and /auth/login", async () => {
    await run(wireFor({ organization_name: "Org", name: "Name", email: "x@example.test", password: "long enough pw" }), (raw) => probe("POST", "/auth/signup", {}, raw), 40);
    reached(400);
    await run(wireFor({ email: victim.email, password: "wrong password" }), (raw) => probe("POST", "/auth/login", {}, raw));
    reached(400, 401);
  }, LONG);

  it("POST /api/company/api-keys, /api/company/agents; DELETE /api/company/api-keys/:id", async () => {
    await run(wireFor({ name: "key", kind: "public" }, { kind: fc.oneof(fc.constantFrom("public", "secret", "PUBLIC", "admin"), nastyValue) }), (raw) => probe("POST", "/api/company/api-keys", owner(), raw));
    reached(201, 400);
    await run(wireFor({ name: "Al", email: "al@example.test", password: "agent password", role: "agent" }, { role: fc.oneof(fc.constantFrom("owner", "admin", "agent", "root"), nastyValue) }), (raw) =>
      probe("POST", "/api/company/agents", owner(), raw),
    40);
    await run(segment(crypto.randomUUID()), (id) => probe("DELETE", `/api/company/api-keys/${id}`, owner()));
    reached(404);
  }, LONG);

  it("POST /api/integrations/webchat, /api/integrations/mobile; GET /api/integrations/:id/identity-secret", async () => {
    const origins = fc.oneof(fc.array(fc.oneof(nastyString, fc.constantFrom("https://shop.example", "https://*.example", "null", "https://a.example/path", "file:///x")), { maxLength: 3 }), nastyValue);
    await run(wireFor({ name: "site", allowed_origins: ["https://shop.example"], title: "Help", require_identity: false }, { allowed_origins: origins }), (raw) =>
      probe("POST", "/api/integrations/webchat", owner(), raw),
    );
    await run(wireFor({ name: "app", require_identity: true }), (raw) => probe("POST", "/api/integrations/mobile", owner(), raw));
    reached(201, 400);
    await run(segment(o.webchat.channel_id), (id) => probe("GET", `/api/integrations/${id}/identity-secret`, owner()));
  }, LONG);

  it("POST /api/conversations/:id/messages (every content type, rich media, client ids, whispers)", async () => {
    const richMedia = fc.oneof(
      nastyValue,
      fc.record({ url: fc.oneof(nastyString, fc.constantFrom("javascript:alert(1)", "data:text/html,x", "https://ok.example/a.png", "HTTPS://ok.example")), alt: nastyValue }),
      fc.record({ buttons: fc.array(fc.record({ label: nastyValue, value: nastyValue }), { maxLength: 25 }) }),
      fc.record({ cards: fc.array(fc.record({ title: nastyString, image_url: nastyString, buttons: nastyValue }), { maxLength: 3 }) }),
      fc.record({ options: fc.array(fc.record({ label: nastyString, value: nastyString }), { maxLength: 3 }), placeholder: nastyValue }),
      fc.record({ url: fc.constant("https://ok.example/f.pdf"), filename: nastyString, size: nastyValue, mime_type: nastyString }),
    );
    const fields = {
      content: fc.oneof(nastyValue, fc.integer({ min: 16 * 1024 - 4, max: 16 * 1024 + 4 }).map((n) => "😀".repeat(Math.floor(n / 4)) + "a".repeat(n % 4))),
      content_type: fc.oneof(fc.constantFrom("text", "image", "file", "quick_button", "carousel", "dropdown", "video", "TEXT"), nastyValue),
      rich_media: richMedia,
      client_msg_id: fc.oneof(nastyValue, fc.string({ unit: "grapheme-ascii", maxLength: 140 })),
      private: nastyValue,
      sender_type: fc.oneof(fc.constantFrom("agent", "bot", "end_user", "system"), nastyValue),
    };
    await run(wireFor({ content: "hello", content_type: "text", rich_media: null, client_msg_id: "c-1", private: false, sender_type: "agent" }, fields), (raw) =>
      probe("POST", `/api/conversations/${convA}/messages`, owner(), raw),
    80);
    reached(201, 400, 413);
  }, LONG);

  it("POST /api/conversations/:id/{assign,resolve,tags}", async () => {
    const tags = fc.oneof(nastyValue, fc.array(nastyString, { maxLength: 60 }));
    // Against a conversation of its own, so that resolving does not touch the others.
    const other = (await conversationOf(o.pk, "tagged")).ref.id;
    await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "tagged", message: "hi" } });
    await run(wireFor({ tags: ["vip"] }, { tags }), (raw) => probe("POST", `/api/conversations/${other}/tags`, owner(), raw));
    await run(wireFor({ tags: ["done"] }, { tags }), (raw) => probe("POST", `/api/conversations/${other}/resolve`, owner(), raw));
    await run(wireFor({}), (raw) => probe("POST", `/api/conversations/${other}/assign`, owner(), raw), 30);
  }, LONG);

  it("POST /chat-widget/session", async () => {
    await run(
      wireFor({ key: o.pk, session_id: "w-visitor", customer_name: "Wendy", email: "w@example.test", identity_hash: "00", embed_token: o.webchat.token }),
      (raw) => probe("POST", "/chat-widget/session", { origin: "https://any.example" }, raw),
    );
    reached(200, 400);
  }, LONG);

  it("POST /api/chat/send and POST /api/chat/poll (seed 000)", async () => {
    const message = fc.oneof(nastyValue, fc.integer({ min: 16 * 1024 - 2, max: 16 * 1024 + 2 }).map((n) => "é".repeat(Math.floor(n / 2)) + "a".repeat(n % 2)));
    const apiKey = fc.oneof(nastyValue, fc.constantFrom("pk_nope", o.sk, victim.pk, ""));
    await run(wireFor({ apiKey: o.pk, visitorId: "fuzzy", visitorName: "Fuzzy", message: "hi", clientMessageId: "f-1", identityHash: "ab" }, { message, apiKey }), (raw) =>
      probe("POST", "/api/chat/send", {}, raw),
    80);
    reached(200, 400);
    await run(
      wireFor({ apiKey: o.pk, visitorId: "alice", lastTimestamp: 0, wait: 0 }).map((raw) => {
        try {
          const b = JSON.parse(raw.text);
          if (b && typeof b === "object" && "wait" in b) return { ...raw, text: JSON.stringify({ ...b, wait: shortWait(b.wait) }) };
        } catch {
          // not JSON: sent as it is
        }
        return raw;
      }),
      (raw) => probe("POST", "/api/chat/poll", {}, raw),
    );
  }, LONG);
});

// ---- the newer surfaces: seed 002 customer API, Chat API, uploads, bots, routing, connectors ----

describe("newer surfaces: bodies, queries and path parameters", () => {
  const RUNS = 30;

  it("seed 002: POST /api/customer/init and GET /api/customer/transcript/:id/:type", async () => {
    await run(
      wireFor({ apiKey: o.pk, Channel: "web", refId: "cust-1", Phone: "+1 555 0100" }, {
        Channel: fc.oneof(fc.constantFrom("web", "fb", "sms", "twitter", "WEB", "email"), nastyValue),
        Phone: fc.oneof(nastyValue, fc.constantFrom("+1 (555) 0100", "555-0100 ext. 9", "+".repeat(60))),
      }),
      (raw) => probe("POST", "/api/customer/init", {}, raw),
      RUNS,
    );
    reached(200, 400);
    await run(fc.tuple(segment(convA), segment("pdf"), queryFor({ apiKey: o.pk })), ([id, type, qs]) => probe("GET", `/api/customer/transcript/${id}/${type}?${qs}`, {}), RUNS);
  }, LONG);

  it("Chat API: converse, events, history, client state, message statuses", async () => {
    const created = await call("/api/integrations/chat-api", { body: { name: "fuzz api" }, headers: owner() });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const token = created.body.token as string;
    seen.clear();
    // The valid request once by hand too: random runs alone do not always include a success.
    await probe("POST", `/chatapi/${token}`, {}, { text: JSON.stringify({ clientId: "c-0", query: "hello" }), contentType: "application/json" });
    await run(wireFor({ clientId: "c-1", query: "hello" }, { event: fc.oneof(nastyValue, fc.constantFrom("start", "")), cid: nastyValue, clientMessageId: nastyValue }), (raw) => probe("POST", `/chatapi/${token}`, {}, raw), RUNS);
    reached(200, 400);
    await run(fc.tuple(segment(token), queryFor({ clientId: "c-1", query: "hi", event: undefined, cid: undefined })), ([t, qs]) => probe("GET", `/chatapi/${t}?${qs}`, {}), RUNS);
    // Event long-polls: a valid timeout is kept short; without one the server would wait 25 s.
    await run(queryFor({ clientId: "c-1", ts: "0", all: "true", cid: "k", timeout: "0" }), (qs: string) => {
      const short = /(^|&)timeout=/.test(qs) ? qs.replace(/(^|&)timeout=([^&]*)/, (_m: string, p: string, v: string) => `${p}timeout=${String(shortWait(v))}`) : `${qs}&timeout=0.05`;
      return probe("GET", `/chatapi/${token}/events?${short}`, {});
    }, RUNS);
    await run(fc.tuple(segment("c-1"), queryFor({ ts: "0", limit: "10" })), ([id, qs]) => probe("GET", `/chatapi/${token}/client/${id}/history?${qs}`, {}), RUNS);
    await run(fc.tuple(segment("c-2"), wireFor({ step: 1, cart: ["a"] })), ([id, raw]) => probe("POST", `/chatapi/${token}/client/${id}/state`, {}, raw), RUNS);
    await run(segment("c-2"), (id) => probe("GET", `/chatapi/${token}/client/${id}/state`, {}), RUNS);
    await run(wireFor({ statuses: [{ questionId: crypto.randomUUID(), status: "READ" }] }, { statuses: fc.oneof(nastyValue, fc.array(fc.record({ questionId: nastyValue, status: fc.constantFrom("SENT", "READ", "LOST") }), { maxLength: 600 })) }), (raw) =>
      probe("POST", `/chatapi/${token}/client/c-1/message-statuses`, {}, raw),
    RUNS);
    await run(fc.tuple(segment(crypto.randomUUID()), wireFor({ status: "READ" })), ([q, raw]) => probe("POST", `/chatapi/${token}/client/c-1/message/${q}/status`, {}, raw), RUNS);
    await run(segment(crypto.randomUUID()), (q) => probe("GET", `/chatapi/${token}/client/c-1/message/${q}/status`, {}), RUNS);
    await run(segment("c-1"), (id) => probe("GET", `/chatapi/${token}/client/${id}/message-not-read-count`, {}), RUNS);
  }, LONG);

  it("uploads: init and finish (visitor and agent), the upload target, signed downloads", async () => {
    await run(wireFor({ conversation_id: convA, external_id: "alice", identity_hash: "00" }), (raw) => probe("POST", "/chat-widget/uploads", {}, raw), RUNS);
    reached(201, 400);
    await run(fc.tuple(segment("tok"), wireFor({ conversation_id: convA, external_id: "alice", caption: "a file" })), ([t, raw]) => probe("POST", `/chat-widget/uploads/${t}/finish`, {}, raw), RUNS);
    await run(fc.tuple(segment(convA), wireFor({})), ([id, raw]) => probe("POST", `/api/conversations/${id}/uploads`, owner(), raw), RUNS);
    await run(fc.tuple(segment("tok"), wireFor({ caption: "x" })), ([t, raw]) => probe("POST", `/api/conversations/${convA}/uploads/${t}/finish`, owner(), raw), RUNS);
    // The byte target with a token that was never issued, or a real one with hostile bytes.
    await run(fc.tuple(fc.boolean(), segment("not-a-token"), fc.uint8Array({ maxLength: 512 }), fc.constantFrom("PUT", "POST"), nastyString), async ([real, t, bytes, method, name]) => {
      const token = real ? (await call(`/api/conversations/${convA}/uploads`, { method: "POST", headers: owner() })).body.token : t;
      const headers: Record<string, string> = name.isWellFormed() ? { "x-filename": encodeURIComponent(name) } : {};
      const res = await bounded(exports.default.fetch(new Request(`${BASE}/uploads/${convA}/${token}`, { method, headers, body: bytes })), `upload ${method}`);
      const text = await res.text();
      if (!ALLOWED.has(res.status) || (res.status >= 400 && !JSON.parse(text).error)) throw new Error(`upload ${method}: ${res.status} ${text.slice(0, 200)}`);
    }, RUNS);
    await run(fc.tuple(segment(convA), segment(crypto.randomUUID()), queryFor({ exp: String(Date.now() + 60_000), sig: "00".repeat(32) })), ([c, f, qs]) => probe("GET", `/files/${c}/${f}?${qs}`, {}), RUNS);
  }, LONG);

  it("bots, routing and connectors (admin bodies and path parameters)", async () => {
    const mobile = (await call("/api/integrations/mobile", { body: { name: "bot fuzz" }, headers: owner() })).body.channel_id as string;
    const reply = fc.oneof(nastyValue, fc.record({ content: nastyString, content_type: fc.constantFrom("text", "quick_button", "image"), private: fc.boolean() }));
    const config = fc.oneof(
      nastyValue,
      fc.record({ greeting: reply, intents: fc.array(fc.record({ name: nastyString, keywords: fc.array(nastyString, { maxLength: 3 }), reply }), { maxLength: 3 }), fallback: reply, handoff_after_misses: nastyValue }),
      fc.record({ url: fc.oneof(nastyString, fc.constantFrom("https://bot.example/hook", "http://127.0.0.1/x", "file:///etc/passwd")), secret: nastyString, timeout_ms: nastyValue }),
    );
    await run(fc.tuple(segment(mobile), wireFor({ kind: "flow", enabled: false, config: { intents: [] } }, { kind: fc.oneof(fc.constantFrom("flow", "webhook", "llm"), nastyValue), config })), ([id, raw]) =>
      probe("PUT", `/api/integrations/${id}/bot`, owner(), raw),
    RUNS);
    reached(400, 404);
    await run(wireFor({ name: "q", auto_assign: false, business_hours: null, closed_message: null }, { business_hours: fc.oneof(nastyValue, fc.record({ timezone: nastyString, days: nastyValue })) }), (raw) => probe("POST", "/api/routing/queues", owner(), raw), RUNS);
    await run(fc.tuple(segment(crypto.randomUUID()), wireFor({ name: "q2", auto_assign: false })), ([id, raw]) => probe("PUT", `/api/routing/queues/${id}`, owner(), raw), RUNS);
    await run(fc.tuple(segment(o.user.id), wireFor({ skills: [], capacity: 0 })), ([id, raw]) => probe("PUT", `/api/routing/agents/${id}`, owner(), raw), RUNS);
    await run(fc.tuple(segment("sms"), wireFor({ refId: "+15550100", text: "hello", name: "Sam", client_msg_id: "s-1" })), ([ch, raw]) => probe("POST", `/api/connectors/${ch}/messages`, owner(), raw), RUNS);
  }, LONG);
});

// ---- REST queries and path parameters -------------------------------------------------------

describe("every REST query and path parameter", () => {
  it("GET /api/conversations/ and /api/conversations/:id[/messages]", async () => {
    await run(queryFor({ filter: "all", limit: "50", offset: "0" }), (qs) => probe("GET", `/api/conversations/?${qs}`, owner()));
    reached(200, 400);
    await run(fc.tuple(segment(convA), queryFor({ limit: "10", offset: "0" })), ([id, qs]) => probe("GET", `/api/conversations/${id}/messages?${qs}`, owner()));
    await run(segment(convA), (id) => probe("GET", `/api/conversations/${id}`, owner()), 40);
    reached(200, 404);
  }, LONG);

  it("GET /chat-widget/history/:id and GET /api/chat/poll", async () => {
    await run(fc.tuple(segment(convA), queryFor({ external_id: "alice", identity_hash: undefined })), ([id, qs]) => probe("GET", `/chat-widget/history/${id}?${qs}`, {}));
    await run(queryFor({ apiKey: o.pk, visitorId: "alice", visitorName: "Alice", lastTimestamp: "0", wait: undefined, identityHash: undefined }), (qs) =>
      probe("GET", `/api/chat/poll?${qs.replace(/(^|&)wait=([^&]*)/, (_m: string, p: string, v: string) => `${p}wait=${String(shortWait(v))}`)}`, {}),
    );
  }, LONG);

  it("WebSocket upgrades with hostile query strings answer an HTTP error or a ready/error frame", async () => {
    await run(queryFor({ key: o.pk, external_id: "ws-q", name: "Q", since: "0", epoch: "e", identity_hash: undefined, embed_token: undefined }), async (qs) => {
      const res = await bounded(exports.default.fetch(new Request(`${BASE}/ws/visitor?${qs}`, { headers: { upgrade: "websocket" } })), `/ws/visitor?${qs}`);
      if (!res.webSocket) {
        const text = await res.text();
        if (!ALLOWED.has(res.status) || !JSON.parse(text).error) throw new Error(`/ws/visitor?${qs}: ${res.status} ${text}`);
        return;
      }
      const ws = res.webSocket;
      const first = new Promise<any>((resolve, reject) => {
        ws.addEventListener("message", (e) => resolve(JSON.parse(e.data as string)));
        ws.addEventListener("close", (e) => reject(new Error(`closed ${e.code} before a frame`)));
      });
      ws.accept();
      const frame = await bounded(first, `/ws/visitor?${qs}`);
      ws.close(1000, "done");
      if (frame.type !== "ready" && !(frame.type === "error" && frame.code === "invalid_seq")) throw new Error(`/ws/visitor?${qs}: first frame ${JSON.stringify(frame)}`);
    }, 50);
  }, LONG);
});

// ---- Socket.IO events of every dialect ------------------------------------------------------

describe("every Socket.IO event of every dialect (raw Engine.IO polling)", () => {
  const EVENTS = [
    "send_message", "typing", "stop_typing", "join_conversation", "leave_conversation", "claim_conversation", "join_queue", "join_org_presence",
    "user_typing", "mark_read", "registerConnector", "customerMessage", "joinConversation", "sendMessage", "endConversation",
    "nope", "__proto__", "constructor", "toString", "hasOwnProperty", "", "x".repeat(300),
  ];

  /** One Socket.IO session over polling; every answer must be an Engine.IO payload, never an HTTP error. */
  async function session(query: string, headers: Record<string, string>) {
    const engine = async (sid: string | null, body?: string) => {
      const url = `${BASE}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : query}`;
      const res = await bounded(exports.default.fetch(new Request(url, { method: body === undefined ? "GET" : "POST", headers: { ...headers, ...(body === undefined ? {} : { "content-type": "text/plain;charset=UTF-8" }) }, body })), `socket.io ${body?.slice(0, 100) ?? "GET"}`);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`socket.io ${body?.slice(0, 200) ?? "GET"}: HTTP ${res.status} ${text.slice(0, 200)}`);
      return text;
    };
    const sid = JSON.parse((await engine(null)).slice(1)).sid as string;
    let pending: string[] = [];
    const take = async (pred: (p: string) => boolean, what: string) => {
      for (let i = 0; i < 20; i++) {
        const hit = pending.findIndex(pred);
        if (hit >= 0) return pending.splice(hit, 1)[0]!;
        pending.push(...(await engine(sid)).split("\x1e"));
      }
      throw new Error(`socket.io: no ${what}; got ${JSON.stringify(pending).slice(0, 500)}`);
    };
    await engine(sid, "40");
    const connect = await take((p) => p.startsWith("40") || p.startsWith("44"), "CONNECT answer");
    if (!connect.startsWith("40")) throw new Error(`refused: ${connect}`);
    let n = 0;
    return {
      async emit(event: string, payload: unknown) {
        const id = ++n;
        await engine(sid, `42${id}${JSON.stringify([event, payload])}`);
        const ack = JSON.parse((await take((p) => p.startsWith(`43${id}[`), `ack ${id} for ${event}`)).slice(`43${id}`.length))[0];
        pending = pending.filter((p) => !p.startsWith("2")); // heartbeats, if any
        return ack;
      },
      close: () => engine(sid, "1"),
    };
  }

  const payloadArb = (conversationId: string) =>
    fc.oneof(
      nastyValue,
      bodyFor({ conversation_id: conversationId, content: "hi", content_type: "text", external_id: "alice", message: "hi", type: "saas", message_ids: [], typing: true }),
      bodyFor({ conversationId, participantId: "alice", message: { text: "hi", tag: "whisper" } }),
    );

  for (const who of ["a seed 000 visitor", "an agent", "an anonymous connection"] as const) {
    it(`as ${who}: every event answers an ack (ok, or an error with a known code) and the session lives on`, async () => {
      const query = who === "a seed 000 visitor" ? `&apiKey=${o.pk}&role=visitor&visitorId=sio-fuzz` : "";
      const s = await session(query, who === "an agent" ? { cookie: o.cookie } : {});
      const codes = new Set<string>();
      await run(fc.tuple(fc.constantFrom(...EVENTS), payloadArb(convA)), async ([event, payload]: [string, unknown]) => {
        const ack = await s.emit(event, payload);
        if (ack?.ok === true || (ack && typeof ack === "object" && !("error" in ack))) return void codes.add("ok");
        const code = ack?.error?.code;
        if (typeof code !== "string" || !(code in ERRORS) || code === "internal") throw new Error(`${event} ${JSON.stringify(payload).slice(0, 200)}: ack ${JSON.stringify(ack).slice(0, 300)}`);
        codes.add(code);
      });
      // The session is still there and answers.
      expect(await s.emit("nope", {})).toMatchObject({ error: { code: "unknown_event" } });
      await s.close();
      expect([...codes]).toEqual(expect.arrayContaining([...(who === "an anonymous connection" ? [] : ["ok"]), "unknown_event", "validation_failed"]));
    }, LONG);
  }
});

// ---- native WebSocket frames --------------------------------------------------------------

describe("every native WebSocket frame", () => {
  const KNOWN = new Set(["ready", "message", "ack", "typing", "read", "session", "presence", "pong", "joined", "left", "removed", "error"]);

  const frameArb = (extra: Record<string, fc.Arbitrary<unknown>> = {}) =>
    fc.oneof(
      { weight: 3, arbitrary: bodyFor({ type: "send", content: "hi", client_msg_id: "w-1", content_type: "text" }, { type: fc.oneof(fc.constantFrom("send", "typing", "read", "ping", "SEND", "nope", ""), nastyValue), ...extra }).map((b) => JSON.stringify(b) ?? "null") },
      { weight: 1, arbitrary: bodyFor({ type: "typing", typing: true }).map((b) => JSON.stringify(b) ?? "null") },
      { weight: 1, arbitrary: bodyFor({ type: "read", seq: 1 }, { seq: fc.oneof(nastyValue, fc.constantFrom(-1, 0.5, 1e12, 2 ** 63)) }).map((b) => JSON.stringify(b) ?? "null") },
      { weight: 1, arbitrary: fc.oneof(nastyString, fc.constant('{"type":"send",'), fc.constant('{"type": "ping"} trailing'), fc.integer({ min: 500, max: 20_000 }).map((d) => "[".repeat(d) + "]".repeat(d))) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
      // Well-formed sends of hostile text: stored byte for byte (B6), or refused as invalid_text.
      { weight: 2, arbitrary: fc.record({ type: fc.constant("send"), content: nastyString, client_msg_id: fc.uuid() }).map((b) => JSON.stringify(b)) },
    );

  async function fuzzSocket(path: string, headers: Record<string, string>, audience: "end_user" | "staff") {
    let sock = await openSocket(path, headers);
    await sock.next((f) => f.type === "ready");
    let barrier = 0;
    const answered = new Set<string>();
    const roundTrips = new Map<string, string>();
    await run(frameArb(), async (frame: string | Uint8Array) => {
      const before = sock.frames.length;
      sock.ws.send(frame);
      // A barrier the object itself answers (not the platform's exact-match auto-response), so
      // every answer to `frame` has arrived before the pong.
      sock.send(`{ "type": "ping", "n": ${++barrier} }`);
      await bounded(sock.next((f) => f.type === "pong" && sock.frames.indexOf(f) >= before), `barrier after ${String(frame).slice(0, 100)}`);
      const answers = sock.frames.slice(before).filter((f) => f.type !== "pong");
      for (const f of answers) {
        if (!KNOWN.has(f.type)) throw new Error(`unknown server frame ${JSON.stringify(f)}`);
        if (f.type === "error" && !(f.code in ERRORS && f.retryable === ERRORS[f.code as keyof typeof ERRORS].retryable)) throw new Error(`bad error frame ${JSON.stringify(f)}`);
        if (f.type === "message" && audience === "end_user" && f.message.private) throw new Error("an end user received a whisper");
      }
      for (const f of answers) answered.add(f.type === "error" ? `error:${f.code}` : f.type);
      // Text that was stored comes back exactly as sent, on the socket and over REST.
      const sent = typeof frame === "string" ? (() => { try { return JSON.parse(frame); } catch { return null; } })() : null;
      const echo = answers.find((f) => f.type === "message" && sent?.client_msg_id && f.message.client_msg_id === sent.client_msg_id);
      if (echo && typeof sent.content === "string") {
        if (echo.message.content !== sent.content) throw new Error(`stored ${JSON.stringify(echo.message.content)} for ${JSON.stringify(sent.content)}`);
        roundTrips.set(echo.message.id, sent.content);
      }
      sock.frames.splice(0, sock.frames.length);
      if (sock.closed) throw new Error(`socket closed ${JSON.stringify(sock.closed)} after ${String(frame).slice(0, 200)}`);
    });
    expect([...answered]).toEqual(expect.arrayContaining(["ack", "message", "error:unknown_event", "error:invalid_json"]));
    expect([...answered].some((a) => a === "error:validation_failed" || a === "error:invalid_text"), `a refused send among ${[...answered]}`).toBe(true);
    const history = (await call(`/api/conversations/${wsConv}/messages?limit=100`, { headers: owner() })).body as any[];
    for (const [id, content] of roundTrips) {
      const m = history.find((x) => x.id === id);
      if (m) expect(m.content).toBe(content);
    }
    // A frame over 64 KiB (of UTF-8) closes only that socket, with 1009.
    sock.send(JSON.stringify({ type: "send", content: "é".repeat(33 * 1024) }));
    expect((await sock.waitClosed()).code).toBe(1009);
    sock = await openSocket(path, headers);
    await sock.next((f) => f.type === "ready");
    sock.send({ type: "send", content: "still working", client_msg_id: `after-${audience}` });
    expect(await sock.next((f) => f.type === "ack")).toMatchObject({ client_msg_id: `after-${audience}` });
    sock.close();
  }

  it("visitor socket: error frames for bad frames, the socket stays open, a control socket in the room is unaffected", async () => {
    const control = await openSocket(`/ws/conversations/${wsConv}`, { authorization: `Bearer ${o.sk}` });
    await control.next((f) => f.type === "ready");
    await fuzzSocket(`/ws/visitor?key=${o.pk}&external_id=ws-fuzz`, {}, "end_user");
    control.send({ type: "send", content: "control still here", client_msg_id: "control-1" });
    expect(await control.next((f) => f.type === "ack" && f.client_msg_id === "control-1")).toMatchObject({ duplicate: false });
    expect(control.closed).toBeNull();
    control.close();
  }, LONG);

  it("agent socket: the same", async () => {
    await fuzzSocket(`/ws/conversations/${wsConv}`, { authorization: `Bearer ${o.sk}` }, "staff");
  }, LONG);
});
