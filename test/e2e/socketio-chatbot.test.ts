// Seed 001 ("Chatbot Platform") over the real socket.io-client against `wrangler dev`: the org
// queue and presence rooms, claiming, read receipts, every rich media type, and end users who
// are authorised by external_id alone. Payloads are the guide's own.
import { afterEach, describe, expect, it } from "vitest";
import { api, expectStatus } from "./harness.ts";
import { listed, newOrg, unlisted, visitorId } from "./fixtures.ts";
import { ack, addAgent, agentOpts, nextEvent, openConversation, payloads, seen, SioPool, type Socket } from "./sio.ts";

const pool = new SioPool();
afterEach(pool.closeAll);

const WS = { transports: ["websocket"] };

/** The guide's message_received shape, plus Parley's seq, sender_name, client_msg_id and private. */
const messageReceived = (m: Record<string, unknown>) => ({
  id: expect.any(String),
  conversation_id: expect.any(String),
  session_id: expect.any(String),
  seq: expect.any(Number),
  sender_type: expect.any(String),
  sender_id: expect.any(String),
  sender_name: null,
  content_type: "text",
  content: expect.any(String),
  rich_media: null,
  client_msg_id: null,
  private: false,
  created_at: expect.any(String),
  ...m,
});

/** A seed 001 end user: connects with nothing, then joins its conversation by external_id. */
async function endUser(conversation_id: string, external_id: string): Promise<Socket> {
  const socket = await pool.connect(WS);
  expect(await ack(socket, "join_conversation", { conversation_id, external_id })).toEqual({ ok: true, conversation_id });
  return socket;
}

describe("seed 001 queue and assignment", () => {
  it("join_queue -> conversation_updated for a new message; claim -> conversation_assigned to every agent in the queue; a second claim fails", async () => {
    const o = await newOrg();
    const second = await addAgent(o.agent);
    const a = await pool.connect(agentOpts(o.agent.cookie, WS));
    const b = await pool.connect(agentOpts(second.cookie, WS));
    for (const s of [a, b]) expect(await ack(s, "join_queue")).toEqual({ ok: true });

    const ext = visitorId("browser-session");
    const conversation_id = await openConversation(o.pk, ext, "Alice");
    const user = await endUser(conversation_id, ext);
    const hello = await ack(user, "send_message", { conversation_id, content: "Hello, I need help", content_type: "text", sender_type: "end_user", external_id: ext });
    expect(hello).toEqual({ ok: true, message: messageReceived({ conversation_id, seq: 1, sender_type: "end_user", sender_id: ext, sender_name: "Alice", content: "Hello, I need help" }) });
    // The sender is in the room too: message_received goes to everyone in it.
    expect(await nextEvent(user, "message_received")).toEqual(hello.message);

    const updated = { conversation_id, sender_type: "end_user", content_type: "text", content: "Hello, I need help" };
    expect(await nextEvent(a, "conversation_updated")).toEqual(updated);
    expect(await nextEvent(b, "conversation_updated")).toEqual(updated);
    await listed(o.agent, "unassigned", ext);

    // Claim over the socket: both agents in the queue see the assignment.
    const claimed = await ack(a, "claim_conversation", { conversation_id });
    expect(claimed).toEqual({ ok: true, conversation_id, assigned_agent_id: o.agent.user.id, assigned_at: expect.any(String) });
    const assigned = { conversation_id, assigned_to: o.agent.user.id };
    expect(await nextEvent(a, "conversation_assigned")).toEqual(assigned);
    expect(await nextEvent(b, "conversation_assigned")).toEqual(assigned);

    // The other agent cannot take it: ack error and the seed's `error` event, to the sender only.
    const refused = await ack(b, "claim_conversation", { conversation_id });
    expect(refused).toEqual({ error: { code: "already_assigned", message: expect.any(String) } });
    expect(await nextEvent(b, "error")).toEqual({ message: refused.error.message, code: "already_assigned", event: "claim_conversation" });

    // The claimer joined the room: its reply reaches the end user; the inbox lists it as mine.
    const reply = await ack(a, "send_message", { conversation_id, content: "Hi! How can I help you today?", content_type: "text", sender_type: "agent" });
    expect(reply).toEqual({ ok: true, message: messageReceived({ conversation_id, seq: 2, sender_type: "agent", sender_id: o.agent.user.id, sender_name: "E2E Agent", content: "Hi! How can I help you today?" }) });
    expect(await nextEvent(user, "message_received")).toEqual(reply.message);
    expect(await nextEvent(a, "message_received")).toEqual(reply.message);
    const replied = { conversation_id, sender_type: "agent", content_type: "text", content: "Hi! How can I help you today?" };
    expect(await nextEvent(a, "conversation_updated")).toEqual(replied);
    expect(await nextEvent(b, "conversation_updated")).toEqual(replied);
    await listed(o.agent, "mine", ext);
    await unlisted(o.agent, "unassigned", conversation_id);

    expect(seen(b, "error")).toHaveLength(1);
    expect(seen(user, "message_received")).toHaveLength(2);
  });

  it("an end user cannot claim, join the queue or send as an agent; a visitor's message to a resolved conversation opens a new session", async () => {
    const o = await newOrg();
    const ext = visitorId("sneaky");
    const conversation_id = await openConversation(o.pk, ext);
    const user = await endUser(conversation_id, ext);
    for (const [event, payload] of [
      ["claim_conversation", { conversation_id }],
      ["join_queue", undefined],
      ["join_org_presence", undefined],
      ["send_message", { conversation_id, content: "I am the agent now", content_type: "text", sender_type: "agent" }],
    ] as const) {
      expect(await ack(user, event, payload)).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
      expect(await nextEvent(user, "error")).toMatchObject({ code: "unauthorized", event });
    }
    expect(expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/messages`), 200, "history").json).toEqual([]);

    const first = await ack(user, "send_message", { conversation_id, content: "first", content_type: "text", sender_type: "end_user", external_id: ext });
    expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/resolve`, { body: {} }), 200, "resolve");
    const second = await ack(user, "send_message", { conversation_id, content: "again", content_type: "text", sender_type: "end_user", external_id: ext });
    expect(second.message.seq).toBe(2);
    expect(second.message.session_id).not.toBe(first.message.session_id);
    await nextEvent(user, "message_received", (m) => m.id === second.message.id);
    expect(payloads(user, "message_received").map((m) => m.content)).toEqual(["first", "again"]);
  });
});

