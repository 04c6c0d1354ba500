// F13: idle sockets in hibernation-eligible objects, observed against the real runtime.
//
// workerd evicts a Durable Object 10 s after its last request (an incoming call, an alarm, a
// hibernatable WebSocket event) when it holds no accepted (non-hibernatable) socket; the
// hibernatable sockets stay open and a later event constructs a fresh instance. The platform's
// WebSocket auto-response is not a request: it answers without the object. So:
// - a native socket pinging every second with exactly `{"type":"ping"}` keeps getting pongs while
//   its room is evicted, and a message afterwards still reaches it;
// - the same ping with one more space is handled by the room (`onMessage`), which keeps it alive;
// - a Socket.IO session (server pings, Engine.IO v4) hibernates between its pings; its alarm, set
//   for the next ping, is what wakes it (test/e2e/socketio-heartbeat.test.ts watches those pings
//   and the stock clients staying connected through the 25 s + 20 s window).
//
// Eviction is observed by marking the object instance in memory (runInDurableObject): a fresh
// instance, constructed after an eviction, lacks the mark. Nothing in the product exposes it.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PING_FRAME, PONG_FRAME } from "../../src/conversation/protocol";
import { PING_INTERVAL_MS } from "../../src/socketio/engine";
import { BASE, eventually, newOrg, openSocket } from "./helpers";

/** Eviction comes 10 s after the last request; the rest is slack for a loaded machine. */
const IDLE_MS = 13_000;
const PING_EVERY_MS = 1_000;

const MARK = Symbol("marked instance");
const markInstance = (stub: DurableObjectStub) => runInDurableObject(stub, (o: object) => void Object.assign(o, { [MARK]: true }));
/** Whether the object's current instance is the one marked (this call itself wakes the object). */
const sameInstance = (stub: DurableObjectStub) => runInDurableObject(stub, (o: object) => (o as Record<symbol, unknown>)[MARK] === true);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A native visitor socket that also records every text frame exactly as it arrived. */
async function visitorSocket(pk: string, externalId: string) {
  const s = await openSocket(`/ws/visitor?key=${pk}&external_id=${externalId}`);
  const raw: string[] = [];
  s.ws.addEventListener("message", (e) => {
    raw.push(e.data as string);
  });
  const ready = await s.next((f) => f.type === "ready");
  return { s, raw, conversationId: ready.conversation_id as string, room: env.CONVERSATION.getByName(ready.conversation_id) };
}

/** A raw Engine.IO v4 client over WebSocket (through the Worker): text frames collected, nothing answered. */
async function rawEngineIo(query: string) {
  const res = await exports.default.fetch(new Request(`${BASE}/socket.io/?EIO=4&transport=websocket${query}`, { headers: { upgrade: "websocket" } }));
  const ws = res.webSocket;
  if (!ws) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  ws.accept();
  const frames: string[] = [];
  let closed: { code: number; reason: string } | null = null;
  ws.addEventListener("message", (e) => {
    frames.push(e.data as string);
  });
  ws.addEventListener("close", (e) => {
    closed = { code: e.code, reason: e.reason };
  });
  return {
    ws,
    frames,
    get closed() {
      return closed;
    },
    next: (pred: (f: string) => boolean, what: string) => eventually(async () => frames.find(pred), `Engine.IO frame: ${what}; got ${JSON.stringify(frames)}`),
  };
}

