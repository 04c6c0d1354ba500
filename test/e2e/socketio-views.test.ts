// One conversation, every surface at once, against `wrangler dev`: a seed 000 Socket.IO visitor,
// a seed 001 Socket.IO agent, a seed 002 Socket.IO customer, a native WebSocket visitor, a seed
// 000 REST poller and the agent REST API all write into it, partly at the same time; afterwards
// every view holds the same messages (ids, seqs, texts) in the same order.
import { afterEach, describe, expect, it } from "vitest";
import { expectStatus } from "./harness.ts";
import { dostiVisitor, newOrg, sent, visitorId } from "./fixtures.ts";
import { ack, agentOpts, dostiVisitorOpts, nextEvent, openConversation, payloads, SioPool, until } from "./sio.ts";
import { SocketPool, type Frame } from "./ws-client.ts";

const pool = new SioPool();
const sockets = new SocketPool();
afterEach(async () => {
  pool.closeAll();
  await sockets.closeAll();
});

const WS = { transports: ["websocket"] };

describe("every surface sees one log", () => {
  it("messages from six senders, three rounds of concurrent sends: the same ids, seqs and texts in the same order everywhere", async () => {
    const o = await newOrg();
    const vid = visitorId("everywhere");
    const conversation_id = await openConversation(o.pk, vid, "Eve");

    const dosti = await pool.connect(dostiVisitorOpts(o.pk, vid, "Eve", WS));
    const agent = await pool.connect(agentOpts(o.agent.cookie, WS));
    expect(await ack(agent, "join_conversation", { conversation_id })).toEqual({ ok: true, conversation_id });
    const customer = await pool.connect(WS);
    expect(await ack(customer, "joinConversation", { conversationId: conversation_id, id: vid, name: "Eve" })).toEqual({ ok: true, conversationId: conversation_id });
    const native = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}&name=Eve`);
    expect(await native.nextOfType("ready")).toMatchObject({ conversation_id, head_seq: 0 });
    const rest = dostiVisitor(o.pk, vid, "Eve");

    // Each sender returns the stored message's id once its send is acknowledged.
    const senders: Record<string, (text: string) => Promise<string>> = {
      dosti: async (text) => (await ack(dosti, "send_message", { type: "saas", message: text })).message.id,
      rest: async (text) => (await sent(rest.send(text))).id,
      native: async (text) => {
        native.send({ type: "send", content: text, client_msg_id: text.replace(/\W/g, "-") });
        return (await native.next((f) => f.type === "ack" && f.client_msg_id === text.replace(/\W/g, "-"))).id;
      },
      customer: async (text) => (await ack(customer, "sendMessage", { conversationId: conversation_id, type: "ChatMessage", from: { id: vid }, text })).message.id,
      agentSocket: async (text) => (await ack(agent, "send_message", { conversation_id, content: text, content_type: "text", sender_type: "agent" })).message.id,
      agentRest: async (text) => expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/messages`, { body: { content: text } }), 201, "agent REST send").json.id,
    };
    const agentSide = new Set(["agentSocket", "agentRest"]);
    const sentBy = new Map<string, string>(); // message id -> sender
    for (let round = 1; round <= 3; round++) {
      const ids = await Promise.all(Object.entries(senders).map(async ([who, send]) => [await send(`${who} #${round}`), who] as const));
      for (const [id, who] of ids) sentBy.set(id, who);
    }
    const N = sentBy.size;
    expect(N).toBe(18);

    // The authority: the agent's REST history (the conversation object's log), seq 1..N.
    const log = expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/messages?limit=100`), 200, "history").json.map((m: any) => [m.id, m.seq, m.content]);
    expect(log.map(([, seq]: any) => seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(new Set(log.map(([id]: any) => id))).toEqual(new Set(sentBy.keys()));
    const fromAgents = log.filter(([id]: any) => agentSide.has(sentBy.get(id)!));

    // Seed 001 agent socket: every message once, in seq order.
    await until(agent, () => payloads(agent, "message_received").length >= N, 10_000, "agent socket has every message");
    expect(payloads(agent, "message_received").map((m) => [m.id, m.seq, m.content])).toEqual(log);
    // Seed 002 customer socket: every message once (ChatMessage), in order.
    await until(customer, () => payloads(customer, "messageArrived").filter((m) => m.type === "ChatMessage").length >= N, 10_000, "customer socket has every message");
    expect(payloads(customer, "messageArrived").filter((m) => m.type === "ChatMessage").map((m) => [m.id, m.text])).toEqual(log.map(([id, , text]: any) => [id, text]));
    // Seed 000 visitor socket: the agents' replies (receive_message), once each, in order.
    await until(dosti, () => payloads(dosti, "receive_message").length >= fromAgents.length, 10_000, "visitor socket has every reply");
    expect(payloads(dosti, "receive_message").map((m) => [m.id, m.seq, m.message])).toEqual(fromAgents);
    // Native WebSocket: every message frame once, in order.
    const frames: Frame[] = [];
    while (frames.length < N) frames.push(await native.nextOfType("message", 10_000));
    expect(frames.map((f) => [f.message.id, f.message.seq, f.message.content])).toEqual(log);
    expect((await native.sync()).filter((f) => f.type === "message")).toEqual([]);
    // Seed 000 REST poll from the beginning, and by cursor in two halves.
    const polled = expectStatus(await rest.poll(0), 200, "poll").json.messages;
    expect(polled.map((m) => [m.id, m.message])).toEqual(log.map(([id, , text]: any) => [id, text]));
    expect(polled.map((m) => m.sender)).toEqual(log.map(([id]: any) => (agentSide.has(sentBy.get(id)!) ? "agent" : "visitor")));
    const half = polled[Math.floor(N / 2) - 1]!.timestamp;
    expect(expectStatus(await rest.poll(half), 200, "poll by cursor").json.messages.map((m) => m.id)).toEqual(log.slice(Math.floor(N / 2)).map(([id]: any) => id));

    // No view got anything twice: one more agent message arrives as the next one everywhere.
    const last = await senders.agentSocket!("last")!;
    expect(await nextEvent(dosti, "receive_message", (m) => m.id === last)).toMatchObject({ seq: N + 1 });
    expect(await native.nextOfType("message")).toMatchObject({ message: { id: last, seq: N + 1 } });
    expect(payloads(dosti, "receive_message")).toHaveLength(fromAgents.length + 1);
  });
});