describe("seed 001 presence", () => {
  it("join_org_presence lists who is online; a second agent connecting and disconnecting -> agent_status_changed online, offline; a second tab changes nothing", async () => {
    const o = await newOrg();
    const a = await pool.connect(agentOpts(o.agent.cookie, WS));
    expect(await ack(a, "join_org_presence")).toEqual({ ok: true, online_agents: [o.agent.user.id] });

    // The same agent in a second tab: already online, so no event; closing it: still online.
    const tab = await pool.connect({ query: { apiKey: o.sk }, ...WS });
    expect(await ack(tab, "join_org_presence")).toEqual({ ok: true, online_agents: [o.agent.user.id] });
    tab.disconnect();

    const second = await addAgent(o.agent, "Bob");
    const b = await pool.connect(agentOpts(second.cookie, WS));
    expect(await nextEvent(a, "agent_status_changed")).toEqual({ agent_id: second.id, status: "online" });
    expect(new Set((await ack(b, "join_org_presence")).online_agents)).toEqual(new Set([o.agent.user.id, second.id]));
    b.disconnect();
    expect(await nextEvent(a, "agent_status_changed")).toEqual({ agent_id: second.id, status: "offline" });

    // An abrupt drop (no DISCONNECT packet) counts too.
    const c = await pool.connect(agentOpts(second.cookie, WS));
    expect(await nextEvent(a, "agent_status_changed")).toEqual({ agent_id: second.id, status: "online" });
    c.io.engine.close();
    expect(await nextEvent(a, "agent_status_changed")).toEqual({ agent_id: second.id, status: "offline" });
    c.disconnect();

    expect(seen(a)).toEqual([
      ["connect"],
      ["agent_status_changed", { agent_id: second.id, status: "online" }],
      ["agent_status_changed", { agent_id: second.id, status: "offline" }],
      ["agent_status_changed", { agent_id: second.id, status: "online" }],
      ["agent_status_changed", { agent_id: second.id, status: "offline" }],
    ]);
  });
});

