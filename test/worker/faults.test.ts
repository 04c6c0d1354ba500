/**
 * Faults against the real runtime (workerd, real D1 and Durable Objects): resets and evictions in
 * the middle of concurrent sends, D1 failing through many flushes, long-polls aborted or raced,
 * and one client message id raced over every surface. Every test ends with the X1 invariant
 * (invariants.ts): the object's log == D1 == what the clients received, seq contiguous.
 * RELIABILITY.md case ids are in the test names.
 */
import { abortAllDurableObjects, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { writerSink } from "../../src/conversation/d1-writer";
import { backoffMs, FLUSH_STALL_REPORT_AFTER } from "../../src/conversation/flush";
import { POLL_JITTER_SHARE, type ConversationRoom } from "../../src/conversation/room";
import { BASE, dostiVisitor, eventually, newOrg, openSocket, withKey } from "./helpers";
import { assertX1, conversationOf, d1Log, fromFrames, objectLog, room, waiterCount } from "./invariants";

afterEach(() => {
  vi.restoreAllMocks();
});

type Sock = Awaited<ReturnType<typeof openSocket>>;
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const lastSeq = (s: Sock) => Math.max(0, ...fromFrames(s.frames).map((m) => m.seq));
const acked = (s: Sock) => new Map(s.frames.filter((f) => f.type === "ack").map((f) => [f.client_msg_id as string, f]));

/** Retries a REST send with the same client id until it is acknowledged (bounded). */
async function untilAcked(send: () => Promise<{ status: number; body: any }>, what: string) {
  for (let i = 0; i < 10; i++) {
    const r = await send().catch((err: unknown) => ({ status: 0, body: String(err) }));
    if (r.status === 200 || r.status === 201) return r;
    expect([0, 500, 503], `${what}: only a transport failure or a retryable error may happen (${JSON.stringify(r.body)})`).toContain(r.status);
  }
  throw new Error(`${what}: never acknowledged`);
}

describe("resets and evictions in the middle of a burst (F1, F3)", () => {
  it("graceful eviction during concurrent sends over WS, agent REST and seed 000 REST: every acked message once, in order, gapless; hibernated sockets see all of it", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=burst-1`);
    const ready = await visitor.next((f) => f.type === "ready");
    const id = ready.conversation_id as string;
    const agent = await openSocket(`/ws/conversations/${id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready");
    const server = withKey(o.sk);
    const v = dostiVisitor(o.pk, "burst-1");

    const burst = (from: number, to: number) => {
      for (const i of range(from, to)) visitor.send({ type: "send", content: `v${i}`, client_msg_id: `v-${i}` });
      return Promise.all([
        ...range(from, to).map((i) => untilAcked(() => server.call(`/api/conversations/${id}/messages`, { body: { content: `a${i}`, client_msg_id: `a-${i}` } }), `a-${i}`)),
        ...range(from, Math.min(to, from + 2)).map((i) => untilAcked(() => v.send(`d${i}`, { clientMessageId: `d-${i}` }), `d-${i}`)),
      ]);
    };
    const first = burst(1, 5);
    await visitor.next((f) => f.type === "ack");
    await evictDurableObject(room(id));
    const second = burst(6, 10);
    const rest = [...(await first), ...(await second)];

    await eventually(async () => acked(visitor).size === 10, "every visitor frame acknowledged", 10_000);
    const total = 10 + 10 + 6;
    await agent.next((f) => f.type === "message" && f.message.seq === total, 10_000);
    await visitor.next((f) => f.type === "message" && f.message.seq === total, 10_000);
    expect(visitor.closed).toBeNull();
    expect(agent.closed).toBeNull();

    const log = await assertX1(id, [
      { name: "agent socket", audience: "staff", messages: fromFrames(agent.frames), complete: true },
      { name: "visitor socket", audience: "end_user", messages: fromFrames(visitor.frames), complete: true },
    ]);
    expect(log).toHaveLength(total);
    // Each acknowledgement names the stored message, whatever the surface.
    const byId = new Map(log.map((m) => [m.id, m]));
    for (const a of acked(visitor).values()) expect(byId.get(a.id)).toMatchObject({ seq: a.seq, client_msg_id: a.client_msg_id });
    for (const r of rest) expect(byId.has(r.body.id ?? r.body.message.id)).toBe(true);
    // Sender identity came back from each socket's attachment after the eviction.
    expect(log.filter((m) => m.client_msg_id?.startsWith("v-")).every((m) => m.sender_type === "end_user" && m.sender_id === "burst-1")).toBe(true);
    expect(log.filter((m) => m.client_msg_id?.startsWith("a-")).every((m) => m.sender_type === "agent" && m.sender_id === o.user.id)).toBe(true);
  });

  it("a hard reset (every object aborted) during a burst: sockets drop, clients resume by seq and retry unacknowledged ids; nothing lost, nothing twice", async () => {
    const o = await newOrg();
    const path = `/ws/visitor?key=${o.pk}&external_id=reset-1`;
    const visitor = await openSocket(path);
    const ready = await visitor.next((f) => f.type === "ready");
    const id = ready.conversation_id as string;
    const agent = await openSocket(`/ws/conversations/${id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready");
    const server = withKey(o.sk);

    for (const i of range(1, 8)) visitor.send({ type: "send", content: `v${i}`, client_msg_id: `v-${i}` });
    const restSends = range(1, 8).map((i) =>
      server.call(`/api/conversations/${id}/messages`, { body: { content: `a${i}`, client_msg_id: `a-${i}` } }).catch((err: unknown) => ({ status: 0, body: String(err) })),
    );
    await visitor.next((f) => f.type === "ack");
    await abortAllDurableObjects();
    await visitor.waitClosed();
    await agent.waitClosed();
    const restResults = await Promise.all(restSends);
    for (const r of restResults) expect([0, 200, 201, 500, 503]).toContain(r.status);

    // The agent resumes from the last seq it saw; the visitor reconnects and resends what it had no ack for.
    const agentBack = await openSocket(`/ws/conversations/${id}?since=${lastSeq(agent)}&epoch=${ready.epoch}`, { cookie: o.cookie });
    const resumed = await agentBack.next((f) => f.type === "ready");
    expect(resumed).toMatchObject({ recovered: true, resync_required: false, epoch: ready.epoch });
    const visitorBack = await openSocket(`${path}&since=${lastSeq(visitor)}&epoch=${ready.epoch}`);
    expect(await visitorBack.next((f) => f.type === "ready")).toMatchObject({ recovered: true });
    const ackedBefore = acked(visitor);
    const resend = range(1, 8).filter((i) => !ackedBefore.has(`v-${i}`));
    for (const i of resend) visitorBack.send({ type: "send", content: `v${i}`, client_msg_id: `v-${i}` });
    await eventually(async () => acked(visitorBack).size === resend.length, "resent frames acknowledged");
    for (const [i, r] of restResults.entries()) {
      if (r.status !== 200 && r.status !== 201) await untilAcked(() => server.call(`/api/conversations/${id}/messages`, { body: { content: `a${i + 1}`, client_msg_id: `a-${i + 1}` } }), `a-${i + 1}`);
    }
    // Acknowledged before the reset = still there with the same id and seq.
    const log = await objectLog(id);
    for (const a of ackedBefore.values()) expect(log.find((m) => m.id === a.id)?.seq).toBe(a.seq);
    expect(log).toHaveLength(16);
    await agentBack.next((f) => f.type === "message" && f.message.seq === 16).catch(() => null);

    await assertX1(id, [
      { name: "agent socket, then its resume", audience: "staff", messages: [...fromFrames(agent.frames), ...fromFrames(agentBack.frames)], complete: true },
      { name: "visitor socket, then its resume", audience: "end_user", messages: [...fromFrames(visitor.frames), ...fromFrames(visitorBack.frames)], complete: true },
    ]);
  });
});

describe("D1 failing during the flush (F8, F9)", () => {
  it("eight failed flushes in a row (two of them after D1 committed) with more than a batch waiting: the alarm never throws, backs off, logs flush_stalled; chat stays live; D1 ends with every message exactly once", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "d1-down");
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: unknown) => void errors.push(String(line)));
    // Attempts 1-3: the connection drops before D1 sees anything. 4-5: D1 commits, then the answer
    // is lost (the retry must not duplicate). From 6 on: overloaded, until the test heals D1.
    const plan = ["lost", "lost", "lost", "commit-then-lost", "commit-then-lost", "overloaded", "overloaded", "overloaded"];
    let attempts = 0;
    let healed = false;
    await runInDurableObject(stub, (r: ConversationRoom) => {
      const real = writerSink(env, ref);
      r.sink = {
        async write(m, s) {
          const step = healed ? "ok" : (plan[attempts] ?? "overloaded");
          attempts++;
          if (step === "lost") throw new Error("D1_ERROR: Network connection lost.");
          if (step === "commit-then-lost") {
            await real.write(m, s);
            throw new Error("D1_ERROR: Network connection lost.");
          }
          if (step === "overloaded") throw new Error("D1_ERROR: D1 DB is overloaded. Requests queued for too long.");
          return real.write(m, s);
        },
      };
    });

    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=d1-down`);
    await visitor.next((f) => f.type === "ready");
    const agent = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    await agent.next((f) => f.type === "ready");
    const v = dostiVisitor(o.pk, "d1-down");
    let sent = 0;
    const sendSome = async () => {
      const n = ++sent;
      visitor.send({ type: "send", content: `ws ${n}`, client_msg_id: `w-${n}` });
      expect(await visitor.next((f) => f.type === "ack" && f.client_msg_id === `w-${n}`)).toMatchObject({ duplicate: false });
      const r = await o.agent.call(`/api/conversations/${ref.id}/messages`, { body: { content: `rest ${n}`, client_msg_id: `r-${n}` } });
      expect(r.status).toBe(201);
    };

    // Alarms also fire on their own (at "now" after a send, then after each backoff): whoever runs
    // the flush, every attempt follows the plan. Here the test also runs the alarm twice back to
    // back and beside a live send; runDurableObjectAlarm would reject if the handler threw.
    for (let round = 1; attempts < plan.length; round++) {
      expect(round, "the plan is used up within a few rounds").toBeLessThan(12);
      await sendSome();
      await Promise.all([runDurableObjectAlarm(stub), runDurableObjectAlarm(stub), round % 3 === 0 ? sendSome() : null]);
      if (attempts < plan.length) await eventually(() => runInDurableObject(stub, (_r, s) => s.storage.getAlarm()), "the next flush is always scheduled");
    }
    // Let a flush still running finish (flushes are serialized: this one runs after it, and fails too).
    await runInDurableObject(stub, (r: ConversationRoom) => r.flush());
    const next = await eventually(() => runInDurableObject(stub, (_r, s) => s.storage.getAlarm()), "a retry is scheduled after the last failure");
    // The failure count is durable, and the backoff has reached its cap (1 s, 2 s, 4 s, ... 60 s).
    const failures = await runInDurableObject(stub, (_r, s) => Number(s.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'flush_failures'").one().value));
    expect(failures).toBe(attempts);
    expect(failures).toBeGreaterThanOrEqual(plan.length);
    expect(next - Date.now()).toBeGreaterThan(backoffMs(failures) - 5_000);
    const logged = errors.map((e) => JSON.parse(e)).filter((e) => e.conversation === ref.id);
    expect(logged.filter((e) => e.at === "flush_failed").map((e) => e.failures)).toEqual(range(1, FLUSH_STALL_REPORT_AFTER - 1));
    expect(logged.filter((e) => e.at === "flush_stalled").map((e) => e.failures)).toEqual(range(FLUSH_STALL_REPORT_AFTER, failures));
    // No secret in any log line.
    for (const line of errors) for (const secret of [o.sk, o.pk, o.cookie.split("=")[1]!, o.csrf]) expect(line).not.toContain(secret);

    // More than one flush batch (50 rows) is waiting while D1 is down: a bot fills up to 60.
    const bot = { type: "bot" as const, id: "helper-bot", name: "Helper" };
    const botCount = 60 - sent * 2;
    for (const i of range(1, botCount)) expect(await stub.send(ref, bot, { content: `bot ${i}`, client_msg_id: `b-${i}` })).toMatchObject({ ok: true });
    // Chat stayed live meanwhile: the agent socket saw every message; a poll reads them all.
    const total = sent * 2 + botCount;
    expect(total).toBeGreaterThan(50);
    await agent.next((f) => f.type === "message" && f.message.seq === total);
    expect((await v.poll(0)).body.messages).toHaveLength(total);
    // D1 holds only what the two committed-then-lost attempts wrote.
    expect((await d1Log(ref.id)).length).toBeLessThan(sent * 2);

    // D1 is back: the next alarm flushes everything, once.
    healed = true;
    await runDurableObjectAlarm(stub);
    await eventually(async () => (await d1Log(ref.id)).length === total, "D1 caught up");
    await assertX1(ref.id, [
      { name: "agent socket", audience: "staff", messages: fromFrames(agent.frames), complete: true },
      { name: "visitor socket", audience: "end_user", messages: fromFrames(visitor.frames), complete: true },
    ]);
  });
});

describe("a throw after the insert and before the broadcast (F2)", () => {
  it("the message is stored once; the retry with the same client id returns the same id and seq", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "f2");
    const me = { type: "end_user" as const, id: "f2", name: null };
    const parked = stub.poll(ref, { audience: "staff", after: 0, waitMs: 10_000, limit: 10 });
    await eventually(async () => (await waiterCount(ref.id)) === 1, "the poll waits in the room");
    const first = await runInDurableObject(stub, (r: ConversationRoom) =>
      r.send(ref, me, { content: "x", client_msg_id: "X" }, () => {
        throw new Error("injected after the insert");
      }).then(
        () => "answered",
        (err: unknown) => String(err),
      ),
    );
    expect(first).toContain("injected");
    // The others heard of it all the same: the waiting poll returns it at once.
    const woke = await parked;
    expect(woke.ok && woke.messages.map((m) => m.client_msg_id)).toEqual(["X"]);
    const retry = await stub.send(ref, me, { content: "x", client_msg_id: "X" });
    expect(retry).toMatchObject({ ok: true, duplicate: true, message: { seq: 1, client_msg_id: "X" } });
    const again = await stub.send(ref, me, { content: "x", client_msg_id: "X" });
    expect(again.ok && again.message.id).toBe(retry.ok && retry.message.id);
    const next = await stub.send(ref, me, { content: "y", client_msg_id: "Y" });
    expect(next).toMatchObject({ ok: true, duplicate: false, message: { seq: 2 } });
    const log = await assertX1(ref.id);
    expect(log.map((m) => m.client_msg_id)).toEqual(["X", "Y"]);
  });
});

describe("a throw while the message is being announced (F2)", () => {
  it("the retry with the same client id announces it: a waiting poll gets it, once", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "f2-announce");
    const me = { type: "end_user" as const, id: "f2-announce", name: null };
    const parked = stub.poll(ref, { audience: "staff", after: 0, waitMs: 10_000, limit: 10 });
    await eventually(async () => (await waiterCount(ref.id)) === 1, "the poll waits in the room");
    const first = await runInDurableObject(stub, async (r: ConversationRoom) => {
      const room = r as unknown as { wakeWaiters(): void };
      const spy = vi.spyOn(room, "wakeWaiters").mockImplementationOnce(() => {
        throw new Error("injected while announcing");
      });
      try {
        return await r.send(ref, me, { content: "x", client_msg_id: "X" }).then(() => "answered", (err: unknown) => String(err));
      } finally {
        spy.mockRestore();
      }
    });
    expect(first).toContain("injected");
    expect(await waiterCount(ref.id)).toBe(1); // never woken: the announcement failed
    const retry = await stub.send(ref, me, { content: "x", client_msg_id: "X" });
    expect(retry).toMatchObject({ ok: true, duplicate: true, message: { seq: 1 } });
    const woke = await parked;
    expect(woke.ok && woke.messages.map((m) => m.client_msg_id)).toEqual(["X"]);
    // Announced once: a second retry does not announce again.
    const parkedAgain = stub.poll(ref, { audience: "staff", after: 1, waitMs: 300, limit: 10 });
    await stub.send(ref, me, { content: "x", client_msg_id: "X" });
    expect(await parkedAgain).toMatchObject({ ok: true, messages: [] });
    expect((await assertX1(ref.id)).map((m) => m.client_msg_id)).toEqual(["X"]);
  });
});

