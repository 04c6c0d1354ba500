import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, dostiVisitor, eventually, newOrg, openSocket } from "./helpers";

describe("seed 000 visitor (REST send/poll) and seed 001 agent (REST)", () => {
  it("visitor sends, agent lists/claims/replies, visitor polls, resolve, new session on next message", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "android_user_789", "John Doe");
    const sent = await v.send("Hello from my custom chat interface!");
    expect(sent.status).toBe(200);
    expect(sent.body).toMatchObject({ success: true, message: { sender: "visitor", senderName: "You", message: "Hello from my custom chat interface!" } });

    const list = await eventually(async () => {
      const r = await o.agent.call("/api/conversations/?filter=unassigned");
      return r.body.length === 1 && r.body;
    }, "conversation appears in the unassigned inbox");
    const conv = list[0];
    expect(conv.end_user).toMatchObject({ external_id: "android_user_789", display_name: "John Doe" });
    expect(conv.active_session).toMatchObject({ status: "open", assigned_agent_id: null, tags: [] });

    const assigned = await o.agent.call(`/api/conversations/${conv.id}/assign`, { method: "POST" });
    expect(assigned.status).toBe(200);
    expect(assigned.body.assigned_agent_id).toBe(o.user.id);

    const reply = await o.agent.call(`/api/conversations/${conv.id}/messages`, { body: { content: "Hi John! How can I help you today?" } });
    expect(reply.status).toBe(201);
    expect(reply.body).toMatchObject({ sender_type: "agent", sender_id: o.user.id, seq: 2 });

    const polled = await v.poll(0);
    expect(polled.body.success).toBe(true);
    expect(polled.body.messages.map((m: any) => [m.sender, m.message])).toEqual([
      ["visitor", "Hello from my custom chat interface!"],
      ["agent", "Hi John! How can I help you today?"],
    ]);
    const after = await v.poll(polled.body.messages[0].timestamp);
    expect(after.body.messages.map((m: any) => m.message)).toEqual(["Hi John! How can I help you today?"]);

    const history = await o.agent.call(`/api/conversations/${conv.id}/messages?limit=50&offset=0`);
    expect(history.body.map((m: any) => m.seq)).toEqual([1, 2]);

    const resolved = await o.agent.call(`/api/conversations/${conv.id}/resolve`, { body: { tags: ["billing"] } });
    expect(resolved.body).toMatchObject({ id: conv.id, status: "resolved", tags: ["billing"] });
    const again = await o.agent.call(`/api/conversations/${conv.id}/resolve`, { body: {} });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("already_resolved");

    await v.send("One more thing");
    const reopened = await o.agent.call(`/api/conversations/${conv.id}`);
    expect(reopened.body.active_session.status).toBe("open");
    expect(reopened.body.active_session.id).not.toBe(resolved.body.session_id);
  });

  it("long-poll with wait returns as soon as a message arrives", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "iot-device-1");
    const first = await v.send("boot");
    const since = first.body.message.timestamp;
    const waiting = v.poll(since, 10);
    const conv = (await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed")) as any;
    const started = Date.now();
    await o.agent.call(`/api/conversations/${conv.id}/messages`, { body: { content: "ping" } });
    const polled = await waiting;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(polled.body.messages.map((m: any) => m.message)).toEqual(["ping"]);
  });
});