describe("seed 001 conversation room", () => {
  it("mark_read -> ack with seq and messages_read to the room; the history shows READ", async () => {
    const o = await newOrg();
    const ext = visitorId("reader");
    const conversation_id = await openConversation(o.pk, ext);
    const user = await endUser(conversation_id, ext);
    const agent = await pool.connect(agentOpts(o.agent.cookie, WS));
    expect(await ack(agent, "join_conversation", { conversation_id })).toEqual({ ok: true, conversation_id });

    const q = await ack(user, "send_message", { conversation_id, content: "question", content_type: "text", sender_type: "end_user", external_id: ext });
    const a1 = await ack(agent, "send_message", { conversation_id, content: "answer 1", content_type: "text", sender_type: "agent" });
    const a2 = await ack(agent, "send_message", { conversation_id, content: "answer 2", content_type: "text", sender_type: "agent" });
    expect([q, a1, a2].map((r) => r.message.seq)).toEqual([1, 2, 3]);
    await nextEvent(user, "message_received", (m) => m.seq === 3);

    // The end user read both answers (ids in any order): seq is the newest one.
    const read = await ack(user, "mark_read", { conversation_id, message_ids: [a2.message.id, a1.message.id], external_id: ext });
    expect(read).toEqual({ ok: true, seq: 3 });
    const receipt = { conversation_id, reader_type: "end_user", reader_id: ext, seq: 3 };
    expect(await nextEvent(agent, "messages_read")).toEqual(receipt);
    expect(await nextEvent(user, "messages_read")).toEqual(receipt);

    const agentRead = await ack(agent, "mark_read", { conversation_id, message_ids: [q.message.id] });
    expect(agentRead).toEqual({ ok: true, seq: 1 });
    expect(await nextEvent(user, "messages_read")).toEqual({ conversation_id, reader_type: "agent", reader_id: o.agent.user.id, seq: 1 });

    const history = expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/messages`), 200, "history").json;
    expect(history.map((m: any) => [m.seq, m.status])).toEqual([[1, "READ"], [2, "READ"], [3, "READ"]]);

    // Unknown ids mark nothing new; malformed payloads are refused.
    expect(await ack(user, "mark_read", { conversation_id, message_ids: ["nope"], external_id: ext })).toEqual({ ok: true, seq: 0 });
    expect(await ack(user, "mark_read", { conversation_id, external_id: ext })).toEqual({ error: { code: "validation_failed", message: expect.any(String) } });
  });

  it("every rich media type of the guide round-trips through message_received and the histories", async () => {
    const o = await newOrg();
    const ext = visitorId("rich");
    const conversation_id = await openConversation(o.pk, ext);
    const user = await endUser(conversation_id, ext);
    const agent = await pool.connect(agentOpts(o.agent.cookie, WS));
    await ack(agent, "join_conversation", { conversation_id });

    // The guide's examples (the carousel's image_url made a real URL).
    const rich = [
      { content_type: "image", content: "Optional caption", rich_media: { url: "https://example.com/photo.jpg", alt: "A scenic view" } },
      { content_type: "file", content: "invoice.pdf", rich_media: { url: "https://example.com/files/invoice.pdf", filename: "invoice.pdf", size: 204800, mime_type: "application/pdf" } },
      { content_type: "quick_button", content: "Choose an option:", rich_media: { buttons: [{ label: "Yes", value: "yes" }, { label: "No", value: "no" }] } },
      {
        content_type: "carousel",
        content: "",
        rich_media: { cards: [{ image_url: "https://example.com/a.jpg", title: "Product A", subtitle: "Short description", buttons: [{ label: "Buy now", value: "buy_A" }] }] },
      },
      {
        content_type: "dropdown",
        content: "Select your region:",
        rich_media: { placeholder: "-- pick one --", options: [{ label: "Asia Pacific", value: "apac" }, { label: "Europe", value: "eu" }] },
      },
    ];
    const ids: string[] = [];
    for (const [i, m] of rich.entries()) {
      const r = await ack(agent, "send_message", { conversation_id, ...m, sender_type: "agent" });
      expect(r).toEqual({ ok: true, message: messageReceived({ conversation_id, seq: i + 1, sender_type: "agent", sender_id: o.agent.user.id, sender_name: "E2E Agent", ...m }) });
      expect(await nextEvent(user, "message_received")).toEqual(r.message);
      ids.push(r.message.id);
    }
    // An end user sends an image too.
    const photo = { content_type: "image", content: "", rich_media: { url: "https://example.com/broken-part.png" } };
    const mine = await ack(user, "send_message", { conversation_id, ...photo, sender_type: "end_user", external_id: ext });
    expect(await nextEvent(agent, "message_received", (m) => m.sender_type === "end_user")).toEqual(messageReceived({ ...mine.message, ...photo }));
    ids.push(mine.message.id);

    // A rich message that does not match its type is refused, and nothing is broadcast.
    const bad = await ack(agent, "send_message", { conversation_id, content_type: "quick_button", content: "pick", rich_media: { options: [] }, sender_type: "agent" });
    expect(bad).toEqual({ error: { code: "validation_failed", message: expect.stringContaining("rich_media") } });
    expect(await nextEvent(agent, "error")).toMatchObject({ code: "validation_failed", event: "send_message" });

    const widget = expectStatus(await api(`/chat-widget/history/${conversation_id}?external_id=${ext}`), 200, "widget history").json;
    expect(widget.map((m: any) => [m.id, m.content_type, m.content, m.rich_media])).toEqual([...rich, photo].map((m, i) => [ids[i], m.content_type, m.content, m.rich_media]));
    const history = expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/messages`), 200, "history").json;
    expect(history.map((m: any) => m.id)).toEqual(ids);
    // Barrier: the end user's own image came back; exactly one message_received per message.
    await nextEvent(user, "message_received", (m) => m.id === mine.message.id);
    expect(payloads(user, "message_received").map((m) => m.id)).toEqual(ids);
  });

  it("an end user with the wrong external_id gets an error and receives nothing; leave_conversation stops delivery", async () => {
    const o = await newOrg();
    const ext = visitorId("owner");
    const conversation_id = await openConversation(o.pk, ext);
    const owner = await endUser(conversation_id, ext);

    const impostor = await pool.connect(WS);
    const refused = await ack(impostor, "join_conversation", { conversation_id, external_id: "browser-session-guess" });
    expect(refused).toEqual({ error: { code: "not_found", message: expect.any(String) } });
    expect(await nextEvent(impostor, "error")).toEqual({ message: refused.error.message, code: "not_found", event: "join_conversation" });
    // Nor can it send or type into the conversation, nor join without an external_id.
    expect(await ack(impostor, "send_message", { conversation_id, content: "hi", content_type: "text", sender_type: "end_user", external_id: "browser-session-guess" })).toMatchObject({ error: { code: "not_found" } });
    expect(await ack(impostor, "user_typing", { conversation_id, sender_type: "end_user", external_id: "browser-session-guess" })).toMatchObject({ error: { code: "not_found" } });
    expect(await ack(impostor, "join_conversation", { conversation_id })).toMatchObject({ error: { code: "unauthorized" } });

    const agent = await pool.connect(agentOpts(o.agent.cookie, WS));
    await ack(agent, "join_conversation", { conversation_id });
    await ack(agent, "user_typing", { conversation_id, sender_type: "agent" });
    expect(await nextEvent(owner, "typing_indicator")).toEqual({ conversation_id, sender_type: "agent" });
    const m1 = await ack(agent, "send_message", { conversation_id, content: "for the owner only", content_type: "text", sender_type: "agent" });
    expect(await nextEvent(owner, "typing_cleared")).toEqual({ conversation_id });
    expect(await nextEvent(owner, "message_received")).toEqual(m1.message);

    // The owner leaves the room: later messages are not delivered to it (they stay in the history).
    expect(await ack(owner, "leave_conversation", { conversation_id })).toEqual({ ok: true });
    await ack(agent, "send_message", { conversation_id, content: "after leaving", content_type: "text", sender_type: "agent" });
    // Barrier on the impostor and owner: a new join replays nothing, but sees what follows.
    const back = await endUser(conversation_id, ext);
    const m3 = await ack(agent, "send_message", { conversation_id, content: "welcome back", content_type: "text", sender_type: "agent" });
    expect(await nextEvent(back, "message_received")).toEqual(m3.message);
    expect(payloads(back, "message_received").map((m) => m.content)).toEqual(["welcome back"]);

    expect(seen(impostor).map(([e, p]) => [e, p?.code])).toEqual([["connect", undefined], ["error", "not_found"], ["error", "not_found"], ["error", "not_found"], ["error", "unauthorized"]]);
    expect(payloads(owner, "message_received").map((m) => m.content)).toEqual(["for the owner only"]);
    const widget = expectStatus(await api(`/chat-widget/history/${conversation_id}?external_id=${ext}`), 200, "widget history").json;
    expect(widget.map((m: any) => m.content)).toEqual(["for the owner only", "after leaving", "welcome back"]);
  });
});