describe("long-poll (F12)", () => {
  it("(ii) a poll aborted by its client leaves no waiter behind and skips nothing: the message arrives on the next poll", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "lp-abort");
    const boot = (await v.send("boot")).body.message;
    const { ref } = await conversationOf(o.pk, "lp-abort");
    const abort = new AbortController();
    const parked = exports.default
      .fetch(new Request(`${BASE}/api/chat/poll?apiKey=${o.pk}&visitorId=lp-abort&lastTimestamp=${boot.timestamp}&wait=25`, { signal: abort.signal }))
      .then((r) => r.status, (err: unknown) => String(err));
    await eventually(async () => (await waiterCount(ref.id)) === 1, "the poll is parked in the room");
    abort.abort();
    expect(await parked).toMatch(/abort/i);

    const reply = await o.agent.call(`/api/conversations/${ref.id}/messages`, { body: { content: "after the abort", client_msg_id: "late" } });
    expect(reply.status).toBe(201);
    await eventually(async () => (await waiterCount(ref.id)) === 0, "no waiter left");
    const next = await v.poll(boot.timestamp, 5);
    expect(next.body.messages.map((m: any) => [m.id, m.message])).toEqual([[reply.body.id, "after the abort"]]);
    expect(await waiterCount(ref.id)).toBe(0);
    await assertX1(ref.id, [{ name: "poller", audience: "end_user", messages: next.body.messages.map((m: any) => ({ id: m.id, seq: 2 })), complete: true, after: 1 }]);
  });

  it("(i) a poll with nothing new answers 200 [] after its wait and leaves no waiter", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "lp-idle");
    const boot = (await v.send("boot")).body.message;
    const { ref } = await conversationOf(o.pk, "lp-idle");
    const t0 = Date.now();
    const r = await v.poll(boot.timestamp, 1);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ success: true, messages: [] });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(await waiterCount(ref.id)).toBe(0);
    await assertX1(ref.id);
  });

  it("(iv) empty polls armed together with a 6 s wait come back spread over its last half (no re-poll wave), each with [] and no waiter left", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "lp-jitter");
    const boot = (await v.send("boot")).body.message;
    const { ref } = await conversationOf(o.pk, "lp-jitter");
    const t0 = Date.now();
    const back = await Promise.all(
      Array.from({ length: 12 }, () => v.poll(boot.timestamp, 6).then((r) => ({ ms: Date.now() - t0, status: r.status, body: r.body }))),
    );
    expect(POLL_JITTER_SHARE).toBe(0.5);
    for (const r of back) {
      expect([r.status, r.body]).toEqual([200, { success: true, messages: [] }]);
      expect(r.ms).toBeGreaterThanOrEqual(3_000 - 250);
      expect(r.ms).toBeLessThan(7_500);
    }
    const times = back.map((r) => r.ms).sort((a, b) => a - b);
    // Without the jitter all twelve return within a few ms of 6 s.
    expect(times.at(-1)! - times[0]!).toBeGreaterThan(150);
    // Over the half, not only its last fifth (4.8-6 s): all twelve in there has odds of 0.4^12, about 2e-5.
    expect(times[0]!).toBeLessThan(4_800);
    expect(await waiterCount(ref.id)).toBe(0);
  });

  it("(iii) two concurrent polls on one cursor both wake with the same messages; neither hangs; nothing is split between them", async () => {
    const o = await newOrg();
    const v = dostiVisitor(o.pk, "lp-two");
    const boot = (await v.send("boot")).body.message;
    const { ref } = await conversationOf(o.pk, "lp-two");
    const a = v.poll(boot.timestamp, 20);
    const b = v.poll(boot.timestamp, 20);
    await eventually(async () => (await waiterCount(ref.id)) === 2, "both polls parked");
    const t0 = Date.now();
    const reply = await o.agent.call(`/api/conversations/${ref.id}/messages`, { body: { content: "for both" } });
    const [ra, rb] = await Promise.all([a, b]);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(ra.status).toBe(200);
    expect(rb.status).toBe(200);
    expect(ra.body.messages.map((m: any) => m.id)).toEqual([reply.body.id]);
    expect(rb.body).toEqual(ra.body);
    expect(await waiterCount(ref.id)).toBe(0);
    // Each poller's next cursor sees nothing it missed.
    const after = await v.poll(ra.body.messages[0].timestamp);
    expect(after.body.messages).toEqual([]);
    await assertX1(ref.id);
  });
});

