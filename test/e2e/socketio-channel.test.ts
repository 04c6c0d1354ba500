// Seed 002 ("Customer Channel API") over the real socket.io-client against `wrangler dev`:
// joinConversation -> conversationInfo + greetings, ChatMessage both ways through messageArrived,
// whispers that agents see and customers never do (on any surface), endConversation.
import { afterEach, describe, expect, it } from "vitest";
import { api, expectStatus } from "./harness.ts";
import { dostiVisitor, newOrg, visitorId } from "./fixtures.ts";
import { ack, addAgent, agentOpts, nextEvent, openConversation, payloads, seen, SioPool, TRANSPORTS, type Socket, type SioOptions, type TransportName } from "./sio.ts";
import { SocketPool } from "./ws-client.ts";

const pool = new SioPool();
const sockets = new SocketPool();
afterEach(async () => {
  pool.closeAll();
  await sockets.closeAll();
});

const WS = { transports: ["websocket"] } as SioOptions;

/** A ChatMessage as messageArrived carries it. */
const chat = (conversationId: string, from: { id: string; name: string; type: string }, text: string, extra: Record<string, unknown> = {}) => ({
  id: expect.any(String),
  conversationId,
  type: "ChatMessage",
  from,
  to: [],
  text,
  attachments: [],
  timestamp: expect.any(String),
  ...extra,
});

/** An ActivityMessage as messageArrived carries it. */
const activity = (conversationId: string, activityType: string, from: { id: string; name: string }, info: Record<string, unknown>) => ({
  conversationId,
  type: "ActivityMessage",
  from,
  to: [],
  activityType,
  info,
  timestamp: expect.any(String),
});

const SYSTEM = { id: "system", name: "system" };
const GREETING = { text: "Welcome! An agent will be with you shortly." };

/** Joins as seed 002 describes it; returns the conversationInfo payload (greetings checked too). */
async function join(socket: Socket, payload: Record<string, unknown>) {
  const conversationId = payload.conversationId as string;
  expect(await ack(socket, "joinConversation", payload)).toEqual({ ok: true, conversationId });
  const info = await nextEvent(socket, "conversationInfo");
  expect(await nextEvent(socket, "messageArrived", (m) => m.type === "ActivityMessage" && m.activityType === "greetings")).toEqual(activity(conversationId, "greetings", SYSTEM, GREETING));
  // conversationInfo first, then the greetings.
  const events = seen(socket).map(([e, p]) => (e === "messageArrived" ? p.activityType ?? p.type : e));
  expect(events.slice(events.lastIndexOf("conversationInfo"), events.lastIndexOf("conversationInfo") + 2)).toEqual(["conversationInfo", "greetings"]);
  return info;
}

