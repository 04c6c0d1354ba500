/** Seed 004's Chat API: every method, with and without a bot. */
import { describe, expect, it } from "vitest";
import { call, eventually, newOrg } from "./helpers";

async function chatApiOrg(opts: { bot?: boolean; blockForm?: boolean } = {}) {
  const o = await newOrg();
  const created = await o.agent.call("/api/integrations/chat-api", { body: { name: "Game", disable_text_input_with_buttons: opts.blockForm ?? false } });
  expect(created.status).toBe(201);
  expect(created.body.token).toMatch(/^ca_/);
  if (opts.bot) {
    const put = await o.agent.call(`/api/integrations/${created.body.channel_id}/bot`, {
      method: "PUT",
      body: {
        kind: "flow",
        config: {
          greeting: { content: "Welcome, player!" },
          intents: [{ name: "/Shop", keywords: ["shop"], reply: { content: "What do you need?", content_type: "quick_button", rich_media: { buttons: [{ label: "Sword", value: "sword" }] } } }],
        },
      },
    });
    expect(put.status).toBe(200);
  }
  return { ...o, token: created.body.token as string, channelId: created.body.channel_id as string };
}

describe("Chat API", () => {
  it("answers sync requests with the bot's replies in seed 004's shape", async () => {
    const o = await chatApiOrg({ bot: true, blockForm: true });
    const start = await call(`/chatapi/${o.token}`, { body: { clientId: "player-1", event: "/start", cid: "conn-1" } });
    expect(start.status).toBe(200);
    expect(start.body).toMatchObject({ clientId: "player-1", cid: "conn-1", data: { answer: "Welcome, player!", replies: [{ type: "text", text: "Welcome, player!" }] } });
    const shop = await call(`/chatapi/${o.token}`, { body: { clientId: "player-1", query: "take me to the shop" } });
    expect(shop.body.data).toMatchObject({
      nlpClass: "/Shop",
      confidence: 1,
      replies: [{ type: "text", text: "What do you need?" }, { type: "buttons", buttons: [{ text: "Sword", value: "sword" }] }],
      endSession: false,
    });
    expect(shop.body.blockForm).toBe(true);
    expect(shop.body.questionId).toMatch(/^[0-9a-f-]{36}$/);
    const simple = await call(`/chatapi/${o.token}?clientId=player-1&query=${encodeURIComponent("shop")}`);
    expect(simple.body).toMatchObject({ clientId: "player-1", query: "shop", event: null, data: { nlpClass: "/Shop" } });
    const history = await call(`/chatapi/${o.token}/client/player-1/history`);
    expect(history.body.messages.map((m: any) => [m.type, m.text])).toEqual([
      ["botMessage", "Welcome, player!"],
      ["clientMessage", "take me to the shop"],
      ["botMessage", "What do you need?"],
      ["clientMessage", "shop"],
      ["botMessage", "What do you need?"],
    ]);
  });

  it("without a bot, queues the client for agents and long-polls their replies as events, once per cid", async () => {
    const o = await chatApiOrg();
    const q = await call(`/chatapi/${o.token}`, { body: { clientId: "c-1", query: "I need help" } });
    expect(q.body.data.replies).toEqual([]);
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=unassigned")).body[0], "queued for agents");
    const waiting = call(`/chatapi/${o.token}/events?clientId=c-1&cid=tab-1&timeout=10`);
    await o.agent.call(`/api/conversations/${conv.id}/messages`, { body: { content: "Hello from an agent" } });
    const events = await waiting;
    expect(events.body.events.map((e: any) => [e.type, e.text])).toEqual([["agentMessage", "Hello from an agent"]]);
    // The same cid gets nothing twice; another cid starts from its own position.
    const again = await call(`/chatapi/${o.token}/events?clientId=c-1&cid=tab-1&timeout=0`);
    expect(again.body.events).toEqual([]);
    const other = await call(`/chatapi/${o.token}/events?clientId=c-1&cid=tab-2&timeout=0&all=true`);
    expect(other.body.events.map((e: any) => e.type)).toEqual(["clientMessage", "agentMessage"]);
    const since = await call(`/chatapi/${o.token}/events?clientId=c-1&ts=0&timeout=0`);
    expect(since.body.events).toHaveLength(1);
  });

  it("keeps the client's state object unchanged and tracks message statuses and unread count", async () => {
    const o = await chatApiOrg({ bot: true });
    const state = { level: 7, inventory: ["sword", { id: 1, nested: [null, true] }], "ünï": "✓" };
    expect((await call(`/chatapi/${o.token}/client/p-2/state`, { body: state })).status).toBe(200);
    expect((await call(`/chatapi/${o.token}/client/p-2/state`)).body).toEqual(state);
    const start = await call(`/chatapi/${o.token}`, { body: { clientId: "p-2", query: "shop" } });
    expect(start.body.data.replies.length).toBeGreaterThan(0);
    expect((await call(`/chatapi/${o.token}/client/p-2/message-not-read-count`)).body).toEqual({ count: 2 });
    const history = (await call(`/chatapi/${o.token}/client/p-2/history`)).body.messages;
    const botIds = history.filter((m: any) => m.type === "botMessage").map((m: any) => m.questionId);
    expect((await call(`/chatapi/${o.token}/client/p-2/message/${botIds[0]}/status`)).body).toEqual({ questionId: botIds[0], status: "SENT" });
    expect((await call(`/chatapi/${o.token}/client/p-2/message/${botIds[0]}/status`, { body: { status: "DELIVERED" } })).status).toBe(200);
    const bulk = await call(`/chatapi/${o.token}/client/p-2/message-statuses`, { body: { statuses: botIds.map((id: string) => ({ questionId: id, status: "READ" })).concat([{ questionId: "nope", status: "READ" }]) } });
    expect(bulk.body).toEqual({ updated: botIds, notFound: ["nope"] });
    expect((await call(`/chatapi/${o.token}/client/p-2/message-not-read-count`)).body).toEqual({ count: 0 });
    expect((await call(`/chatapi/${o.token}/client/p-2/message/${botIds[0]}/status`, { body: { status: "SEEN" } })).status).toBe(400);
  });

  it("refuses unknown tokens, other kinds of tokens and malformed requests", async () => {
    const o = await chatApiOrg();
    expect((await call("/chatapi/ca_unknown", { body: { clientId: "x", query: "hi" } })).status).toBe(401);
    expect((await call(`/chatapi/${o.webchat.token}`, { body: { clientId: "x", query: "hi" } })).status).toBe(401);
    expect((await call(`/chatapi/${o.token}`, { body: { clientId: "x" } })).status).toBe(400);
    expect((await call(`/chatapi/${o.token}`, { body: { clientId: { $ne: 1 }, query: "hi" } })).status).toBe(400);
    expect((await call(`/chatapi/${o.token}/client/x/state`, { body: [1, 2] })).status).toBe(400);
  });
});
