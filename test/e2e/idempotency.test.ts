// Idempotent retries over real HTTP and real sockets: a retried client message id returns the
// original message and stores nothing new; the same id with a different body is refused.
import { afterEach, describe, expect, it } from "vitest";
import { expectStatus } from "./harness.ts";
import { dostiVisitor, listed, newOrg, sent, visitorId } from "./fixtures.ts";
import { SocketPool } from "./ws-client.ts";

const sockets = new SocketPool();
afterEach(sockets.closeAll);

const conflict = { code: "idempotency_conflict", message: expect.any(String), retryable: false };

describe("idempotent retries", () => {
  it("seed 000 REST: same clientMessageId -> same message, one stored; different body -> 409", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("retry"));
    const a = await sent(v.send("once", { clientMessageId: "m-1" }));
    const b = await sent(v.send("once", { clientMessageId: "m-1" }));
    expect(b).toEqual(a);

    const c = await v.send("different", { clientMessageId: "m-1" });
    expect(c.status).toBe(409);
    expect(c.json).toEqual({ success: false, error: conflict });

    // Retries racing each other over separate connections still store one message.
    const racing = await Promise.all(Array.from({ length: 5 }, () => v.send("raced", { clientMessageId: "m-2" })));
    expect(racing.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(racing.map((r) => r.json.message.id)).size).toBe(1);

    const polled = expectStatus(await v.poll(0), 200, "poll");
    expect(polled.json.messages.map((m) => [m.id, m.message])).toEqual([
      [a.id, "once"],
      [racing[0]!.json.message.id, "raced"],
    ]);
  });

  it("agent REST: a retried client_msg_id answers 200 duplicate with the original; a different body -> 409", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("agent-retry"));
    await sent(v.send("hi"));
    const conv = await listed(o.agent, "all", v.id);
    const path = `/api/conversations/${conv.id}/messages`;

    const first = expectStatus(await o.agent.api(path, { body: { content: "on it", client_msg_id: "a-1" } }), 201, "send");
    expect(first.json).toMatchObject({ seq: 2, client_msg_id: "a-1", duplicate: false });
    const retry = expectStatus(await o.agent.api(path, { body: { content: "on it", client_msg_id: "a-1" } }), 200, "retry");
    expect(retry.json).toEqual({ ...first.json, duplicate: true });
    // The secret-key surface is the same core: its retry is the same message too.
    const viaKey = await o.agent.api(path, { body: { content: "on it", client_msg_id: "a-1" }, cookie: "", csrf: "", headers: { authorization: `Bearer ${o.sk}` } });
    expect(viaKey.status).toBe(200);
    expect(viaKey.json).toMatchObject({ id: first.json.id, seq: 2, duplicate: true });

    const clash = await o.agent.api(path, { body: { content: "something else", client_msg_id: "a-1" } });
    expect(clash.status).toBe(409);
    expect(clash.json).toEqual({ error: conflict });
    const richClash = await o.agent.api(path, { body: { content: "on it", content_type: "quick_button", rich_media: { buttons: [{ label: "A", value: "a" }] }, client_msg_id: "a-1" } });
    expect(richClash.status).toBe(409);

    const history = expectStatus(await o.agent.api(path), 200, "history");
    expect(history.json.map((m: any) => [m.seq, m.content])).toEqual([[1, "hi"], [2, "on it"]]);
  });

  it("WebSocket: a resent frame is acked as a duplicate and broadcast once; a different body gets an error frame; REST and socket share ids", async () => {
    const o = await newOrg();
    const vid = visitorId("ws-retry");
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}`);
    const ready = await visitor.next();
    const watcher = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { bearer: o.sk });
    await watcher.next();

    visitor.send({ type: "send", content: "hello", client_msg_id: "w-1" });
    const ack = await visitor.nextOfType("ack");
    expect(ack).toEqual({ type: "ack", client_msg_id: "w-1", id: expect.any(String), seq: 1, duplicate: false });
    visitor.send({ type: "send", content: "hello", client_msg_id: "w-1" });
    expect(await visitor.nextOfType("ack")).toEqual({ ...ack, duplicate: true });

    visitor.send({ type: "send", content: "not hello", client_msg_id: "w-1" });
    expect(await visitor.nextOfType("error")).toEqual({ type: "error", ...conflict, client_msg_id: "w-1" });

    // A retry over the other surface: the message first sent on the socket, resent over REST.
    const v = dostiVisitor(o.pk, vid);
    const overRest = await sent(v.send("hello", { clientMessageId: "w-1" }));
    expect(overRest.id).toBe(ack.id);
    // And the other way round: first sent over REST, resent on the socket.
    const restFirst = await sent(v.send("from rest", { clientMessageId: "w-2" }));
    visitor.send({ type: "send", content: "from rest", client_msg_id: "w-2" });
    expect(await visitor.nextOfType("ack")).toEqual({ type: "ack", client_msg_id: "w-2", id: restFirst.id, seq: 2, duplicate: true });

    // Others saw each message exactly once.
    const seen = await watcher.sync();
    expect(seen.filter((f) => f.type === "message").map((f) => [f.message.id, f.message.seq])).toEqual([
      [ack.id, 1],
      [restFirst.id, 2],
    ]);
    expect(seen.map((f) => f.type)).toEqual(["message", "session", "message"]);
    // The sender itself: the agent joining, its first send's broadcast and session, the second message's broadcast.
    expect((await visitor.sync()).map((f) => f.type)).toEqual(["joined", "message", "session", "message"]);
    expect((await v.poll(0)).json.messages.map((m) => m.id)).toEqual([ack.id, restFirst.id]);
  });
});
