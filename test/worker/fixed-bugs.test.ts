/**
 * Regression tests for bugs the reliability suite found (each names the RELIABILITY.md case it
 * proves): they failed against src/ as of commit 3e5c88e.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { ConversationRoom } from "../../src/conversation/room";
import { call, eventually, newOrg } from "./helpers";
import { conversationOf } from "./invariants";

describe("fixed: bugs found by the reliability suite", () => {
  // F8/F9: "the flush retries with backoff". room.ts append() calls scheduleAlarm(Date.now()) and
  // scheduleAlarm() keeps the earlier of the two times, so every new message (and every typing
  // start) pulls a backed-off flush to "now": while D1 is down, a busy conversation retries D1 on
  // every message instead of every 60 s.
  it("F9: a send during the flush backoff does not pull the next D1 attempt forward", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "backoff");
    let attempts = 0;
    await runInDurableObject(stub, (r: ConversationRoom) => {
      r.sink = { async write() { attempts++; throw new Error("D1_ERROR: D1 DB is overloaded."); } };
    });
    const me = { type: "end_user" as const, id: "backoff", name: null };
    await stub.send(ref, me, { content: "m0" });
    const scheduled = () => runInDurableObject(stub, (_r, s) => s.storage.getAlarm());
    // Eight failed attempts: each run waits until the room has set its next alarm (it does so
    // from waitUntil), so none is skipped; the alarm may also fire by itself in between.
    while (attempts < 8) {
      await eventually(async () => (await scheduled()) !== null, "the room schedules its next flush attempt");
      await runDurableObjectAlarm(stub);
    }
    await eventually(async () => ((await scheduled()) ?? 0) - Date.now() > 50_000, "the backoff after eight failures");
    const before = attempts;
    const alarm = await scheduled();
    expect(alarm! - Date.now()).toBeGreaterThan(50_000);
    for (let i = 1; i <= 5; i++) await stub.send(ref, me, { content: `m${i}` });
    await new Promise((r) => setTimeout(r, 500));
    expect(attempts - before).toBe(0);
    expect((await runInDurableObject(stub, (_r, s) => s.storage.getAlarm()))! - Date.now()).toBeGreaterThan(40_000);
  });

  // S10 (Papercups #848): logging out, or revoking the secret key a socket was opened with, must
  // close that agent's open sockets (1008) and refuse further sends. Today they stay open and sends
  // are stored.

  // F2: "a throw after the SQLite insert and before the broadcast ... the retry returns the same
  // {id,seq} and triggers a single broadcast". Today the retry answers duplicate:true but nothing
  // is ever broadcast: live sockets never get the message (no gap fill on the native protocol),
  // long-poll waiters are not woken, the org inbox gets no queue event, no webhook is enqueued, and the D1 flush is not
  // scheduled until some later activity.
});

describe("fixed: secret keys from browsers over Socket.IO", () => {
  // S6: REST and the native WebSocket refuse a secret key sent with Sec-Fetch-Site (a browser),
  // via agentFromSecretKey(env, key, headers). src/socketio/session.ts authenticate() calls
  // agentFromSecretKey(this.env, apiKey, new Headers()), so the handshake's browser headers never
  // reach that check: a page on any site can connect with ?apiKey=sk_... and act as the agent.
  it("S6: a Socket.IO CONNECT with a secret key and browser fetch metadata is refused", async () => {
    const o = await newOrg();
    const { exports } = await import("cloudflare:workers");
    const headers = { "sec-fetch-site": "cross-site", origin: "https://evil.test" };
    const engine = async (q: string, body?: string) =>
      (await exports.default.fetch(new Request(`https://parley.test/socket.io/?EIO=4&transport=polling${q}`, { method: body ? "POST" : "GET", headers: { ...headers, ...(body ? { "content-type": "text/plain" } : {}) }, body }))).text();
    const sid = JSON.parse((await engine(`&apiKey=${o.sk}`)).slice(1)).sid;
    await engine(`&sid=${sid}`, "40");
    expect(await engine(`&sid=${sid}`)).toMatch(/^44/);
  });
});

describe("fixed: Chat API history limit", () => {
  // Found by test/worker/property.test.ts (seed 1815864685): src/adapters/chat-api.ts `bounded()`
  // clamps `limit` to [1, 250] without flooring it, so `?limit=1.5` reaches the room's SQL as
  // LIMIT 1.5 -> "datatype mismatch: SQLITE_MISMATCH" -> 500 internal. Expected: floor it (or 400).
  it("B2: GET /chatapi/:token/client/:id/history?limit=1.5 is not a 500", async () => {
    const o = await newOrg();
    const token = (await o.agent.call("/api/integrations/chat-api", { body: { name: "x" } })).body.token;
    await call(`/chatapi/${token}`, { body: { clientId: "c-1", query: "hi" } });
    const r = await call(`/chatapi/${token}/client/c-1/history?limit=1.5`);
    expect([200, 400]).toContain(r.status);
  });
});
