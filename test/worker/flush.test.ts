/**
 * The outbox core, driven through recording fakes of its two dependencies; then the room's flush
 * schedule against the real D1.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { writerSink } from "../../src/conversation/d1-writer";
import type { ConversationRoom } from "../../src/conversation/room";
import { eventually, newOrg } from "./helpers";
import { assertX1, conversationOf } from "./invariants";
import type { Message } from "../../src/core/message";
import { backoffMs, FLUSH_BACKOFF_MAX_MS, FLUSH_BACKSTOP_MS, FLUSH_BATCH_ROWS, flushOnce, type OutboxSink, type OutboxStore } from "../../src/conversation/flush";
import type { Session } from "../../src/conversation/sessions";

function store(messages: number, sessions: Session[] = []) {
  const state = { flushed: 0, failures: 0, sessions: [...sessions], commits: [] as number[] };
  const s: OutboxStore = {
    flushedSeq: () => state.flushed,
    pendingMessages: (after, limit) =>
      Array.from({ length: messages }, (_, i) => ({ seq: i + 1 }) as Message)
        .filter((m) => m.seq > after)
        .slice(0, limit),
    pendingSessions: () => state.sessions,
    commit: (last, done) => {
      state.flushed = last;
      state.commits.push(last);
      state.sessions = state.sessions.filter((x) => !done.includes(x));
    },
    failures: () => state.failures,
    setFailures: (n) => (state.failures = n),
  };
  return { s, state };
}

function sink(failFirst = 0) {
  const writes: number[][] = [];
  let left = failFirst;
  const k: OutboxSink = {
    async write(m) {
      if (left-- > 0) throw new Error("D1 overloaded");
      writes.push(m.map((x) => x.seq));
    },
  };
  return { k, writes };
}

describe("flushOnce", () => {
  it("is idle with nothing pending", async () => {
    const { s } = store(0);
    expect(await flushOnce(s, sink().k)).toEqual({ type: "idle" });
  });

  it("writes in batches and advances the cursor only after each write", async () => {
    const { s, state } = store(FLUSH_BATCH_ROWS + 5);
    const { k, writes } = sink();
    expect(await flushOnce(s, k)).toMatchObject({ type: "flushed", messages: FLUSH_BATCH_ROWS, more: true });
    expect(state.flushed).toBe(FLUSH_BATCH_ROWS);
    expect(await flushOnce(s, k)).toMatchObject({ type: "flushed", messages: 5, more: false });
    expect(writes.flat()).toEqual(Array.from({ length: FLUSH_BATCH_ROWS + 5 }, (_, i) => i + 1));
  });

  it("on failure keeps the cursor, counts failures and backs off; success resets the count", async () => {
    const { s, state } = store(3);
    const { k, writes } = sink(2);
    expect(await flushOnce(s, k)).toMatchObject({ type: "failed", failures: 1, retryInMs: 1000 });
    expect(await flushOnce(s, k)).toMatchObject({ type: "failed", failures: 2, retryInMs: 2000 });
    expect(state.flushed).toBe(0);
    expect(await flushOnce(s, k)).toMatchObject({ type: "flushed", messages: 3 });
    expect(state).toMatchObject({ flushed: 3, failures: 0 });
    expect(writes).toEqual([[1, 2, 3]]);
  });

  it("flushes changed sessions even without new messages", async () => {
    const session = { id: "s1", version: 2 } as Session;
    const { s, state } = store(0, [session]);
    expect(await flushOnce(s, sink().k)).toMatchObject({ type: "flushed", messages: 0, sessions: 1 });
    expect(state.sessions).toEqual([]);
  });

  it("caps the backoff", () => {
    expect(backoffMs(1)).toBe(1000);
    expect(backoffMs(30)).toBe(FLUSH_BACKOFF_MAX_MS);
  });
});

describe("the room's flush schedule (FLUSH_INTERVAL_MS 1000)", () => {
  async function recorded(visitorId: string) {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, visitorId);
    const writes: number[][] = [];
    await runInDurableObject(stub, (r: ConversationRoom) => {
      const real = writerSink(env, ref);
      r.sink = {
        async write(m, s) {
          writes.push(m.map((x) => x.seq));
          return real.write(m, s);
        },
      };
    });
    const agent = { type: "agent" as const, id: o.user.id as string, name: "Agent" };
    const alarm = () => runInDurableObject(stub, (_r: ConversationRoom, state) => state.storage.getAlarm());
    return { ref, stub, writes, agent, alarm };
  }

  /**
   * Pretends the last flush started `ms` from now, so that the next flush is far off (a loaded
   * machine cannot race it). The backstop alarm the first message set is spent first (it flushes
   * nothing): on a slow machine it could otherwise fire in the middle of the test's sends.
   */
  const lastFlushIn = async (stub: DurableObjectStub<ConversationRoom>, ms: number) => {
    await runDurableObjectAlarm(stub);
    await runInDurableObject(stub, (r: ConversationRoom) => void ((r as unknown as { lastFlushAt: number }).lastFlushAt = Date.now() + ms));
  };

  const timerAt = (stub: DurableObjectStub<ConversationRoom>) => runInDurableObject(stub, (r: ConversationRoom) => (r as unknown as { flushTimerAt: number | null }).flushTimerAt);

  it("a quiet conversation's message goes to D1 at once, on the room's timer (no alarm event: the alarm is the backstop, FLUSH_BACKSTOP_MS on); the burst behind it waits for the interval and goes in one batch", async () => {
    const { ref, stub, writes, agent, alarm } = await recorded("flush-burst");
    const before = Date.now();
    expect(await stub.send(ref, agent, { content: "first" })).toMatchObject({ ok: true });
    await eventually(async () => writes.length === 1, "the first message flushed at once");
    // The timer flushed it: the backstop alarm is still set, FLUSH_BACKSTOP_MS after the flush was due.
    const backstop = await alarm();
    expect(backstop, "the backstop alarm has not fired").not.toBeNull();
    expect(backstop!).toBeGreaterThanOrEqual(before + FLUSH_BACKSTOP_MS);
    expect(await timerAt(stub)).toBeNull();
    await lastFlushIn(stub, 30_000);
    for (let i = 2; i <= 11; i++) expect(await stub.send(ref, agent, { content: `burst ${i}` })).toMatchObject({ ok: true });
    expect(await timerAt(stub)).toBeGreaterThan(Date.now() + 20_000); // the interval after that flush, not now
    expect(writes).toHaveLength(1);
    // As if the timer were lost: the backstop alarm flushes the burst.
    await runDurableObjectAlarm(stub);
    expect(writes).toEqual([[1], [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]);
    expect((await assertX1(ref.id)).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it("a batch lands in D1 with every column, once, also when the same batch is written again", async () => {
    const { ref, stub, writes, agent } = await recorded("flush-rows");
    expect(await stub.send(ref, agent, { content: "first" })).toMatchObject({ ok: true });
    await eventually(async () => writes.length === 1, "the first message flushed");
    await lastFlushIn(stub, 60_000);
    const n = 13;
    for (let i = 0; i < n; i++) {
      const input =
        i === 3
          ? { content: "", content_type: "image", rich_media: { url: "https://example.com/a.png", alt: "a \"quoted\" <b>alt</b>" } }
          : i === 5
            ? { content: "internal note", private: true }
            : { content: `row ${i} ' ; -- é 😀`, client_msg_id: `rows.${i}` };
      expect(await stub.send(ref, agent, input)).toMatchObject({ ok: true });
    }
    await runDurableObjectAlarm(stub);
    expect(writes.map((w) => w.length)).toEqual([1, n]);
    // A flush retried after D1 committed (its answer lost) writes the same rows again: no change.
    const pending = await runInDurableObject(stub, (r: ConversationRoom) => (r as unknown as { log: { after(s: number, l: number, a: string): Message[] } }).log.after(1, 100, "staff"));
    expect(pending).toHaveLength(n);
    await writerSink(env, ref).write(pending, []);
    expect(await assertX1(ref.id)).toHaveLength(n + 1);
    const d1 = await env.DB.prepare(
      "SELECT id, org_id, conversation_id, session_id, seq, sender_type, sender_id, sender_name, content_type, content, rich_media, client_msg_id, private, created_at, status FROM messages WHERE conversation_id = ? AND seq > 1 ORDER BY seq",
    )
      .bind(ref.id)
      .all();
    expect(d1.results).toEqual(
      pending.map((m) => ({
        id: m.id, org_id: ref.org_id, conversation_id: ref.id, session_id: m.session_id, seq: m.seq, sender_type: m.sender_type, sender_id: m.sender_id,
        sender_name: m.sender_name, content_type: m.content_type, content: m.content, rich_media: m.rich_media === null ? null : JSON.stringify(m.rich_media),
        client_msg_id: m.client_msg_id, private: m.private ? 1 : 0, created_at: m.created_at, status: m.status,
      })),
    );
    expect(pending[3]).toMatchObject({ content_type: "image", rich_media: { url: "https://example.com/a.png" } });
    expect(pending[5]).toMatchObject({ content: "internal note", private: true });
    // Each index a row touches is billed as another row written: the flushed table keeps the id
    // and the (conversation, seq) key its exactly-once rests on, and nothing else (migration 0009).
    const indexes = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' ORDER BY name").all<{ name: string }>();
    expect(indexes.results.map((r) => r.name)).toEqual(["messages_conversation_seq", "sqlite_autoindex_messages_1"]);
  });

  it("a full batch waiting flushes without waiting for the interval", async () => {
    const { ref, stub, writes, agent } = await recorded("flush-full");
    expect(await stub.send(ref, agent, { content: "first" })).toMatchObject({ ok: true });
    await eventually(async () => writes.length === 1, "the first message flushed");
    await lastFlushIn(stub, 60_000);
    for (let i = 2; i <= FLUSH_BATCH_ROWS + 1; i++) await stub.send(ref, agent, { content: `m ${i}` });
    await eventually(async () => writes.flat().length === FLUSH_BATCH_ROWS + 1, "the full batch flushed, not a minute later", 10_000);
    expect(writes[1]).toHaveLength(FLUSH_BATCH_ROWS);
  });
});
