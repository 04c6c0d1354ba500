/** The outbox core, driven through recording fakes of its two dependencies. */
import { describe, expect, it } from "vitest";
import type { Message } from "../../src/core/message";
import { backoffMs, FLUSH_BACKOFF_MAX_MS, FLUSH_BATCH_ROWS, flushOnce, type OutboxSink, type OutboxStore } from "../../src/conversation/flush";
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