describe.each(Object.keys(TRANSPORTS) as TransportName[])("seed 002 customer and agent, %s", (transport) => {
  const t = TRANSPORTS[transport];

  it("joinConversation -> conversationInfo then greetings; ChatMessage both ways; endConversation -> endOfConversation", async () => {
    const o = await newOrg();
    const ext = visitorId("+1555");
    const conversationId = await openConversation(o.pk, ext, "Jane Doe");
    const customerP = { id: ext, name: "Jane Doe", type: "end_user" };
    const agentP = { id: o.agent.user.id, name: "E2E Agent", type: "agent" };

    const customer = await pool.connect(t);
    const info = await join(customer, { conversationId, id: ext, name: "Jane Doe" });
    expect(info).toEqual({
      conversation: { id: conversationId, channelId: expect.any(String), status: "open", sessionId: null },
      messages: [],
      participant: [{ id: ext, name: "Jane Doe" }],
      role: "customer",
    });

    const hello = await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext, name: "Jane Doe" }, to: [], text: "Hi, my order is late" });
    expect(hello).toEqual({ ok: true, message: chat(conversationId, customerP, "Hi, my order is late") });
    expect(await nextEvent(customer, "messageArrived", (m) => m.type === "ChatMessage")).toEqual(hello.message);

    // The agent joins: it gets the history, and the customer sees it join.
    const agent = await pool.connect(agentOpts(o.agent.cookie, t));
    const agentInfo = await join(agent, { conversationId });
    expect(agentInfo).toEqual({
      conversation: { id: conversationId, channelId: info.conversation.channelId, status: "open", sessionId: expect.any(String) },
      messages: [hello.message],
      participant: [{ id: ext, name: "Jane Doe" }],
      role: "agent",
    });
    expect(await nextEvent(customer, "messageArrived", (m) => m.activityType === "participantJoined")).toEqual(activity(conversationId, "participantJoined", { id: agentP.id, name: agentP.name }, {}));

    const reply = await ack(agent, "sendMessage", { conversationId, type: "ChatMessage", from: { id: agentP.id, name: agentP.name }, to: [], text: "Let me check that for you" });
    expect(reply).toEqual({ ok: true, message: chat(conversationId, agentP, "Let me check that for you") });
    expect(await nextEvent(customer, "messageArrived", (m) => m.type === "ChatMessage")).toEqual(reply.message);
    expect(await nextEvent(agent, "messageArrived", (m) => m.type === "ChatMessage")).toEqual(reply.message);
    const more = await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext }, text: "Thanks" });
    expect(await nextEvent(agent, "messageArrived", (m) => m.type === "ChatMessage")).toEqual(more.message);
    expect(await nextEvent(customer, "messageArrived", (m) => m.type === "ChatMessage")).toEqual(more.message);

    // The agent ends the conversation: both sides get endOfConversation for the session.
    const ended = await ack(agent, "endConversation", { conversationId });
    expect(ended).toEqual({ ok: true, conversationId, sessionId: agentInfo.conversation.sessionId });
    const end = activity(conversationId, "endOfConversation", SYSTEM, { session_id: ended.sessionId });
    expect(await nextEvent(customer, "messageArrived", (m) => m.activityType === "endOfConversation")).toEqual(end);
    expect(await nextEvent(agent, "messageArrived", (m) => m.activityType === "endOfConversation")).toEqual(end);
    expect(await ack(agent, "endConversation", { conversationId })).toEqual({ error: { code: "already_resolved", message: expect.any(String) } });

    // (Other activity types, e.g. routing notices, may come and go: these are the ones this flow causes.)
    const flow = new Set(["greetings", "participantJoined", "participantAdded", "endOfConversation"]);
    const kinds = (s: Socket) => payloads(s, "messageArrived").flatMap((m) => (m.type === "ChatMessage" ? [m.text] : flow.has(m.activityType) ? [m.activityType] : []));
    expect(kinds(customer)).toEqual(["greetings", "Hi, my order is late", "participantJoined", "Let me check that for you", "Thanks", "endOfConversation"]);
    expect(kinds(agent)).toEqual(["greetings", "Let me check that for you", "Thanks", "endOfConversation"]);
    expect(seen(customer, "conversationInfo")).toHaveLength(1);
    expect(seen(customer, "error")).toEqual([]);
  });
});

