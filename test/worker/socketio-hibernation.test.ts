/**
 * A Socket.IO session on a WebSocket keeps the seqs it emitted in the socket's attachment, not in
 * storage per delivery (session.ts saveSeqs): an eviction (what hibernation does to memory) must
 * neither re-emit what the client already got nor skip anything, and the seqs reach storage when
 * the socket closes (a recovering client's previous session hands them over from there).
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventually, newOrg, openSocket } from "./helpers";
import { openSio } from "./sio-client";

describe("Socket.IO seqs across an eviction", () => {
  it("an evicted session on a WebSocket emits every message once (its seqs come back from the socket's attachment) and stores them when the socket closes", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=sio-evict`);
    const conv = (await visitor.next((f) => f.type === "ready")).conversation_id as string;
    const sio = await openSio("");
    sio.ws.send(`420${JSON.stringify(["join_conversation", { conversation_id: conv, external_id: "sio-evict" }])}`);
    expect(JSON.parse((await sio.next((p) => p.startsWith("430"))).slice(3))).toEqual([{ ok: true, conversation_id: conv }]);
    const stub = env.SOCKETIO.getByName(sio.sid);
    const storedSeq = () => runInDurableObject(stub, (_obj, state) => state.storage.kv.get<number>(`s:${conv}`));
    const seqs = () => sio.events("message_received").map((m) => m.seq as number);

    for (let i = 1; i <= 5; i++) visitor.send({ type: "send", content: `m${i}`, client_msg_id: `sio-e-${i}` });
    await eventually(async () => seqs().length === 5, "5 messages emitted");
    // Not written per delivery: storage still has the seq of the join.
    expect(await storedSeq()).toBe(0);

    await evictDurableObject(stub);
    for (let i = 6; i <= 8; i++) visitor.send({ type: "send", content: `m${i}`, client_msg_id: `sio-e-${i}` });
    await eventually(async () => seqs().includes(8), "message 8 emitted after the eviction");
    expect(seqs()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

    sio.ws.close(1000, "bye");
    expect(await eventually(async () => (await storedSeq()) === 8 && 8, "seq 8 stored once the socket closed")).toBe(8);
  });

  it("the sender's session gets the ack of its send_message first, then its own message_received, once (the room does not deliver it back; the session emits it from the answer)", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=sio-own`);
    const conv = (await visitor.next((f) => f.type === "ready")).conversation_id as string;
    const sio = await openSio("");
    sio.ws.send(`420${JSON.stringify(["join_conversation", { conversation_id: conv, external_id: "sio-own" }])}`);
    await sio.next((p) => p.startsWith("430"));
    for (let i = 1; i <= 3; i++) {
      sio.ws.send(`42${i}${JSON.stringify(["send_message", { conversation_id: conv, external_id: "sio-own", content: `own ${i}`, client_msg_id: `own-${i}` }])}`);
      await sio.next((p) => p.startsWith(`43${i}`));
    }
    // The visitor's native socket sees the three too: the room delivered them to everyone else.
    await visitor.next((f) => f.type === "message" && f.message.seq === 3);
    await eventually(async () => sio.events("message_received").length === 3, "three message_received");
    const order = sio.packets.filter((p) => /^43[1-9]/.test(p) || p.startsWith('42["message_received"')).map((p) => (p.startsWith("43") ? `ack ${p[2]}` : `message ${JSON.parse(p.slice(2))[1].seq}`));
    expect(order).toEqual(["ack 1", "message 1", "ack 2", "message 2", "ack 3", "message 3"]);
  });

  it("a ping and its pong over a WebSocket survive an eviction (the heartbeat lives in the socket's attachment): the next alarm is the next ping, not a timeout", async () => {
    const o = await newOrg();
    const sio = await openSio(`&apiKey=${o.pk}&role=visitor&visitorId=sio-hb`);
    const stub = env.SOCKETIO.getByName(sio.sid);
    type Hb = { ping_sent_at: number | null; next_ping_at: number };
    // The first ping is 25 s away: make it due now (stored engine state, read again after an eviction).
    await runInDurableObject(stub, (_o, state) => {
      const engine = state.storage.kv.get<Hb>("engine")!;
      state.storage.kv.put("engine", { ...engine, next_ping_at: Date.now() - 1 });
    });
    await evictDurableObject(stub);
    const pingsBefore = sio.packets.filter((p) => p === "2").length;
    const t0 = Date.now();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await sio.next(() => sio.packets.filter((p) => p === "2").length > pingsBefore); // the client pongs at once
    const t1 = Date.now();
    const hbNow = async () => JSON.parse(await runInDurableObject(stub, (s) => JSON.stringify((s as any).engineWithHeartbeat()))) as Hb;
    await eventually(async () => (await hbNow()).ping_sent_at === null, "pong recorded");
    await evictDurableObject(stub);
    // A fresh instance reads the pong back from the socket's attachment: the next ping is due 25 s after the last one.
    const after = JSON.parse(
      await runInDurableObject(stub, async (s, state) => JSON.stringify({ hb: (s as any).engineWithHeartbeat(), alarm: await state.storage.getAlarm(), stored: state.storage.kv.get("engine") })),
    ) as { hb: Hb; alarm: number | null; stored: Hb };
    expect(after.hb.ping_sent_at).toBeNull();
    expect(after.hb.next_ping_at).toBeGreaterThanOrEqual(t0 + 25_000);
    expect(after.hb.next_ping_at).toBeLessThanOrEqual(t1 + 25_000);
    expect(after.alarm).toBe(after.hb.next_ping_at);
    expect(after.stored.ping_sent_at).toBeNull(); // storage was not written for the ping or the pong
    expect(await runDurableObjectAlarm(stub)).toBe(true); // early: not a timeout, just re-armed
    expect(sio.packets.filter((p) => p.startsWith("1") || p.startsWith("41"))).toEqual([]);
  });
});
