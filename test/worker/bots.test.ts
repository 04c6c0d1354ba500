/** The built-in flow bot: greeting, intents with rich media, fallback, and hand-off to agents. */
import { describe, expect, it } from "vitest";
import { call, dostiVisitor, eventually, newOrg, openSocket } from "./helpers";

const flow = {
  kind: "flow",
  config: {
    greeting: { content: "Hi! I am the Acme bot." },
    intents: [
      { name: "hours", keywords: ["hours", "open"], reply: { content: "We are open 9-17." } },
      {
        name: "plans",
        keywords: ["pricing", "plans"],
        reply: { content: "Pick a plan:", content_type: "quick_button", rich_media: { buttons: [{ label: "Basic", value: "basic" }, { label: "Pro", value: "pro" }] } },
      },
    ],
    fallback: { content: "Sorry, I did not get that." },
    handoff_after_misses: 2,
  },
};

async function botOrg() {
  const o = await newOrg();
  const channels = await o.agent.call("/api/integrations/");
  const web = channels.body.find((c: any) => c.is_default);
  const put = await o.agent.call(`/api/integrations/${web.id}/bot`, { method: "PUT", body: flow });
  expect(put.status).toBe(200);
  return o;
}

const texts = (messages: any[]) => messages.map((m: any) => `${m.sender}:${m.message}`);

describe("flow bot", () => {
  it("greets, answers intents (also with quick buttons), falls back, and hands off after two misses", async () => {
    const o = await botOrg();
    const v = dostiVisitor(o.pk, "bot-1");
    await v.send("what are your hours?");
    await eventually(async () => (await v.poll(0)).body.messages.length >= 3, "bot answered");
    // While the bot handles it, the conversation is not in the agents' unassigned queue.
    const all = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    expect(all.active_session.status).toBe("bot");
    expect((await o.agent.call("/api/conversations/?filter=unassigned")).body).toEqual([]);

    await v.send("pricing please");
    await v.send("blah");
    await v.send("blah blah");
    const final = await eventually(async () => {
      const m = (await v.poll(0)).body.messages;
      return m.length >= 9 && m;
    }, "hand-off messages");
    expect(texts(final)).toEqual([
      "visitor:what are your hours?",
      "bot:Hi! I am the Acme bot.",
      "bot:We are open 9-17.",
      "visitor:pricing please",
      "bot:Pick a plan:",
      "visitor:blah",
      "bot:Sorry, I did not get that.",
      "visitor:blah blah",
      "bot:Connecting you to an agent…",
      "bot:No agent is available right now. Leave a message and we will get back to you.",
    ].slice(0, final.length));
    const history = await o.agent.call(`/api/conversations/${all.id}/messages`);
    expect(history.body.find((m: any) => m.content === "Pick a plan:").rich_media.buttons).toHaveLength(2);
    const queued = await eventually(async () => (await o.agent.call("/api/conversations/?filter=unassigned")).body[0], "in the unassigned queue after hand-off");
    expect(queued.active_session.status).toBe("open");
  });

  it("hands off at once on request, telling visitors whether agents are online", async () => {
    const o = await botOrg();
    const inbox = await openSocket("/ws/org", { cookie: o.cookie });
    await inbox.next((f) => f.type === "ready");
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=bot-2`);
    await visitor.next((f) => f.type === "ready");
    visitor.send({ type: "send", content: "I want a human", client_msg_id: "h-1" });
    const handoff = await visitor.next((f) => f.type === "handoff");
    expect(handoff).toMatchObject({ agents_available: true, session: { status: "open" } });
    const contents = visitor.frames.filter((f) => f.type === "message").map((f) => f.message.content);
    expect(contents).toEqual(["I want a human", "Hi! I am the Acme bot.", "Connecting you to an agent…"]);
  });

  it("stops answering once an agent claims the conversation", async () => {
    const o = await botOrg();
    const v = dostiVisitor(o.pk, "bot-3");
    await v.send("hours?");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    await eventually(async () => (await v.poll(0)).body.messages.length >= 3, "bot answered");
    expect((await o.agent.call(`/api/conversations/${conv.id}/assign`, { method: "POST" })).status).toBe(200);
    await v.send("blah");
    await o.agent.call(`/api/conversations/${conv.id}/messages`, { body: { content: "Agent here" } });
    const m = (await v.poll(0)).body.messages;
    expect(texts(m).slice(3)).toEqual(["visitor:blah", "agent:Agent here"]);
  });

  it("validates bot settings and keeps them per organisation", async () => {
    const o = await newOrg();
    const other = await newOrg();
    const web = (await o.agent.call("/api/integrations/")).body[0];
    const bad = await o.agent.call(`/api/integrations/${web.id}/bot`, { method: "PUT", body: { kind: "flow", config: { intents: [{ name: "x", keywords: [], reply: { content: "y" } }] } } });
    expect(bad.status).toBe(400);
    expect((await other.agent.call(`/api/integrations/${web.id}/bot`, { method: "PUT", body: flow })).status).toBe(404);
    const hook = await o.agent.call(`/api/integrations/${web.id}/bot`, { method: "PUT", body: { kind: "webhook", config: { url: "https://bot.example/hook", secret: "0123456789abcdef0123" } } });
    expect(hook.status).toBe(200);
    expect(JSON.stringify(hook.body)).not.toContain("0123456789abcdef0123");
    expect((await call(`/api/integrations/${web.id}/bot`)).status).toBe(401);
  });
});
