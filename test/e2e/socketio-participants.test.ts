// Seed 002's participant activities over the real socket.io-client against `wrangler dev`:
// participantJoined / participantLeft follow an agent's connections (native WebSocket and
// Socket.IO, the first one arriving and the last one going), participantAdded / participantRemoved
// follow the assignment (claim, transfer, unassign, resolve). Each happens once per real event, the
// native protocol gets the same `joined` / `left` / `removed` frames, and seeds 000 and 001 see
// nothing they do not know. Then the transfer and unassign routes: who may, org scoping, and the
// router told (an unassigned session goes to another agent, not back).
import { afterEach, describe, expect, it } from "vitest";
import { api, expectStatus, waitFor } from "./harness.ts";
import { newOrg, visitorId } from "./fixtures.ts";
import { ack, agentOpts, dostiVisitorOpts, nextEvent, payloads, seen, SioPool, type SioOptions, type Socket } from "./sio.ts";
import { SocketPool, type WsClient } from "./ws-client.ts";

const pool = new SioPool();
const sockets = new SocketPool();
afterEach(async () => {
  pool.closeAll();
  await sockets.closeAll();
});

const WS = { transports: ["websocket"] } as SioOptions;
const PARTICIPANT = new Set(["participantJoined", "participantLeft", "participantAdded", "participantRemoved", "endOfConversation"]);

/** An agent of the owner's organisation, logged in (cookie and CSRF token for REST). */
async function agentOf(owner: { api: (p: string, o?: any) => Promise<{ status: number; json: any; text: string; headers: Headers }> }, name: string, role: "agent" | "admin" = "agent") {
  const creds = { name, email: `agent-${crypto.randomUUID()}@e2e.parley.test`, password: `pw-${crypto.randomUUID()}`, role };
  const id = expectStatus(await owner.api("/api/company/agents", { body: creds }), 201, "create agent").json.id as string;
  const login = expectStatus(await api<any>("/auth/login", { body: { email: creds.email, password: creds.password } }), 200, "login");
  const cookie = login.headers.getSetCookie().find((c) => c.startsWith("session="))!.split(";")[0]!;
  const csrf = login.json.csrf_token as string;
  return { id, name, cookie, api: (path: string, opts: Record<string, unknown> = {}) => api(path, { cookie, csrf, ...opts }) };
}

/** The customer's participant activities so far, as [activityType, who, reason?]. */
const activities = (s: Socket) =>
  payloads(s, "messageArrived")
    .filter((m) => m.type === "ActivityMessage" && PARTICIPANT.has(m.activityType))
    .map((m) => [m.activityType, m.from.name, ...(m.info?.reason ? [m.info.reason] : [])]);

/** The native visitor's participant frames so far, as [type, who, reason?]. */
const nativeFrames = (s: WsClient) =>
  s.frames.filter((f) => f.type === "joined" || f.type === "left" || f.type === "removed").map((f) => [f.type, f.participant.name, ...(f.reason ? [f.reason] : [])]);

