/** Seed 001's rich media shapes, validated at the edge and stored as sent. */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { MessageLog } from "../../src/conversation/log";
import type { ConversationRoom } from "../../src/conversation/room";
import type { SenderType } from "../../src/core/message";
import { eventually, newOrg, dostiVisitor } from "./helpers";
import { conversationOf } from "./invariants";

const valid: Record<string, unknown>[] = [
  { content_type: "image", content: "Optional caption", rich_media: { url: "https://example.com/photo.jpg", alt: "A scenic view" } },
  { content_type: "file", content: "invoice.pdf", rich_media: { url: "https://example.com/files/invoice.pdf", filename: "invoice.pdf", size: 204800, mime_type: "application/pdf" } },
  { content_type: "quick_button", content: "Choose an option:", rich_media: { buttons: [{ label: "Yes", value: "yes" }, { label: "No", value: "no" }] } },
  { content_type: "carousel", content: "", rich_media: { cards: [{ image_url: "https://example.com/a.png", title: "Product A", subtitle: "Short description", buttons: [{ label: "Buy now", value: "buy_A" }] }] } },
  { content_type: "dropdown", content: "Select your region:", rich_media: { placeholder: "-- pick one --", options: [{ label: "Asia Pacific", value: "apac" }, { label: "Europe", value: "eu" }] } },
];

const invalid: [string, Record<string, unknown>][] = [
  ["image with javascript: url", { content_type: "image", rich_media: { url: "javascript:alert(1)" } }],
  ["quick_button without buttons", { content_type: "quick_button", content: "x", rich_media: { buttons: [] } }],
  ["unknown field in rich media", { content_type: "dropdown", rich_media: { options: [{ label: "a", value: "a" }], onload: "x" } }],
  ["text with rich media", { content_type: "text", content: "hi", rich_media: { url: "https://x.test" } }],
  ["empty text", { content_type: "text", content: "   " }],
  ["unknown content type", { content_type: "video", content: "x" }],
  ["content as object", { content: { $ne: "" } }],
  ["client_msg_id as object", { content: "x", client_msg_id: { $ne: "" } }],
];

describe("rich media", () => {
  it("accepts every seed 001 shape and returns it unchanged", async () => {
    const o = await newOrg();
    await dostiVisitor(o.pk, "rm-1").send("hello");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    for (const body of valid) {
      const r = await o.agent.call(`/api/conversations/${conv.id}/messages`, { body });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body).toMatchObject(body);
    }
    const history = await o.agent.call(`/api/conversations/${conv.id}/messages`);
    expect(history.body.slice(1).map((m: any) => m.rich_media)).toEqual(valid.map((v) => v.rich_media));
  });

  it.each(invalid)("refuses %s with 400 and a field path, storing nothing", async (_name, body) => {
    const o = await newOrg();
    await dostiVisitor(o.pk, "rm-2").send("hello");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    const r = await o.agent.call(`/api/conversations/${conv.id}/messages`, { body });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("validation_failed");
    expect((await o.agent.call(`/api/conversations/${conv.id}/messages`)).body).toHaveLength(1);
  });
});

describe("client message ids and the per-sender rate limit", () => {
  it("a retry is answered with the original even once its sender is over the rate limit; a new id is refused; nothing is stored twice", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "rate-retry");
    const first: any[] = [];
    for (let i = 1; i <= 20; i++) {
      const r = await v.send(`m${i}`, { clientMessageId: `rr-${i}` });
      expect(r.status).toBe(200);
      first.push(r.body.message);
    }
    const over = await v.send("one too many", { clientMessageId: "rr-21" });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe("rate_limited");
    for (const i of [20, 1]) {
      const retry = await v.send(`m${i}`, { clientMessageId: `rr-${i}` });
      expect(retry.status).toBe(200);
      expect(retry.body.message.id).toBe(first[i - 1].id);
    }
    const changed = await v.send("m5 but different", { clientMessageId: "rr-5" });
    expect(changed.status).toBe(409);
    const polled = await v.poll(0);
    expect(polled.body.messages.map((m: any) => m.message)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
  });
});

describe("the log answers 'what is new' from memory", () => {
  it("every query after a seq or a time, any audience, sender filter and limit, answers exactly what SQLite answers; also after statuses change", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "memory-log");
    const visitor = { type: "end_user" as const, id: "memory-log", name: null };
    const agent = { type: "agent" as const, id: o.user.id, name: "Agent" };
    const send = async (who: typeof visitor | typeof agent, i: number, whisper = false) => {
      const r = await stub.send(ref, who, { content: `m${i}`, client_msg_id: `ml-${i}`, private: whisper });
      expect(r.ok).toBe(true);
    };
    for (let i = 0; i < 12; i++) await send(i % 3 === 0 ? agent : visitor, i, i % 5 === 4 && i % 3 === 0);
    const compare = () =>
      runInDurableObject(stub, (r: ConversationRoom, state) => {
        const log = (r as unknown as { log: MessageLog }).log;
        const fresh = new MessageLog(state.storage.sql, () => ref.id); // nothing kept: SQLite answers
        const all = fresh.query({ after: 0, audience: "staff", limit: 1000 });
        const times = all.flatMap((m) => [Date.parse(m.created_at) - 1, Date.parse(m.created_at)]);
        let compared = 0;
        for (const audience of ["staff", "end_user"] as const) {
          for (const senders of [undefined, ["agent"], ["end_user", "bot"]] as SenderType[][]) {
            for (const limit of [1, 3, 100]) {
              for (const after of [0, ...all.map((m) => m.seq)]) {
                expect(log.query({ after, audience, senders, limit })).toEqual(fresh.query({ after, audience, senders, limit }));
                compared++;
              }
              for (const afterMs of times) {
                expect(log.query({ afterMs, audience, senders, limit })).toEqual(fresh.query({ afterMs, audience, senders, limit }));
                compared++;
              }
            }
          }
        }
        return compared;
      });
    expect(await compare()).toBeGreaterThan(500);
    // A read receipt changes statuses: the kept copies are dropped, and what is kept again stays exact.
    expect((await stub.markRead(ref, visitor, { seq: 6 })).ok).toBe(true);
    for (let i = 12; i < 16; i++) await send(i % 2 ? agent : visitor, i);
    expect(await compare()).toBeGreaterThan(500);
    // 70 messages of 15,000 characters: past the 1,000,000 kept, the oldest leave memory (SQLite answers for them).
    for (let i = 16; i < 86; i++) {
      const r = await stub.send(ref, agent, { content: `${i} ${"w".repeat(15_000)}`, client_msg_id: `ml-${i}` }); // agents are not rate limited
      expect(r.ok).toBe(true);
    }
    const kept = await runInDurableObject(stub, (r: ConversationRoom) => (r as unknown as { log: { recent: unknown[] } }).log.recent.length);
    expect(kept).toBeGreaterThan(50);
    expect(kept).toBeLessThan(70);
    expect(await compare()).toBeGreaterThan(500);
  });
});
