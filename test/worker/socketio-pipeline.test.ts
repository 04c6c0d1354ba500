/**
 * A Socket.IO session does not wait for the room's answer to one `send_message` before it handles
 * the next (session.ts sendToRoom: sends that come while one is in flight go together in one
 * `sendMany`). What must hold regardless: the room stores a session's messages in the order the
 * client sent them, every ack comes in the events' order and only once the room has the message,
 * the session's own `message_received` follows its ack, a failure answers at its own turn, and an
 * event of another kind waits for the acks before it.
 */
import { describe, expect, it } from "vitest";
import { eventually, newOrg, openSocket } from "./helpers";
import { openSio } from "./sio-client";

/** Acks (`43<id>[...]`) and this event's emissions, in arrival order, as short labels. */
function timeline(packets: string[], event: string) {
  return packets.flatMap((p) => {
    const ack = /^43(\d+)(.*)$/.exec(p);
    if (ack) {
      const [reply] = JSON.parse(ack[2]!) as [{ ok?: boolean; message?: { seq: number }; error?: { code: string } }];
      return [`ack ${ack[1]} ${reply.error ? `error ${reply.error.code}` : `seq ${reply.message?.seq ?? "-"}`}`];
    }
    if (p.startsWith("42")) {
      const [name, payload] = JSON.parse(p.slice(2)) as [string, { seq?: number; code?: string }];
      if (name === event) return [`${name} ${payload.seq}`];
      if (name === "error") return [`error ${payload.code}`];
    }
    return [];
  });
}

describe("Socket.IO: pipelined sends", () => {
  it("15 sends written at once, one of them refused by the session and one by the room: stored in the client's order, each answered at its turn, own messages after their acks, a leave after all of them", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=sio-pipe`);
    const conv = (await visitor.next((f) => f.type === "ready")).conversation_id as string;
    const sio = await openSio("");
    sio.ws.send(`421${JSON.stringify(["join_conversation", { conversation_id: conv, external_id: "sio-pipe" }])}`);
    await sio.next((p) => p.startsWith("431"));
    const base = { conversation_id: conv, external_id: "sio-pipe" };
    for (let i = 2; i <= 16; i++) {
      // 6: the session's own validation refuses it (a number for sender_type); 9: the room's (no content).
      const payload =
        i === 6 ? { ...base, sender_type: 7, content: "x", client_msg_id: `p${i}` } : i === 9 ? { ...base, client_msg_id: `p${i}` } : { ...base, content: `pipe ${i}`, client_msg_id: `p${i}` };
      sio.ws.send(`42${i}${JSON.stringify(["send_message", payload])}`);
    }
    sio.ws.send(`4299${JSON.stringify(["leave_conversation", { conversation_id: conv }])}`);
    await sio.next((p) => p.startsWith("4399"));

    // The room's order is the client's: seqs 1..13 for the 13 accepted sends, in the order written.
    const stored = new Map<string, number>();
    await eventually(async () => {
      for (const f of visitor.frames) if (f.type === "message") stored.set(f.message.client_msg_id, f.message.seq);
      return stored.size === 13;
    }, "13 messages reached the native socket");
    const accepted = [2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16];
    expect(accepted.map((i) => stored.get(`p${i}`))).toEqual(accepted.map((_, k) => k + 1));

    const expected: string[] = [];
    let seq = 0;
    for (let i = 2; i <= 16; i++) {
      if (i === 6 || i === 9) expected.push(`error validation_failed`, `ack ${i} error validation_failed`);
      else expected.push(`ack ${i} seq ${++seq}`, `message_received ${seq}`);
    }
    expect(timeline(sio.packets, "message_received").filter((l) => !l.startsWith("ack 1 "))).toEqual([...expected, "ack 99 seq -"]);
  });

  it("a resend of an answered client_msg_id in the same burst is the same message, not a second one", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=sio-pipe-dup`);
    const conv = (await visitor.next((f) => f.type === "ready")).conversation_id as string;
    const sio = await openSio("");
    sio.ws.send(`421${JSON.stringify(["join_conversation", { conversation_id: conv, external_id: "sio-pipe-dup" }])}`);
    await sio.next((p) => p.startsWith("431"));
    const send = (ackId: number, key: string) =>
      sio.ws.send(`42${ackId}${JSON.stringify(["send_message", { conversation_id: conv, external_id: "sio-pipe-dup", content: `c ${key}`, client_msg_id: key }])}`);
    send(2, "a");
    send(3, "b");
    send(4, "a");
    send(5, "c");
    await sio.next((p) => p.startsWith("435"));
    expect(timeline(sio.packets, "message_received").filter((l) => l.startsWith("ack ") && !l.startsWith("ack 1 "))).toEqual(["ack 2 seq 1", "ack 3 seq 2", "ack 4 seq 1", "ack 5 seq 3"]);
    await eventually(async () => sio.events("message_received").length === 3, "three own messages");
    expect(sio.events("message_received").map((m) => m.seq)).toEqual([1, 2, 3]);
    await visitor.next((f) => f.type === "message" && f.message.seq === 3);
    expect(visitor.frames.filter((f) => f.type === "message").map((f) => f.message.client_msg_id)).toEqual(["a", "b", "c"]);
  });
});