describe("native WebSocket protocol", () => {
  it("visitor and agent exchange messages; ack after durable; resume delivers exactly what was missed", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=web-1&name=Ann`);
    const ready = await visitor.next((f) => f.type === "ready");
    expect(ready).toMatchObject({ head_seq: 0, recovered: false, messages: [] });
    visitor.send({ type: "send", content: "hello", client_msg_id: "c1" });
    const ack = await visitor.next((f) => f.type === "ack");
    expect(ack).toMatchObject({ client_msg_id: "c1", seq: 1, duplicate: false });

    const agent = await openSocket(`/ws/conversations/${ready.conversation_id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready" && f.head_seq === 1);
    agent.send({ type: "typing", typing: true });
    expect(await visitor.next((f) => f.type === "typing")).toMatchObject({ sender_type: "agent", typing: true });
    agent.send({ type: "send", content: "hi Ann" });
    expect((await visitor.next((f) => f.type === "message" && f.message.seq === 2)).message.content).toBe("hi Ann");
    visitor.close();

    for (const text of ["m3", "m4", "m5"]) agent.send({ type: "send", content: text });
    await agent.next((f) => f.type === "message" && f.message.seq === 5);

    const back = await openSocket(`/ws/visitor?key=${o.pk}&external_id=web-1&since=2&epoch=${ready.epoch}`);
    const resumed = await back.next((f) => f.type === "ready");
    expect(resumed.recovered).toBe(true);
    expect(resumed.messages.map((m: any) => m.seq)).toEqual([3, 4, 5]);

    const stale = await openSocket(`/ws/visitor?key=${o.pk}&external_id=web-1&since=2&epoch=nope`);
    expect(await stale.next((f) => f.type === "ready")).toMatchObject({ recovered: false, resync_required: true, messages: [] });

    const beyond = await openSocket(`/ws/visitor?key=${o.pk}&external_id=web-1&since=99`);
    expect(await beyond.next((f) => f.type === "error")).toMatchObject({ code: "invalid_seq" });
    expect((await beyond.waitClosed()).code).toBe(4400);
  });

  it("a retried client_msg_id returns the original message, and a different body under it is refused", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "retry-1");
    const a = await v.send("once", { clientMessageId: "m-1" });
    const b = await v.send("once", { clientMessageId: "m-1" });
    expect(b.body.message.id).toBe(a.body.message.id);
    const c = await v.send("different", { clientMessageId: "m-1" });
    expect(c.status).toBe(409);
    expect(c.body).toMatchObject({ success: false, error: { code: "idempotency_conflict" } });
    expect((await v.poll(0)).body.messages).toHaveLength(1);
  });

  it("refuses unknown frames with an error and keeps the socket", async () => {
    const o = await newOrg();
    const s = await openSocket(`/ws/visitor?key=${o.pk}&external_id=f-1`);
    await s.next((f) => f.type === "ready");
    s.send({ type: "nope" });
    expect(await s.next((f) => f.type === "error")).toMatchObject({ code: "unknown_event" });
    s.send("{not json");
    await s.next((f) => f.type === "error" && f.code === "invalid_json");
    s.send({ type: "send", content: "still here" });
    expect(await s.next((f) => f.type === "ack")).toMatchObject({ seq: 1 });
  });
});

describe("private messages (whispers)", () => {
  it("reach agents but never the end user, on any surface", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=w-1`);
    const ready = await visitor.next((f) => f.type === "ready");
    const agent = await openSocket(`/ws/conversations/${ready.conversation_id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready");
    visitor.send({ type: "send", content: "hello", client_msg_id: "w-a" });
    await agent.next((f) => f.type === "message" && f.message.seq === 1);

    const v = dostiVisitor(o.pk, "w-1");
    const waiting = v.poll(Date.now() + 0, 5);
    const note = await o.agent.call(`/api/conversations/${ready.conversation_id}/messages`, { body: { content: "VIP customer", private: true } });
    expect(note.body).toMatchObject({ seq: 2, private: true });
    await agent.next((f) => f.type === "message" && f.message.seq === 2);
    await o.agent.call(`/api/conversations/${ready.conversation_id}/messages`, { body: { content: "How can I help?" } });
    expect((await visitor.next((f) => f.type === "message" && f.message.seq === 3)).message.content).toBe("How can I help?");
    expect(visitor.frames.some((f) => f.type === "message" && f.message.seq === 2)).toBe(false);
    expect((await waiting).body.messages.map((m: any) => m.message)).toEqual(["How can I help?"]);

    expect((await v.poll(0)).body.messages.map((m: any) => m.message)).toEqual(["hello", "How can I help?"]);
    const widgetHistory = await call(`/chat-widget/history/${ready.conversation_id}?external_id=w-1`);
    expect(widgetHistory.body.map((m: any) => m.seq)).toEqual([1, 3]);
    const agentHistory = await o.agent.call(`/api/conversations/${ready.conversation_id}/messages`);
    expect(agentHistory.body.map((m: any) => m.seq)).toEqual([1, 2, 3]);
    const back = await openSocket(`/ws/visitor?key=${o.pk}&external_id=w-1&since=0&epoch=${ready.epoch}`);
    expect((await back.next((f) => f.type === "ready")).messages.map((m: any) => m.seq)).toEqual([1, 3]);

    visitor.send({ type: "send", content: "sneaky", private: true, client_msg_id: "w-b" });
    expect(await visitor.next((f) => f.type === "error")).toMatchObject({ code: "forbidden", client_msg_id: "w-b" });
  });
});