describe("organisation isolation over Socket.IO", () => {
  it("another organisation's agent gets not_found for every event on a conversation, and none of its queue, presence or room events", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const ext = visitorId("private");
    const conversation_id = await openConversation(a.pk, ext);
    const owner = await pool.connect(agentOpts(a.agent.cookie, WS));
    expect(await ack(owner, "join_conversation", { conversation_id })).toEqual({ ok: true, conversation_id });

    for (const opts of [agentOpts(b.agent.cookie, WS), { query: { apiKey: b.sk }, ...WS }]) {
      const outsider = await pool.connect(opts);
      expect(await ack(outsider, "join_queue")).toEqual({ ok: true });
      const presence = await ack(outsider, "join_org_presence");
      expect(presence).toEqual({ ok: true, online_agents: expect.any(Array) });
      expect(presence.online_agents.every((id: string) => id === b.agent.user.id)).toBe(true);
      const attempts: [string, Record<string, unknown>][] = [
        ["join_conversation", { conversation_id }],
        ["claim_conversation", { conversation_id }],
        ["send_message", { conversation_id, content: "hello from elsewhere", content_type: "text", sender_type: "agent" }],
        ["send_message", { conversation_id, content: "as the end user", content_type: "text", sender_type: "end_user", external_id: ext }],
        ["user_typing", { conversation_id, sender_type: "agent" }],
        ["mark_read", { conversation_id, message_ids: [] }],
        ["joinConversation", { conversationId: conversation_id }],
        ["sendMessage", { conversationId: conversation_id, type: "ChatMessage", text: "hi", tag: "whisper" }],
        ["endConversation", { conversationId: conversation_id }],
      ];
      for (const [event, payload] of attempts) {
        expect([event, await ack(outsider, event, payload)]).toEqual([event, { error: { code: "not_found", message: "conversation not found" } }]);
      }
      // Org A's traffic: a message, an assignment, an agent coming online.
      const user = await endUser(conversation_id, ext);
      const sent = await ack(user, "send_message", { conversation_id, content: "for org A only", content_type: "text", sender_type: "end_user", external_id: ext });
      expect(await ack(owner, "claim_conversation", { conversation_id })).toMatchObject({ ok: true });
      const teammate = await pool.connect(agentOpts((await addAgent(a.agent)).cookie, WS));
      // Barrier: the owner (org A) saw all of it; the outsider saw none of it.
      await nextEvent(owner, "message_received", (m) => m.id === sent.message.id);
      expect(seen(outsider).filter(([e]) => e !== "error").map(([e]) => e)).toEqual(["connect"]);
      expect(seen(outsider, "error")).toHaveLength(attempts.length);
      teammate.disconnect();
      user.disconnect();
      outsider.disconnect();
      expect(await ack(owner, "leave_conversation", { conversation_id })).toEqual({ ok: true });
      expect(await ack(owner, "join_conversation", { conversation_id })).toEqual({ ok: true, conversation_id });
    }
    const history = expectStatus(await a.agent.api(`/api/conversations/${conversation_id}/messages`), 200, "history").json;
    expect(history.map((m: any) => m.content)).toEqual(["for org A only", "for org A only"]);
    expect(history.every((m: any) => m.sender_type === "end_user")).toBe(true);
  });
});