describe("seed 002 whispers", () => {
  it("an agent's whisper reaches another agent, never the customer: not on its socket, REST history, native WebSocket, seed 000 poll or a new conversationInfo", async () => {
    const o = await newOrg();
    const second = await addAgent(o.agent, "Bob");
    const ext = visitorId("whisper");
    const conversationId = await openConversation(o.pk, ext, "Jane Doe");
    const agentP = { id: o.agent.user.id, name: "E2E Agent", type: "agent" };

    const customer = await pool.connect(WS);
    await join(customer, { conversationId, id: ext, name: "Jane Doe" });
    const alice = await pool.connect(agentOpts(o.agent.cookie, WS));
    await join(alice, { conversationId });
    const bob = await pool.connect(agentOpts(second.cookie, WS));
    await join(bob, { conversationId });
    // A native WebSocket visitor on the same conversation, and a seed 000 REST poller.
    const native = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${ext}`);
    expect(await native.nextOfType("ready")).toMatchObject({ conversation_id: conversationId, head_seq: 0 });
    const poller = dostiVisitor(o.pk, ext);

    const hello = await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext }, text: "Is my refund approved?" });
    const whisper = await ack(alice, "sendMessage", { conversationId, type: "ChatMessage", from: { id: agentP.id }, text: "Bob, can you check the refund?", tag: "whisper" });
    expect(whisper).toEqual({ ok: true, message: chat(conversationId, agentP, "Bob, can you check the refund?", { tag: "whisper" }) });
    expect(await nextEvent(bob, "messageArrived", (m) => m.id === whisper.message.id)).toEqual(whisper.message);
    expect(await nextEvent(alice, "messageArrived", (m) => m.id === whisper.message.id)).toEqual(whisper.message);
    const answer = await ack(alice, "sendMessage", { conversationId, type: "ChatMessage", from: { id: agentP.id }, text: "Yes, it is on its way", tag: "" });
    expect(answer.message).not.toHaveProperty("tag");

    // The customer gets the message after the whisper, and never the whisper.
    expect(await nextEvent(customer, "messageArrived", (m) => m.id === answer.message.id)).toEqual(answer.message);
    const customerChats = () => payloads(customer, "messageArrived").filter((m) => m.type === "ChatMessage");
    expect(customerChats().map((m) => m.text)).toEqual(["Is my refund approved?", "Yes, it is on its way"]);
    expect(await nextEvent(bob, "messageArrived", (m) => m.id === answer.message.id)).toEqual(answer.message);
    expect(payloads(bob, "messageArrived").filter((m) => m.type === "ChatMessage").map((m) => m.text)).toEqual(["Is my refund approved?", "Bob, can you check the refund?", "Yes, it is on its way"]);

    // Native WebSocket visitor: the two public messages, in order, and no whisper.
    const nativeMessages = [await native.nextOfType("message"), await native.nextOfType("message")].map((f) => f.message.id);
    expect(nativeMessages).toEqual([hello.message.id, answer.message.id]);
    expect((await native.sync()).filter((f) => f.type === "message")).toEqual([]);
    // REST views of the customer: widget history and seed 000 poll.
    const widget = expectStatus(await api(`/chat-widget/history/${conversationId}?external_id=${ext}`), 200, "widget history").json;
    expect(widget.map((m: any) => m.id)).toEqual([hello.message.id, answer.message.id]);
    const polled = expectStatus(await poller.poll(0), 200, "poll").json;
    expect(polled.messages.map((m: any) => m.id)).toEqual([hello.message.id, answer.message.id]);
    // The agents' REST view has all three, the whisper marked private.
    const history = expectStatus(await o.agent.api(`/api/conversations/${conversationId}/messages`), 200, "history").json;
    expect(history.map((m: any) => [m.id, m.private])).toEqual([[hello.message.id, false], [whisper.message.id, true], [answer.message.id, false]]);

    // Joining again: the customer's conversationInfo leaves the whisper out; an agent's has it.
    const again = await pool.connect(WS);
    expect((await join(again, { conversationId, id: ext, name: "Jane Doe" })).messages.map((m: any) => m.id)).toEqual([hello.message.id, answer.message.id]);
    const bobAgain = await pool.connect(agentOpts(second.cookie, WS));
    expect((await join(bobAgain, { conversationId })).messages.map((m: any) => [m.id, m.tag])).toEqual([
      [hello.message.id, undefined],
      [whisper.message.id, "whisper"],
      [answer.message.id, undefined],
    ]);

    // A customer cannot whisper.
    expect(await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext }, text: "psst", tag: "whisper" })).toEqual({ error: { code: "forbidden", message: expect.any(String) } });
    expect(await nextEvent(customer, "error")).toMatchObject({ code: "forbidden", event: "sendMessage" });
    expect(customerChats().map((m) => m.text)).toEqual(["Is my refund approved?", "Yes, it is on its way"]);
  });

  it("a customer ends its own conversation; its next message opens a new session; a wrong participant id is refused", async () => {
    const o = await newOrg();
    const ext = visitorId("ender");
    const conversationId = await openConversation(o.pk, ext, "Jane Doe");
    const customer = await pool.connect(WS);
    await join(customer, { conversationId, id: ext, name: "Jane Doe" });
    const first = await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext }, text: "never mind" });
    const ended = await ack(customer, "endConversation", { conversationId, id: ext });
    expect(ended).toEqual({ ok: true, conversationId, sessionId: expect.any(String) });
    expect(await nextEvent(customer, "messageArrived", (m) => m.activityType === "endOfConversation")).toEqual(activity(conversationId, "endOfConversation", SYSTEM, { session_id: ended.sessionId }));
    const conv = expectStatus(await o.agent.api(`/api/conversations/${conversationId}`), 200, "get conversation").json;
    expect(conv.active_session).toBeNull();

    const next = await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext }, text: "actually, one more thing" });
    expect(next.ok).toBe(true);
    const messages = expectStatus(await o.agent.api(`/api/conversations/${conversationId}/messages`), 200, "history").json;
    expect(messages.map((m: any) => m.session_id)).toEqual([ended.sessionId, expect.not.stringMatching(ended.sessionId)]);
    expect(messages.map((m: any) => m.id)).toEqual([first.message.id, next.message.id]);

    const stranger = await pool.connect(WS);
    const refused = await ack(stranger, "joinConversation", { conversationId, id: "someone-else", name: "Mallory" });
    expect(refused).toEqual({ error: { code: "not_found", message: expect.any(String) } });
    expect(await ack(stranger, "endConversation", { conversationId, id: "someone-else" })).toMatchObject({ error: { code: "not_found" } });
    expect(await ack(stranger, "sendMessage", { conversationId, type: "ChatMessage", from: { id: "someone-else" }, text: "hi" })).toMatchObject({ error: { code: "not_found" } });
    expect(seen(stranger).map(([e]) => e)).toEqual(["connect", "error", "error", "error"]);
  });
});

describe("seed 002 view of other dialects' messages", () => {
  it("a seed 001 agent's image and file arrive as ChatMessage attachments; other rich media as text", async () => {
    const o = await newOrg();
    const ext = visitorId("media");
    const conversationId = await openConversation(o.pk, ext, "Jane");
    const customer = await pool.connect(WS);
    await join(customer, { conversationId, id: ext, name: "Jane" });
    const agent = await pool.connect(agentOpts(o.agent.cookie, WS));
    expect(await ack(agent, "join_conversation", { conversation_id: conversationId })).toMatchObject({ ok: true });
    const agentP = { id: o.agent.user.id, name: "E2E Agent", type: "agent" };

    const image = await ack(agent, "send_message", { conversation_id: conversationId, sender_type: "agent", content_type: "image", content: "Optional caption", rich_media: { url: "https://example.com/photo.jpg", alt: "A scenic view" } });
    const file = await ack(agent, "send_message", {
      conversation_id: conversationId,
      sender_type: "agent",
      content_type: "file",
      content: "invoice.pdf",
      rich_media: { url: "https://example.com/files/invoice.pdf", filename: "invoice.pdf", size: 204800, mime_type: "application/pdf" },
    });
    const buttons = await ack(agent, "send_message", { conversation_id: conversationId, sender_type: "agent", content_type: "quick_button", content: "Choose an option:", rich_media: { buttons: [{ label: "Yes", value: "yes" }] } });
    const chats = [];
    for (let i = 0; i < 3; i++) chats.push(await nextEvent(customer, "messageArrived", (m) => m.type === "ChatMessage"));
    expect(chats).toEqual([
      chat(conversationId, agentP, "Optional caption", { id: image.message.id, attachments: [{ type: expect.stringMatching(/^image/), name: "", contentUrl: "https://example.com/photo.jpg" }] }),
      chat(conversationId, agentP, "invoice.pdf", { id: file.message.id, attachments: [{ type: "application/pdf", name: "invoice.pdf", contentUrl: "https://example.com/files/invoice.pdf" }] }),
      chat(conversationId, agentP, "Choose an option:", { id: buttons.message.id }),
    ]);
  });
});
