// Security over real HTTP and real sockets: org isolation, cross-site WebSocket refusal, channel
// origins, CSRF, and malformed or oversized input (bodies and frames).
import { afterEach, describe, expect, it } from "vitest";
import { api, baseUrl, expectStatus } from "./harness.ts";
import { dostiVisitor, listed, newOrg, sent, visitorId } from "./fixtures.ts";
import { refusedSocket, SocketPool } from "./ws-client.ts";

const sockets = new SocketPool();
afterEach(sockets.closeAll);

const error = (code: string) => ({ error: { code, message: expect.any(String), retryable: false } });

/** A raw POST: the body as given, no JSON encoding. */
async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, baseUrl()), { method: "POST", headers: { "content-type": "application/json", ...headers }, body, signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) };
}

describe("organisation isolation", () => {
  it("an agent of org B gets 404 on org A's conversation over REST, and its WebSocket is refused before the upgrade", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const v = dostiVisitor(a.pk, visitorId("a-visitor"));
    await sent(v.send("secret of A"));
    const convA = await listed(a.agent, "all", v.id);

    for (const path of [`/api/conversations/${convA.id}`, `/api/conversations/${convA.id}/messages`]) {
      const r = await b.agent.api(path);
      expect(r.status).toBe(404);
      expect(r.json).toEqual(error("not_found"));
    }
    for (const [path, body] of [
      [`/api/conversations/${convA.id}/assign`, {}],
      [`/api/conversations/${convA.id}/messages`, { content: "hijack" }],
      [`/api/conversations/${convA.id}/resolve`, {}],
      [`/api/conversations/${convA.id}/tags`, { tags: ["x"] }],
    ] as const) {
      const r = await b.agent.api(path, { body });
      expect(r.status).toBe(404);
      expect(r.json).toEqual(error("not_found"));
    }
    expect((await b.agent.api("/api/conversations/?filter=all")).json).toEqual([]);

    expect(await refusedSocket(`/ws/conversations/${convA.id}`, { cookie: b.agent.cookie })).toEqual({ status: 404, json: error("not_found"), text: expect.any(String) });
    expect((await refusedSocket(`/ws/conversations/${convA.id}`, { bearer: b.sk })).status).toBe(404);
    expect((await refusedSocket(`/ws/conversations/${convA.id}`)).json).toEqual(error("unauthorized"));

    // Nothing leaked into A's conversation; A's own agent still gets in.
    expect((await v.poll(0)).json.messages.map((m) => m.message)).toEqual(["secret of A"]);
    const own = await sockets.connect(`/ws/conversations/${convA.id}`, { bearer: a.sk });
    expect(await own.next()).toMatchObject({ type: "ready", conversation_id: convA.id, head_seq: 1 });
  });
});

describe("cross-site WebSockets and channel origins", () => {
  it("refuses a cookie WebSocket from another Origin (403) and accepts the server's own origin", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("origin"));
    await sent(v.send("hi"));
    const conv = await listed(o.agent, "all", v.id);
    for (const path of [`/ws/conversations/${conv.id}`, "/ws/org"]) {
      expect(await refusedSocket(path, { cookie: o.agent.cookie, origin: "https://evil.test" })).toEqual({ status: 403, json: error("origin_not_allowed"), text: expect.any(String) });
    }
    const same = await sockets.connect(`/ws/conversations/${conv.id}`, { cookie: o.agent.cookie, origin: new URL(baseUrl()).origin });
    expect(await same.next()).toMatchObject({ type: "ready", conversation_id: conv.id });
    // A secret key is not a browser credential: Origin does not matter for it.
    const server = await sockets.connect(`/ws/conversations/${conv.id}`, { bearer: o.sk, origin: "https://evil.test" });
    expect(await server.next()).toMatchObject({ type: "ready", conversation_id: conv.id });
  });

  it("a webchat channel with allowed_origins refuses other origins on /chat-widget/session and /ws/visitor, and accepts its own", async () => {
    const o = await newOrg();
    const webchat = await o.agent.createWebchat(["https://shop.example"]);
    const vid = visitorId("shop");
    const open = (origin: string) => api("/chat-widget/session", { body: { embed_token: webchat.token, session_id: vid, customer_name: "Sam" }, headers: { origin } });

    const evil = await open("https://evil.test");
    expect(evil.status).toBe(403);
    expect(evil.json).toEqual(error("origin_not_allowed"));
    // Exact match only: scheme and port count.
    expect((await open("http://shop.example")).status).toBe(403);
    expect((await open("https://shop.example:8443")).status).toBe(403);

    const good = expectStatus(await open("https://shop.example"), 200, "widget session");
    expect(good.json).toMatchObject({ conversation_id: expect.any(String), external_id: vid, head_seq: 0, epoch: expect.any(String) });
    expect(good.headers.get("access-control-allow-origin")).toBe("https://shop.example");

    const path = `/ws/visitor?embed_token=${webchat.token}&external_id=${vid}&name=Sam`;
    expect(await refusedSocket(path, { origin: "https://evil.test" })).toEqual({ status: 403, json: error("origin_not_allowed"), text: expect.any(String) });
    const ok = await sockets.connect(path, { origin: "https://shop.example" });
    expect(await ok.next()).toMatchObject({ type: "ready", conversation_id: good.json.conversation_id, epoch: good.json.epoch, head_seq: 0 });
    // An unknown embed token is refused the same way on both.
    expect((await refusedSocket(`/ws/visitor?embed_token=ew_nope&external_id=${vid}`, { origin: "https://shop.example" })).json).toEqual(error("unauthorized"));
  });
});

