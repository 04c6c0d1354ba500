// Seed 000 ("Dosti") visitors and seed 001 agents over the real socket.io-client, against
// `wrangler dev`: the same conversation seen through both dialects, over HTTP long-polling that
// upgrades to WebSocket (the stock client's default) and over WebSocket only.
import { afterEach, describe, expect, it } from "vitest";
import { newOrg, visitorId } from "./fixtures.ts";
import { waitFor } from "./harness.ts";
import { ack, agentOpts, dostiVisitorOpts, nextEvent, nextEventArgs, seen, SioPool, TRANSPORTS, type TransportName, until } from "./sio.ts";

const pool = new SioPool();
afterEach(pool.closeAll);

describe.each(Object.keys(TRANSPORTS) as TransportName[])("seed 000 visitor and seed 001 agent, %s", (transport) => {
  const t = TRANSPORTS[transport];

  it("send, claim -> one agent_joined, typing both ways, reply -> receive_message", async () => {
    const o = await newOrg();
    const vid = visitorId("android_user");
    const agent = await pool.connect(agentOpts(o.agent.cookie, t));
    expect(await ack(agent, "join_queue")).toEqual({ ok: true });

    const visitor = await pool.connect(dostiVisitorOpts(o.pk, vid, "JohnDoe", t));
    // The stock default starts on polling and upgrades to WebSocket within moments.
    if (transport === "polling then upgrade") {
      for (const sock of [visitor, agent]) await until(sock, () => sock.io.engine.transport.name === "websocket", 5_000, "the upgrade to WebSocket");
    }
    expect([visitor.io.engine.transport.name, agent.io.engine.transport.name]).toEqual(transport === "polling only" ? ["polling", "polling"] : ["websocket", "websocket"]);

    // The seed's payload, as the Android/iOS examples emit it (an ack is optional; Parley answers it).
    const sentAck = await ack(visitor, "send_message", { type: "saas", message: "Hello from Android Native App!" });
    expect(sentAck).toEqual({
      ok: true,
      message: { id: expect.any(String), seq: 1, visitorId: vid, visitorName: "JohnDoe", message: "Hello from Android Native App!", timestamp: expect.any(Number) },
    });
    const updated = await nextEvent(agent, "conversation_updated");
    expect(updated).toEqual({ conversation_id: expect.any(String), sender_type: "end_user", content_type: "text", content: "Hello from Android Native App!" });
    const conversation_id = updated.conversation_id;

    // The agent claims: the visitor's room hears that an agent joined, exactly once.
    const claimed = await ack(agent, "claim_conversation", { conversation_id });
    expect(claimed).toEqual({ ok: true, conversation_id, assigned_agent_id: o.agent.user.id, assigned_at: expect.any(String) });
    expect(await nextEvent(visitor, "agent_joined")).toEqual({ agentId: o.agent.user.id, agentName: "E2E Agent" });
    expect(await nextEvent(agent, "conversation_assigned")).toEqual({ conversation_id, assigned_to: o.agent.user.id });

    // Agent typing -> partner_typing; the reply -> receive_message, then the typing clears.
    expect(await ack(agent, "user_typing", { conversation_id, sender_type: "agent" })).toEqual({ ok: true });
    expect(await nextEvent(visitor, "partner_typing")).toEqual({ deviceId: "agent" });
    const replyAck = await ack(agent, "send_message", { conversation_id, content: "Hi John! How can I help you today?", content_type: "text", sender_type: "agent" });
    expect(replyAck).toMatchObject({ ok: true, message: { seq: 2, sender_type: "agent", sender_id: o.agent.user.id, content: "Hi John! How can I help you today?" } });
    const [reply, offset] = await nextEventArgs(visitor, "receive_message");
    expect(reply).toEqual({ id: replyAck.message.id, seq: 2, visitorId: vid, visitorName: "E2E Agent", message: "Hi John! How can I help you today?", timestamp: Date.parse(replyAck.message.created_at) });
    expect(typeof offset).toBe("string"); // connection state recovery's offset, after the payload
    expect(await nextEvent(visitor, "partner_stopped_typing")).toEqual({ deviceId: "agent" });
    // The agent is in the room too: its own message comes back as message_received.
    expect(await nextEvent(agent, "message_received")).toMatchObject({ id: replyAck.message.id, conversation_id, seq: 2, sender_type: "agent" });
    expect(await nextEvent(agent, "conversation_updated")).toEqual({ conversation_id, sender_type: "agent", content_type: "text", content: "Hi John! How can I help you today?" });

    // Visitor typing -> the agent's typing_indicator; stop_typing -> typing_cleared.
    expect(await ack(visitor, "typing", { type: "saas" })).toEqual({ ok: true });
    expect(await nextEvent(agent, "typing_indicator")).toEqual({ conversation_id, sender_type: "end_user" });
    expect(await ack(visitor, "stop_typing", { type: "saas" })).toEqual({ ok: true });
    expect(await nextEvent(agent, "typing_cleared")).toEqual({ conversation_id });

    // A last message from the visitor is a barrier: everything the room emitted before it has
    // reached both sessions (room frames reach each session in emission order).
    await ack(visitor, "send_message", { type: "saas", message: "thanks" });
    expect(await nextEvent(agent, "message_received", (m) => m.content === "thanks")).toMatchObject({ seq: 3, sender_type: "end_user", sender_id: vid, sender_name: "JohnDoe" });
    expect(seen(visitor).map(([e]) => e)).toEqual(["connect", "agent_joined", "partner_typing", "receive_message", "partner_stopped_typing"]);
    expect(await nextEvent(agent, "conversation_updated")).toEqual({ conversation_id, sender_type: "end_user", content_type: "text", content: "thanks" });
    // Room events and queue events come from different objects: each stream in its own order.
    const room = ["message_received", "typing_indicator", "typing_cleared"];
    expect(seen(agent).filter(([e]) => room.includes(e)).map(([e]) => e)).toEqual(["message_received", "typing_indicator", "typing_cleared", "message_received"]);
    expect(seen(agent).filter(([e]) => !room.includes(e)).map(([e]) => e)).toEqual(["connect", "conversation_updated", "conversation_assigned", "conversation_updated", "conversation_updated"]);
  });
});

