/**
 * The organisation's D1Writer: rooms' flushes that arrive together go to D1 in one batch; a write
 * D1 refuses fails only its own room (which keeps its rows and retries); the rows land once.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ConversationRef } from "../../src/core/conversation-ref";
import type { Message } from "../../src/core/message";
import { writerOf } from "../../src/conversation/d1-writer";
import { eventually, newOrg } from "./helpers";
import { assertX1, conversationOf } from "./invariants";

const message = (ref: ConversationRef, seq: number, content: string | null): Message =>
  ({
    id: crypto.randomUUID(),
    conversation_id: ref.id,
    session_id: "s-test",
    seq,
    sender_type: "agent",
    sender_id: "a-test",
    sender_name: "Agent",
    content_type: "text",
    content,
    rich_media: null,
    client_msg_id: null,
    private: false,
    status: "SENT",
    created_at: new Date().toISOString(),
  }) as unknown as Message;

describe("D1Writer", () => {
  it("flushes of many conversations that arrive together go to D1 in one batch, every row once", async () => {
    const o = await newOrg();
    const agent = { type: "agent" as const, id: o.user.id as string, name: "Agent" };
    const convs = await Promise.all(Array.from({ length: 8 }, (_, i) => conversationOf(o.pk, `writer-batch-${i}`)));
    const writer = writerOf(env, convs[0]!.ref);
    // Each room's first message flushes at once (a quiet conversation), all within the writer's window.
    const sent = await Promise.all(convs.map(({ ref, stub }, i) => stub.send(ref, agent, { content: `hello ${i}` })));
    for (const r of sent) expect(r).toMatchObject({ ok: true });
    await eventually(async () => (await writer.getStats()).writes >= convs.length, "every room's flush reached the writer");
    const stats = await writer.getStats();
    expect(stats.writes).toBe(convs.length);
    expect(stats.batches, `${stats.writes} flushes in ${stats.batches} D1 batches`).toBeLessThanOrEqual(2);
    for (const { ref } of convs) expect(await assertX1(ref.id)).toHaveLength(1);
  });

  it("a write D1 refuses fails only its own caller; the others in the same batch land", async () => {
    const o = await newOrg();
    const ref = (n: number): ConversationRef => ({ id: `writer-fake-${n}-${crypto.randomUUID()}`, org_id: o.org.id, channel_id: "c-test", end_user: { id: "e-test", external_id: "e-test", display_name: null } });
    const writer = env.D1_WRITER.getByName(`org:${o.org.id}`);
    const good = [ref(1), ref(2), ref(3)];
    const bad = ref(4);
    const results = await Promise.allSettled([
      writer.write(good[0]!, [message(good[0]!, 1, "one")], []),
      writer.write(bad, [message(bad, 1, null)], []), // content is NOT NULL in D1
      writer.write(good[1]!, [message(good[1]!, 1, "two"), message(good[1]!, 2, "three")], []),
      writer.write(good[2]!, [message(good[2]!, 1, "four")], []),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/NOT NULL/);
    const rows = await env.DB.prepare(`SELECT conversation_id, seq, content FROM messages WHERE conversation_id LIKE 'writer-fake-%' AND org_id = ? ORDER BY content`)
      .bind(o.org.id)
      .all();
    expect(rows.results.map((r) => r.content)).toEqual(["four", "one", "three", "two"]);
    const stats = await writer.getStats();
    expect(stats.retriedAlone).toBeGreaterThan(0);
    // The same writes again (a room's retry after a lost answer): nothing changes.
    await writer.write(good[1]!, [message(good[1]!, 1, "two")], []);
    const again = await env.DB.prepare(`SELECT COUNT(*) AS n FROM messages WHERE conversation_id = ?`).bind(good[1]!.id).first<{ n: number }>();
    expect(again?.n).toBe(2);
  });
});
