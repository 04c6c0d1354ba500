/**
 * A Socket.IO session whose client left on purpose (a namespace DISCONNECT, or a credential the
 * org hub revoked) can never be recovered: it drops its state and its alarm at once (session.ts
 * closeEngine -> expire), rather than holding both for the 2-minute recovery window and expiring
 * with every other such session at the same moment. A transport drop keeps the window.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventually, newOrg, openSocket } from "./helpers";
import { openSio } from "./sio-client";
import { PING_INTERVAL_MS } from "../../src/socketio/engine";

/** A session object's stored keys, its alarm and its engine status. */
function inspect(sid: string) {
  return runInDurableObject(env.SOCKETIO.getByName(sid), async (_obj, state) => ({
    keys: [...state.storage.kv.list()].map(([k]) => k),
    alarm: await state.storage.getAlarm(),
    status: state.storage.kv.get<{ status: string }>("engine")?.status ?? null,
  }));
}

async function joinedSession(tag: string) {
  const o = await newOrg();
  const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=${tag}`);
  const conv = (await visitor.next((f) => f.type === "ready")).conversation_id as string;
  const sio = await openSio("");
  sio.ws.send(`420${JSON.stringify(["join_conversation", { conversation_id: conv, external_id: tag }])}`);
  expect(JSON.parse((await sio.next((p) => p.startsWith("430"))).slice(3))).toEqual([{ ok: true, conversation_id: conv }]);
  return { o, visitor, conv, sio };
}

describe("Socket.IO: a client that leaves on purpose leaves nothing behind", () => {
  it('after "41" the session object has no storage and no alarm', async () => {
    const { sio, conv } = await joinedSession("sio-bye");
    expect((await inspect(sio.sid)).keys).toEqual(expect.arrayContaining(["engine", "socket", `m:${conv}`]));
    sio.ws.send("41");
    const after = await eventually(async () => {
      const s = await inspect(sio.sid);
      return s.keys.length === 0 && s;
    }, "storage emptied after the DISCONNECT");
    expect(after.alarm).toBeNull();
  });

  it("after a plain transport close the session keeps its state and its 2-minute recovery alarm", async () => {
    const { sio, conv } = await joinedSession("sio-drop");
    const t0 = Date.now();
    sio.ws.close(1000, "network gone");
    const after = await eventually(async () => {
      const s = await inspect(sio.sid);
      // closeEngine stores the closed state, tells the rooms, then moves the alarm (the ping's until then)
      return s.status === "closed" && s.alarm !== null && s.alarm > t0 + PING_INTERVAL_MS && s;
    }, "engine closed after the transport close, recovery alarm armed");
    expect(after.keys).toEqual(expect.arrayContaining(["engine", "socket", `m:${conv}`]));
    expect(after.alarm).toBeGreaterThanOrEqual(t0 + 120_000);
    expect(after.alarm).toBeLessThanOrEqual(Date.now() + 120_000);
  });

  it(`a recovered session that then sends "41" drops its own state and the anchor's pid record, with no alarm left on either`, async () => {
    const o = await newOrg();
    const query = `&apiKey=${o.pk}&role=visitor&visitorId=sio-chain`;
    const a = await openSio(query);
    a.ws.close(1000, "network gone");
    await eventually(async () => (await inspect(a.sid)).status === "closed", "A closed");
    const b = await openSio(query, { pid: a.connected.pid, offset: "e30" });
    expect(b.connected).toEqual({ sid: a.connected.sid, pid: a.connected.pid }); // recovered
    const anchor = await inspect(a.sid);
    expect(anchor.keys).toEqual(expect.arrayContaining(["socket", "pid_holder"]));
    expect(anchor.alarm).not.toBeNull(); // A is in its recovery window
    b.ws.send("41");
    await eventually(async () => (await inspect(b.sid)).keys.length === 0, "B emptied");
    expect((await inspect(b.sid)).alarm).toBeNull();
    const gone = await eventually(async () => {
      const s = await inspect(a.sid);
      return s.keys.length === 0 && s;
    }, "the anchor forgot the pid");
    expect(gone.alarm).toBeNull(); // deleteAll deleted it (compatibility date >= 2026-02-24)
    // The pid is dead: presenting it again gets a fresh session.
    const c = await openSio(query, { pid: a.connected.pid, offset: "e30" });
    expect(c.connected.pid).not.toBe(a.connected.pid);
  });

  it("a revoked credential (the org hub's end()) drops the state at once, whether the session was open or already in its recovery window", async () => {
    const open = await joinedSession("sio-revoke-open");
    await env.SOCKETIO.getByName(open.sio.sid).end("session ended");
    await open.sio.next((p) => p === "41");
    expect(await inspect(open.sio.sid)).toEqual({ keys: [], alarm: null, status: null });

    const dropped = await joinedSession("sio-revoke-dropped");
    dropped.sio.ws.close(1000, "network gone");
    const t0 = Date.now();
    await eventually(async () => ((s) => s.status === "closed" && s.alarm !== null && s.alarm > t0 + PING_INTERVAL_MS)(await inspect(dropped.sio.sid)), "in its recovery window");
    await env.SOCKETIO.getByName(dropped.sio.sid).end("session ended");
    expect(await inspect(dropped.sio.sid)).toEqual({ keys: [], alarm: null, status: null });
  });
});
