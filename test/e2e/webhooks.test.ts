// Webhooks end to end: real `wrangler dev` (local D1, Durable Objects and Queues) posting to a
// real HTTP receiver on 127.0.0.1 that is DOWN (nothing listening: connection refused) while the
// events happen, and comes UP later. Every event must then arrive exactly once after dedupe by
// webhook-id, signed with the endpoint's secret (checked here with node:crypto, the way a
// receiver following docs/webhooks.md would), and nothing may be lost.
// .dev.vars gives the server ALLOW_LOCAL_WEBHOOKS=true and WEBHOOK_BACKOFF_BASE_SECONDS=1
// (retries after 1 s, 4 s, 16 s, ... instead of 10 s, 40 s, 160 s, ...).
import type { Server } from "node:http";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../scripts/lib/wrangler.mjs";
import { dostiVisitor, listed, newOrg, sent, visitorId } from "./fixtures.ts";
import { expectStatus, waitFor } from "./harness.ts";
import { startReceiver, stopReceiver, verifySignature, type Received } from "./webhook-receiver.ts";

let server: Server | undefined;
afterAll(() => stopReceiver(server));

describe("webhooks against wrangler dev", () => {
  it("a receiver that is down while events happen gets every event exactly once when it comes up, signed", { timeout: 120_000 }, async () => {
    const { agent, pk } = await newOrg();
    const port = await freePort(); // probed and released: nothing listens there now
    const created = expectStatus(await agent.api("/api/webhooks", { body: { url: `http://127.0.0.1:${port}/parley-hook` } }), 201, "create webhook").json;
    expect(created.secret).toMatch(/^whsec_/);
    const secret: string = created.secret;

    // Refused at config time: private and link-local literals, plain http elsewhere.
    for (const url of ["https://169.254.169.254/latest/meta-data", "https://10.0.0.5/hook", "http://hooks.example.com/hook"]) {
      expectStatus(await agent.api("/api/webhooks", { body: { url } }), 400, `create ${url}`);
    }

    // Events while the receiver is down.
    const externalId = visitorId("wh");
    const visitor = dostiVisitor(pk, externalId, "Webhook Visitor");
    for (let i = 1; i <= 4; i++) await sent(visitor.send(`visitor message ${i}`));
    const conv = await listed(agent, "all", externalId);
    expectStatus(await agent.api(`/api/conversations/${conv.id}/assign`, { method: "POST" }), 200, "assign");
    expectStatus(await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "internal note", private: true } }), 201, "whisper");
    expectStatus(await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "agent reply" } }), 201, "reply");
    expectStatus(await agent.api(`/api/conversations/${conv.id}/resolve`, { body: { tags: ["e2e"] } }), 200, "resolve");
    // conversation.created + 6 message.created + assigned + resolved
    const expectedCount = 9;

    const deliveries = () => agent.api<any[]>(`/api/webhooks/${created.id}/deliveries?limit=100`).then((r) => expectStatus(r, 200, "deliveries").json);
    const failing = await waitFor(
      async () => {
        const rows = await deliveries();
        return rows.length === expectedCount && rows.every((r) => r.status === "failed" && r.attempts >= 1) && rows;
      },
      { timeoutMs: 30_000, intervalMs: 250, message: "every delivery failed at least once while the receiver is down" },
    );
    for (const row of failing) {
      expect(row.last_status).toBeNull();
      expect(row.last_error).toMatch(/^connection failed/);
    }

    // The receiver comes up: the retries deliver.
    const received: Received[] = [];
    server = await startReceiver(port, received);
    const delivered = await waitFor(
      async () => {
        const rows = await deliveries();
        return rows.length === expectedCount && rows.every((r) => r.status === "delivered") && rows;
      },
      { timeoutMs: 60_000, intervalMs: 500, message: "every delivery delivered after the receiver came up" },
    );

    // Dedupe by webhook-id, as a receiver does: each event exactly once, nothing lost.
    const byId = new Map<string, Received>();
    for (const r of received) {
      expect(verifySignature(secret, r), `signature of ${r.id}`).toBe(true);
      const seen = byId.get(r.id);
      if (seen) expect(seen.body).toBe(r.body); // a redelivery carries the same bytes
      else byId.set(r.id, r);
    }
    expect(new Set(byId.keys())).toEqual(new Set(delivered.map((r) => r.id)));
    const events = [...byId.values()].map((r) => r.json);
    expect(new Set(events.map((e) => e.id)).size).toBe(expectedCount);
    expect(events.map((e) => e.type).sort()).toEqual([
      "conversation.assigned",
      "conversation.created",
      "conversation.resolved",
      ...Array<string>(6).fill("message.created"),
    ]);
    for (const e of events) expect(e.data.conversation.id).toBe(conv.id);

    // Exactly the stored messages, whispers included and marked.
    const stored = expectStatus(await agent.api<any[]>(`/api/conversations/${conv.id}/messages?limit=100`), 200, "history").json;
    const messages = events.filter((e) => e.type === "message.created").map((e) => e.data.message);
    expect(messages.map((m) => m.id).sort()).toEqual(stored.map((m) => m.id).sort());
    expect(messages.filter((m) => m.private).map((m) => m.content)).toEqual(["internal note"]);
    expect(events.find((e) => e.type === "conversation.resolved").data.session).toMatchObject({ status: "resolved", tags: ["e2e"] });

    // Each delivery failed while the receiver was down, then succeeded; none went to the dead-letter queue.
    expect(delivered.every((r) => r.attempts >= 2 && r.last_error === null && r.last_status === 204)).toBe(true);
    expect(await agent.api<any[]>(`/api/webhooks/${created.id}/deliveries?status=dead`).then((r) => r.json)).toEqual([]);
  });
});