describe("seed 000 visitor: agent_joined", () => {
  it("an agent that joins the room and then claims is announced once; the visitor's messages reach the agent in order", async () => {
    const o = await newOrg();
    const vid = visitorId("ios_user");
    const ws = TRANSPORTS["websocket only"];
    const visitor = await pool.connect(dostiVisitorOpts(o.pk, vid, "iOS User", ws));
    const first = await ack(visitor, "send_message", { type: "saas", message: "Hello from Swift!" });
    const conv = await waitFor(async () => (await o.agent.api(`/api/conversations/?filter=all`)).json.find((c: any) => c.end_user.external_id === vid), { message: "conversation listed" });
    expect(conv.end_user).toMatchObject({ external_id: vid, display_name: "iOS User" });

    const agent = await pool.connect({ query: { apiKey: o.sk }, ...ws });
    expect(await ack(agent, "join_conversation", { conversation_id: conv.id })).toEqual({ ok: true, conversation_id: conv.id });
    expect(await nextEvent(visitor, "agent_joined")).toEqual({ agentId: o.agent.user.id, agentName: "E2E Agent" });
    expect(await ack(agent, "claim_conversation", { conversation_id: conv.id })).toMatchObject({ ok: true, assigned_agent_id: o.agent.user.id });

    // The visitor's messages reach the agent in order, and none of them comes back to the visitor.
    const texts = ["one", "two", "three"];
    for (const message of texts) await ack(visitor, "send_message", { type: "saas", message });
    for (const [i, message] of texts.entries()) {
      expect(await nextEvent(agent, "message_received")).toMatchObject({ conversation_id: conv.id, seq: i + 2, sender_type: "end_user", sender_id: vid, content: message });
    }
    // Barrier: an agent reply arrives after every frame the claim caused.
    const reply = await ack(agent, "send_message", { conversation_id: conv.id, content: "got them", sender_type: "agent" });
    expect(await nextEvent(visitor, "receive_message")).toMatchObject({ id: reply.message.id, message: "got them" });
    expect(seen(visitor).map(([e]) => e)).toEqual(["connect", "agent_joined", "receive_message"]);
    expect(first.message.seq).toBe(1);
  });
});
