/** S15: conversation creation per client IP (Workers Rate Limiting binding) and a cap on one visitor's sockets. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_END_USER_SOCKETS, NEW_CONVERSATIONS_PER_MINUTE } from "../../src/core/limits";
import { clientIpKey } from "../../src/http/abuse";
import { call, newOrg, openSocket, type Res } from "./helpers";

const rand = (n: number) => Math.floor(Math.random() * n);
/** A fresh address per run: the binding's windows outlive a test run. */
const randomV4 = () => `10.${rand(256)}.${rand(256)}.${rand(256)}`;
const randomV6Prefix = () => `2001:db8:${rand(0xffff).toString(16)}:${rand(0xffff).toString(16)}`;

/** The local binding counts in wall-clock minutes: start well inside one, so no window rolls over mid-test. */
async function freshWindow() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 15_000) await new Promise((r) => setTimeout(r, left + 100));
}

/** Closes sockets and lets the room finish its close work (the hub's unwatch) before the test ends. */
async function closeAll(sockets: Awaited<ReturnType<typeof openSocket>>[]) {
  for (const s of sockets) s.close();
  await Promise.all(sockets.map((s) => s.waitClosed().catch(() => null)));
  await new Promise((r) => setTimeout(r, 250));
}

function expectLimited(r: Res) {
  expect(r.status).toBe(429);
  expect(r.headers.get("retry-after")).toBe("60");
  expect(r.body.error).toMatchObject({ code: "rate_limited", retryable: true, message: expect.stringContaining("new conversations") });
}

