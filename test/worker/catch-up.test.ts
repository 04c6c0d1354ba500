/**
 * A client more than MAX_REPLAY messages behind (back from a long drop, or closed 4009 as a slow
 * consumer) gets `resync_required` from the socket and catches up over REST from its last seq:
 * `after=<seq>` pages forward, oldest first, on the agent's and the visitor's history endpoints.
 */
import { describe, expect, it } from "vitest";
import { MAX_REPLAY } from "../../src/conversation/protocol";
import { call, newOrg, openSocket } from "./helpers";

/** Every page after `from`, `limit` at a time, until an empty one; the seqs in order. */
async function pageAfter(url: (after: number) => string, from: number, get: (path: string) => Promise<{ status: number; body: any }>) {
  const seqs: number[] = [];
  let after = from;
  for (let pages = 0; pages < 20; pages++) {
    const r = await get(url(after));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    if (r.body.length === 0) return { seqs, pages };
    seqs.push(...r.body.map((m: any) => m.seq as number));
    after = r.body.at(-1).seq;
  }
  throw new Error("more than 20 pages");
}

describe("catching up over REST after resync_required", () => {
  it("a resume past the replay window says resync_required; after=<seq> pages bring every later message once, in order, for the agent and the visitor", async () => {
    const o = await newOrg();
    const opened = await call("/chat-widget/session", { body: { key: o.pk, session_id: "catch-up" } });
    const conv = opened.body.conversation_id as string;
    const total = MAX_REPLAY + 20;
    for (let i = 0; i < total; i += 20) {
      const batch = Array.from({ length: 20 }, (_, j) => o.agent.call(`/api/conversations/${conv}/messages`, { body: { content: `m${i + j}`, client_msg_id: `c${i + j}` } }));
      for (const r of await Promise.all(batch)) expect(r.status).toBe(201);
    }

    const first = await openSocket(`/ws/visitor?key=${o.pk}&external_id=catch-up`);
    const epoch = (await first.next((f) => f.type === "ready")).epoch as string;
    first.close();
    const resumed = await openSocket(`/ws/visitor?key=${o.pk}&external_id=catch-up&since=5&epoch=${epoch}`);
    const ready = await resumed.next((f) => f.type === "ready");
    expect(ready).toMatchObject({ resync_required: true, recovered: false, head_seq: total, messages: [] });
    resumed.close();

    const expected = Array.from({ length: total - 5 }, (_, i) => i + 6);
    const agent = await pageAfter((after) => `/api/conversations/${conv}/messages?after=${after}&limit=100`, 5, o.agent.call);
    expect(agent.seqs).toEqual(expected);
    expect(agent.pages).toBe(Math.ceil(expected.length / 100));
    const visitor = await pageAfter((after) => `/chat-widget/history/${conv}?external_id=catch-up&after=${after}&limit=100`, 5, call);
    expect(visitor.seqs).toEqual(expected);

    // Without `after`, both still answer the newest page.
    expect((await o.agent.call(`/api/conversations/${conv}/messages?limit=3`)).body.map((m: any) => m.seq)).toEqual([total - 2, total - 1, total]);
    expect((await call(`/chat-widget/history/${conv}?external_id=catch-up`)).body.map((m: any) => m.seq)).toEqual(Array.from({ length: 100 }, (_, i) => total - 99 + i));
  });

  it("a malformed after or limit is a 400 with a JSON error, on both endpoints", async () => {
    const o = await newOrg();
    const conv = (await call("/chat-widget/session", { body: { key: o.pk, session_id: "bad-after" } })).body.conversation_id as string;
    for (const q of ["after=-1", "after=abc", "after=1.5", "limit=0", "limit=101"]) {
      for (const r of [await o.agent.call(`/api/conversations/${conv}/messages?${q}`), await call(`/chat-widget/history/${conv}?external_id=bad-after&${q}`)]) {
        expect(r.status, q).toBe(400);
        expect(r.body.error.code, q).toBeTypeOf("string");
        expect(r.body.error.message, q).toBeTypeOf("string");
      }
    }
  });
});