describe("CSRF and malformed input", () => {
  it("a cookie POST without X-CSRFToken is refused with 403 csrf_failed, and changes nothing", async () => {
    const o = await newOrg();
    const noToken = await api("/api/company/api-keys", { body: { name: "k", kind: "public" }, cookie: o.agent.cookie });
    expect(noToken.status).toBe(403);
    expect(noToken.json).toEqual(error("csrf_failed"));
    const wrongToken = await api("/api/company/api-keys", { body: { name: "k", kind: "public" }, cookie: o.agent.cookie, csrf: "0".repeat(64) });
    expect(wrongToken.status).toBe(403);
    expect(wrongToken.json).toEqual(error("csrf_failed"));
    const crossSite = await o.agent.api("/api/company/api-keys", { body: { name: "k", kind: "public" }, headers: { origin: "https://evil.test" } });
    expect(crossSite.status).toBe(403);
    expect(crossSite.json).toEqual(error("csrf_failed"));
    // The two keys newOrg created, and nothing else.
    expect(expectStatus(await o.agent.api("/api/company/api-keys"), 200, "list keys").json).toHaveLength(2);
  });

  it("malformed JSON -> 400 invalid_json; a body over 64 KiB -> 413 payload_too_large", async () => {
    const o = await newOrg();
    const bad = await post("/api/chat/send", '{"apiKey": ');
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({ success: false, ...error("invalid_json") });
    const badAgent = await post("/api/company/api-keys", "{name:", { cookie: o.agent.cookie, "x-csrftoken": o.agent.csrf });
    expect(badAgent.status).toBe(400);
    expect(badAgent.json).toEqual(error("invalid_json"));

    const huge = JSON.stringify({ apiKey: o.pk, visitorId: "v", message: "x".repeat(70_000) });
    const tooLarge = await post("/api/chat/send", huge);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json.error).toEqual(error("payload_too_large").error);
    // Without a Content-Length (chunked), the cap holds too.
    const chunked = await fetch(new URL("/api/chat/send", baseUrl()), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([huge]).stream(),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await chunked.json()).error.code).toBe("payload_too_large");
    const agentHuge = await post("/api/integrations/webchat", JSON.stringify({ name: "x".repeat(70_000) }), { cookie: o.agent.cookie, "x-csrftoken": o.agent.csrf });
    expect(agentHuge.status).toBe(413);
    expect(agentHuge.json).toEqual(error("payload_too_large"));
  });

  it("a WebSocket text frame over 64 KiB closes that socket with 1009; another socket in the conversation keeps working", async () => {
    const o = await newOrg();
    const vid = visitorId("big");
    const path = `/ws/visitor?key=${o.pk}&external_id=${vid}`;
    const big = await sockets.connect(path);
    const ready = await big.next();
    const other = await sockets.connect(path);
    await other.next();
    const agent = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { cookie: o.agent.cookie });
    await agent.next();
    for (const s of [big, other]) expect((await s.next()).type).toBe("joined");

    big.send(JSON.stringify({ type: "send", content: "x".repeat(64 * 1024) }));
    expect(await big.waitClosed()).toEqual({ code: 1009, reason: "frame too large" });
    expect(big.unread()).toEqual([]);

    other.send({ type: "send", content: "still fine", client_msg_id: "after-big" });
    expect(await other.nextOfType("ack")).toMatchObject({ client_msg_id: "after-big", seq: 1, duplicate: false });
    const seen = await agent.sync();
    expect(seen.filter((f) => f.type === "message").map((f) => f.message.content)).toEqual(["still fine"]);
    // A frame under the cap is parsed (and refused for its content, 16 KiB at most, not its size).
    other.send(JSON.stringify({ type: "send", content: "y".repeat(60_000) }));
    expect(await other.nextOfType("error")).toMatchObject({ code: "validation_failed" });
    expect(other.closed).toBeNull();
  });
});
