// S15 under a real `wrangler dev`: the Rate Limiting binding is simulated locally, wrangler passes
// a client's CF-Connecting-IP through (so this test has an address of its own), and the many
// visitors every other test opens from 127.0.0.1 are not counted.
import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { MAX_END_USER_SOCKETS, NEW_CONVERSATIONS_PER_MINUTE } from "../../src/core/limits.ts";
import { api } from "./harness.ts";
import { listed, newOrg, visitorId } from "./fixtures.ts";
import { ConnectRefused, dostiVisitorOpts, SioPool, type Socket } from "./sio.ts";
import { openSocket } from "./ws-client.ts";

const pool = new SioPool();
afterEach(pool.closeAll);

/** The local binding counts in wall-clock minutes: start well inside one. */
async function freshWindow() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 15_000) await sleep(left + 100);
}

describe("abuse rates over real HTTP", () => {
  it("new conversations per client IP: the first 20 a minute pass, then 429 rate_limited with Retry-After: 60; loopback clients are not counted", async () => {
    const org = await newOrg();
    await freshWindow();
    const ip = `198.18.${randomInt(256)}.${randomInt(256)}`;
    const send = (id: string, headers: Record<string, string> = { "cf-connecting-ip": ip }) =>
      api("/api/chat/send", { body: { apiKey: org.pk, visitorId: id, message: "hello" }, headers });
    const ids = Array.from({ length: NEW_CONVERSATIONS_PER_MINUTE }, () => visitorId("burst"));
    const statuses = [];
    for (const id of ids) statuses.push((await send(id)).status);
    expect(statuses).toEqual(Array(NEW_CONVERSATIONS_PER_MINUTE).fill(200));

    const refused = await send(visitorId("burst"));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("60");
    expect(refused.json).toEqual({ success: false, error: { code: "rate_limited", message: expect.stringContaining("new conversations"), retryable: true } });
    const widget = await api("/chat-widget/session", { body: { key: org.pk }, headers: { "cf-connecting-ip": ip } });
    expect(widget.status).toBe(429);
    expect(widget.json.error.code).toBe("rate_limited");

    // An existing visitor from that address carries on; the machine's own clients were never counted.
    expect((await send(ids[0]!)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await send(visitorId("local"), {})).status).toBe(200);
  });

  it("Socket.IO visitors (seed 000's CONNECT): the name is normalized like REST's, one with nothing visible is refused, and new conversations count against the same per-IP budget", async () => {
    const org = await newOrg();
    await freshWindow();
    const ip = `198.19.${randomInt(256)}.${randomInt(256)}`;
    const headers = { "cf-connecting-ip": ip };
    const first = visitorId("sio");
    await pool.connect(dostiVisitorOpts(org.pk, first, "\u202ESupport\u202C \u2066\uFF21\uFF24\u200B\uFF2D\uFF29\uFF2E\u2069", { extraHeaders: headers, transports: ["polling"] }));
    // The inbox lists a conversation once it has a message.
    expect((await api("/api/chat/send", { body: { apiKey: org.pk, visitorId: first, message: "hi" }, headers })).status).toBe(200);
    const conv = await listed(org.agent, "all", first);
    expect(conv.end_user.display_name).toBe("Support ADMIN");
    const blank = pool.connect(dostiVisitorOpts(org.pk, visitorId("sio"), "\u200B\u202E", { extraHeaders: headers, transports: ["polling"] }));
    await expect(blank).rejects.toThrow(ConnectRefused);
    await expect(blank).rejects.toThrow(/visitorName/);

    // The same address fills its budget over REST; Socket.IO then refuses a new visitor, not a known one.
    for (let i = 1; i < NEW_CONVERSATIONS_PER_MINUTE; i++) {
      expect((await api("/api/chat/send", { body: { apiKey: org.pk, visitorId: visitorId("rest"), message: "hi" }, headers })).status).toBe(200);
    }
    const late = pool.connect(dostiVisitorOpts(org.pk, visitorId("sio-late"), "Late", { extraHeaders: headers, transports: ["polling"] }));
    await expect(late).rejects.toThrow(/too many new conversations/);
    await pool.connect(dostiVisitorOpts(org.pk, first, "Support", { extraHeaders: headers, transports: ["polling"] }));
  });

  it("one visitor's connections are capped across Socket.IO and the native socket: the 21st is refused (connect_error rate_limited, or close 4008); closing one frees a place", async () => {
    const org = await newOrg();
    const vid = visitorId("tabs");
    const opts = dostiVisitorOpts(org.pk, vid, "Many Tabs", { transports: ["websocket"], reconnection: false });
    const open: Socket[] = [];
    for (let i = 0; i < MAX_END_USER_SOCKETS - 1; i++) open.push(await pool.connect(opts));
    const native = await openSocket(`/ws/visitor?key=${org.pk}&external_id=${vid}`);
    await native.next((f) => f.type === "ready");
    // Now at the cap (19 Socket.IO sessions and one native socket): one more of either is refused.
    await expect(pool.connect(opts)).rejects.toThrow(/at most 20 open connections per visitor/);
    const extra = await openSocket(`/ws/visitor?key=${org.pk}&external_id=${vid}`);
    expect(await extra.waitClosed()).toMatchObject({ code: 4008 });
    // Other visitors are unaffected; a closed tab frees a place.
    await pool.connect(dostiVisitorOpts(org.pk, visitorId("other"), "Other", { transports: ["websocket"], reconnection: false }));
    open.pop()!.disconnect();
    const again = await (async () => {
      for (let i = 0; i < 50; i++) {
        const s = await pool.connect(opts).catch(() => null);
        if (s) return s;
        await sleep(100);
      }
      throw new Error("no place freed");
    })();
    expect(again.connected).toBe(true);
    native.close();
  });
});
