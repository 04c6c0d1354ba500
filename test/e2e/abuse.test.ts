// S15 under a real `wrangler dev`: the Rate Limiting binding is simulated locally, wrangler passes
// a client's CF-Connecting-IP through (so this test has an address of its own), and the many
// visitors every other test opens from 127.0.0.1 are not counted.
import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { NEW_CONVERSATIONS_PER_MINUTE } from "../../src/core/limits.ts";
import { api } from "./harness.ts";
import { newOrg, visitorId } from "./fixtures.ts";

describe("abuse rates over real HTTP", () => {
  it("new conversations per client IP: the first 20 a minute pass, then 429 rate_limited with Retry-After: 60; loopback clients are not counted", async () => {
    const org = await newOrg();
    // The local binding counts in wall-clock minutes: start well inside one.
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 15_000) await sleep(left + 100);
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
});
