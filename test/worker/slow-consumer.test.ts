// Flow control on the native protocol (src/conversation/flow-control.ts, docs/protocol.md "Flow
// control"): what a `received` confirmation covers, which messages a socket is charged for, and
// bad confirmations. The sockets here read everything but confirm only when the test says so.
// The same over real sockets (a paused TCP reader, bursts, the Web SDK): test/e2e/slow-consumer.test.ts.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ConversationRef } from "../../src/core/conversation-ref";
import type { Principal } from "../../src/core/message";
import { call, newOrg, openSocket } from "./helpers";

async function conversation() {
  const o = await newOrg();
  const visitorId = `fc-${crypto.randomUUID().slice(0, 8)}`;
  const r = await call("/chat-widget/session", { body: { key: o.pk, session_id: visitorId } });
  const row = await env.DB.prepare("SELECT c.*, u.external_id, u.display_name FROM conversations c JOIN end_users u ON u.id = c.end_user_id WHERE c.id = ?")
    .bind(r.body.conversation_id)
    .first<any>();
  const ref: ConversationRef = { id: row.id, org_id: row.org_id, channel_id: row.channel_id, end_user: { id: row.end_user_id, external_id: row.external_id, display_name: row.display_name } };
  const agent: Principal = { type: "agent", id: o.user.id, name: "Owner" };
  return { o, ref, agent, visitorId, stub: env.CONVERSATION.getByName(ref.id) };
}

type Socket = Awaited<ReturnType<typeof openSocket>>;
type Room = Awaited<ReturnType<typeof conversation>>;

/** Messages from..to by the agent over RPC, 50 at a time (the room stores them in arrival order). */
async function sendMany({ stub, ref, agent }: Room, from: number, to: number, extra: Record<string, unknown> = {}) {
  for (let i = from; i <= to; i += 50) {
    const batch = Array.from({ length: Math.min(50, to - i + 1) }, (_, j) => stub.send(ref, agent, { content: `m${i + j}`, ...extra }));
    for (const r of await Promise.all(batch)) expect(r).toMatchObject({ ok: true });
  }
}
const messages = (s: Socket) => s.frames.filter((f) => f.type === "message").length;

/** A frame the room itself answers (not the exact ping string, so not the platform's auto-response): everything sent before it was handled. */
async function barrier(s: Socket) {
  const before = s.frames.filter((f) => f.type === "pong").length;
  s.send('{ "type": "ping" }');
  await s.next((f) => f.type === "pong" && s.frames.filter((g) => g.type === "pong").length > before);
}

describe("flow control (slow consumers)", () => {
  it("a socket over the bound that still confirms (a room too busy to keep up makes every reader look behind) stays open; once it has confirmed nothing for 2 s it is closed with 4009", async () => {
    const room = await conversation();
    const { o, ref } = room;
    const lagging = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    await lagging.next((f) => f.type === "ready");
    await sendMany(room, 1, 400);
    await lagging.next((f) => f.type === "message" && f.message.seq === 400);
    // Confirmations that trail the head by 340 (past the 300 bound), for 4 s: the room's input is "late", not silent.
    const until = Date.now() + 4_000;
    let seq = 40;
    while (Date.now() < until) {
      lagging.send({ type: "received", seq: seq++ });
      await barrier(lagging);
      expect(lagging.closed).toBeNull();
      await new Promise((r) => setTimeout(r, 400));
    }
    const silentFrom = Date.now();
    expect(await lagging.waitClosed(15_000)).toEqual({ code: 4009, reason: "slow_consumer" });
    expect(Date.now() - silentFrom).toBeGreaterThanOrEqual(1_500);
    // Its last frame says why, so a client can reconnect before its close event (docs/protocol.md).
    expect(lagging.frames.at(-1)).toEqual({ type: "error", code: "slow_consumer", message: expect.stringContaining("4009"), retryable: true });
  });

  it("a confirmation names a seq: confirming an old one leaves the socket charged for everything after it, and it is closed with 4009; one that confirmed the head is not", async () => {
    const room = await conversation();
    const { o, ref } = room;
    const behind = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    const current = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    for (const s of [behind, current]) await s.next((f) => f.type === "ready");

    await sendMany(room, 1, 250);
    for (const s of [behind, current]) await s.next((f) => f.type === "message" && f.message.seq === 250);
    behind.send({ type: "received", seq: 10 });
    current.send({ type: "received", seq: 250 });
    for (const s of [behind, current]) await barrier(s);

    // 100 more: `behind` is 340 past what it confirmed, `current` 100.
    await sendMany(room, 251, 350);
    expect(await behind.waitClosed(10_000)).toEqual({ code: 4009, reason: "slow_consumer" });
    await barrier(current);
    expect(current.closed).toBeNull();
    expect(messages(current)).toBe(350);
  });

  it("an end user's socket is not charged for whispers it never gets: 320 private notes close the staff socket that does not confirm and leave the visitor's open", async () => {
    const room = await conversation();
    const { o, ref, visitorId } = room;
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=${visitorId}`);
    const staff = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    for (const s of [visitor, staff]) await s.next((f) => f.type === "ready");

    await sendMany(room, 1, 320, { private: true });
    expect(await staff.waitClosed(10_000)).toEqual({ code: 4009, reason: "slow_consumer" });
    expect(messages(staff)).toBeGreaterThan(300);
    await barrier(visitor);
    expect(visitor.closed).toBeNull();
    expect(messages(visitor)).toBe(0);
  });

  it("a malformed confirmation is an unknown_event error frame and the socket stays open", async () => {
    const { o, ref } = await conversation();
    const s = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    await s.next((f) => f.type === "ready");
    for (const bad of [{ type: "received" }, { type: "received", seq: -1 }, { type: "received", seq: 1.5 }, { type: "received", seq: "3" }]) {
      const before = s.frames.length;
      s.send(bad);
      const err = await s.next((f) => f.type === "error" && s.frames.indexOf(f) >= before);
      expect(err).toEqual({ type: "error", code: "unknown_event", message: expect.any(String), retryable: false });
    }
    s.send({ type: "received", seq: 0 }); // valid: nothing to confirm yet, no answer
    await barrier(s);
    expect(s.frames.filter((f) => f.type === "error")).toHaveLength(4);
    expect(s.closed).toBeNull();
  });
});
