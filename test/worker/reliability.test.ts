import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { writerSink } from "../../src/conversation/d1-writer";
import type { ConversationRoom } from "../../src/conversation/room";
import { dostiVisitor, eventually, newOrg, openSocket } from "./helpers";
import { conversationOf } from "./invariants";

const d1Seqs = async (conversationId: string) =>
  (await env.DB.prepare("SELECT seq FROM messages WHERE conversation_id = ? ORDER BY seq").bind(conversationId).all<{ seq: number }>()).results.map((r) => r.seq);

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe("durability", () => {
  it("an eviction in the middle of a burst loses nothing: seq stays gapless and hibernated sockets keep their identity", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=evict-1`);
    const ready = await visitor.next((f) => f.type === "ready");
    const agent = await openSocket(`/ws/conversations/${ready.conversation_id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready");
    const stub = env.CONVERSATION.getByName(ready.conversation_id);

    for (let i = 1; i <= 5; i++) visitor.send({ type: "send", content: `m${i}`, client_msg_id: `e-${i}` });
    await visitor.next((f) => f.type === "ack" && f.seq === 5);
    await evictDurableObject(stub);
    for (let i = 6; i <= 10; i++) visitor.send({ type: "send", content: `m${i}`, client_msg_id: `e-${i}` });
    const last = await agent.next((f) => f.type === "message" && f.message.seq === 10);
    expect(last.message).toMatchObject({ sender_type: "end_user", sender_id: "evict-1", content: "m10" });
    // A retry of an acknowledged send after the eviction still finds the original.
    visitor.send({ type: "send", content: "m3", client_msg_id: "e-3" });
    expect(await visitor.next((f) => f.type === "ack" && f.duplicate)).toMatchObject({ seq: 3 });

    const seen = agent.frames.filter((f) => f.type === "message").map((f) => f.message.seq);
    expect(seen).toEqual(range(1, 10));
    await eventually(async () => (await d1Seqs(ready.conversation_id)).length === 10, "D1 holds all 10");
    expect(await d1Seqs(ready.conversation_id)).toEqual(range(1, 10));
  });

  it("a failing D1 flush is retried with backoff; chat stays live; D1 ends with every message once", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "flaky-d1");
    let failuresLeft = 3;
    let attempts = 0;
    await runInDurableObject(stub, (room: ConversationRoom) => {
      const real = writerSink(env, ref);
      room.sink = {
        write: async (m, s) => {
          attempts++;
          if (failuresLeft-- > 0) throw new Error("D1_ERROR: Network connection lost");
          return real.write(m, s);
        },
      };
    });
    const me = { type: "end_user" as const, id: "flaky-d1", name: null };
    const sends = await Promise.all(range(1, 12).map((i) => stub.send(ref, me, { content: `n${i}`, client_msg_id: `f-${i}` })));
    expect(sends.every((r) => r.ok)).toBe(true);
    await eventually(async () => attempts >= 1, "a flush was attempted");

    for (let i = 0; i < 10 && (await d1Seqs(ref.id)).length < 12; i++) await runDurableObjectAlarm(stub);
    expect(await d1Seqs(ref.id)).toEqual(range(1, 12));
    expect(attempts).toBeGreaterThanOrEqual(4);
    const state = await runInDurableObject(stub, (_room, s) => ({
      flushed: s.storage.sql.exec("SELECT value FROM meta WHERE key = 'flushed_seq'").one().value,
      failures: s.storage.sql.exec("SELECT value FROM meta WHERE key = 'flush_failures'").one().value,
    }));
    expect(state).toEqual({ flushed: "12", failures: "0" });
    // Running the flush again changes nothing (idempotent).
    await runInDurableObject(stub, (room: ConversationRoom) => room.flush());
    expect(await d1Seqs(ref.id)).toEqual(range(1, 12));
  });

  it("new messages do not pull a failing flush's backoff forward (one retry per backoff, not per message)", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "busy-while-d1-down");
    let attempts = 0;
    await runInDurableObject(stub, (room: ConversationRoom) => {
      room.sink = {
        write: async () => {
          attempts++;
          throw new Error("D1_ERROR: overloaded");
        },
      };
    });
    const me = { type: "end_user" as const, id: "busy-while-d1-down", name: null };
    expect((await stub.send(ref, me, { content: "first" })).ok).toBe(true);
    await eventually(async () => attempts >= 1, "the first flush failed");
    const retryAt = await runInDurableObject(stub, (_room, state) => Number(state.storage.sql.exec("SELECT value FROM meta WHERE key = 'flush_retry_at'").one().value));
    expect(retryAt).toBeGreaterThan(Date.now());
    for (let i = 0; i < 5; i++) expect((await stub.send(ref, me, { content: `more ${i}` })).ok).toBe(true);
    const alarm = await runInDurableObject(stub, (_room, state) => state.storage.getAlarm());
    expect(alarm).toBeGreaterThanOrEqual(retryAt);
    expect(attempts).toBe(1);
  });

  it("ten racing copies of one client_msg_id store one message", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "racer");
    const me = { type: "end_user" as const, id: "racer", name: null };
    const results = await Promise.all(range(1, 10).map(() => stub.send(ref, me, { content: "same", client_msg_id: "dup-1" })));
    const ids = new Set(results.map((r) => (r.ok ? r.message.id : "error")));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.ok && !r.duplicate)).toHaveLength(1);
    const history = await stub.history(ref, { audience: "staff", limit: 100 });
    expect(history.ok && history.messages.length).toBe(1);
  });

  it("the object refuses a call naming another organisation (defence in depth)", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "owner");
    const forged = { ...ref, org_id: crypto.randomUUID() };
    const r = await stub.send(forged, { type: "agent", id: "x", name: null }, { content: "hi" });
    expect(r).toMatchObject({ ok: false, error: { code: "not_found" } });
  });

  it("rate-limits one end user with 429 and Retry-After, storing nothing extra", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "chatty");
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 25; i++) {
      const r = await v.send(`msg ${i}`);
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get("retry-after");
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(20);
    expect(statuses.slice(20)).toEqual([429, 429, 429, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect((await v.poll(0)).body.messages).toHaveLength(20);
  });
});
