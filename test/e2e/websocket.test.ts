// The native WebSocket protocol over real sockets to `wrangler dev`: a visitor and an agent in
// one conversation, resume after a disconnect, and the same log seen through every surface.
import { afterEach, describe, expect, it } from "vitest";
import { api, expectStatus } from "./harness.ts";
import { dostiVisitor, newOrg, sent, visitorId } from "./fixtures.ts";
import { SocketPool, type Frame } from "./ws-client.ts";

const sockets = new SocketPool();
afterEach(sockets.closeAll);

const types = (frames: Frame[]) => frames.map((f) => f.type);

describe("visitor and agent sockets in one conversation", () => {
  it("send -> ack and broadcast; typing both ways; read receipts", async () => {
    const o = await newOrg();
    const vid = visitorId("web");
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}&name=Ann`);
    const ready = await visitor.next();
    expect(ready).toEqual({
      type: "ready",
      conversation_id: expect.any(String),
      epoch: expect.any(String),
      head_seq: 0,
      recovered: false,
      resync_required: false,
      messages: [],
      session: null,
      account_status: "offline",
      read: { end_user_seq: 0, staff_seq: 0 },
      queue: null,
      typing_preview: false,
    });

    // The sender gets its message broadcast, the session it opened, and its ack: nothing else.
    visitor.send({ type: "send", content: "hello", client_msg_id: "v-1" });
    const own = await visitor.take(3);
    expect([...types(own)].sort()).toEqual(["ack", "message", "session"]);
    const msg1 = own.find((f) => f.type === "message")!.message;
    expect(msg1).toMatchObject({ seq: 1, sender_type: "end_user", sender_id: vid, sender_name: "Ann", content: "hello", client_msg_id: "v-1", status: "SENT" });
    expect(types(own).indexOf("message")).toBeLessThan(types(own).indexOf("session"));
    expect(own.find((f) => f.type === "session")!.session).toMatchObject({ id: msg1.session_id, status: "open" });
    expect(own.find((f) => f.type === "ack")).toEqual({ type: "ack", client_msg_id: "v-1", id: msg1.id, seq: 1, duplicate: false });
    expect(await visitor.sync()).toEqual([]);

    // The agent joins with its session cookie (no Origin: a non-browser client).
    const agent = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { cookie: o.agent.cookie });
    const agentReady = await agent.next();
    expect(agentReady).toMatchObject({ type: "ready", conversation_id: ready.conversation_id, epoch: ready.epoch, head_seq: 1, recovered: false, resync_required: false });
    expect(agentReady.messages).toEqual([msg1]);
    expect(agentReady.session).toMatchObject({ id: msg1.session_id, status: "open", assigned_agent_id: null });
    // The others in the room hear that an agent joined; the agent itself does not.
    expect(await visitor.next()).toEqual({ type: "joined", participant: { type: "agent", id: o.agent.user.id, name: "E2E Agent" } });

    // Typing both ways: the other side sees it, the typist does not get an echo.
    agent.send({ type: "typing", typing: true });
    expect(await visitor.next()).toEqual({ type: "typing", sender_type: "agent", sender_id: o.agent.user.id, sender_name: "E2E Agent", typing: true });
    visitor.send({ type: "typing", typing: true });
    expect(await agent.next()).toEqual({ type: "typing", sender_type: "end_user", sender_id: vid, sender_name: "Ann", typing: true });
    expect(await visitor.sync()).toEqual([]);
    expect(await agent.sync()).toEqual([]);

    // The agent's message clears its typing indicator, on the visitor's side right after it.
    agent.send({ type: "send", content: "hi Ann", client_msg_id: "a-1" });
    const mine = await agent.take(3);
    expect([...types(mine)].sort()).toEqual(["ack", "message", "typing"]);
    const ack = mine.find((f) => f.type === "ack")!;
    expect(ack).toEqual({ type: "ack", client_msg_id: "a-1", id: expect.any(String), seq: 2, duplicate: false });
    expect(mine.find((f) => f.type === "message")!.message).toMatchObject({ id: ack.id, seq: 2 });
    expect(mine.find((f) => f.type === "typing")).toMatchObject({ sender_type: "agent", typing: false });
    const seen = await visitor.take(2);
    expect(seen).toEqual([
      { type: "message", message: expect.objectContaining({ id: ack.id, seq: 2, sender_type: "agent", sender_id: o.agent.user.id, content: "hi Ann", client_msg_id: "a-1" }) },
      { type: "typing", sender_type: "agent", sender_id: o.agent.user.id, sender_name: "E2E Agent", typing: false },
    ]);
    expect(await visitor.sync()).toEqual([]);

    // Read receipts go to everyone in the room and mark the other side's messages READ.
    visitor.send({ type: "read", seq: 2 });
    const receipt = { type: "read", reader_type: "end_user", reader_id: vid, seq: 2 };
    expect(await visitor.nextOfType("read")).toEqual(receipt);
    expect(await agent.nextOfType("read")).toEqual(receipt);
    agent.send({ type: "read", seq: 1 });
    const agentReceipt = { type: "read", reader_type: "agent", reader_id: o.agent.user.id, seq: 1 };
    expect(await agent.nextOfType("read")).toEqual(agentReceipt);
    expect(await visitor.nextOfType("read")).toEqual(agentReceipt);
    const history = expectStatus(await o.agent.api(`/api/conversations/${ready.conversation_id}/messages`), 200, "history");
    expect(history.json.map((m: any) => [m.seq, m.status])).toEqual([[1, "READ"], [2, "READ"]]);

    expect(await visitor.sync()).toEqual([]);
    expect(await agent.sync()).toEqual([]);
  });

  it("a secret key opens the agent socket too, and an agent's REST send reaches both sockets", async () => {
    const o = await newOrg();
    const vid = visitorId("sk");
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}`);
    const ready = await visitor.next();
    const agent = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { bearer: o.sk });
    expect(await agent.next()).toMatchObject({ type: "ready", conversation_id: ready.conversation_id, head_seq: 0 });
    expect(await visitor.next()).toEqual({ type: "joined", participant: { type: "agent", id: o.agent.user.id, name: "E2E Agent" } });

    const rest = expectStatus(await o.agent.api(`/api/conversations/${ready.conversation_id}/messages`, { body: { content: "from REST" } }), 201, "REST send");
    // The agent's first message opens the conversation's first session.
    for (const s of [visitor, agent]) {
      const [message, session] = await s.take(2);
      expect(message).toEqual({ type: "message", message: expect.objectContaining({ id: rest.json.id, seq: 1, sender_type: "agent", content: "from REST" }) });
      expect(session).toEqual({ type: "session", session: expect.objectContaining({ id: rest.json.session_id, status: "open" }) });
      expect(await s.sync()).toEqual([]);
    }
  });
});

