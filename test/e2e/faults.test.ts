// Faults over real HTTP and real sockets (`wrangler dev`): long-polls aborted by the client or
// raced, a connection cut right after a send (the ack is lost, the retry finds the original),
// one client message id raced ten times across REST and WebSocket, and a concurrent burst from
// every surface into one conversation: every view holds the same log, gapless and in order.
// RELIABILITY.md case ids are in the test names; docs/guarantees.md maps them.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { api, baseUrl, expectStatus } from "./harness.ts";
import { dostiVisitor, listed, newOrg, sent, visitorId } from "./fixtures.ts";
import { SocketPool, type Frame, type WsClient } from "./ws-client.ts";
import { ack, agentOpts, nextEvent, open, payloads, RawPolling, SioPool } from "./sio.ts";

const sockets = new SocketPool();
afterEach(sockets.closeAll);
const sio = new SioPool();
afterEach(sio.closeAll);

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const messagesOf = (frames: Frame[]) => frames.flatMap((f) => (f.type === "ready" ? f.messages : f.type === "message" ? [f.message] : []));

/** A seed-000 long-poll that the client can abort. */
function abortablePoll(pk: string, vid: string, since: number, wait: number) {
  const abort = new AbortController();
  const url = new URL(`/api/chat/poll?apiKey=${encodeURIComponent(pk)}&visitorId=${encodeURIComponent(vid)}&lastTimestamp=${since}&wait=${wait}`, baseUrl());
  const done = fetch(url, { signal: abort.signal }).then(
    async (r) => ({ status: r.status, json: await r.json() }),
    (err: Error) => ({ status: 0, json: { aborted: err.name } }),
  );
  return { abort: () => abort.abort(), done };
}

/** Waits until a socket has received the message with this seq (bounded). */
async function seen(s: WsClient, seq: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!messagesOf(s.frames).some((m) => m.seq === seq)) {
    if (Date.now() > deadline) throw new Error(`${s.path}: seq ${seq} not seen; have ${messagesOf(s.frames).map((m) => m.seq)}`);
    await sleep(25);
  }
}

/** Ids in first-seen order, each once; checks the seqs only grow. */
function view(s: WsClient) {
  const ids: string[] = [];
  const seqs: number[] = [];
  for (const m of messagesOf(s.frames)) {
    if (ids.includes(m.id)) continue;
    ids.push(m.id);
    seqs.push(m.seq);
  }
  expect(seqs, `${s.path} in seq order`).toEqual([...seqs].sort((a, b) => a - b));
  return ids;
}

describe("long-poll over real HTTP (F12)", () => {
  it("(ii) polls aborted by the client: nothing is lost to them, the next poll gets the message, and new polls still park and wake", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("abort"));
    const boot = await sent(v.send("boot"));
    const conv = await listed(o.agent, "all", v.id);

    const polls = range(1, 5).map(() => abortablePoll(o.pk, v.id, boot.timestamp, 25));
    await sleep(300);
    for (const p of polls) p.abort();
    for (const p of polls) expect((await p.done).status).toBe(0);

    const reply = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "after the aborts" } }), 201, "reply");
    const t0 = Date.now();
    const next = await v.poll(boot.timestamp, 10);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(next.json.messages.map((m) => [m.id, m.message])).toEqual([[reply.json.id, "after the aborts"]]);

    // A fresh long-poll parks (no stale waiter answers it) and wakes on the next message.
    const parked = v.poll(next.json.messages[0]!.timestamp, 10);
    expect(await Promise.race([parked.then(() => "answered"), sleep(500).then(() => "parked")])).toBe("parked");
    const second = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "second" } }), 201, "second");
    expect((await parked).json.messages.map((m) => m.id)).toEqual([second.json.id]);
  });

  it("(iii) two concurrent polls on one cursor both get the same message; neither hangs", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("twice"));
    const boot = await sent(v.send("boot"));
    const conv = await listed(o.agent, "all", v.id);
    const a = v.poll(boot.timestamp, 15);
    const b = v.pollPost(boot.timestamp, 15);
    await sleep(300);
    const t0 = Date.now();
    const reply = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "for both" } }), 201, "reply");
    const [ra, rb] = await Promise.all([a, b]);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(ra.json.messages.map((m) => m.id)).toEqual([reply.json.id]);
    expect(rb.json).toEqual(ra.json);
  });

  it("(i) the wait is capped at 30 s: a longer wait is refused up front with 400, never left to a proxy timeout", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, visitorId("cap"));
    await sent(v.send("boot"));
    for (const wait of [31, 3600, -1]) {
      const r = await v.poll(0, wait);
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ success: false, error: { code: "validation_failed" } });
    }
  });
});