describe("one client message id, ten racing copies (F7)", () => {
  it("a visitor's id raced over seed 000 REST and the native socket stores one message, broadcast once; every copy answers that message", async () => {
    const o = await newOrg();
    const visitor = await openSocket(`/ws/visitor?key=${o.pk}&external_id=race-v`);
    const ready = await visitor.next((f) => f.type === "ready");
    const watcher = await openSocket(`/ws/conversations/${ready.conversation_id}`, { authorization: `Bearer ${o.sk}` });
    await watcher.next((f) => f.type === "ready");
    const v = dostiVisitor(o.pk, "race-v");

    const rest = Promise.all(range(1, 5).map(() => v.send("same words", { clientMessageId: "race-1" })));
    for (let i = 0; i < 5; i++) visitor.send({ type: "send", content: "same words", client_msg_id: "race-1" });
    const restAnswers = await rest;
    await eventually(async () => visitor.frames.filter((f) => f.type === "ack").length === 5, "five acks");
    const acks = visitor.frames.filter((f) => f.type === "ack");
    const ids = new Set([...restAnswers.map((r) => r.body.message?.id), ...acks.map((a) => a.id)]);
    expect(restAnswers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(ids.size).toBe(1);
    expect(acks.every((a) => a.seq === 1)).toBe(true);
    expect(acks.filter((a) => !a.duplicate).length + 0).toBeLessThanOrEqual(1);

    // A different body under the same id is refused on both surfaces, and stores nothing.
    expect((await v.send("other words", { clientMessageId: "race-1" })).status).toBe(409);
    visitor.send({ type: "send", content: "other words", client_msg_id: "race-1" });
    expect(await visitor.next((f) => f.type === "error")).toMatchObject({ code: "idempotency_conflict", client_msg_id: "race-1" });
    await watcher.next((f) => f.type === "pong" || f.type === "message");
    watcher.send('{"type":"ping"}');
    await watcher.next((f) => f.type === "pong");
    expect(watcher.frames.filter((f) => f.type === "message")).toHaveLength(1);
    await assertX1(ready.conversation_id, [
      { name: "watcher", audience: "staff", messages: fromFrames(watcher.frames), complete: true },
      { name: "visitor", audience: "end_user", messages: fromFrames(visitor.frames), complete: true },
    ]);
  });

  it("an agent's id raced over cookie REST, secret-key REST and the agent socket stores one message", async () => {
    const o = await newOrg();
    const { ref } = await conversationOf(o.pk, "race-a");
    const sock = await openSocket(`/ws/conversations/${ref.id}`, { cookie: o.cookie });
    await sock.next((f) => f.type === "ready");
    const body = { content: "on it", client_msg_id: "agent-race" };
    const path = `/api/conversations/${ref.id}/messages`;
    const answers = Promise.all([...range(1, 3).map(() => o.agent.call(path, { body })), ...range(1, 3).map(() => withKey(o.sk).call(path, { body }))]);
    for (let i = 0; i < 4; i++) sock.send({ type: "send", ...body });
    const rest = await answers;
    await eventually(async () => sock.frames.filter((f) => f.type === "ack").length === 4, "four acks");
    const statuses = rest.map((r) => r.status).sort();
    const acks = sock.frames.filter((f) => f.type === "ack");
    const fresh = rest.filter((r) => r.status === 201).length + acks.filter((a) => !a.duplicate).length;
    expect(fresh).toBe(1);
    expect(statuses.every((s) => s === 200 || s === 201)).toBe(true);
    expect(new Set([...rest.map((r) => r.body.id), ...acks.map((a) => a.id)]).size).toBe(1);
    const log = await assertX1(ref.id, [{ name: "agent socket", audience: "staff", messages: fromFrames(sock.frames), complete: true }]);
    expect(log).toHaveLength(1);
  });
});

describe("the invariant helper itself", () => {
  it("fails when D1 and the object disagree (so X1 can fail)", async () => {
    const o = await newOrg();
    const { ref, stub } = await conversationOf(o.pk, "x1-self");
    await stub.send(ref, { type: "end_user", id: "x1-self", name: null }, { content: "one" });
    await assertX1(ref.id);
    await env.DB.prepare("UPDATE messages SET content = 'tampered' WHERE conversation_id = ?").bind(ref.id).run();
    await expect(assertX1(ref.id)).rejects.toThrow(/D1 == object log/);
    await env.DB.prepare("UPDATE messages SET content = 'one' WHERE conversation_id = ?").bind(ref.id).run();
    await assertX1(ref.id);
    await expect(assertX1(ref.id, [{ name: "liar", audience: "staff", messages: [{ id: crypto.randomUUID(), seq: 1 }] }])).rejects.toThrow();
  });
});