describe("resume after a disconnect", () => {
  it("replays exactly the missed messages (recovered), then live ones; a REST poller sees the same log in the same order", async () => {
    const o = await newOrg();
    const vid = visitorId("resume");
    const path = `/ws/visitor?key=${o.pk}&external_id=${vid}&name=Ann`;
    const v = dostiVisitor(o.pk, vid, "Ann");
    const visitor = await sockets.connect(path);
    const ready = await visitor.next();
    visitor.send({ type: "send", content: "first", client_msg_id: "r-1" });
    const first = await visitor.nextOfType("ack");
    const socketView: string[] = [first.id];

    const agent = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { cookie: o.agent.cookie });
    expect(await agent.next()).toMatchObject({ type: "ready", head_seq: 1 });

    await visitor.close();
    const missed: Frame[] = [];
    for (const text of ["missed 1", "missed 2", "missed 3"]) {
      agent.send({ type: "send", content: text });
      missed.push(await agent.nextOfType("ack"));
    }
    expect(missed.map((a) => a.seq)).toEqual([2, 3, 4]);

    const back = await sockets.connect(`${path}&since=${first.seq}&epoch=${ready.epoch}`);
    const resumed = await back.next();
    expect(resumed).toMatchObject({ type: "ready", conversation_id: ready.conversation_id, epoch: ready.epoch, head_seq: 4, recovered: true, resync_required: false });
    expect(resumed.messages.map((m: any) => [m.id, m.seq, m.content])).toEqual([
      [missed[0]!.id, 2, "missed 1"],
      [missed[1]!.id, 3, "missed 2"],
      [missed[2]!.id, 4, "missed 3"],
    ]);
    socketView.push(...resumed.messages.map((m: any) => m.id));
    expect(await back.sync()).toEqual([]);

    // A seed-000 long-poller parked at the newest message wakes with the same live message.
    const cursor = Date.parse(resumed.messages[2].created_at);
    const longPoll = v.poll(cursor, 10);
    agent.send({ type: "send", content: "live" });
    const live = await back.next();
    expect(live).toEqual({ type: "message", message: expect.objectContaining({ seq: 5, content: "live", sender_type: "agent" }) });
    socketView.push(live.message.id);
    expect((await longPoll).json.messages.map((m) => [m.id, m.message])).toEqual([[live.message.id, "live"]]);
    expect(await back.sync()).toEqual([]);

    // And a REST send by the visitor shows up on the socket in the same order.
    const viaRest = await sent(v.send("typed on my phone"));
    const echo = await back.next();
    expect(echo).toEqual({ type: "message", message: expect.objectContaining({ id: viaRest.id, seq: 6, sender_type: "end_user", content: "typed on my phone" }) });
    socketView.push(echo.message.id);

    // One core, several views: seed 000 poll, agent REST, widget history all list the same ids.
    const polled = expectStatus(await v.poll(0), 200, "poll");
    expect(polled.json.messages.map((m) => m.id)).toEqual(socketView);
    expect(polled.json.messages.map((m) => m.sender)).toEqual(["visitor", "agent", "agent", "agent", "agent", "visitor"]);
    const agentView = expectStatus(await o.agent.api(`/api/conversations/${ready.conversation_id}/messages`), 200, "agent history");
    expect(agentView.json.map((m: any) => m.id)).toEqual(socketView);
    expect(agentView.json.map((m: any) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    const widget = expectStatus(await api(`/chat-widget/history/${ready.conversation_id}?external_id=${vid}`), 200, "widget history");
    expect(widget.json.map((m: any) => m.id)).toEqual(socketView);
  });

  it("resume edge cases: at the head, stale epoch, too far behind, beyond the head", async () => {
    const o = await newOrg();
    const vid = visitorId("edge");
    const path = `/ws/visitor?key=${o.pk}&external_id=${vid}`;
    const visitor = await sockets.connect(path);
    const ready = await visitor.next();
    const agent = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { bearer: o.sk });
    await agent.next();
    // 301 messages: more than the 300 a resume replays (agents are not rate limited).
    for (let i = 1; i <= 301; i++) agent.send({ type: "send", content: `m${i}` });
    await agent.next((f) => f.type === "ack" && f.seq === 301, 30_000);

    const atHead = await sockets.connect(`${path}&since=301&epoch=${ready.epoch}`);
    expect(await atHead.next()).toMatchObject({ type: "ready", head_seq: 301, recovered: true, resync_required: false, messages: [] });

    const exactly300 = await sockets.connect(`${path}&since=1&epoch=${ready.epoch}`);
    const replay = await exactly300.next();
    expect(replay).toMatchObject({ type: "ready", recovered: true, resync_required: false });
    expect(replay.messages.map((m: any) => m.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 2));

    const tooFar = await sockets.connect(`${path}&since=0&epoch=${ready.epoch}`);
    expect(await tooFar.next()).toMatchObject({ type: "ready", head_seq: 301, recovered: false, resync_required: true, messages: [] });

    const stale = await sockets.connect(`${path}&since=300&epoch=not-the-epoch`);
    expect(await stale.next()).toMatchObject({ type: "ready", head_seq: 301, recovered: false, resync_required: true, messages: [] });

    const beyond = await sockets.connect(`${path}&since=302&epoch=${ready.epoch}`);
    expect(await beyond.next()).toEqual({ type: "error", code: "invalid_seq", message: expect.any(String), retryable: false });
    expect((await beyond.waitClosed()).code).toBe(4400);
    expect(beyond.frames).toHaveLength(1);
  });
});