describe("a lost acknowledgement (F2, F7)", () => {
  it("a visitor cuts its connection right after sending (ack lost): the message is stored at most once, and the retry is acknowledged as the original when it had arrived", async () => {
    const o = await newOrg();
    const vid = visitorId("cut");
    const path = `/ws/visitor?key=${o.pk}&external_id=${vid}`;
    const first = await sockets.connect(path);
    const ready = await first.nextOfType("ready");
    const watcher = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { bearer: o.sk });
    await watcher.nextOfType("ready");

    // The frame is written to the wire, then the TCP connection is dropped without a close frame:
    // the client never learns whether it arrived.
    await new Promise<void>((resolve, reject) => first.ws.send(JSON.stringify({ type: "send", content: "did this arrive?", client_msg_id: "cut-1" }), (err) => (err ? reject(err) : resolve())));
    first.ws.terminate();

    const back = await sockets.connect(`${path}&since=0&epoch=${ready.epoch}`);
    const resumed = await back.nextOfType("ready");
    const before = resumed.messages.filter((m: any) => m.client_msg_id === "cut-1");
    expect(before.length).toBeLessThanOrEqual(1);
    // The retry: acknowledged either way, as the original if it had arrived.
    back.send({ type: "send", content: "did this arrive?", client_msg_id: "cut-1" });
    const ack = await back.nextOfType("ack");
    expect(ack).toMatchObject({ client_msg_id: "cut-1", seq: 1, duplicate: before.length === 1 });
    if (before.length === 1) expect(ack.id).toBe(before[0].id);
    await seen(watcher, 1);
    await watcher.sync();
    expect(messagesOf(watcher.frames).filter((m) => m.client_msg_id === "cut-1")).toHaveLength(1);
    const history = expectStatus(await o.agent.api(`/api/conversations/${ready.conversation_id}/messages`), 200, "history").json as any[];
    expect(history.map((m) => [m.seq, m.client_msg_id])).toEqual([[1, "cut-1"]]);
  });

  it("one client message id raced ten times over seed 000 REST and two sockets: one message, one broadcast, every copy answers it", async () => {
    const o = await newOrg();
    const vid = visitorId("race");
    const path = `/ws/visitor?key=${o.pk}&external_id=${vid}`;
    const s1 = await sockets.connect(path);
    const ready = await s1.nextOfType("ready");
    const s2 = await sockets.connect(path);
    await s2.nextOfType("ready");
    const watcher = await sockets.connect(`/ws/conversations/${ready.conversation_id}`, { bearer: o.sk });
    await watcher.nextOfType("ready");
    const v = dostiVisitor(o.pk, vid);

    const rest = Promise.all(range(1, 6).map(() => v.send("exactly once", { clientMessageId: "r-1" })));
    for (const s of [s1, s2, s1, s2]) s.send({ type: "send", content: "exactly once", client_msg_id: "r-1" });
    const answers = await rest;
    // One waiter per socket at a time (the client's next() calls take frames in turn).
    const acks: Frame[] = [];
    for (const s of [s1, s1, s2, s2]) acks.push(await s.nextOfType("ack"));
    expect(answers.map((r) => r.status)).toEqual(Array(6).fill(200));
    const ids = new Set([...answers.map((r) => r.json.message.id), ...acks.map((a) => a.id)]);
    expect(ids.size).toBe(1);
    expect(acks.every((a) => a.seq === 1)).toBe(true);
    expect(acks.filter((a) => !a.duplicate).length).toBeLessThanOrEqual(1);
    await watcher.sync();
    expect(watcher.frames.filter((f) => f.type === "message")).toHaveLength(1);
    expect((await v.poll(0)).json.messages).toHaveLength(1);
  });
});

