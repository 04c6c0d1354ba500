/**
 * Seed 002 connectors over real Socket.IO against `wrangler dev`: a connector that registers
 * late still receives every queued message, in order; unacknowledged messages come again; inbound
 * customer messages enter conversations; registering needs a secret key.
 */
import type { Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { signupOrg, waitFor } from "./harness.ts";
import { ack, open, SioPool } from "./sio.ts";

const pool = new SioPool();
afterEach(() => pool.closeAll());

/** A connector that records messageArrived and acknowledges only when told to. */
function connector(sk: string, opts: { ackAll: boolean }) {
  const socket = pool.make({ transports: ["websocket"], query: { apiKey: sk }, reconnection: false });
  const got: any[] = [];
  socket.on("messageArrived", (msg: any, done?: () => void) => {
    got.push(msg);
    if (opts.ackAll) done?.();
  });
  return { socket, got };
}

describe("connectors", () => {
  it("queues outbound messages until a connector registers, then delivers them in order; unacknowledged ones come again", async () => {
    const org = await signupOrg();
    const sk = (await org.createKey("secret")).key;
    const send = (refId: string, text: string) => org.api("/api/connectors/sms/messages", { body: { refId, text } });
    for (const [ref, text] of [["+15550001", "campaign 1"], ["+15550002", "campaign 2"], ["+15550001", "campaign 3"]]) {
      expect((await send(ref!, text!)).status).toBe(201);
    }

    // A first connector receives but never acknowledges, then drops.
    const flaky = connector(sk, { ackAll: false });
    await open(flaky.socket);
    expect(await ack(flaky.socket, "registerConnector", { id: "sms", name: "SMS gateway", channel: "sms" })).toMatchObject({ ok: true, channel: "sms", pending: 3 });
    await waitFor(() => flaky.got.length === 3, { message: "the flaky connector got the queue" });
    flaky.socket.disconnect();

    // The next connector gets all three again, in order, and acknowledges them.
    const good = connector(sk, { ackAll: true });
    await open(good.socket);
    await ack(good.socket, "registerConnector", { id: "sms", name: "SMS gateway", channel: "sms" });
    await waitFor(() => good.got.length === 3, { message: "the second connector got the unacknowledged messages" });
    expect(good.got.map((m) => [m.refId, m.text, m.type])).toEqual([
      ["+15550001", "campaign 1", "ChatMessage"],
      ["+15550002", "campaign 2", "ChatMessage"],
      ["+15550001", "campaign 3", "ChatMessage"],
    ]);

    // Live: an agent's reply reaches the connector at once.
    const inbound = await ack(good.socket, "customerMessage", { refId: "+15550002", text: "STOP? no, tell me more", name: "Sam" });
    expect(inbound).toMatchObject({ ok: true, message: { type: "ChatMessage", text: "STOP? no, tell me more" } });
    expect((await org.api(`/api/conversations/${inbound.conversationId}/messages`, { body: { content: "Sure, Sam!" } })).status).toBe(201);
    await waitFor(() => good.got.length === 4, { message: "the agent reply reached the connector" });
    expect(good.got[3]).toMatchObject({ refId: "+15550002", text: "Sure, Sam!", conversationId: inbound.conversationId });

    // Everything was acknowledged: a third connector gets nothing old.
    good.socket.disconnect();
    const later = connector(sk, { ackAll: true });
    await open(later.socket);
    expect(await ack(later.socket, "registerConnector", { id: "sms", channel: "sms" })).toMatchObject({ pending: 0 });
  });

  it("refuses to register without a secret key", async () => {
    const org = await signupOrg();
    const pk = (await org.createKey("public")).key;
    const anonymous: Socket = pool.make({ transports: ["websocket"], reconnection: false });
    await open(anonymous);
    expect(await ack(anonymous, "registerConnector", { id: "sms", channel: "sms" })).toMatchObject({ error: { code: "unauthorized" } });
    const withPublicKey: Socket = pool.make({ transports: ["websocket"], query: { apiKey: pk }, reconnection: false });
    await expect(open(withPublicKey)).rejects.toThrow(/visitorId/);
  });
});