describe("ping", () => {
  it('the exact string {"type":"ping"} is answered {"type":"pong"} on visitor and agent sockets', async () => {
    const o = await newOrg();
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${visitorId("ping")}`);
    const ready = await visitor.next();
    const agent = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { cookie: o.agent.cookie });
    await agent.next();
    expect(await visitor.nextOfType("joined")).toMatchObject({ participant: { id: o.agent.user.id } });
    for (const s of [visitor, agent]) {
      s.send('{"type":"ping"}');
      expect(await s.next()).toEqual({ type: "pong" });
      expect(s.raw.at(-1)).toBe('{"type":"pong"}');
      // Not the exact string (spaces): the object parses it and answers the same.
      s.send('{ "type": "ping" }');
      expect(await s.next()).toEqual({ type: "pong" });
      expect(s.raw.at(-1)).toBe('{"type":"pong"}');
    }
    // Pings change nothing in the conversation and reach nobody else.
    expect(await visitor.sync()).toEqual([]);
    expect(await agent.sync()).toEqual([]);
    expect((await o.agent.api(`/api/conversations/${ready.conversation_id}/messages`)).json).toEqual([]);
  });

  it('the agent inbox socket (/ws/org) answers {"type":"ping"} with {"type":"pong"} too', async () => {
    const o = await newOrg();
    const inbox = await sockets.connect("/ws/org", { bearer: o.sk });
    expect((await inbox.take(2)).map((f) => f.type)).toEqual(["ready", "agent_status_changed"]);
    inbox.send('{"type":"ping"}');
    expect(await inbox.next()).toEqual({ type: "pong" });
    expect(inbox.raw.at(-1)).toBe('{"type":"pong"}');
    expect(inbox.unread()).toEqual([]);
  });

  it("refuses unknown and malformed frames with an error and keeps the socket", async () => {
    const o = await newOrg();
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${visitorId("bad")}`);
    await visitor.next();
    visitor.send({ type: "nope" });
    expect(await visitor.next()).toEqual({ type: "error", code: "unknown_event", message: expect.any(String), retryable: false });
    visitor.send("{not json");
    expect(await visitor.next()).toEqual({ type: "error", code: "invalid_json", message: expect.any(String), retryable: false });
    visitor.send({ type: "send", content: "   " });
    expect(await visitor.next()).toEqual({ type: "error", code: "validation_failed", message: expect.any(String), retryable: false });
    visitor.send({ type: "send", content: "still here", client_msg_id: "ok-1" });
    expect(await visitor.nextOfType("ack")).toMatchObject({ client_msg_id: "ok-1", seq: 1 });
  });
});
