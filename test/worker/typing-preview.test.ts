// The typing preview: a webchat channel's opt-in that shows agents the visitor's draft as it is
// typed. Off by default; staff sockets only; never stored; the visitor is told (ready frame).
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { parseChannelSettings } from "../../src/core/conversation-ref";
import { call, newOrg, openSocket } from "./helpers";
import { objectLog } from "./invariants";

type Sock = Awaited<ReturnType<typeof openSocket>>;

async function visitorAndAgent(o: Awaited<ReturnType<typeof newOrg>>, visitorId: string) {
  const visitor = await openSocket(`/ws/visitor?embed_token=${o.webchat.token}&external_id=${visitorId}`);
  const ready = await visitor.next((f) => f.type === "ready");
  const tab = await openSocket(`/ws/visitor?embed_token=${o.webchat.token}&external_id=${visitorId}`);
  await tab.next((f) => f.type === "ready");
  const agent = await openSocket(`/ws/conversations/${ready.conversation_id}`, { cookie: o.cookie });
  await agent.next((f) => f.type === "ready");
  return { visitor, tab, agent, ready, conversationId: ready.conversation_id as string };
}

/** Sends a message as a marker and waits for it on `to`: every frame sent before it has arrived. */
async function settle(from: Sock, to: Sock, id: string) {
  from.send({ type: "send", content: `marker ${id}`, client_msg_id: id });
  await to.next((f) => f.type === "message" && f.message?.client_msg_id === id);
}

describe("typing preview", () => {
  it("off by default: the ready frame says so and drafts reach nobody", async () => {
    const o = await newOrg();
    const { visitor, tab, agent, ready } = await visitorAndAgent(o, "no-preview");
    expect(ready.typing_preview).toBe(false);
    visitor.send({ type: "typing", typing: true, draft: "my card number is" });
    await settle(visitor, agent, "m1");
    expect(agent.frames.filter((f) => f.type === "draft")).toEqual([]);
    expect(tab.frames.filter((f) => f.type === "draft")).toEqual([]);
  });

  it("opted in: agents see the draft as typed, the visitor's other tabs do not, nothing is stored", async () => {
    const o = await newOrg();
    const patched = await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { typing_preview: true } });
    expect(patched.status).toBe(200);
    expect(patched.body.typing_preview).toBe(true);
    const { visitor, tab, agent, ready, conversationId } = await visitorAndAgent(o, "preview");
    expect(ready.typing_preview).toBe(true);

    visitor.send({ type: "typing", typing: true, draft: "Hello, I" });
    const first = await agent.next((f) => f.type === "draft");
    expect(first).toEqual({ type: "draft", sender_type: "end_user", sender_id: "preview", sender_name: null, draft: "Hello, I" });
    await new Promise((r) => setTimeout(r, 200));
    visitor.send({ type: "typing", typing: true, draft: "Hello, I need <b>help</b>" });
    await agent.next((f) => f.type === "draft" && f.draft === "Hello, I need <b>help</b>");
    visitor.send({ type: "typing", typing: false, draft: "" });
    await agent.next((f) => f.type === "draft" && f.draft === "");
    await settle(visitor, agent, "m2");

    expect(tab.frames.filter((f) => f.type === "draft")).toEqual([]);
    expect(visitor.frames.filter((f) => f.type === "draft")).toEqual([]);
    const stored = await objectLog(conversationId);
    expect(stored.map((m) => m.content)).toEqual(["marker m2"]);

    // A draft over 2,000 characters is refused with an error frame; the socket stays open.
    visitor.send({ type: "typing", typing: true, draft: "x".repeat(2_001) });
    await visitor.next((f) => f.type === "error" && f.code === "unknown_event");
    await settle(visitor, agent, "m3");
  });

  it("an agent's draft goes nowhere; typing_preview belongs to webchat channels", async () => {
    const o = await newOrg();
    await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { typing_preview: true } });
    const { visitor, agent } = await visitorAndAgent(o, "agent-draft");
    agent.send({ type: "typing", typing: true, draft: "internal thoughts" });
    await settle(agent, visitor, "a1");
    expect(visitor.frames.filter((f) => f.type === "draft")).toEqual([]);
    const mobile = await o.agent.call("/api/integrations/mobile", { body: { name: "app" } });
    const id = mobile.body.channel_id ?? mobile.body.id;
    const refused = await o.agent.call(`/api/integrations/${id}`, { method: "PATCH", body: { typing_preview: true } });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("validation_failed");
  });

  it("a socket's room starts from the setting the Worker's lookup just read, and never keeps it past the 10 s re-read", async () => {
    const o = await newOrg();
    const visitorId = "seeded-preview";
    // The widget's session: the Worker reads the channel (preview off) and keeps the visitor for 60 s.
    const session = await call("/chat-widget/session", { body: { embed_token: o.webchat.token, session_id: visitorId } });
    expect(session.status).toBe(200);
    // Turned on behind the Worker's back (no API call, so the Worker's entry is not forgotten).
    await env.DB.prepare("UPDATE channels SET typing_preview = 1 WHERE id = ?").bind(o.webchat.channel_id).run();
    const url = `/ws/visitor?embed_token=${o.webchat.token}&external_id=${visitorId}`;
    const first = await openSocket(url);
    // The room took the Worker's fresh reading (no D1 read of its own): still off.
    expect((await first.next((f) => f.type === "ready")).typing_preview).toBe(false);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 11_000);
      // The Worker's entry is still in its cache (60 s), but its reading is 11 s old: the room reads D1.
      const second = await openSocket(url);
      expect((await second.next((f) => f.type === "ready")).typing_preview).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("the room ignores a missing or malformed x-parley-channel header (and reads D1 itself)", () => {
    expect(parseChannelSettings(null)).toBeNull();
    expect(parseChannelSettings("not json")).toBeNull();
    expect(parseChannelSettings(JSON.stringify({ typing_preview: "yes", read_at: 1 }))).toBeNull();
    expect(parseChannelSettings(JSON.stringify({ typing_preview: true, read_at: -5 }))).toBeNull();
    expect(parseChannelSettings(JSON.stringify({ typing_preview: true, read_at: 1_700_000_000_000 }))).toEqual({ typing_preview: true, read_at: 1_700_000_000_000 });
  });
});