describe("a concurrent burst from every surface into one conversation (L2 in small, X1 over the wire)", () => {
  it("visitor socket, agent socket, agent REST (cookie and key) and seed 000 REST at once: seq 1..n, every socket and every REST view the same log", async () => {
    const o = await newOrg();
    const vid = visitorId("burst");
    const visitor = await sockets.connect(`/ws/visitor?key=${o.pk}&external_id=${vid}&name=Bea`);
    const ready = await visitor.nextOfType("ready");
    const id = ready.conversation_id as string;
    const agentSock = await sockets.connect(`/ws/conversations/${id}`, { cookie: o.agent.cookie });
    await agentSock.nextOfType("ready");
    const keySock = await sockets.connect(`/ws/conversations/${id}`, { bearer: o.sk });
    await keySock.nextOfType("ready");
    const v = dostiVisitor(o.pk, vid);
    const path = `/api/conversations/${id}/messages`;

    for (const i of range(1, 8)) visitor.send({ type: "send", content: `ws visitor ${i}`, client_msg_id: `vw-${i}` });
    for (const i of range(1, 8)) agentSock.send({ type: "send", content: `ws agent ${i}`, client_msg_id: `aw-${i}` });
    const rest = await Promise.all([
      ...range(1, 8).map((i) => o.agent.api(path, { body: { content: `rest agent ${i}`, client_msg_id: `ar-${i}` } })),
      ...range(1, 8).map((i) => api(path, { body: { content: `key agent ${i}`, client_msg_id: `kr-${i}` }, headers: { authorization: `Bearer ${o.sk}` } })),
      ...range(1, 8).map((i) => v.send(`rest visitor ${i}`, { clientMessageId: `vr-${i}` })),
    ]);
    for (const r of rest) expect([200, 201]).toContain(r.status);
    const total = 8 * 5;
    for (const s of [visitor, agentSock, keySock]) await seen(s, total);

    const history = expectStatus(await o.agent.api(`${path}?limit=100`), 200, "history").json as any[];
    expect(history.map((m) => m.seq)).toEqual(range(1, total));
    expect(new Set(history.map((m) => `${m.sender_type}/${m.client_msg_id}`)).size).toBe(total);
    const ids = history.map((m) => m.id);
    for (const s of [visitor, agentSock, keySock]) expect(view(s)).toEqual(ids);
    expect((await v.poll(0)).json.messages.map((m) => m.id)).toEqual(ids);
    const widget = expectStatus(await api(`/chat-widget/history/${id}?external_id=${vid}`), 200, "widget history").json as any[];
    expect(widget.map((m) => m.id)).toEqual(ids);
    // Every acknowledgement names its stored message.
    const acks = [...visitor.frames, ...agentSock.frames].filter((f) => f.type === "ack");
    expect(acks).toHaveLength(16);
    for (const a of acks) expect(history.find((m) => m.id === a.id)).toMatchObject({ seq: a.seq, client_msg_id: a.client_msg_id });
    // The D1-backed inbox catches up to the same head.
    await listed(o.agent, "all", vid, (c) => c.updated_at === history.at(-1).created_at);
  });
});