describe("seed 001 typing expiry", () => {
  it("a typing indicator nobody clears is cleared by the server after about 6 s (typing_cleared)", async () => {
    const o = await newOrg();
    const ext = visitorId("typist");
    const conversation_id = await openConversation(o.pk, ext);
    const user = await endUser(conversation_id, ext);
    const agent = await pool.connect(agentOpts(o.agent.cookie, WS));
    await ack(agent, "join_conversation", { conversation_id });
    const t0 = Date.now();
    expect(await ack(user, "user_typing", { conversation_id, sender_type: "end_user", external_id: ext })).toEqual({ ok: true });
    expect(await nextEvent(agent, "typing_indicator")).toEqual({ conversation_id, sender_type: "end_user" });
    expect(await nextEvent(agent, "typing_cleared", undefined, 10_000)).toEqual({ conversation_id });
    const after = Date.now() - t0;
    expect(after).toBeGreaterThanOrEqual(5_500);
    expect(after).toBeLessThan(9_000);
    // typing: false clears at once.
    await ack(user, "user_typing", { conversation_id, sender_type: "end_user", external_id: ext });
    await nextEvent(agent, "typing_indicator");
    const t1 = Date.now();
    expect(await ack(user, "user_typing", { conversation_id, sender_type: "end_user", external_id: ext, typing: false })).toEqual({ ok: true });
    expect(await nextEvent(agent, "typing_cleared")).toEqual({ conversation_id });
    expect(Date.now() - t1).toBeLessThan(2_000);
    expect(seen(user).filter(([e]) => e.startsWith("typing"))).toEqual([]);
  });
});