describe("presence", () => {
  it("visitors see the account go online when an agent opens the inbox and offline when the last one leaves", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=p-1`);
    expect((await visitor.next((f) => f.type === "ready")).account_status).toBe("offline");
    const inbox = await openSocket("/ws/org", { cookie: o.cookie });
    expect(await inbox.next((f) => f.type === "ready")).toMatchObject({ online_agents: [o.user.id] });
    await visitor.next((f) => f.type === "presence" && f.account_status === "online");
    const second = await openSocket("/ws/org", { cookie: o.cookie });
    await second.next((f) => f.type === "ready");
    second.close();
    inbox.close();
    await visitor.next((f) => f.type === "presence" && f.account_status === "offline");
    expect(visitor.frames.filter((f) => f.type === "presence").map((f) => f.account_status)).toEqual(["online", "offline"]);
  });

  it("the inbox socket receives queue events as visitors write and agents claim", async () => {
    const o = await newOrg();
    const inbox = await openSocket("/ws/org", { cookie: o.cookie });
    await inbox.next((f) => f.type === "ready");
    await dostiVisitor(o.pk, "q-1").send("anyone there?");
    const updated = await inbox.next((f) => f.type === "conversation_updated");
    expect(updated).toMatchObject({ sender_type: "end_user", content: "anyone there?", new_session: true });
    await o.agent.call(`/api/conversations/${updated.conversation_id}/assign`, { method: "POST" });
    expect(await inbox.next((f) => f.type === "conversation_assigned")).toMatchObject({ conversation_id: updated.conversation_id, assigned_to: o.user.id });
  });
});

describe("participants", () => {
  it("an agent with three sockets in a conversation joins once and leaves when the last one closes", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=many-sockets`);
    const { conversation_id } = await visitor.next((f) => f.type === "ready");
    const agents = [];
    for (let i = 0; i < 3; i++) {
      const a = await openSocket(`/ws/conversations/${conversation_id}`, { cookie: o.cookie });
      await a.next((f) => f.type === "ready");
      agents.push(a);
    }
    // A marker through the room: every frame the connects caused has reached the visitor before it.
    const sync = async (text: string) => {
      visitor.send({ type: "send", content: text, client_msg_id: text });
      await visitor.next((f) => f.type === "ack" && f.client_msg_id === text);
    };
    await sync("after-connects");
    const presence = () => visitor.frames.filter((f) => f.type === "joined" || f.type === "left").map((f) => `${f.type}:${f.participant.id}`);
    expect(presence()).toEqual([`joined:${o.user.id}`]);
    agents[0]!.close();
    agents[1]!.close();
    const room = env.CONVERSATION.getByName(conversation_id);
    const openAgentSockets = () => runInDurableObject(room, (_r, s) => s.getWebSockets("agent").filter((ws) => ws.readyState === WebSocket.READY_STATE_OPEN).length);
    await eventually(async () => (await openAgentSockets()) === 1, "the room saw two of the agent's sockets close");
    await sync("after-two-closed");
    expect(presence()).toEqual([`joined:${o.user.id}`]);
    agents[2]!.close();
    await visitor.next((f) => f.type === "left");
    expect(presence()).toEqual([`joined:${o.user.id}`, `left:${o.user.id}`]);
  });
});

describe("returning visitors", () => {
  it("a returning visitor is the same end user and conversation; a changed name or attribute is stored, an unchanged one writes nothing", async () => {
    const o = await newOrg();
    const first = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "ret-1", visitorName: "Ann", message: "one" } });
    const again = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "ret-1", visitorName: "Ann", message: "two" } });
    const renamed = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "ret-1", visitorName: "Ann B", message: "three" } });
    expect([first.status, again.status, renamed.status]).toEqual([200, 200, 200]);
    const [conv] = await eventually(async () => {
      const r = await o.agent.call("/api/conversations/?filter=all");
      return r.body.length === 1 && r.body[0].end_user.display_name === "Ann B" && r.body;
    }, "one conversation, renamed");
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM end_users WHERE org_id = ?").bind(o.org.id).first<{ n: number }>();
    expect(row!.n).toBe(1);
    const history = await o.agent.call(`/api/conversations/${conv.id}/messages`);
    expect(history.body.map((m: any) => [m.content, m.sender_name])).toEqual([["one", "Ann"], ["two", "Ann"], ["three", "Ann B"]]);
  });
});

