/**
 * Seed 004's webhook: the async method's bot answer and agents' replies reach the Chat API
 * channel's webhook URL, signed and through the real local queue. `fetch()` to
 * `https://*.chatapi-hook.test` is answered here (outbound interception; Parley's code runs as is).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, eventually, newOrg } from "./helpers";

const hits: { host: string; id: string; json: any }[] = [];
const realFetch = globalThis.fetch;
beforeAll(() => {
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const host = new URL(req.url).hostname;
    if (!host.endsWith(".chatapi-hook.test")) return realFetch(input, init);
    hits.push({ host, id: req.headers.get("webhook-id") ?? "", json: JSON.parse(await req.text()) });
    return new Response("ok");
  }) as typeof fetch;
});
afterAll(() => {
  globalThis.fetch = realFetch;
});

describe("Chat API webhook", () => {
  it("delivers the async answer of the bot and the agents' replies, in seed 004's array shape", async () => {
    const o = await newOrg();
    const host = `h-${crypto.randomUUID().slice(0, 8)}.chatapi-hook.test`;
    const created = await o.agent.call("/api/integrations/chat-api", { body: { name: "App", webhook_url: `https://${host}/hook` } });
    expect(created.status).toBe(201);
    expect(created.body.webhook_secret).toMatch(/^whsec_/);
    const token = created.body.token as string;
    await o.agent.call(`/api/integrations/${created.body.channel_id}/bot`, {
      method: "PUT",
      body: { kind: "flow", config: { intents: [{ name: "/Hours", keywords: ["hours"], reply: { content: "9 to 5." } }], handoff_keywords: ["human"] } },
    });

    const asked = await call(`/chatapi/${token}/async`, { body: { clientId: "app-user", query: "your hours?" } });
    expect(asked.status).toBe(200);
    const questionId = asked.body.questionId as string;
    const answer = await eventually(async () => hits.find((h) => h.host === host && h.json[0]?.questionId === questionId), "the async answer reached the webhook");
    expect(answer.json).toEqual([
      expect.objectContaining({ clientId: "app-user", questionId, data: expect.objectContaining({ nlpClass: "/Hours", answer: "9 to 5.", replies: [expect.objectContaining({ type: "text", text: "9 to 5." })] }) }),
    ]);
    // The stored question is the one the async call named.
    const history = await call(`/chatapi/${token}/client/app-user/history`);
    expect(history.body.messages.find((m: any) => m.questionId === questionId)?.text).toBe("your hours?");

    // Hand-off, then an agent replies: the reply reaches the webhook too (sync bot answers do not).
    await call(`/chatapi/${token}`, { body: { clientId: "app-user", query: "human please" } });
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=unassigned")).body[0], "handed off");
    const reply = await o.agent.call(`/api/conversations/${conv.id}/messages`, { body: { content: "Hi, Ann here." } });
    const agentHit = await eventually(async () => hits.find((h) => h.host === host && h.json[0]?.questionId === reply.body.id), "the agent reply reached the webhook");
    expect(agentHit.json[0]).toMatchObject({ clientId: "app-user", data: { answer: "Hi, Ann here.", agent: { id: o.user.id } } });
    const syncAnswers = hits.filter((h) => h.host === host && h.json[0]?.data?.nlpClass === "/Handoff");
    expect(syncAnswers).toEqual([]);
  });

  it("refuses webhook URLs that could reach private networks", async () => {
    const o = await newOrg();
    for (const url of ["https://10.0.0.5/hook", "https://169.254.169.254/latest", "http://example.com/hook", "ftp://example.com/x", "not a url"]) {
      const r = await o.agent.call("/api/integrations/chat-api", { body: { name: "App", webhook_url: url } });
      expect(r.status, url).toBe(400);
    }
  });
});
