// RELIABILITY.md F5, the other side of the recovery window: a client that comes back more than
// 120 s after its transport dropped presents its old pid and offset and gets a fresh session.
// (Within the window it is recovered: socketio-protocol.test.ts.) This file waits 121 s, so it is
// its own file and runs beside the others.
import { afterEach, describe, expect, it } from "vitest";
import { expectStatus } from "./harness.ts";
import { newOrg, visitorId } from "./fixtures.ts";
import { dostiVisitorOpts, nextEvent, open, openConversation, payloads, SioPool } from "./sio.ts";

const pool = new SioPool();
afterEach(() => pool.closeAll());

describe("Socket.IO connection state recovery window (F5)", () => {
  it("121 s after a drop, the old pid and offset get a new session: a new sid, not recovered, nothing from the gap replayed", { timeout: 180_000 }, async () => {
    const o = await newOrg();
    const vid = visitorId("late");
    const conversation_id = await openConversation(o.pk, vid, "Late");
    // No automatic reconnection: the client comes back when the test says so, with its pid.
    const visitor = await open(pool.make(dostiVisitorOpts(o.pk, vid, "Late", { transports: ["websocket"], reconnection: false })));
    const firstId = visitor.id;
    const reply = async (content: string) => expectStatus(await o.agent.api(`/api/conversations/${conversation_id}/messages`, { body: { content } }), 201, "agent reply").json;

    const before = await reply("before the drop");
    await nextEvent(visitor, "receive_message", (m) => m.id === before.id);
    visitor.io.engine.close(); // a network drop: no DISCONNECT packet
    expect(await nextEvent(visitor, "disconnect")).toBe("forced close");
    await reply("during the gap");

    await new Promise((r) => setTimeout(r, 121_000));
    await open(visitor);
    expect(visitor.recovered).toBe(false);
    expect(visitor.id).not.toBe(firstId);
    const after = await reply("after the window");
    await nextEvent(visitor, "receive_message", (m) => m.id === after.id);
    expect(payloads(visitor, "receive_message").map((m) => m.message)).toEqual(["before the drop", "after the window"]);
  });
});