describe("F13 hibernation, observed", () => {
  it.concurrent(
    "a native socket pinging with the exact auto-response string gets every pong while its room is evicted, and a message after still reaches it; a ping that is not the exact string wakes the room each time",
    async () => {
      const o = await newOrg();
      const exact = await visitorSocket(o.pk, "f13-exact");
      const other = await visitorSocket(o.pk, "f13-spaced");
      expect(exact.conversationId).not.toBe(other.conversationId);
      // Same meaning, not the same bytes: the platform's auto-response does not match it.
      const SPACED_PING = '{"type": "ping"}';
      expect(JSON.parse(SPACED_PING)).toEqual(JSON.parse(PING_FRAME));
      await markInstance(exact.room);
      await markInstance(other.room);

      const started = Date.now();
      let pings = 0;
      while (Date.now() - started < IDLE_MS) {
        exact.s.send(PING_FRAME);
        other.s.send(SPACED_PING);
        pings++;
        await eventually(async () => exact.raw.filter((t) => t === PONG_FRAME).length === pings && other.s.frames.filter((f) => f.type === "pong").length === pings, `pong ${pings}`);
        await sleep(PING_EVERY_MS);
      }

      // Every ping answered with exactly the pong string, and nothing else was sent meanwhile.
      expect(pings).toBeGreaterThanOrEqual(IDLE_MS / PING_EVERY_MS / 2);
      expect(exact.raw.slice(1)).toEqual(Array(pings).fill(PONG_FRAME));
      expect(exact.s.closed).toBeNull();
      expect(other.s.closed).toBeNull();
      // The exact pings never reached the room: it went 10 s without a request and was evicted.
      expect(await sameInstance(exact.room)).toBe(false);
      // The spaced pings were handled by the room each second, so it was never idle for 10 s.
      expect(await sameInstance(other.room)).toBe(true);

      // The hibernated socket survived: a message after the eviction reaches it.
      const sent = await o.agent.call(`/api/conversations/${exact.conversationId}/messages`, { body: { content: "still there?" } });
      expect(sent.status).toBe(201);
      const got = await exact.s.next((f) => f.type === "message");
      expect(got.message).toMatchObject({ content: "still there?", sender_type: "agent", seq: sent.body.seq });
      exact.s.close();
      other.s.close();
    },
    IDLE_MS + 20_000,
  );

  it.concurrent(
    "an idle Socket.IO session hibernates between its server pings: evicted after 10 s with its WebSocket open, its alarm set for the next ping, and a message after still reaches the client",
    async () => {
      const o = await newOrg();
      const visitorId = "f13-sio";
      const before = Date.now();
      const sio = await rawEngineIo(`&apiKey=${o.pk}&role=visitor&visitorId=${visitorId}&visitorName=Idle`);
      const open = JSON.parse((await sio.next((f) => f.startsWith("0"), "open")).slice(1));
      const after = Date.now();
      expect(open).toMatchObject({ pingInterval: PING_INTERVAL_MS, upgrades: [] });
      sio.ws.send("40");
      await sio.next((f) => f.startsWith("40{"), "CONNECT answer");
      const session = env.SOCKETIO.getByName(open.sid);
      await markInstance(session);

      // Idle: the client sends nothing (Engine.IO v4 clients only answer pings), the server
      // sends nothing before its first ping at 25 s.
      const framesBefore = sio.frames.length;
      await sleep(IDLE_MS);
      expect(sio.frames.length).toBe(framesBefore);
      expect(sio.closed).toBeNull();
      expect(await sameInstance(session)).toBe(false);
      // What wakes it next: its one alarm, at the first ping (handshake + pingInterval).
      const alarm = await runInDurableObject(session, (_o, state) => state.storage.getAlarm());
      expect(alarm).toBeGreaterThanOrEqual(before + PING_INTERVAL_MS - 1_000);
      expect(alarm).toBeLessThanOrEqual(after + PING_INTERVAL_MS + 1_000);

      // The hibernated session's WebSocket survived: an agent's message reaches the visitor.
      const row = await env.DB.prepare("SELECT c.id FROM conversations c JOIN end_users u ON u.id = c.end_user_id WHERE u.external_id = ? AND c.org_id = ?")
        .bind(visitorId, o.org.id)
        .first<{ id: string }>();
      const sent = await o.agent.call(`/api/conversations/${row!.id}/messages`, { body: { content: "after the nap" } });
      expect(sent.status).toBe(201);
      const event = JSON.parse((await sio.next((f) => f.startsWith('42["receive_message"'), "receive_message")).slice(2));
      expect(event[1]).toMatchObject({ message: "after the nap" });
      expect(sio.closed).toBeNull();
      sio.ws.close(1000, "done");
    },
    IDLE_MS + 20_000,
  );
});
