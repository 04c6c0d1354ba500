// RELIABILITY.md L7, the slow consumer, over real sockets to `wrangler dev`: a socket that stops
// reading (its TCP paused) or never confirms what it took in (`received`, docs/protocol.md "Flow
// control") is closed with 4009 `slow_consumer` once it is more than 300 messages or 4 MiB of
// message frames behind (and still is a second later), and gets nothing more; the sockets that
// confirm get every message once, in order, and stay open, even when the room works through a
// burst of sends queued ahead of their confirmations; the closed client resumes with since/epoch
// and the replay fills its gap. The Web SDK and the console's conversation client confirm on their
// own, and after a 4009 they reconnect and resume.
import { afterEach, describe, expect, it } from "vitest";
import NodeWebSocket from "ws";
import { createClient, type Message, type ParleyClient } from "../../sdk/src/index.ts";
import { CLOSING_ERRORS } from "../../src/core/wire.ts";
import { api, baseUrl, waitFor } from "./harness.ts";
import { newOrg, visitorId, type Org } from "./fixtures.ts";
import { SocketPool, wsUrl, type WsClient } from "./ws-client.ts";

const sockets = new SocketPool();
const clients: ParleyClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await sockets.closeAll();
});

const MAX_MESSAGES = 300;
const MAX_BYTES = 4 * 1024 * 1024;