describe("Socket.IO recovery after the session was revoked (F6)", () => {
  it("an agent whose session was logged out while its connection was down reconnects unrecovered: no replay, no rooms, no agent rights", async () => {
    const o = await newOrg();
    const vid = visitorId("f6");
    const v = dostiVisitor(o.pk, vid);
    await sent(v.send("hello"));
    const conv = await listed(o.agent, "all", vid);
    // A second login of the owner: its own session, logged out below.
    const login = expectStatus(await api("/auth/login", { body: { email: o.agent.email, password: o.agent.password } }), 200, "login");
    const cookie = login.headers.getSetCookie().map((c) => c.split(";", 1)[0]!).find((c) => c.startsWith("session="))!;
    const agent = await open(sio.make(agentOpts(cookie, { transports: ["websocket"], reconnectionDelay: 1_500, reconnectionDelayMax: 1_500, randomizationFactor: 0 })));
    const firstId = agent.id;
    expect(await ack(agent, "join_conversation", { conversation_id: conv.id })).toEqual({ ok: true, conversation_id: conv.id });
    const before = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "before the drop" } }), 201, "reply").json;
    await nextEvent(agent, "message_received", (m) => m.id === before.id);

    agent.io.engine.close(); // a network drop: the client will try to recover with its pid
    expect(await nextEvent(agent, "disconnect")).toBe("forced close");
    expectStatus(await api("/auth/logout", { method: "POST", cookie, csrf: login.json.csrf_token }), 200, "logout");
    const missed = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "missed while away" } }), 201, "reply").json;

    await nextEvent(agent, "connect", undefined, 10_000);
    expect(agent.recovered).toBe(false);
    expect(agent.id).not.toBe(firstId);
    const after = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "after the reconnect" } }), 201, "reply").json;
    // Agent-only actions are refused to what is now an anonymous connection.
    const rejoin = await ack(agent, "join_conversation", { conversation_id: conv.id });
    expect(rejoin).toMatchObject({ error: { code: "unauthorized" } });
    await sleep(300);
    const got = payloads(agent, "message_received").map((m) => m.id);
    expect(got).toEqual([before.id]);
    expect(got).not.toContain(missed.id);
    expect(got).not.toContain(after.id);
  });
});

describe("Socket.IO recovery with a pid that is not the client's (F5)", () => {
  it("an unknown pid, a forged secret, or another visitor's real pid connect fresh: a new socket id, nothing replayed, the rightful client undisturbed", async () => {
    const o = await newOrg();
    const alice = visitorId("alice");
    const conversation = async (vid: string) => {
      const raw = await RawPolling.open(`&apiKey=${o.pk}&role=visitor&visitorId=${vid}&visitorName=V`);
      await raw.post("40");
      const { packet } = await raw.until((p) => p.startsWith("40"));
      return { raw, connect: JSON.parse(packet.slice(2)) as { sid: string; pid: string } };
    };
    const first = await conversation(alice);
    expect(first.connect.pid).toMatch(/^[^.]+\.[^.]+$/);
    await sent(dostiVisitor(o.pk, alice).send("hello"));
    const conv = await listed(o.agent, "all", alice);
    const secret = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "for alice only" } }), 201, "reply").json;
    await first.raw.until((p) => p.startsWith("42") && p.includes(secret.id));
    const [anchor] = first.connect.pid.split(".");

    const attempts: [string, string, Record<string, string>][] = [
      ["unknown pid", visitorId("x"), { pid: "nope.nope", offset: "" }],
      ["forged secret", alice, { pid: `${anchor}.forged-secret`, offset: "" }],
      ["another visitor's real pid", visitorId("mallory"), { pid: first.connect.pid, offset: "" }],
    ];
    for (const [what, vid, auth] of attempts) {
      const raw = await RawPolling.open(`&apiKey=${o.pk}&role=visitor&visitorId=${vid}&visitorName=M`);
      await raw.post(`40${JSON.stringify(auth)}`);
      const { packet, before } = await raw.until((p) => p.startsWith("40") || p.startsWith("44"));
      expect(packet.startsWith("40"), what).toBe(true);
      const connect = JSON.parse(packet.slice(2));
      expect(connect.sid, what).not.toBe(first.connect.sid);
      expect(connect.pid, what).not.toBe(first.connect.pid);
      // Nothing of alice's conversation reaches an impostor (a poll that finds it fails the test).
      for (const p of before) expect(p.includes(secret.id) || p.includes("for alice only"), `${what}: ${p}`).toBe(false);
      const leaked = await raw.until((p) => p.includes(secret.id) || p.includes("for alice only"), { timeoutMs: 1_500 }).then(
        (r) => r.packet,
        () => null,
      );
      expect(leaked, what).toBeNull();
    }
    // The rightful client was never disturbed: its own session still hears its conversation.
    const still = expectStatus(await o.agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "still there?" } }), 201, "reply").json;
    await first.raw.until((p) => p.startsWith("42") && p.includes(still.id), { timeoutMs: 5_000 });
  });
});