describe("seed 002 participant activities", () => {
  it("participantJoined/Left follow an agent's connections, participantAdded/Removed its assignment, once per real event, on every surface", async () => {
    const o = await newOrg();
    const bob = await agentOf(o.agent, "Bob");
    const alice = { id: o.agent.user.id, name: "E2E Agent" };
    const ext = visitorId("jane");
    const conversationId = expectStatus(await api("/chat-widget/session", { body: { key: o.pk, session_id: ext, customer_name: "Jane" } }), 200, "session").json.conversation_id as string;

    // The customer over seed 002, the same end user over seed 001 and seed 000, and natively.
    const customer = await pool.connect(WS);
    expect(await ack(customer, "joinConversation", { conversationId, id: ext, name: "Jane" })).toEqual({ ok: true, conversationId });
    const seed001 = await pool.connect(WS);
    expect(await ack(seed001, "join_conversation", { conversation_id: conversationId, external_id: ext })).toEqual({ ok: true, conversation_id: conversationId });
    const seed000 = await pool.connect(dostiVisitorOpts(o.pk, ext, "Jane", WS));
    const native = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${ext}`);
    await native.nextOfType("ready");
    expect((await ack(customer, "sendMessage", { conversationId, type: "ChatMessage", from: { id: ext }, text: "Where is my parcel?" })).ok).toBe(true);

    const next = (activityType: string, name: string) => nextEvent(customer, "messageArrived", (m) => m.activityType === activityType && m.from.name === name);
    const activity = (activityType: string, who: { id: string; name: string }, info: Record<string, unknown> = {}) => ({
      conversationId,
      type: "ActivityMessage",
      from: { id: who.id, name: who.name },
      to: [],
      activityType,
      info,
      timestamp: expect.any(String),
    });

    // Alice joins over Socket.IO, then opens the console's native socket too: one participantJoined.
    const aliceSio = await pool.connect(agentOpts(o.agent.cookie, WS));
    expect(await ack(aliceSio, "joinConversation", { conversationId })).toEqual({ ok: true, conversationId });
    expect(await next("participantJoined", alice.name)).toEqual(activity("participantJoined", alice));
    const aliceWs = await sockets.connect(`/ws/conversations/${conversationId}`, { cookie: o.agent.cookie });
    await aliceWs.nextOfType("ready");

    // Claim, transfer to Bob, Bob gives it back to the queue, Alice claims again.
    expectStatus(await o.agent.api(`/api/conversations/${conversationId}/assign`, { method: "POST" }), 200, "assign");
    expect(await next("participantAdded", alice.name)).toEqual(activity("participantAdded", alice));
    const moved = expectStatus(await o.agent.api(`/api/conversations/${conversationId}/transfer`, { body: { agent_id: bob.id } }), 200, "transfer").json;
    expect(moved).toEqual({ id: conversationId, session_id: expect.any(String), assigned_agent_id: bob.id, assigned_at: expect.any(String) });
    expect(await next("participantRemoved", alice.name)).toEqual(activity("participantRemoved", alice, { reason: "transferred" }));
    expect(await next("participantAdded", bob.name)).toEqual(activity("participantAdded", bob));
    const back = expectStatus(await bob.api(`/api/conversations/${conversationId}/unassign`, { method: "POST" }), 200, "unassign").json;
    expect(back).toEqual({ id: conversationId, session_id: moved.session_id, assigned_agent_id: null, assigned_at: null });
    expect(await next("participantRemoved", bob.name)).toEqual(activity("participantRemoved", bob, { reason: "unassigned" }));
    expect(expectStatus(await o.agent.api(`/api/conversations/${conversationId}`), 200, "get").json.active_session).toMatchObject({ status: "open", assigned_agent_id: null });
    expectStatus(await o.agent.api(`/api/conversations/${conversationId}/assign`, { method: "POST" }), 200, "claim again");
    expect(await next("participantAdded", alice.name)).toEqual(activity("participantAdded", alice));

    // Alice's native socket closes: her Socket.IO session is still there, so she has not left.
    await aliceWs.close();
    // She leaves over Socket.IO (seed 001's leave_conversation): now she has.
    expect(await ack(aliceSio, "leave_conversation", { conversation_id: conversationId })).toEqual({ ok: true });
    expect(await next("participantLeft", alice.name)).toEqual(activity("participantLeft", alice));

    // Bob joins over Socket.IO and disconnects; Alice comes back natively and closes.
    const bobSio = await pool.connect(agentOpts(bob.cookie, WS));
    expect(await ack(bobSio, "joinConversation", { conversationId })).toEqual({ ok: true, conversationId });
    expect(await next("participantJoined", bob.name)).toEqual(activity("participantJoined", bob));
    bobSio.disconnect();
    expect(await next("participantLeft", bob.name)).toEqual(activity("participantLeft", bob));
    const aliceAgain = await sockets.connect(`/ws/conversations/${conversationId}`, { cookie: o.agent.cookie });
    await aliceAgain.nextOfType("ready");
    expect(await next("participantJoined", alice.name)).toEqual(activity("participantJoined", alice));
    await aliceAgain.close();
    expect(await next("participantLeft", alice.name)).toEqual(activity("participantLeft", alice));

    // Resolving takes the agent off, then the conversation ends.
    expectStatus(await o.agent.api(`/api/conversations/${conversationId}/resolve`, { body: {} }), 200, "resolve");
    expect(await next("participantRemoved", alice.name)).toEqual(activity("participantRemoved", alice, { reason: "resolved" }));
    await nextEvent(customer, "messageArrived", (m) => m.activityType === "endOfConversation");

    // Exactly these, in this order: nothing twice, nothing for the second connection or its close.
    expect(activities(customer)).toEqual([
      ["participantJoined", alice.name],
      ["participantAdded", alice.name],
      ["participantRemoved", alice.name, "transferred"],
      ["participantAdded", bob.name],
      ["participantRemoved", bob.name, "unassigned"],
      ["participantAdded", alice.name],
      ["participantLeft", alice.name],
      ["participantJoined", bob.name],
      ["participantLeft", bob.name],
      ["participantJoined", alice.name],
      ["participantLeft", alice.name],
      ["participantRemoved", alice.name, "resolved"],
      ["endOfConversation", "system"],
    ]);
    // The native protocol: the same frames (participantAdded comes from the session frame there).
    await waitFor(() => nativeFrames(native).length >= 9, { message: "nine participant frames on the native socket" }).catch(() => undefined); // the comparison below says what differs
    expect(nativeFrames(native)).toEqual([
      ["joined", alice.name],
      ["removed", alice.name, "transferred"],
      ["removed", bob.name, "unassigned"],
      ["left", alice.name],
      ["joined", bob.name],
      ["left", bob.name],
      ["joined", alice.name],
      ["left", alice.name],
      ["removed", alice.name, "resolved"],
    ]);
    expect(native.frames.find((f) => f.type === "removed")).toEqual({ type: "removed", participant: { type: "agent", id: alice.id, name: alice.name }, reason: "transferred" });
    // Seeds 000 and 001 have no such events: they get none, and nothing they do not know.
    expect(seen(seed001).filter(([e]) => !["connect", "message_received", "account_status", "queue_position"].includes(e))).toEqual([]);
    expect(seen(seed001, "message_received")).toHaveLength(1);
    expect(seen(seed000).filter(([e]) => !["connect", "receive_message", "agent_joined", "account_status"].includes(e))).toEqual([]);
    expect(seen(customer, "error")).toEqual([]);
  });
});

describe("transfer and unassign", () => {
  it("only the conversation's agent, an owner or an admin hands it on, within the organisation; the router does not give an unassigned session back", async () => {
    const o = await newOrg();
    const other = await newOrg();
    const bob = await agentOf(o.agent, "Bob");
    const carol = await agentOf(o.agent, "Carol");
    const conv = expectStatus(await api("/chat-widget/session", { body: { key: o.pk, session_id: visitorId("t") } }), 200, "session").json;
    const path = (what: string) => `/api/conversations/${conv.conversation_id}/${what}`;
    expectStatus(await api("/api/chat/send", { body: { apiKey: o.pk, visitorId: conv.external_id, message: "hello" } }), 200, "send");

    // Nobody has it yet: the owner may hand it to Bob; Carol (a plain agent) may not.
    expect((await carol.api(path("transfer"), { body: { agent_id: carol.id } })).json.error.code).toBe("forbidden");
    expect((await o.agent.api(path("unassign"), { method: "POST" })).json.error.code).toBe("conflict");
    expectStatus(await o.agent.api(path("transfer"), { body: { agent_id: bob.id } }), 200, "owner hands it to Bob");
    // Bob's now: Carol still may not take it, nor give it back; Bob may hand it to her.
    expectStatus(await carol.api(path("transfer"), { body: { agent_id: carol.id } }), 403, "Carol takes it");
    expectStatus(await carol.api(path("unassign"), { method: "POST" }), 403, "Carol unassigns it");
    expectStatus(await bob.api(path("transfer"), { body: { agent_id: carol.id } }), 200, "Bob hands it to Carol");
    // Another organisation: its agents cannot see the conversation, and its agents are nobody to hand it to.
    expectStatus(await other.agent.api(path("transfer"), { body: { agent_id: other.agent.user.id } }), 404, "another org transfers");
    expectStatus(await other.agent.api(path("unassign"), { method: "POST" }), 404, "another org unassigns");
    expectStatus(await carol.api(path("transfer"), { body: { agent_id: other.agent.user.id } }), 404, "to another org's agent");
    // A disabled agent is nobody to hand it to either.
    expectStatus(await o.agent.api(`/api/company/agents/${bob.id}`, { method: "PATCH", body: { disabled: true } }), 200, "disable Bob");
    expectStatus(await carol.api(path("transfer"), { body: { agent_id: bob.id } }), 404, "to a disabled agent");
    expect(expectStatus(await o.agent.api(`/api/conversations/${conv.conversation_id}`), 200, "get").json.active_session.assigned_agent_id).toBe(carol.id);

    // Routing: a queue both Carol and Dan serve, auto-assigned to the least busy. Dan has one
    // conversation, Carol none; Carol gives hers back: it goes to Dan, though she is less busy.
    const queue = expectStatus(await o.agent.api("/api/routing/queues", { body: { name: "returns", auto_assign: true } }), 201, "queue").json;
    const dan = await agentOf(o.agent, "Dan");
    for (const a of [carol, dan]) expectStatus(await o.agent.api(`/api/routing/agents/${a.id}`, { method: "PUT", body: { skills: [queue.id], capacity: 5 } }), 200, "skills");
    const customer = async () => {
      const init = expectStatus(await api("/api/customer/init", { body: { apiKey: o.pk, Channel: "web", refId: visitorId("r"), firstName: "Rae", Subject: "returns" } }), 200, "init").json;
      expectStatus(await api("/api/chat/send", { body: { apiKey: o.pk, visitorId: init.Participant.id, message: "I want to return this" } }), 200, "send");
      const assignee = async () => (await o.agent.api(`/api/conversations/${init.conversationId}`)).json.active_session?.assigned_agent_id as string | null;
      return { id: init.conversationId as string, assignee };
    };
    const danInbox = await sockets.connect("/ws/org", { cookie: dan.cookie });
    await danInbox.nextOfType("ready");
    const first = await customer();
    await waitFor(async () => (await first.assignee()) === dan.id, { message: "the router gives the first to Dan (the only one online)" });
    const carolInbox = await sockets.connect("/ws/org", { cookie: carol.cookie });
    await carolInbox.nextOfType("ready");
    const second = await customer();
    await waitFor(async () => (await second.assignee()) === carol.id, { message: "the router gives the second to Carol (the less busy)" });
    expectStatus(await carol.api(`/api/conversations/${second.id}/unassign`, { method: "POST" }), 200, "Carol gives it back");
    await waitFor(async () => (await second.assignee()) === dan.id, { message: "the router gives it to Dan, not back to Carol" });
  });
});