/** An org and a conversation, opened by its visitor (whose socket, confirming, is one of the readers). */
async function conversation() {
  const o = await newOrg();
  const vid = visitorId("l7");
  const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}`);
  const ready = await visitor.nextOfType("ready");
  return { o, vid, visitor, id: ready.conversation_id as string, epoch: ready.epoch as string };
}

async function agentSocket(o: Org, id: string, opts: { confirm?: boolean; query?: string } = {}): Promise<{ socket: WsClient; ready: any }> {
  const socket = await sockets.connect(`/ws/conversations/${id}${opts.query ? `?${opts.query}` : ""}`, { bearer: o.sk, confirm: opts.confirm ?? true });
  return { socket, ready: await socket.nextOfType("ready") };
}

/** Message frames a socket received, in arrival order. */
const messageFrames = (c: WsClient) => c.raw.filter((_, i) => c.frames[i]!.type === "message");
const seqsOf = (c: WsClient) => c.frames.filter((f) => f.type === "message").map((f) => f.message.seq as number);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * Messages from..to from an agent socket, all in flight at once (agents are not rate limited): the
 * room reads them all before any confirmation the readers write meanwhile. Resolves on the last ack.
 */
async function burst(sender: WsClient, from: number, to: number, body: string) {
  for (let i = from; i <= to; i++) sender.send({ type: "send", content: `${i} ${body}`, client_msg_id: `l7-${i}` });
  await sender.next((f) => f.type === "ack" && f.client_msg_id === `l7-${to}`, 90_000);
}

/** Every socket got seq 1..n once, in order, and is still open. */
async function allGot(readers: WsClient[], n: number) {
  for (const r of readers) {
    await waitFor(() => seqsOf(r).length >= n, { timeoutMs: 30_000, message: `${r.path} has all ${n}` });
    expect(seqsOf(r)).toEqual(range(1, n));
    expect(r.closed).toBeNull();
  }
}

describe("slow consumers (L7)", () => {
  it("a socket that stops reading and never confirms is closed with 4009 slow_consumer after 300 unconfirmed messages; the readers get all 450 once, in order, and stay open; resume fills the gap", async () => {
    const { o, visitor, id, epoch } = await conversation();
    const readers = [visitor, (await agentSocket(o, id)).socket, (await agentSocket(o, id)).socket];
    const stalled = (await agentSocket(o, id, { confirm: false })).socket;
    stalled.ws.pause(); // stops reading: its TCP window fills and closes
    const sender = (await agentSocket(o, id)).socket;

    const n = 450;
    await burst(sender, 1, n, "x".repeat(200));
    await allGot([...readers, sender], n);
    for (const r of readers) expect(r.confirmations).toBeGreaterThanOrEqual(Math.floor(n / 50));

    // Reading again, it finds what was in flight (at least the 301 that put it over the bound),
    // then the close; nothing after it.
    stalled.ws.resume();
    expect(await stalled.waitClosed(30_000)).toEqual({ code: 4009, reason: "slow_consumer" });
    const k = seqsOf(stalled).length;
    expect(k).toBeGreaterThan(MAX_MESSAGES);
    expect(seqsOf(stalled)).toEqual(range(1, k));

    // The others carry on; it comes back with since/epoch and the replay holds exactly its gap.
    await burst(sender, n + 1, n + 20, "after");
    await allGot(readers, n + 20);
    const back = await agentSocket(o, id, { query: `since=${k}&epoch=${epoch}` });
    expect(back.ready).toMatchObject({ head_seq: n + 20, recovered: true, resync_required: false });
    expect(back.ready.messages.map((m: any) => m.seq)).toEqual(range(k + 1, n + 20));
  });

  it("under a 4.3 MB burst of 280 messages of 15 KB a confirming client is not closed; one that reads but never confirms is closed by the 4 MiB bound (not the 300-message one) and resumes", async () => {
    const { o, visitor, id, epoch } = await conversation();
    const confirming = [visitor, (await agentSocket(o, id)).socket];
    const silent = (await agentSocket(o, id, { confirm: false })).socket;
    const sender = (await agentSocket(o, id)).socket;

    const n = 280; // under the 300-message bound, over 4 MiB
    await burst(sender, 1, n, "y".repeat(15 * 1024));
    await allGot([...confirming, sender], n);

    expect(await silent.waitClosed(30_000)).toEqual({ code: 4009, reason: "slow_consumer" });
    const frames = messageFrames(silent);
    expect(frames.reduce((a, f) => a + f.length, 0)).toBeGreaterThan(MAX_BYTES);
    const k = frames.length;
    expect(seqsOf(silent)).toEqual(range(1, k));

    await burst(sender, n + 1, n + 20, "after");
    await allGot(confirming, n + 20);
    const back = await agentSocket(o, id, { query: `since=${k}&epoch=${epoch}` });
    expect(back.ready).toMatchObject({ head_seq: n + 20, recovered: true, resync_required: false });
    expect(back.ready.messages.map((m: any) => m.seq)).toEqual(range(k + 1, n + 20));
  });

  it("the Web SDK confirms on its own and stays connected through a burst; an SDK socket whose confirmations are lost is closed with 4009, reconnects with since/epoch and delivers every message once, in order", async () => {
    const { o, vid, id } = await conversation();
    const closes: number[] = [];
    const errors: string[] = [];
    /** A WebSocket that drops the SDK's `received` frames (a client that never confirms) and records error frames and close codes. */
    class Unconfirming extends WebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener("close", (e) => closes.push(e.code));
        this.addEventListener("message", (e) => {
          const frame = JSON.parse(String(e.data));
          if (frame.type === "error") errors.push(frame.code);
        });
      }
      override send(data: Parameters<WebSocket["send"]>[0]) {
        if (typeof data === "string" && data.startsWith('{"type":"received"')) return;
        super.send(data);
      }
    }
    const open = (opts: { WebSocket?: typeof WebSocket } = {}) => {
      const c = createClient({ host: baseUrl(), key: o.pk, visitorId: vid, reconnect: { minDelayMs: 100, maxDelayMs: 400 }, ...opts });
      clients.push(c);
      const got: Message[] = [];
      let initialized = 0;
      c.on("chat.message_received", ({ message }) => got.push(message));
      c.on("initialized", () => initialized++);
      return { c, got, initialized: () => initialized };
    };
    const good = open();
    const lossy = open({ WebSocket: Unconfirming });
    await Promise.all([good.c.connect(), lossy.c.connect()]);
    const sender = (await agentSocket(o, id)).socket;

    const n = 450;
    await burst(sender, 1, n, "z".repeat(100));
    // The lossy one is sent the error slow_consumer and closed once it has been over the bound and
    // silent for long enough (2-3 s here); the SDK reconnects on that frame, not on the close
    // event, which fires only when the TCP connection ends (10 s after the close under workerd).
    await waitFor(() => lossy.initialized() >= 2 && lossy.c.state === "connected", { timeoutMs: 8_000, message: "the lossy client reconnected on the slow_consumer frame" });
    expect(errors).toEqual(["slow_consumer"]);
    await burst(sender, n + 1, n + 20, "after");
    for (const client of [good, lossy]) {
      await waitFor(() => client.got.length >= n + 20, { timeoutMs: 30_000, message: `SDK client has all ${n + 20}` });
      expect(client.got.map((m) => m.seq)).toEqual(range(1, n + 20));
    }
    expect(good.initialized()).toBe(1);
    expect(good.c.state).toBe("connected");
    await waitFor(() => closes.includes(4009), { timeoutMs: 30_000, message: "the lossy client's first socket closed with 4009" });
  });

  it("the console's conversation client confirms on its own and stays connected through a burst; one whose confirmations are lost is closed with 4009, reconnects with since/epoch and holds every message once, in order", async () => {
    const { o, id } = await conversation();
    // The console runs in a page: give it a window (its `online` listener) and a WebSocket that
    // logs in as the agent with the secret key (a page sends the session cookie instead).
    const closes: number[] = [];
    const errors: string[] = [];
    class AgentSocket extends NodeWebSocket {
      constructor(url: string) {
        super(url, { headers: { authorization: `Bearer ${o.sk}` } });
        this.addEventListener("close", (e) => closes.push(e.code));
        this.addEventListener("message", (e) => {
          const frame = JSON.parse(String(e.data));
          if (frame.type === "error") errors.push(frame.code);
        });
      }
      override send(data: any, ...rest: any[]) {
        // `?client=lossy`: a client whose confirmations never reach the server.
        if (this.url.includes("client=lossy") && typeof data === "string" && data.startsWith('{"type":"received"')) return;
        (super.send as (...args: any[]) => void)(data, ...rest);
      }
    }
    const saved = { window: (globalThis as any).window, WebSocket: globalThis.WebSocket };
    (globalThis as any).window = { addEventListener() {}, removeEventListener() {} };
    (globalThis as any).WebSocket = AgentSocket;
    const started: { stop(): void }[] = [];
    try {
      const { ConversationClient, CLOSING_ERRORS: consoleClosing } = await import(new URL("../../public/console/agent-client.js", import.meta.url).href);
      expect([...consoleClosing]).toEqual([...CLOSING_ERRORS]); // the console's copy (it is served unbuilt) of the wire contract
      const open = (query: string) => {
        const view = { sorted: [] as any[], readies: 0 };
        const client = new ConversationClient({
          url: () => wsUrl(`/ws/conversations/${id}?${query}`),
          fetchHistory: async () => (await api(`/api/conversations/${id}/messages?limit=100`, { headers: { authorization: `Bearer ${o.sk}` } })).json,
          onMessages: (sorted: any[]) => (view.sorted = sorted),
          onReady: () => view.readies++,
        });
        client.start();
        started.push(client);
        return view;
      };
      const good = open("client=good");
      const lossy = open("client=lossy");
      await waitFor(() => good.readies === 1 && lossy.readies === 1, { message: "both consoles connected" });
      const sender = (await agentSocket(o, id)).socket;

      const n = 450;
      await burst(sender, 1, n, "c".repeat(100));
      // As with the SDK: it reconnects on the slow_consumer frame, not the (late) close event.
      await waitFor(() => lossy.readies >= 2, { timeoutMs: 8_000, message: "the lossy console reconnected on the slow_consumer frame" });
      expect(errors).toEqual(["slow_consumer"]);
      await burst(sender, n + 1, n + 20, "after");
      for (const view of [good, lossy]) {
        await waitFor(() => view.sorted.length >= n + 20, { timeoutMs: 30_000, message: `console has all ${n + 20}` });
        expect(view.sorted.map((m) => m.seq)).toEqual(range(1, n + 20));
      }
      expect(good.readies).toBe(1);
      await waitFor(() => closes.includes(4009), { timeoutMs: 30_000, message: "the lossy console's first socket closed with 4009" });
      expect(closes.filter((c) => c === 4009)).toHaveLength(1);
    } finally {
      for (const c of started) c.stop();
      (globalThis as any).window = saved.window;
      (globalThis as any).WebSocket = saved.WebSocket;
    }
  });
});
