// Seed 000's visitor (REST send/poll) and seed 001's agent (REST), against the real `wrangler dev`.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { api, expectStatus } from "./harness.ts";
import { dostiVisitor, listed, newOrg, sent, unlisted, visitorId } from "./fixtures.ts";
import { SocketPool } from "./ws-client.ts";

const sockets = new SocketPool();
afterEach(sockets.closeAll);

const QUICK = { buttons: [{ label: "Track my order", value: "track" }, { label: "Talk to a human", value: "human" }] };

describe("seed 000 visitor over real HTTP", () => {
  it("sends; agent lists, claims and replies (text and quick_button); visitor polls exactly the new messages; resolve; next message opens a new session", async () => {
    const { agent, pk } = await newOrg();
    const v = dostiVisitor(pk, visitorId("android"), "John Doe");

    const hello = await sent(v.send("Hello from my custom chat interface!"));
    expect(hello).toEqual({ id: expect.any(String), sender: "visitor", senderName: "You", message: "Hello from my custom chat interface!", timestamp: expect.any(Number) });

    const conv = await listed(agent, "unassigned", v.id);
    expect(conv.end_user).toMatchObject({ external_id: v.id, display_name: "John Doe" });
    expect(conv.active_session).toMatchObject({ status: "open", assigned_agent_id: null, tags: [] });
    const firstSession = conv.active_session.id;

    const claim = expectStatus(await agent.api(`/api/conversations/${conv.id}/assign`, { method: "POST" }), 200, "assign");
    expect(claim.json).toMatchObject({ id: conv.id, session_id: firstSession, assigned_agent_id: agent.user.id });
    await unlisted(agent, "unassigned", conv.id);
    expect((await listed(agent, "mine", v.id)).active_session).toMatchObject({ id: firstSession, assigned_agent_id: agent.user.id });

    const reply = expectStatus(await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "Hi John! How can I help you today?" } }), 201, "reply");
    expect(reply.json).toMatchObject({ seq: 2, sender_type: "agent", sender_id: agent.user.id, sender_name: "E2E Agent", content_type: "text", rich_media: null, duplicate: false });
    const buttons = expectStatus(
      await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "What do you need?", content_type: "quick_button", rich_media: QUICK } }),
      201,
      "quick_button reply",
    );
    expect(buttons.json).toMatchObject({ seq: 3, content_type: "quick_button", content: "What do you need?", rich_media: QUICK });

    // The visitor's cursor is its own message's timestamp: exactly the two replies, in order.
    const polled = expectStatus(await v.poll(hello.timestamp), 200, "poll");
    expect(polled.json.success).toBe(true);
    expect(polled.json.messages.map((m) => [m.id, m.sender, m.senderName, m.message])).toEqual([
      [reply.json.id, "agent", "E2E Agent", "Hi John! How can I help you today?"],
      [buttons.json.id, "agent", "E2E Agent", "What do you need?"],
    ]);
    expect(polled.json.messages[0]!.timestamp).toBeGreaterThan(hello.timestamp);
    expect(polled.json.messages[1]!.timestamp).toBeGreaterThan(polled.json.messages[0]!.timestamp);
    // POST poll is the same view; a cursor at the newest message sees nothing.
    expect((await v.pollPost(hello.timestamp)).json).toEqual(polled.json);
    expect((await v.poll(polled.json.messages[1]!.timestamp)).json).toEqual({ success: true, messages: [] });

    // The agent's and the widget's views carry the rich media.
    const history = expectStatus(await agent.api(`/api/conversations/${conv.id}/messages?limit=50&offset=0`), 200, "history");
    expect(history.json.map((m: any) => [m.seq, m.sender_type, m.content_type])).toEqual([[1, "end_user", "text"], [2, "agent", "text"], [3, "agent", "quick_button"]]);
    expect(history.json[2].rich_media).toEqual(QUICK);
    const widget = expectStatus(await api(`/chat-widget/history/${conv.id}?external_id=${v.id}`), 200, "widget history");
    expect(widget.json.map((m: any) => m.id)).toEqual([hello.id, reply.json.id, buttons.json.id]);
    expect(widget.json[2]).toMatchObject({ content_type: "quick_button", rich_media: QUICK });
    expect(widget.json[2]).not.toHaveProperty("session_id");

    const resolved = expectStatus(await agent.api(`/api/conversations/${conv.id}/resolve`, { body: { tags: ["billing", "e2e"] } }), 200, "resolve");
    expect(resolved.json).toMatchObject({ id: conv.id, session_id: firstSession, status: "resolved", tags: ["billing", "e2e"], resolved_at: expect.any(String) });
    const again = await agent.api(`/api/conversations/${conv.id}/resolve`, { body: {} });
    expect(again.status).toBe(409);
    expect(again.json).toEqual({ error: { code: "already_resolved", message: expect.any(String), retryable: false } });
    expect((await agent.api(`/api/conversations/${conv.id}`)).json.active_session).toBeNull();
    await unlisted(agent, "mine", conv.id);

    const more = await sent(v.send("One more thing"));
    const reopened = expectStatus(await agent.api(`/api/conversations/${conv.id}`), 200, "get conversation");
    expect(reopened.json.active_session).toMatchObject({ status: "open", assigned_agent_id: null, tags: [] });
    expect(reopened.json.active_session.id).not.toBe(firstSession);
    // The inbox (D1, flushed asynchronously) offers the new session as unassigned again.
    await listed(agent, "unassigned", v.id, (c) => c.active_session?.id === reopened.json.active_session.id);

    // The whole thread, from the beginning, in order, across both sessions.
    const all = expectStatus(await v.poll(0), 200, "poll from 0");
    expect(all.json.messages.map((m) => m.id)).toEqual([hello.id, reply.json.id, buttons.json.id, more.id]);
    const messages = expectStatus(await agent.api(`/api/conversations/${conv.id}/messages`), 200, "messages").json;
    expect(messages.map((m: any) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(new Set(messages.map((m: any) => m.session_id)).size).toBe(2);
    expect(messages[3].session_id).toBe(reopened.json.active_session.id);
  });

  it("long-poll: wait=10 returns within moments of an agent reply; a wait with nothing new returns [] after about the wait", async () => {
    const { agent, pk } = await newOrg();
    const v = dostiVisitor(pk, visitorId("iot"));
    const boot = await sent(v.send("boot"));
    const conv = await listed(agent, "all", v.id);

    const waiting = v.poll(boot.timestamp, 10);
    // The poll is parked, not answered (bounded check, not a sleep to wait for state).
    expect(await Promise.race([waiting.then(() => "answered"), sleep(500).then(() => "parked")])).toBe("parked");
    const started = Date.now();
    const reply = expectStatus(await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "pong from support" } }), 201, "reply");
    const polled = await waiting;
    const elapsed = Date.now() - started;
    expect(polled.status).toBe(200);
    expect(polled.json.messages.map((m) => [m.id, m.message])).toEqual([[reply.json.id, "pong from support"]]);
    expect(elapsed).toBeLessThan(3_000);

    // POST long-poll too, and nothing new: an empty list after about the wait (2 s).
    const last = polled.json.messages[0]!.timestamp;
    const t0 = Date.now();
    const empty = await v.pollPost(last, 2);
    const waited = Date.now() - t0;
    expect(empty.status).toBe(200);
    expect(empty.json).toEqual({ success: true, messages: [] });
    expect(waited).toBeGreaterThanOrEqual(1_900);
    expect(waited).toBeLessThan(4_000);
  });
});