describe("abuse rates", () => {
  it("the limits are the documented ones (test names and docs/guarantees.md say 20)", () => {
    expect([NEW_CONVERSATIONS_PER_MINUTE, MAX_END_USER_SOCKETS]).toEqual([20, 20]);
  });

  it("client keys: CF-Connecting-IP, IPv6 by its /64, IPv4-mapped as IPv4; none and loopback are not counted", () => {
    const key = (ip: string | null) => clientIpKey(new Request("https://parley.test/", { headers: ip === null ? {} : { "cf-connecting-ip": ip } }));
    expect(key("203.0.113.9")).toBe("ip:203.0.113.9");
    expect(key("2001:db8:1:2:3:4:5:6")).toBe("ip6:2001:db8:1:2::/64");
    expect(key("2001:DB8:1:2::99")).toBe("ip6:2001:db8:1:2::/64");
    expect(key("::ffff:203.0.113.9")).toBe("ip:203.0.113.9");
    expect(key("garbage:::")).toBe("ip:garbage:::");
    for (const none of [null, "", "127.0.0.1", "127.5.5.5", "::1", "::ffff:127.0.0.1"]) expect([none, key(none)]).toEqual([none, null]);
  });

  it("conversation creation: 20 a minute per client IP across the widget, seed 000, seed 002, the Chat API and the visitor socket, then 429 with Retry-After; resuming never counts; nothing is created when refused", async () => {
    const o = await newOrg();
    const chatApi = (await o.agent.call("/api/integrations/chat-api", { body: { name: "Game" } })).body.token as string;
    await freshWindow();
    const ip = randomV4();
    const from = (addr: string) => ({ "cf-connecting-ip": addr });
    const h = from(ip);

    // Twenty new conversations from one address, over every creating surface.
    const made: Res[] = [];
    for (let i = 0; i < 5; i++) made.push(await call("/chat-widget/session", { body: { key: o.pk }, headers: h }));
    for (let i = 0; i < 5; i++) made.push(await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: `d-${i}`, message: "hi" }, headers: h }));
    for (let i = 0; i < 5; i++) made.push(await call("/api/customer/init", { body: { apiKey: o.pk, refId: `c-${i}`, Channel: "web" }, headers: h }));
    for (let i = 0; i < 3; i++) made.push(await call(`/chatapi/${chatApi}/client/g-${i}/history`, { headers: h }));
    made.push(await call("/chat-widget/session", { body: { key: o.pk, session_id: "w-named" }, headers: h }));
    const ws = await openSocket(`/ws/visitor?key=${o.pk}&external_id=ws-1`, h);
    await ws.next((f) => f.type === "ready");
    await closeAll([ws]);
    expect(made.map((r) => r.status)).toEqual(Array(NEW_CONVERSATIONS_PER_MINUTE - 1).fill(200));

    // The next new one, on any surface, is refused before anything is written.
    expectLimited(await call("/chat-widget/session", { body: { key: o.pk }, headers: h }));
    expectLimited(await call("/chat-widget/session", { body: { key: o.pk, session_id: "w-late" }, headers: h }));
    const dosti = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "d-late", message: "hi" }, headers: h });
    expectLimited(dosti);
    expect(dosti.body.success).toBe(false);
    expectLimited(await call("/api/chat/poll", { body: { apiKey: o.pk, visitorId: "d-late-poll" }, headers: h }));
    expectLimited(await call("/api/customer/init", { body: { apiKey: o.pk, refId: "c-late", Channel: "web" }, headers: h }));
    expectLimited(await call(`/chatapi/${chatApi}/client/g-late/history`, { headers: h }));
    expectLimited(await call(`/ws/visitor?key=${o.pk}&external_id=ws-late`, { headers: { ...h, upgrade: "websocket" } }));
    // The same /64 is the same client; an IPv6 client gets its own budget otherwise.
    const v6 = randomV6Prefix();
    for (let i = 0; i < NEW_CONVERSATIONS_PER_MINUTE; i++) expect((await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: `v6-${i}`, message: "hi" }, headers: from(`${v6}::${i + 1}`) })).status).toBe(200);
    expectLimited(await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "v6-late", message: "hi" }, headers: from(`${v6}:1:2:3:4`) }));
    const late = await env.DB.prepare("SELECT COUNT(*) AS n FROM end_users WHERE org_id = ? AND external_id IN ('w-late', 'd-late', 'd-late-poll', 'c-late', 'g-late', 'ws-late', 'v6-late')").bind(o.org.id).first<{ n: number }>();
    expect(late!.n).toBe(0);

    // Resuming an existing conversation is never counted, over the limit or not.
    expect((await call("/chat-widget/session", { body: { key: o.pk, session_id: made[0]!.body.external_id }, headers: h })).status).toBe(200);
    expect((await call("/chat-widget/session", { body: { key: o.pk, session_id: "w-named" }, headers: h })).status).toBe(200);
    expect((await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "d-0", message: "still here" }, headers: h })).status).toBe(200);
    expect((await call("/api/chat/poll", { body: { apiKey: o.pk, visitorId: "d-1" }, headers: h })).status).toBe(200);
    expect((await call("/api/customer/init", { body: { apiKey: o.pk, refId: "c-0", Channel: "web" }, headers: h })).status).toBe(200);
    expect((await call(`/chatapi/${chatApi}/client/g-0/history`, { headers: h })).status).toBe(200);
    const again = await openSocket(`/ws/visitor?key=${o.pk}&external_id=ws-1`, h);
    await again.next((f) => f.type === "ready");
    await closeAll([again]);

    // Other addresses, and clients Cloudflare did not front (local dev, tests), are unaffected.
    expect((await call("/chat-widget/session", { body: { key: o.pk }, headers: from(randomV4()) })).status).toBe(200);
    expect((await call("/chat-widget/session", { body: { key: o.pk }, headers: from("127.0.0.1") })).status).toBe(200);
    expect((await call("/chat-widget/session", { body: { key: o.pk } })).status).toBe(200);
  });

  it("one visitor holds at most 20 native sockets: one more gets an error frame rate_limited and close 4008; closing one frees a place; other visitors are unaffected", async () => {
    const o = await newOrg();
    const url = `/ws/visitor?key=${o.pk}&external_id=many-tabs`;
    const open = [];
    for (let i = 0; i < MAX_END_USER_SOCKETS; i++) {
      const s = await openSocket(url);
      await s.next((f) => f.type === "ready");
      open.push(s);
    }
    const extra = await openSocket(url);
    expect(await extra.waitClosed()).toEqual({ code: 4008, reason: "rate_limited" });
    expect(extra.frames).toEqual([expect.objectContaining({ type: "error", code: "rate_limited", retryable: true })]);
    // The others still work.
    open[0]!.send({ type: "send", content: "still here", client_msg_id: "t-1" });
    await open[0]!.next((f) => f.type === "ack" && f.client_msg_id === "t-1");
    await open[MAX_END_USER_SOCKETS - 1]!.next((f) => f.type === "message" && f.message?.content === "still here");
    // Another visitor of the same channel is not affected.
    const neighbour = await openSocket(`/ws/visitor?key=${o.pk}&external_id=neighbour`);
    await neighbour.next((f) => f.type === "ready");
    // A closed tab frees a place.
    open.pop()!.close();
    const replacement = await (async () => {
      for (let i = 0; i < 50; i++) {
        const s = await openSocket(url);
        const ready = await s.next((f) => f.type === "ready" || f.type === "error").catch(() => null);
        if (ready?.type === "ready") return s;
        await s.waitClosed().catch(() => null);
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error("no place freed");
    })();
    expect(replacement.closed).toBeNull();
    await closeAll([...open, replacement, neighbour]);
  });

  it("typing is coalesced: a burst of 30 typing frames reaches the other side as one typing: true, and the stop once", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=typist`);
    const ready = await visitor.next((f) => f.type === "ready");
    const agent = await openSocket(`/ws/conversations/${ready.conversation_id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready");
    for (let i = 0; i < 30; i++) visitor.send({ type: "typing", typing: true });
    visitor.send({ type: "typing", typing: false });
    visitor.send({ type: "send", content: "done typing", client_msg_id: "after-typing" });
    await agent.next((f) => f.type === "message" && f.message?.client_msg_id === "after-typing");
    expect(agent.frames.filter((f) => f.type === "typing").map((f) => f.typing)).toEqual([true, false]);
    await closeAll([visitor, agent]);
  });
});
