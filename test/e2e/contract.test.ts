// Contract points the server states (in its docs, code comments and protocol constants) checked
// over real HTTP and sockets. Each of these failed against the code as first tested; see the
// comments for the stated contract each one holds the server to.
import { afterEach, describe, expect, it } from "vitest";
import { baseUrl } from "./harness.ts";
import { dostiVisitor, listed, newOrg, sent, visitorId } from "./fixtures.ts";
import { SocketPool } from "./ws-client.ts";

const sockets = new SocketPool();
afterEach(sockets.closeAll);

describe("WebSocket contract", () => {
  // protocol.ts: MAX_FRAME_BYTES = 64 KiB, "Largest frame a client may send (bytes); larger frames
  // close the socket with 1009". The size is UTF-8 bytes on the wire, whatever the characters.
  it("a frame over 64 KiB of UTF-8 closes with 1009 even when it has fewer than 65,536 UTF-16 code units", async () => {
    const o = await newOrg();
    const big = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${visitorId("utf8")}`);
    await big.next();
    const frame = JSON.stringify({ type: "send", content: "é".repeat(34_000) });
    expect(frame.length).toBeLessThan(64 * 1024);
    expect(Buffer.byteLength(frame, "utf8")).toBeGreaterThan(64 * 1024);
    big.send(frame);
    expect(await big.waitClosed()).toEqual({ code: 1009, reason: "frame too large" });
    expect(big.unread()).toEqual([]);
  });

  // room.ts (file comment): "Every send takes one path: ... insert with the next seq -> answer the
  // sender -> broadcast -> wake waiters". On a socket the answer is the ack.
  it("the sender's ack comes before the broadcast of its own message", async () => {
    const o = await newOrg();
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${visitorId("order")}`);
    await visitor.next();
    visitor.send({ type: "send", content: "first", client_msg_id: "o-1" });
    const frames = await visitor.take(3);
    expect(frames.map((f) => f.type)).toEqual(["ack", "message", "session"]);
  });
});

describe("idempotency keys belong to their sender", () => {
  // A client message id names one sender's retry; another party's id in the same conversation
  // (agent consoles and devices both commonly count 1, 2, 3...) must not swallow the message.
  it("a visitor's clientMessageId that an agent already used in the conversation still stores the visitor's message", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("shared-id"));
    const hello = await sent(v.send("hello"));
    const conv = await listed(o.agent, "all", v.id);
    const agentMsg = await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "ok", client_msg_id: "1" } });
    expect(agentMsg.status).toBe(201);

    // Same id, same text as the agent's: today the visitor gets the agent's message back and
    // nothing is stored for the visitor.
    const same = await v.send("ok", { clientMessageId: "1" });
    expect(same.status).toBe(200);
    expect(same.json.message).toMatchObject({ sender: "visitor", message: "ok" });
    expect(same.json.message.id).not.toBe(agentMsg.json.id);
    // Same id, different text: today a non-retryable 409 idempotency_conflict, so it is lost.
    const agentMsg2 = await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "you're welcome", client_msg_id: "2" } });
    expect(agentMsg2.status).toBe(201);
    const other = await v.send("bye", { clientMessageId: "2" });
    expect(other.status).toBe(200);
    expect(other.json.message).toMatchObject({ sender: "visitor", message: "bye" });

    const polled = await v.poll(0);
    expect(polled.json.messages.map((m) => [m.sender, m.message])).toEqual([
      ["visitor", hello.message],
      ["agent", "ok"],
      ["visitor", "ok"],
      ["agent", "you're welcome"],
      ["visitor", "bye"],
    ]);
  });
});

describe("seed 000 error shape", () => {
  // dosti-rest.ts: "Errors keep seed 000's `success:false` beside Parley's error envelope, so its
  // clients' getBoolean("success") still reads." That includes an oversized body.
  it("a body over 64 KiB on /api/chat/send answers 413 with success:false", async () => {
    const o = await newOrg();
    const res = await fetch(new URL("/api/chat/send", baseUrl()), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiKey: o.pk, visitorId: "v", message: "x".repeat(70_000) }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ success: false, error: { code: "payload_too_large", message: expect.any(String), retryable: false } });
  });
});
