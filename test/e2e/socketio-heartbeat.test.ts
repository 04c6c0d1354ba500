// Engine.IO heartbeats against `wrangler dev`, in real time. The server pings every pingInterval
// (25 s) and closes a session whose pong does not come within pingTimeout (20 s), so a silent
// client is closed about 45 s after its handshake. That cannot be shortened from outside (the
// intervals are the protocol's announced constants), so this file holds exactly one test, which
// watches every kind of client at once during one ~47 s window: silent raw polling and raw
// WebSocket clients (closed), and stock socket.io-client sockets on both transports (kept alive
// by their automatic pongs).
import { afterEach, describe, expect, it } from "vitest";
import { newOrg } from "./fixtures.ts";
import { ack, agentOpts, RawPolling, RawWs, seen, SioPool, TRANSPORTS } from "./sio.ts";

const pool = new SioPool();
const raws: RawWs[] = [];
afterEach(() => {
  pool.closeAll();
  for (const r of raws.splice(0)) r.terminate();
});

const PING_INTERVAL = 25_000;
const PING_TIMEOUT = 20_000;
/** Slack for alarms, a loaded machine and request latency. */
const SLACK = 3_000;

interface Watched {
  /** ms after the handshake at which each "2" (ping) arrived. */
  pings: number[];
  /** ms after the handshake at which the session was seen closed. */
  closedAt: number;
  /** Every packet received, in order. */
  packets: string[];
}

/** Long-polls a raw session until the server ends it; answers pings only when told to. */
async function watchPolling(raw: RawPolling, t0: number, answerPings: boolean, limitMs: number): Promise<Watched> {
  const out: Watched = { pings: [], closedAt: -1, packets: [] };
  while (Date.now() - t0 < limitMs) {
    const r = await raw.get(limitMs);
    if (r.status !== 200) {
      expect(r.json).toEqual({ code: 1, message: "Session ID unknown" });
      out.closedAt = Date.now() - t0;
      return out;
    }
    out.packets.push(...r.packets);
    for (const p of r.packets) {
      if (p !== "2") continue;
      out.pings.push(Date.now() - t0);
      if (answerPings) await raw.post("3");
    }
  }
  throw new Error(`session still open after ${limitMs} ms: ${JSON.stringify(out)}`);
}

describe("heartbeats", () => {
  it(
    "pings every 25 s; a client that never pongs is closed 20 s later (polling and WebSocket); stock clients stay connected",
    async () => {
      const o = await newOrg();
      const limit = PING_INTERVAL + PING_TIMEOUT + 2 * SLACK;

      // Silent raw polling client (connected to the namespace, so only the heartbeat can end it).
      const t0 = Date.now();
      const silentPoll = await RawPolling.open();
      expect(silentPoll.handshake).toMatchObject({ pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT, maxPayload: 1_000_000, upgrades: ["websocket"] });
      await silentPoll.post("40");
      expect((await silentPoll.get()).packets).toEqual([expect.stringMatching(/^40\{/)]);

      // Silent raw WebSocket client.
      const t1 = Date.now();
      const silentWs = await RawWs.open();
      raws.push(silentWs);
      const open = JSON.parse((await silentWs.next()).text.replace(/^0/, ""));
      expect(open).toMatchObject({ pingInterval: PING_INTERVAL, pingTimeout: PING_TIMEOUT, upgrades: [] });
      silentWs.send("40");
      expect((await silentWs.next()).text).toMatch(/^40\{/);

      // Stock clients on both transports.
      const stock = [await pool.connect(agentOpts(o.agent.cookie, TRANSPORTS["polling only"])), await pool.connect(agentOpts(o.agent.cookie, TRANSPORTS["websocket only"]))];
      for (const s of stock) expect(await ack(s, "join_queue")).toEqual({ ok: true });

      const [poll, wsPing, wsClose] = await Promise.all([
        watchPolling(silentPoll, t0, false, limit),
        silentWs.next((f) => f === "2", PING_INTERVAL + SLACK).then((f) => f.at - t1),
        silentWs.waitClosed(limit).then((c) => ({ ...c, after: c.at - t1 })),
      ]);

      // One ping at ~25 s, then closed at ~45 s (nothing else was sent on the silent sessions).
      expect(poll.pings).toHaveLength(1);
      expect(poll.pings[0]).toBeGreaterThanOrEqual(PING_INTERVAL - 100);
      expect(poll.pings[0]).toBeLessThan(PING_INTERVAL + SLACK);
      expect(poll.closedAt).toBeGreaterThanOrEqual(PING_INTERVAL + PING_TIMEOUT - 100);
      expect(poll.closedAt).toBeLessThan(PING_INTERVAL + PING_TIMEOUT + SLACK);
      expect(poll.packets.filter((p) => p !== "6")).toEqual(["2"]);

      expect(wsPing).toBeGreaterThanOrEqual(PING_INTERVAL - 100);
      expect(wsPing).toBeLessThan(PING_INTERVAL + SLACK);
      expect(wsClose.after).toBeGreaterThanOrEqual(PING_INTERVAL + PING_TIMEOUT - 100);
      expect(wsClose.after).toBeLessThan(PING_INTERVAL + PING_TIMEOUT + SLACK);
      expect(silentWs.frames.map((f) => f.text).slice(2)).toEqual(["2"]);

      // The stock clients answered their pings and are still connected and working.
      for (const s of stock) {
        expect(s.connected).toBe(true);
        expect(await ack(s, "join_org_presence")).toMatchObject({ ok: true });
        expect(seen(s, "disconnect")).toEqual([]);
      }
    },
    PING_INTERVAL + PING_TIMEOUT + 25_000,
  );
});
