/**
 * The hot requests' lookups (issue #8, S5): an agent's send resolves its credential and the
 * conversation in one D1 statement (requireAgentInConversation), a visitor's poll or send its key,
 * channel and conversation in one (conversationForVisitor), and the visitor surfaces' CORS headers
 * come from openCors. Each keeps what the separate lookups guaranteed.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { hmacSha256Hex, sha256Hex } from "../../src/core/crypto";
import { BASE, call, dostiVisitor, newOrg, withKey } from "./helpers";

const session = (creds: Record<string, string>, session_id: string, headers: Record<string, string> = {}) =>
  call("/chat-widget/session", { body: { ...creds, session_id }, headers });

async function revoke(o: Awaited<ReturnType<typeof newOrg>>, kind: "public" | "secret") {
  const keys = await o.agent.call("/api/company/api-keys");
  const key = keys.body.find((k: any) => k.kind === kind && !k.revoked_at);
  expect((await o.agent.call(`/api/company/api-keys/${key.id}`, { method: "DELETE" })).status).toBe(200);
}

describe("an agent's send: credential and conversation in one statement", () => {
  it("another org's conversation and no conversation are the same 404; auth failures come first; a revoked key is refused on its very next request", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const visitor = dostiVisitor(a.pk, "hot-alice");
    await visitor.send("hello");
    const convA = (await session({ key: a.pk }, "hot-alice")).body.conversation_id as string;
    const keyA = withKey(a.sk);
    const keyB = withKey(b.sk);

    const sent = await keyA.call(`/api/conversations/${convA}/messages`, { body: { content: "from A's server" } });
    expect(sent.status).toBe(201);
    const polled = await visitor.poll();
    expect(polled.body.messages.map((m: any) => m.message)).toEqual(["hello", "from A's server"]);
    expect((await keyA.call(`/api/conversations/${convA}/messages`)).body.map((m: any) => m.content)).toEqual(["hello", "from A's server"]);

    const foreign = await keyB.call(`/api/conversations/${convA}/messages`, { body: { content: "from B" } });
    const missing = await keyB.call(`/api/conversations/${crypto.randomUUID()}/messages`, { body: { content: "from B" } });
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual(missing.body);
    expect(foreign.body.error.code).toBe("not_found");
    expect((await keyB.call(`/api/conversations/${convA}/messages`)).status).toBe(404);
    // B's cookie session: the same 404; A's cookie without its CSRF token: refused before any lookup answers.
    expect((await b.agent.call(`/api/conversations/${convA}/messages`, { body: { content: "from B" } })).status).toBe(404);
    expect((await a.agent.call(`/api/conversations/${convA}/messages`, { body: { content: "cookie" } })).status).toBe(201);
    const noCsrf = await call(`/api/conversations/${convA}/messages`, { body: { content: "no token" }, headers: { cookie: a.cookie } });
    expect([noCsrf.status, noCsrf.body.error.code]).toEqual([403, "csrf_failed"]);
    const browser = await keyA.call(`/api/conversations/${convA}/messages`, { body: { content: "x" }, headers: { "sec-fetch-site": "same-origin" } });
    expect([browser.status, browser.body.error.code]).toEqual([403, "forbidden"]);

    await revoke(a, "secret");
    for (const id of [convA, crypto.randomUUID()]) {
      const refused = await keyA.call(`/api/conversations/${id}/messages`, { body: { content: "after revocation" } });
      expect([refused.status, refused.body.error.code]).toEqual([401, "unauthorized"]);
      expect((await keyA.call(`/api/conversations/${id}/messages`)).status).toBe(401);
    }
    expect((await visitor.poll()).body.messages.map((m: any) => m.message)).not.toContain("after revocation");
  });

  it("the upload routes still need an agent, and other conversation routes are authenticated once and still work", async () => {
    const a = await newOrg();
    await dostiVisitor(a.pk, "hot-up").send("hi");
    const conv = (await session({ key: a.pk }, "hot-up")).body.conversation_id as string;
    expect((await call(`/api/conversations/${conv}/uploads`, { body: { filename: "a.txt" } })).status).toBe(401);
    expect((await withKey(a.sk).call(`/api/conversations/${conv}`)).status).toBe(200);
    expect((await call(`/api/conversations/${conv}`)).status).toBe(401);
    expect((await withKey(a.sk).call(`/api/conversations/${conv}/assign`, { method: "POST" })).status).toBe(200);
  });
});

describe("a visitor's request: key, channel and conversation in one statement", () => {
  it("a returning visitor keeps their conversation; the same id under another org's key is another conversation; a revoked key is refused at once", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const alice = dostiVisitor(a.pk, "hot-visitor");
    expect((await alice.poll()).body).toEqual({ success: true, messages: [] }); // unknown visitor: a new, empty conversation
    const conv = (await session({ key: a.pk }, "hot-visitor")).body.conversation_id;
    await alice.send("secret of A");
    expect((await session({ key: a.pk }, "hot-visitor")).body.conversation_id).toBe(conv);
    expect((await alice.poll()).body.messages.map((m: any) => m.message)).toEqual(["secret of A"]);

    const sameIdInB = dostiVisitor(b.pk, "hot-visitor");
    expect((await sameIdInB.poll()).body.messages).toEqual([]);
    expect((await session({ key: b.pk }, "hot-visitor")).body.conversation_id).not.toBe(conv);

    await revoke(a, "public");
    const poll = await alice.poll();
    expect([poll.status, poll.body.success, poll.body.error.code]).toEqual([401, false, "unauthorized"]);
    expect((await alice.send("after revocation")).status).toBe(401);
    expect((await session({ key: a.pk }, "hot-visitor")).status).toBe(401);
  });

  it("an end user stored without a conversation (a creation cut short) gets one on the next request", async () => {
    const a = await newOrg();
    const channel = (await session({ key: a.pk }, "hot-seed")).body.channel.id as string;
    await env.DB.prepare("INSERT INTO end_users (id, org_id, channel_id, external_id, attributes, verified) VALUES (?, ?, ?, ?, '{}', 0)")
      .bind(crypto.randomUUID(), a.org.id, channel, "hot-orphan")
      .run();
    const orphan = dostiVisitor(a.pk, "hot-orphan");
    // A poll names no profile change: the end user's row alone must not pass for a known visitor.
    expect((await orphan.poll()).body).toEqual({ success: true, messages: [] });
    expect((await orphan.send("found a home")).status).toBe(200);
    const conv = (await session({ key: a.pk }, "hot-orphan")).body.conversation_id;
    expect(conv).toEqual(expect.any(String));
    expect((await orphan.poll()).body.messages.map((m: any) => m.message)).toEqual(["found a home"]);
    expect((await session({ key: a.pk }, "hot-orphan")).body.conversation_id).toBe(conv);
  });

  it("a known visitor is still held to the channel's allowed origins and identity verification", async () => {
    const o = await newOrg({ allowed_origins: ["https://shop.example"] });
    const creds = { embed_token: o.webchat.token };
    const first = await session(creds, "hot-known", { origin: "https://shop.example" });
    expect(first.status).toBe(200);
    expect((await session(creds, "hot-known", { origin: "https://shop.example" })).body.conversation_id).toBe(first.body.conversation_id);
    const evil = await session(creds, "hot-known", { origin: "https://evil.test" });
    expect([evil.status, evil.body.error.code]).toEqual([403, "origin_not_allowed"]);

    const strict = await newOrg({ require_identity: true });
    const hash = await hmacSha256Hex(strict.webchat.identity_secret, "hot-signed");
    expect((await call("/chat-widget/session", { body: { embed_token: strict.webchat.token, session_id: "hot-signed", identity_hash: hash } })).status).toBe(200);
    const unsigned = await session({ embed_token: strict.webchat.token }, "hot-signed");
    expect([unsigned.status, unsigned.body.error.code]).toEqual([401, "identity_required"]);
  });
});

describe("returning visitors from the isolate's cache", () => {
  it("a channel change and a public key's revocation reach a returning visitor on their next request", async () => {
    const SHOP = "https://shop.example";
    const o = await newOrg({ allowed_origins: [SHOP] });
    const open = (origin: string) => session({ embed_token: o.webchat.token }, "hot-cached", { origin });
    const first = await open(SHOP);
    expect(first.status).toBe(200);
    expect((await open(SHOP)).body.conversation_id).toBe(first.body.conversation_id);
    const moved = await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { allowed_origins: ["https://other.example"] } });
    expect(moved.status).toBe(200);
    const refused = await open(SHOP);
    expect([refused.status, refused.body.error.code]).toEqual([403, "origin_not_allowed"]);
    expect((await open("https://other.example")).body.conversation_id).toBe(first.body.conversation_id);

    await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { require_identity: true } });
    const unsigned = await open("https://other.example");
    expect([unsigned.status, unsigned.body.error.code]).toEqual([401, "identity_required"]);

    const device = dostiVisitor(o.pk, "hot-device");
    for (let i = 0; i < 3; i++) expect((await device.poll()).status).toBe(200);
    await revoke(o, "public");
    const poll = await device.poll();
    expect([poll.status, poll.body.error.code]).toEqual([401, "unauthorized"]);
  });

  it("serve a returning visitor without D1 for up to 60 s; a change made in D1 behind the API is seen once the entry expires", async () => {
    const SHOP = "https://shop.example";
    const o = await newOrg({ allowed_origins: [SHOP] });
    const open = () => session({ embed_token: o.webchat.token }, "hot-ttl", { origin: SHOP });
    expect((await open()).status).toBe(200);
    // As another isolate's change would look from here: D1 changed, this isolate's cache not told.
    await env.DB.prepare("UPDATE channels SET allowed_origins = ? WHERE id = ?").bind(JSON.stringify(["https://other.example"]), o.webchat.channel_id).run();
    expect((await open()).status).toBe(200); // from the cache
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 61_000);
      const refused = await open();
      expect([refused.status, refused.body.error.code]).toEqual([403, "origin_not_allowed"]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a visitor who changes their name is written each time, whichever name they used before", async () => {
    const o = await newOrg();
    const as = (name: string) => dostiVisitor(o.pk, "hot-renamed", name);
    expect((await as("Ann").send("one")).status).toBe(200);
    expect((await as("Ann").poll()).status).toBe(200); // no name on a poll: no change
    expect((await as("Bea").send("two")).status).toBe(200);
    expect((await as("Bea").send("three")).status).toBe(200);
    expect((await as("Ann").send("four")).status).toBe(200);
    const conv = (await session({ key: o.pk }, "hot-renamed")).body.conversation_id as string;
    const messages = (await o.agent.call(`/api/conversations/${conv}/messages`)).body;
    expect(messages.map((m: any) => [m.content, m.sender_name])).toEqual([
      ["one", "Ann"],
      ["two", "Bea"],
      ["three", "Bea"],
      ["four", "Ann"],
    ]);
    expect((await o.agent.call(`/api/conversations/${conv}`)).body.end_user.display_name).toBe("Ann");
  });
});

describe("CORS on the visitor surfaces (openCors)", () => {
  it("reflects the page's Origin on answers and errors, answers preflights, and adds nothing without an Origin", async () => {
    const o = await newOrg();
    const origin = "https://shop.example";
    const q = `apiKey=${o.pk}&visitorId=hot-cors&lastTimestamp=0`;
    const ok = await call(`/api/chat/poll?${q}`, { headers: { origin } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(origin);
    expect(ok.headers.get("vary")).toContain("Origin");
    expect(ok.headers.get("content-type")).toContain("application/json");
    expect(ok.headers.get("access-control-allow-credentials")).toBeNull();

    const refused = await call("/api/chat/poll?apiKey=pk_nope&visitorId=hot-cors", { headers: { origin } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe(origin);
    expect(refused.body).toMatchObject({ success: false, error: { code: "unauthorized" } });

    const bare = await call(`/api/chat/poll?${q}`);
    expect(bare.status).toBe(200);
    expect(bare.headers.get("access-control-allow-origin")).toBeNull();

    const preflight = await call("/api/chat/send", { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(origin);
    expect(preflight.headers.get("access-control-allow-methods")).toBe("GET,POST");
    expect(preflight.headers.get("access-control-allow-headers")).toBe("Content-Type");
    expect(preflight.headers.get("access-control-max-age")).toBe("600");

    const upload = await call("/uploads/x/y", { method: "OPTIONS", headers: { origin, "access-control-request-method": "PUT" } });
    expect(upload.headers.get("access-control-allow-methods")).toBe("PUT,POST");
    expect(upload.headers.get("access-control-allow-headers")).toBe("Content-Type,X-Filename");

    // Socket.IO's answers come from its session object: the headers are added to that Response.
    const res = await exports.default.fetch(new Request(`${BASE}/socket.io/?EIO=4&transport=polling`, { headers: { origin } }));
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe(origin);
    await res.text();
  });
});

describe("digests in hex (every key, token and cookie lookup hashes its credential)", () => {
  it("match the standard vectors, so stored hashes keep matching", async () => {
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(await sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    // RFC 4231, test case 2.
    expect(await hmacSha256Hex("Jefe", "what do ya want for nothing?")).toBe("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  });
});