describe("live events while nobody listens", () => {
  it("a room skips its live events while the hub has no listener, and the first inbox to open gets every event after its ready", async () => {
    const o = await newOrg();
    const visitor = dostiVisitor(o.pk, "quiet-1");
    await visitor.send("nobody is watching");
    const hub = env.ORG_HUB.getByName(o.org.id);
    const quiet = () => runInDurableObject(hub, (_h, s) => s.storage.sql.exec<{ conversation_id: string }>("SELECT conversation_id FROM quiet_publishers").toArray());
    const [row] = await eventually(async () => (await quiet()).length === 1 && quiet(), "the hub records the room it told nobody listens");
    const room = env.CONVERSATION.getByName(row!.conversation_id);
    await eventually(() => runInDurableObject(room, (r) => (r as unknown as { hubQuietUntil: number }).hubQuietUntil > Date.now()), "the room stops publishing");

    const inbox = await openSocket("/ws/org", { cookie: o.cookie });
    await inbox.next((f) => f.type === "ready");
    expect(await quiet()).toEqual([]);
    expect(await runInDurableObject(room, (r) => (r as unknown as { hubQuietUntil: number }).hubQuietUntil)).toBe(0);
    await visitor.send("now someone is");
    expect(await inbox.next((f) => f.type === "conversation_updated")).toMatchObject({ conversation_id: row!.conversation_id, content: "now someone is" });
    expect(inbox.frames.filter((f) => f.type === "conversation_updated").map((f) => f.content)).toEqual(["now someone is"]);
  });
});

describe("security", () => {
  it("an agent of org A gets 404 on org B's conversation", async () => {
    const a = await newOrg();
    const b = await newOrg();
    await dostiVisitor(b.pk, "b-visitor").send("secret of B");
    const convB = await eventually(async () => (await b.agent.call("/api/conversations/?filter=all")).body[0], "B lists its conversation");
    for (const path of [`/api/conversations/${convB.id}`, `/api/conversations/${convB.id}/messages`]) {
      const r = await a.agent.call(path);
      expect(r.status).toBe(404);
      expect(r.body.error.code).toBe("not_found");
    }
    expect((await a.agent.call(`/api/conversations/${convB.id}/assign`, { method: "POST" })).status).toBe(404);
    expect((await a.agent.call(`/api/conversations/${convB.id}/messages`, { body: { content: "x" } })).status).toBe(404);
    expect((await a.agent.call("/api/conversations/?filter=all")).body).toEqual([]);
  });

  it("refuses a cookie state change without a valid CSRF token", async () => {
    const o = await newOrg();
    const noToken = await call("/api/company/api-keys", { body: { name: "k", kind: "public" }, headers: { cookie: o.cookie } });
    expect(noToken.status).toBe(403);
    expect(noToken.body.error.code).toBe("csrf_failed");
    const wrong = await call("/api/company/api-keys", { body: { name: "k", kind: "public" }, headers: { cookie: o.cookie, "x-csrftoken": "0".repeat(64) } });
    expect(wrong.status).toBe(403);
    const crossSite = await o.agent.call("/api/company/api-keys", { body: { name: "k", kind: "public" }, headers: { origin: "https://evil.test" } });
    expect(crossSite.status).toBe(403);
  });

  it("answers malformed and oversized payloads with clear errors", async () => {
    const o = await newOrg();
    const bad = await call("/api/chat/send", { raw: '{"apiKey": "x", ', headers: { "content-type": "application/json" } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("invalid_json");
    const wrongType = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "v", message: { $ne: "" } } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.error.code).toBe("validation_failed");
    const huge = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "v", message: "x".repeat(100_000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe("payload_too_large");
    const tooLongText = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "v", message: "é".repeat(9000) } });
    expect(tooLongText.status).toBe(400);
    const lone = await call("/api/chat/send", { raw: `{"apiKey":"${o.pk}","visitorId":"v","message":"\\ud800"}`, headers: { "content-type": "application/json" } });
    expect(lone.body.error.code).toBe("invalid_text");
  });
});