describe("agent inbox socket (/ws/org)", () => {
  it("announces presence and streams queue events in order; visitors see the account online", async () => {
    const o = await newOrg();
    const inbox = await sockets.connect("/ws/org", { bearer: o.sk });
    expect(await inbox.take(2)).toEqual([
      { type: "ready", online_agents: [o.agent.user.id] },
      { type: "agent_status_changed", agent_id: o.agent.user.id, status: "online" },
    ]);

    const vid = visitorId("inbox");
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}&name=Ann`);
    const ready = await visitor.nextOfType("ready");
    expect(ready.account_status).toBe("online");

    const v = dostiVisitor(o.pk, vid);
    const hello = await sent(v.send("anyone there?"));
    expect(await inbox.next()).toEqual({
      type: "conversation_updated",
      conversation_id: ready.conversation_id,
      session_id: expect.any(String),
      sender_type: "end_user",
      content_type: "text",
      content: "anyone there?",
      seq: 1,
      created_at: new Date(hello.timestamp).toISOString(),
      new_session: true,
    });

    expectStatus(await o.agent.api(`/api/conversations/${ready.conversation_id}/assign`, { method: "POST" }), 200, "assign");
    expect(await inbox.next()).toEqual({ type: "conversation_assigned", conversation_id: ready.conversation_id, assigned_to: o.agent.user.id, agent_name: "E2E Agent" });
    const resolved = expectStatus(await o.agent.api(`/api/conversations/${ready.conversation_id}/resolve`, { body: { tags: ["done"] } }), 200, "resolve");
    expect(await inbox.next()).toEqual({ type: "conversation_resolved", conversation_id: ready.conversation_id, session_id: resolved.json.session_id, tags: ["done"] });

    // A second agent comes and goes: the first agent's inbox sees both changes, nothing else.
    const second = { name: "Second Agent", email: `second-${vid}@e2e.parley.test`, password: "second-password-1" };
    expectStatus(await o.agent.api("/api/company/agents", { body: second }), 201, "create agent");
    const login = expectStatus(await api("/auth/login", { body: { email: second.email, password: second.password } }), 200, "login");
    const cookie = login.headers.getSetCookie().map((c) => c.split(";", 1)[0]!).find((c) => c.startsWith("session="))!;
    const other = await sockets.connect("/ws/org", { cookie });
    const hello2 = await other.nextOfType("ready");
    expect(new Set(hello2.online_agents)).toEqual(new Set([o.agent.user.id, login.json.user.id]));
    expect(await inbox.next()).toEqual({ type: "agent_status_changed", agent_id: login.json.user.id, status: "online" });
    await other.close();
    expect(await inbox.next()).toEqual({ type: "agent_status_changed", agent_id: login.json.user.id, status: "offline" });
    expect(inbox.unread()).toEqual([]);
  });
});
