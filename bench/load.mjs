// The load cases L1-L7 of ../shared/RELIABILITY.md against a real Parley on the local Workers runtime
// (the Miniflare API; BENCH_RUNTIME=wrangler for `wrangler dev`: bench/README.md), over real sockets.
// One JSON line per case on stdout (numbers, the checks, pass/fail against what
// RELIABILITY.md asks, and what this machine could not reach); bench/results/load-<date>.md.
//
//   npm run load                     RELIABILITY.md's sizes where this machine can do them
//   LOAD_QUICK=1 npm run load        every case small, about a minute (results/load-<date>-quick.md)
//   LOAD_CASES=L1,L7 npm run load    some cases; sizes by the LOAD_L<n>_* variables (bench/README.md)
//   LOAD_CASES=L1,L1relay npm run load   L1, then the same fan-out against the bare DO relay
//                                    (bench/relay): how much of L1's latency is the platform's
import { once } from "node:events";
import { rmSync } from "node:fs";
import { createServer } from "node:http";
import { cpus, totalmem } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, root } from "../scripts/lib/wrangler.mjs";
import { AckTimeout, parleyLogSocket, parleyOrg, parleyRest, parleyWsTarget, relayLogSocket, SeqLog } from "./lib/clients.mjs";
import { d1Check, d1Counts } from "./lib/d1.mjs";
import { writeLoadReport } from "./lib/load-report.mjs";
import { machineLoad, monitor, nofileLimit, openFds, settle } from "./lib/procs.mjs";
import { exportParley, parleyServer, relayServer, RUNTIME, runtimeLabel } from "./lib/servers.mjs";
import { mapLimit, mapSettled, round, summary } from "./lib/stats.mjs";
import { stateWorkDir } from "./lib/state-dir.mjs";

const QUICK = process.env.LOAD_QUICK === "1";
const num = (name, full, quick) => (process.env[name] !== undefined ? Number(process.env[name]) : QUICK ? quick : full);

// Sizes: RELIABILITY.md's where this 2-core machine reaches them; `asked` is RELIABILITY.md's own.
const config = {
  cases: (process.env.LOAD_CASES ?? "L1,L2,L3,L4,L5,L6,L7").split(",").map((s) => s.trim()).filter(Boolean),
  per_org: num("LOAD_PER_ORG", 50, 50),
  L1: { sockets: num("LOAD_L1_SOCKETS", 2000, 200), messages: num("LOAD_L1_MESSAGES", 100, 20), rate: num("LOAD_L1_RATE", 10, 10), p99_target_ms: num("LOAD_L1_P99_MS", 500, 500), asked: "2,000 sockets, 100 messages at 10/s" },
  get L1relay() {
    return { ...this.L1, asked: "L1's size against the bare Durable Object relay (bench/relay): not a RELIABILITY.md case, the platform's share of L1", limit: "the relay: one object, hibernatable sockets, one SQLite insert and a broadcast per message; no auth, no D1, no hub" };
  },
  L2: { senders: num("LOAD_L2_SENDERS", 50, 10), per_sender: num("LOAD_L2_PER_SENDER", 20, 10), ack_timeout_ms: num("LOAD_L2_ACK_TIMEOUT_MS", 30000, 30000), asked: "50 senders x 20 concurrent sends" },
  L3: { conversations: num("LOAD_L3_CONVS", RUNTIME === "wrangler" ? 200 : 500, 20), polls_per_conversation: num("LOAD_L3_POLLS_PER_CONV", 10, 5), hold_s: num("LOAD_L3_HOLD_S", 60, 5), wait_s: 30, send_rate: num("LOAD_L3_SEND_RATE", 100, 100), return_target_ms: num("LOAD_L3_RETURN_MS", 5000, 5000), asked: "5,000 polls over 500 conversations, 60 s idle", ...(RUNTIME === "wrangler" ? { limit: "5,000 held polls crashed the local runtime (workerd: accept(): Too many open files; wrangler restarted it) and 3,000 hit the same error in one run of two: wrangler dev and workerd hold about 6 descriptors per open client connection and this machine allows 20,000 per process (a hard limit, not raisable here), so 2,000 (200 conversations x 10)" } : {}) },
  L4: { conversations: num("LOAD_L4_CONVS", 50, 5), sockets_per_conversation: num("LOAD_L4_SOCKETS_PER_CONV", 20, 10), rate_per_conversation: num("LOAD_L4_RATE", 1, 2), before_s: num("LOAD_L4_BEFORE_S", 10, 4), after_s: num("LOAD_L4_AFTER_S", 10, 4), asked: "1,000 sockets in 50 conversations", limit: "a deploy closes sockets with 1001/1012; locally the runtime is stopped (its process tree gets SIGTERM) and started on the same state, so clients see 1006" },
  L5: { conversations: num("LOAD_L5_CONVS", 200, 20), rate_per_conversation: num("LOAD_L5_RATE", 1, 1), seconds: num("LOAD_L5_SECONDS", 60, 8), lag_target_ms: num("LOAD_L5_LAG_MS", 5000, 5000), asked: "10,000 conversations at 1 msg/s for 10 min", limit: "10,000 msg/s is far past this machine: Parley sustains about 1,200 msg/s over 100 conversations on these two cores (bench S2, bench/results/2026-11-22-1120.md), so 200 conversations for 60 s" },
  L6: { events: num("LOAD_L6_EVENTS", 10000, 100), conversations: num("LOAD_L6_CONVS", 50, 5), down_s: num("LOAD_L6_DOWN_S", 10, 3), receiver_delay_ms: num("LOAD_L6_DELAY_MS", 0, 0), drain_timeout_s: num("LOAD_L6_DRAIN_S", 300, 120), asked: "10,000 events, receiver at 10 s per request", limit: "the receiver answers at once once up: one taking 10 s is past Parley's 3 s attempt timeout, so every attempt would fail and retry (LOAD_L6_DELAY_MS sets a delay)" },
  L7: { megabytes: num("LOAD_L7_MB", 10, 2), message_kb: num("LOAD_L7_MSG_KB", 15, 15), others: num("LOAD_L7_OTHERS", 20, 5), asked: "10 MB broadcast past one socket that does not read" },
};

const startedAt = Date.now();
const log = (...args) => process.stderr.write(`[load ${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)}s] ${args.join(" ")}\n`);
const { dir: work, fs: stateFs } = stateWorkDir("parley-load-");
const stateDir = join(work, "state");
const parleyRef = process.env.BENCH_PARLEY_REF ?? "HEAD";
log(`exporting ${parleyRef} to ${work}`);
const commit = exportParley(parleyRef, join(work, "parley"));
const parley = parleyServer({ dir: join(work, "parley"), stateDir, logPath: join(root, "test-results", "load-parley.log") });
const loadBefore = machineLoad();
const startupMs = await parley.start();
// The runtime holds descriptors per open client connection (wrangler dev about 6, see L3).
const nofile = nofileLimit(parley.pid);
log(`parley up on ${parley.baseUrl} in ${startupMs} ms; open-file limit ${nofile}`);
const wsBase = () => parley.baseUrl.replace("http", "ws");
const agentUrl = (id) => `${wsBase()}/ws/conversations/${id}`;
const bearer = (org) => ({ authorization: `Bearer ${org.sk}` });
const serverMonitor = () => monitor(() => parley.pid);

/** n conversations in organisations of config.per_org (the org hub keeps each unassigned session). */
async function conversations(n, tag) {
  const out = [];
  for (let k = 0; out.length < n; k++) {
    const org = await parleyOrg(parley.baseUrl, `Load ${tag} ${k}`);
    const convs = await parleyWsTarget(parley, org).provision(Math.min(config.per_org, n - out.length), `${tag}o${k}`);
    for (const c of convs) out.push({ ...c, org, rest: parleyRest(parley, org) });
  }
  return out;
}

/** Opens `n` agent sockets (Bearer sk_) on a conversation, `limit` at a time; failures counted. */
async function openAgents(conv, n, limit, opts = () => ({})) {
  const t0 = performance.now();
  const res = await mapSettled(Array.from({ length: n }), limit, (_, i) => parleyLogSocket(agentUrl(conv.id), { headers: bearer(conv.org), ...opts(i) }));
  const sockets = res.filter((r) => r.ok).map((r) => r.value);
  const errors = [...new Set(res.filter((r) => !r.ok).map((r) => r.error))].slice(0, 3);
  return { sockets, failed: n - sockets.length, errors, open_seconds: round((performance.now() - t0) / 1000, 1) };
}

const count = (xs, f) => xs.reduce((a, x) => a + (f(x) ? 1 : 0), 0);
const sum = (xs, f) => xs.reduce((a, x) => a + f(x), 0);

/** Per-socket log checks over a set of sockets that should each hold every key in `keys`. */
function logChecks(logs, keys) {
  return {
    sockets: logs.length,
    complete: count(logs, (l) => keys.every((k) => l.keys.has(k))),
    missing_deliveries: sum(logs, (l) => count(keys, (k) => !l.keys.has(k))),
    duplicated: sum(logs, (l) => l.duplicated),
    gaps: sum(logs, (l) => l.gaps),
    reordered: sum(logs, (l) => l.reordered),
  };
}
const logOk = (c) => c.complete === c.sockets && c.duplicated === 0 && c.gaps === 0 && c.reordered === 0;

async function waitUntil(pred, timeoutMs, stepMs = 50) {
  const until = Date.now() + timeoutMs;
  while (!pred() && Date.now() < until) await sleep(stepMs);
  return pred();
}

/** Sends at `rate` per second from `send(i)` for `n` sends (open loop); resolves when all settled. */
async function paced(n, rate, send) {
  const t0 = performance.now();
  const inflight = [];
  for (let i = 0; i < n; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    inflight.push(send(i));
  }
  return Promise.allSettled(inflight);
}

// ---- L1: one conversation, thousands of sockets, 100 messages at 10/s -------------------------------

async function L1() {
  const [conv] = await conversations(1, "L1");
  return fanout({
    name: "L1",
    open: (n, onMessage) => openAgents(conv, n, 32, () => ({ onMessage })),
    sender: () => parleyLogSocket(agentUrl(conv.id), { headers: bearer(conv.org), ackTimeoutMs: 30_000 }),
    monitor: serverMonitor,
    d1: (prefix, keys) => d1Check(stateDir, prefix, keys),
  });
}

/** L1's fan-out against the bare relay (its own `wrangler dev`, started for this case only). */
async function L1relay() {
  const relay = relayServer({ stateDir: join(work, "relay-state"), logPath: join(root, "test-results", "load-relay.log") });
  const startupMs = await relay.start();
  log(`L1relay: relay up on ${relay.baseUrl} in ${startupMs} ms`);
  const url = `${relay.baseUrl.replace("http", "ws")}/room/L1-${Date.now().toString(36)}`;
  try {
    return await fanout({
      name: "L1relay",
      open: async (n, onMessage) => {
        const t0 = performance.now();
        const res = await mapSettled(Array.from({ length: n }), 32, () => relayLogSocket(url, { onMessage }));
        const sockets = res.filter((r) => r.ok).map((r) => r.value);
        const errors = [...new Set(res.filter((r) => !r.ok).map((r) => r.error))].slice(0, 3);
        return { sockets, failed: n - sockets.length, errors, open_seconds: round((performance.now() - t0) / 1000, 1) };
      },
      sender: () => relayLogSocket(url, { ackTimeoutMs: 30_000 }),
      monitor: () => monitor(() => relay.pid),
      d1: null,
    });
  } finally {
    await relay.stop();
  }
}

/**
 * L1's measurement over either target: `open(n, onMessage)` the readers, one `sender` sends
 * config.L1.messages at config.L1.rate; fan-out latency is send start to each reader's receipt.
 */
async function fanout({ name, open, sender: openSender, monitor: startMonitor, d1: checkD1 }) {
  const c = config.L1;
  const mon = startMonitor();
  const sentAt = new Map();
  const lat = [];
  const lastAt = new Map();
  const onMessage = (m, now) => {
    const t = sentAt.get(m.client_msg_id);
    if (t === undefined) return;
    lat.push(now - t);
    lastAt.set(m.client_msg_id, Math.max(lastAt.get(m.client_msg_id) ?? 0, now - t));
  };
  const opened = await open(c.sockets, onMessage);
  const openStats = mon.stop();
  log(`${name}: ${opened.sockets.length}/${c.sockets} sockets open in ${opened.open_seconds} s (server RSS ${openStats.rss_mb_end} MB)`);
  const sender = await openSender();
  const prefix = `L1${Date.now().toString(36)}`;
  const mon2 = startMonitor();
  const acks = [];
  const refused = {};
  await paced(c.messages, c.rate, async (i) => {
    const key = `${prefix}.${i}`;
    const t0 = performance.now();
    sentAt.set(key, t0);
    try {
      const a = await sender.send(key, `L1 message ${i}`);
      acks.push({ key, seq: a.seq, ms: performance.now() - t0 });
    } catch (err) {
      refused[err.code ?? err.message] = (refused[err.code ?? err.message] ?? 0) + 1;
    }
  });
  const keys = acks.map((a) => a.key);
  const logs = opened.sockets.map((s) => s.log);
  await waitUntil(() => logs.every((l) => keys.every((k) => l.keys.has(k))), 30_000, 200);
  const load = mon2.stop();
  const closedEarly = count(opened.sockets, (s) => s.closeCode !== null);
  const errorFrames = {};
  for (const s of opened.sockets) for (const [k, v] of Object.entries(s.errors)) errorFrames[k] = (errorFrames[k] ?? 0) + v;
  const checks = logChecks(logs, keys);
  const d1 = checkD1 ? await checkD1(prefix, keys) : null;
  for (const s of [...opened.sockets, sender]) s.close();
  const fanoutMs = summary(lat);
  const lastSocket = summary([...lastAt.values()]);
  const out = {
    sockets_asked: c.sockets,
    sockets_open: opened.sockets.length,
    open_failures: opened.failed,
    open_errors: opened.errors,
    open_seconds: opened.open_seconds,
    server_after_open: openStats,
    messages_sent: c.messages,
    acked: acks.length,
    refused,
    ack_ms: summary(acks.map((a) => a.ms)),
    deliveries: lat.length,
    fanout_ms: fanoutMs,
    last_socket_ms: lastSocket,
    checks,
    sockets_closed_by_server: closedEarly,
    error_frames: errorFrames,
    d1,
    server: load,
  };
  const fails = [];
  if (opened.failed) fails.push(`${opened.failed} sockets failed to open`);
  if (acks.length !== c.messages) fails.push(`${c.messages - acks.length} sends not acked`);
  if (!logOk(checks)) fails.push("a socket missed, repeated or reordered a message");
  if (!(fanoutMs.p99 < c.p99_target_ms)) fails.push(`fan-out p99 ${fanoutMs.p99} ms over the ${c.p99_target_ms} ms target`);
  if (closedEarly || Object.keys(errorFrames).length) fails.push("sockets closed or error frames during the broadcast");
  if (d1 && !d1.ok) fails.push("D1 not exactly once");
  return { out, fails };
}

// ---- L2: one conversation, 50 senders, all sends at once -------------------------------------------

async function L2() {
  const c = config.L2;
  const [conv] = await conversations(1, "L2");
  const opened = await openAgents(conv, c.senders, 16, () => ({ ackTimeoutMs: c.ack_timeout_ms }));
  const head0 = Math.max(0, ...opened.sockets.map((s) => s.ready.head_seq ?? 0));
  const prefix = `L2${Date.now().toString(36)}`;
  const mon = serverMonitor();
  const t0 = performance.now();
  const results = await Promise.all(
    opened.sockets.flatMap((s, si) =>
      Array.from({ length: c.per_sender }, (_, j) => {
        const key = `${prefix}.${si}.${j}`;
        const ts = performance.now();
        return s.send(key, `L2 ${si}/${j}`).then(
          (a) => ({ key, ok: true, seq: a.seq, duplicate: a.duplicate, ms: performance.now() - ts }),
          (err) => (err instanceof AckTimeout ? { key, ok: false, timeout: true } : { key, ok: false, code: err.code ?? String(err.message) }),
        );
      }),
    ),
  );
  const burstMs = performance.now() - t0;
  const acked = results.filter((r) => r.ok);
  const keys = acked.map((r) => r.key);
  const logs = opened.sockets.map((s) => s.log);
  await waitUntil(() => logs.every((l) => keys.every((k) => l.keys.has(k))), 30_000, 100);
  const server = mon.stop();
  const seqs = acked.map((r) => r.seq).sort((a, b) => a - b);
  const contiguous = seqs.every((s, i) => s === head0 + 1 + i);
  const refusedKeys = new Set(results.filter((r) => !r.ok && !r.timeout).map((r) => r.key));
  const timedOut = new Set(results.filter((r) => r.timeout).map((r) => r.key));
  const refusedStored = sum(logs, (l) => count([...l.keys], (k) => refusedKeys.has(k)));
  const refused = {};
  for (const r of results) if (!r.ok && !r.timeout) refused[r.code] = (refused[r.code] ?? 0) + 1;
  const checks = logChecks(logs, keys);
  const d1 = await d1Check(stateDir, prefix, keys);
  const d1Rows = d1Counts(stateDir, prefix);
  const d1Stray = count(d1Rows, (r) => !timedOut.has(r.k) && !keys.includes(r.k));
  for (const s of opened.sockets) s.close();
  const out = {
    senders: opened.sockets.length,
    sends: results.length,
    acked: acked.length,
    refused,
    refused_but_stored: refusedStored,
    ack_timeouts: timedOut.size,
    ack_timeout_ms: c.ack_timeout_ms,
    unacked_stored_once: count(d1Rows, (r) => timedOut.has(r.k)),
    seq_first: seqs[0] ?? null,
    seq_last: seqs.at(-1) ?? null,
    seq_unique_contiguous: contiguous && new Set(seqs).size === seqs.length,
    burst_seconds: round(burstMs / 1000, 2),
    msgs_per_s: round(acked.length / (burstMs / 1000), 0),
    ack_ms: summary(acked.map((r) => r.ms)),
    checks,
    d1: { ...d1, rows_with_prefix: d1Rows.length },
    server,
  };
  const fails = [];
  if (!out.seq_unique_contiguous) fails.push("acked seqs not unique and contiguous");
  if (Object.keys(refused).some((k) => k !== "rate_limited" && k !== "overloaded")) fails.push(`refusals other than retry-later: ${JSON.stringify(refused)}`);
  if (timedOut.size) fails.push(`${timedOut.size} sends unanswered within ${c.ack_timeout_ms} ms`);
  if (refusedStored) fails.push("a refused send was stored");
  if (!logOk(checks)) fails.push("a socket missed, repeated or reordered a message");
  if (!d1.ok || d1Stray) fails.push("D1 not exactly the acked set (plus at most once each unanswered send)");
  return { out, fails };
}

// ---- L3: thousands of idle long-polls, then one message per conversation -----------------------------

async function L3() {
  const c = config.L3;
  const convs = await conversations(c.conversations, "L3");
  await mapLimit(convs, 8, async (v, i) => {
    const m = await v.rest.agentSend(v.id, "setup", `L3setup.${i}.${v.ext}`);
    v.cursor = Date.parse(m.created_at);
  });
  await settle(parley.pid, 20_000);
  const prefix = `L3${Date.now().toString(36)}`;
  const abort = new AbortController();
  const mon = serverMonitor();
  const stats = { timeouts: 0, repolls: 0, errors: {} };
  const pollers = convs.flatMap((v, ci) => Array.from({ length: c.polls_per_conversation }, () => ({ v, key: `${prefix}.${ci}`, got: null, at: null })));
  async function pollLoop(p) {
    while (!abort.signal.aborted) {
      try {
        const r = await p.v.rest.poll(p.v.ext, p.v.cursor, c.wait_s, abort.signal);
        const mine = (r.messages ?? []).find((m) => m.message === `L3 ${p.key}`);
        if (mine) {
          p.at = performance.now();
          p.got = mine;
          return;
        }
        if ((r.messages ?? []).length === 0) stats.timeouts++;
        stats.repolls++;
        await sleep(Math.random() * 1000); // jittered re-poll
      } catch (err) {
        if (abort.signal.aborted) return;
        const e = String(err.message ?? err).slice(0, 80);
        stats.errors[e] = (stats.errors[e] ?? 0) + 1;
        await sleep(500 + Math.random() * 1000);
      }
    }
  }
  const t0 = performance.now();
  const loops = [];
  for (let i = 0; i < pollers.length; i++) {
    loops.push(pollLoop(pollers[i]));
    if (i % 100 === 99) await sleep(20);
  }
  const armSeconds = (performance.now() - t0) / 1000;
  log(`L3: ${pollers.length} long-polls armed in ${round(armSeconds, 1)} s; holding ${c.hold_s} s`);
  const hold0 = monitor(() => parley.pid);
  await sleep(c.hold_s * 1000);
  const idle = hold0.stop();
  const earlyErrors = { ...stats.errors };
  // The load generator's own share (it runs 5,000 fetches on one thread): were returns late at the server or here?
  const gen = monitorEventLoopDelay({ resolution: 10 });
  gen.enable();
  const genCpu0 = process.cpuUsage();
  const genT0 = performance.now();
  const sendAt = new Map();
  const sendAck = [];
  const sendRes = await paced(convs.length, c.send_rate, async (i) => {
    sendAt.set(i, performance.now());
    await convs[i].rest.agentSend(convs[i].id, `L3 ${prefix}.${i}`, `${prefix}.${i}`);
    sendAck.push(performance.now() - sendAt.get(i));
    return `${prefix}.${i}`;
  });
  const ackedKeys = sendRes.filter((r) => r.status === "fulfilled").map((r) => r.value);
  await waitUntil(() => pollers.every((p) => p.got), c.wait_s * 1000 + 5000, 100);
  const server = mon.stop();
  gen.disable();
  const genCpu = process.cpuUsage(genCpu0);
  const loadgen = { cpu_ms_per_s: round((genCpu.user + genCpu.system) / 1000 / ((performance.now() - genT0) / 1000), 0), event_loop_delay_p99_ms: round(gen.percentile(99) / 1e6, 1), event_loop_delay_max_ms: round(gen.max / 1e6, 1) };
  abort.abort();
  await Promise.allSettled(loops);
  const lat = pollers.filter((p) => p.got).map((p) => p.at - sendAt.get(Number(p.key.split(".")[1])));
  const d1 = await d1Check(stateDir, prefix, ackedKeys);
  const ret = summary(lat);
  const out = {
    conversations: convs.length,
    polls: pollers.length,
    arm_seconds: round(armSeconds, 1),
    hold_seconds: c.hold_s,
    server_while_idle: idle,
    empty_returns_during_hold: stats.timeouts,
    repolls: stats.repolls,
    poll_errors_during_hold: earlyErrors,
    poll_errors: stats.errors,
    sends_acked: ackedKeys.length,
    returned_with_message: count(pollers, (p) => p.got),
    send_to_return_ms: ret,
    send_ack_ms: summary(sendAck),
    d1,
    server,
    loadgen,
    worker_memory_note: "workerd runs the Worker, every object and D1 in one process locally: its RSS is the whole runtime, not the 128 MB isolate limit",
  };
  const fails = [];
  if (ackedKeys.length !== convs.length) fails.push(`${convs.length - ackedKeys.length} sends failed`);
  if (out.returned_with_message !== pollers.length) fails.push(`${pollers.length - out.returned_with_message} polls never returned their message`);
  if (Object.keys(stats.errors).length) fails.push(`poll errors: ${JSON.stringify(stats.errors)}`);
  if (!(ret.p99 < c.return_target_ms)) fails.push(`send-to-return p99 ${ret.p99} ms over ${c.return_target_ms} ms`);
  if (!d1.ok) fails.push("D1 not exactly once");
  return { out, fails };
}

// ---- L4: a reconnect storm after the runtime restarts on the same state ----------------------------

async function L4() {
  const c = config.L4;
  const convs = await conversations(c.conversations, "L4");
  const prefix = `L4${Date.now().toString(36)}`;
  const clients = [];
  const storm = { closes: {}, reconnects: 0, recovered: 0, resync_required: 0, attempts: 0, reconnect_ms: [], errors: {} };
  let stopping = false;
  async function connect(cl, resume) {
    const s = await parleyLogSocket(agentUrl(cl.conv.id), { headers: bearer(cl.conv.org), log: cl.log, resume });
    cl.socket = s;
    if (resume) {
      storm.reconnects++;
      if (s.ready.recovered) storm.recovered++;
      if (s.ready.resync_required) storm.resync_required++;
    }
    s.closed.then((code) => {
      if (stopping) return;
      storm.closes[code] = (storm.closes[code] ?? 0) + 1;
      reconnect(cl);
    });
  }
  async function reconnect(cl) {
    const t0 = performance.now();
    for (let attempt = 0; !stopping; attempt++) {
      await sleep(Math.random() * Math.min(5000, 250 * 2 ** attempt)); // full jitter
      storm.attempts++;
      try {
        await connect(cl, true);
        storm.reconnect_ms.push(performance.now() - t0);
        return;
      } catch (err) {
        const e = String(err.message ?? err).replace(/\/ws\/conversations\/[^:]+/, "/ws/conversations/…").slice(0, 80);
        storm.errors[e] = (storm.errors[e] ?? 0) + 1;
      }
    }
  }
  for (const conv of convs) for (let j = 0; j < c.sockets_per_conversation; j++) clients.push({ conv, log: new SeqLog(), socket: null });
  await mapLimit(clients, 32, (cl) => connect(cl, false));
  log(`L4: ${clients.length} sockets open`);
  // Publishers: one agent per conversation over REST, retrying the same client_msg_id until acked.
  const acked = new Map(convs.map((cv) => [cv.id, []]));
  const sendStats = { attempts: 0, retried: 0, errors: {} };
  let publishing = true;
  async function publish(conv, ci) {
    for (let n = 0; publishing; n++) {
      const key = `${prefix}.${ci}.${n}`;
      for (let attempt = 0; ; attempt++) {
        sendStats.attempts++;
        try {
          const m = await conv.rest.agentSend(conv.id, `L4 ${key}`, key);
          acked.get(conv.id).push({ key, seq: m.seq });
          break;
        } catch (err) {
          const e = String(err.message ?? err).slice(0, 60);
          sendStats.errors[e] = (sendStats.errors[e] ?? 0) + 1;
          sendStats.retried++;
          await sleep(200 + Math.random() * 800);
        }
      }
      await sleep((1000 / c.rate_per_conversation) * (0.5 + Math.random()));
    }
  }
  const mon = serverMonitor();
  const pubs = convs.map((cv, i) => sleep(Math.random() * 1000).then(() => publish(cv, i)));
  await sleep(c.before_s * 1000);
  log("L4: restarting the runtime on the same state");
  const tStop = performance.now();
  await parley.stop();
  const restartMs = await parley.start();
  const downMs = performance.now() - tStop;
  await waitUntil(() => storm.reconnect_ms.length >= clients.length, 60_000, 100);
  const allBackMs = performance.now() - tStop;
  log(`L4: runtime back in ${round(downMs)} ms; ${storm.reconnect_ms.length}/${clients.length} reconnected after ${round(allBackMs)} ms`);
  await sleep(c.after_s * 1000);
  publishing = false;
  await Promise.all(pubs);
  const byConv = new Map(clients.map((cl) => [cl.conv.id, []]));
  for (const cl of clients) byConv.get(cl.conv.id).push(cl);
  const allKeys = [...acked.values()].flat().map((a) => a.key);
  await waitUntil(() => clients.every((cl) => acked.get(cl.conv.id).every((a) => cl.log.keys.has(a.key))), 30_000, 200);
  const server = mon.stop();
  stopping = true;
  for (const cl of clients) cl.socket?.close();
  const checks = { sockets: 0, complete: 0, missing_deliveries: 0, duplicated: 0, gaps: 0, reordered: 0 };
  for (const [id, cls] of byConv) {
    const k = logChecks(
      cls.map((cl) => cl.log),
      acked.get(id).map((a) => a.key),
    );
    for (const f of Object.keys(checks)) checks[f] += k[f];
  }
  const ackSeqOk = [...acked.values()].every((list) => list.every((a, i) => i === 0 || a.seq > list[i - 1].seq));
  const d1 = await d1Check(stateDir, prefix, allKeys);
  const out = {
    sockets: clients.length,
    conversations: convs.length,
    messages_acked: allKeys.length,
    send_attempts: sendStats.attempts,
    send_retries: sendStats.retried,
    send_errors: sendStats.errors,
    runtime_restart_ms: restartMs,
    down_ms: round(downMs, 0),
    all_reconnected_ms_after_stop: storm.reconnect_ms.length >= clients.length ? round(allBackMs, 0) : null,
    close_codes: storm.closes,
    reconnects: storm.reconnects,
    connect_attempts: storm.attempts,
    reconnect_errors: storm.errors,
    recovered_from_log: storm.recovered,
    resync_required: storm.resync_required,
    reconnect_ms: summary(storm.reconnect_ms),
    acked_seq_increasing: ackSeqOk,
    checks,
    first_anomalies: clients.filter((cl) => cl.log.anomaly).slice(0, 5).map((cl) => cl.log.anomaly),
    d1,
    server,
  };
  const fails = [];
  if (storm.reconnects < clients.length) fails.push(`${clients.length - storm.reconnects} sockets never reconnected`);
  if (storm.resync_required) fails.push(`${storm.resync_required} resumes needed a resync (not served from the log)`);
  if (!logOk(checks)) fails.push("a client missed, repeated or reordered a message");
  if (!d1.ok) fails.push("D1 not exactly once");
  return { out, fails };
}

// ---- L5: many conversations at 1 msg/s each: the D1 flush under load --------------------------------

async function L5() {
  const c = config.L5;
  const convs = await conversations(c.conversations, "L5");
  const senders = (await mapLimit(convs, 16, (cv) => parleyLogSocket(agentUrl(cv.id), { headers: bearer(cv.org) }))).map((s, i) => ({ s, conv: convs[i] }));
  const prefix = `L5${Date.now().toString(36)}`;
  const ackAt = new Map();
  const seenAt = new Map();
  const ackMs = [];
  const refused = {};
  let d1Polling = true;
  const d1Poller = (async () => {
    while (d1Polling) {
      try {
        const now = performance.now();
        for (const r of d1Counts(stateDir, prefix)) if (!seenAt.has(r.k)) seenAt.set(r.k, now);
      } catch {}
      await sleep(500);
    }
  })();
  const mon = serverMonitor();
  const total = c.conversations * c.rate_per_conversation * c.seconds;
  const t0 = performance.now();
  const n = Math.round(total);
  await paced(n, c.conversations * c.rate_per_conversation, async (i) => {
    const { s } = senders[i % senders.length];
    const key = `${prefix}.${i}`;
    const ts = performance.now();
    try {
      await s.send(key, `L5 ${i}`);
      ackAt.set(key, performance.now());
      ackMs.push(performance.now() - ts);
    } catch (err) {
      refused[err.code ?? err.message] = (refused[err.code ?? err.message] ?? 0) + 1;
    }
  });
  const sendSeconds = (performance.now() - t0) / 1000;
  const keys = [...ackAt.keys()];
  await waitUntil(() => keys.every((k) => seenAt.has(k)), 60_000, 250);
  d1Polling = false;
  await d1Poller;
  const server = mon.stop();
  const lag = keys.filter((k) => seenAt.has(k)).map((k) => Math.max(0, seenAt.get(k) - ackAt.get(k)));
  const d1 = await d1Check(stateDir, prefix, keys);
  for (const { s } of senders) s.close();
  const out = {
    conversations: convs.length,
    offered_msgs_per_s: c.conversations * c.rate_per_conversation,
    send_seconds: round(sendSeconds, 1),
    sent: n,
    acked: keys.length,
    refused,
    achieved_msgs_per_s: round(keys.length / sendSeconds, 0),
    ack_ms: summary(ackMs),
    d1_lag_ms: summary(lag),
    d1_lag_resolution_ms: 500,
    d1,
    server,
    batching: "bound parameters and statement size per batch are checked by test/worker/flush.test.ts, not observable from outside",
  };
  const fails = [];
  if (keys.length !== n) fails.push(`${n - keys.length} sends not acked`);
  if (!(out.d1_lag_ms.p99 < c.lag_target_ms)) fails.push(`D1 lag p99 ${out.d1_lag_ms.p99} ms over ${c.lag_target_ms} ms`);
  if (!d1.ok) fails.push("D1 not exactly once");
  return { out, fails };
}

// ---- L6: a webhook backlog: the receiver is down while events pile up, then comes up ----------------

async function L6() {
  const c = config.L6;
  const convs = await conversations(c.conversations, "L6");
  const org = convs[0].org; // one organisation: c.conversations <= per_org
  const port = await freePort();
  const api = (path, body) =>
    fetch(`${parley.baseUrl}${path}`, { method: body ? "POST" : "GET", headers: { "content-type": "application/json", cookie: org.cookie, "x-csrftoken": org.csrf }, body: body && JSON.stringify(body) }).then(async (r) => {
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
      return r.json();
    });
  const hook = await api("/api/webhooks", { url: `http://127.0.0.1:${port}/load-hook` });
  const got = new Map(); // webhook-id -> deliveries
  const messageIds = new Map(); // message id -> webhook ids
  let posts = 0;
  let maxBody = 0;
  let firstAt = null;
  let lastAt = null;
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on("data", (ch) => chunks.push(ch));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      posts++;
      maxBody = Math.max(maxBody, body.length);
      const id = String(req.headers["webhook-id"] ?? "");
      got.set(id, (got.get(id) ?? 0) + 1);
      try {
        const ev = JSON.parse(body);
        if (ev.type === "message.created") messageIds.set(ev.data.message.id, (messageIds.get(ev.data.message.id) ?? new Set()).add(id));
      } catch {}
      firstAt ??= performance.now();
      lastAt = performance.now();
      if (c.receiver_delay_ms) await sleep(c.receiver_delay_ms);
      res.writeHead(204).end();
    });
  });
  const senders = await mapLimit(convs, 16, (cv) => parleyLogSocket(agentUrl(cv.id), { headers: bearer(cv.org) }));
  const prefix = `L6${Date.now().toString(36)}`;
  const acked = [];
  const mon = serverMonitor();
  const tProduce = performance.now();
  // Windowed: at most 8 sends in flight per conversation.
  await mapLimit(Array.from({ length: c.events }), senders.length * 8, async (_, i) => {
    const key = `${prefix}.${i}`;
    const a = await senders[i % senders.length].send(key, `L6 ${i}`).catch(() => null);
    if (a) acked.push({ key, id: a.id });
  });
  const produceSeconds = (performance.now() - tProduce) / 1000;
  log(`L6: ${acked.length} messages in ${round(produceSeconds, 1)} s with the receiver down; up in ${c.down_s} s`);
  await sleep(c.down_s * 1000);
  receiver.listen(port, "127.0.0.1");
  await once(receiver, "listening");
  const tUp = performance.now();
  const postsAtUp = posts;
  const done = () => acked.every((a) => messageIds.has(a.id));
  await waitUntil(done, c.drain_timeout_s * 1000, 250);
  const drainSeconds = (performance.now() - tUp) / 1000;
  const server = mon.stop();
  let deliveriesLog = null;
  try {
    const rows = await api(`/api/webhooks/${hook.id}/deliveries?limit=100`);
    deliveriesLog = rows.length;
  } catch (err) {
    deliveriesLog = String(err.message);
  }
  receiver.closeAllConnections();
  receiver.close();
  for (const s of senders) s.close();
  const delivered = count(acked, (a) => messageIds.has(a.id));
  const out = {
    messages_acked: acked.length,
    produce_seconds: round(produceSeconds, 1),
    receiver_down_s: round(produceSeconds + c.down_s, 1),
    receiver_delay_ms: c.receiver_delay_ms,
    posts_before_up: postsAtUp,
    posts: posts,
    distinct_webhook_ids: got.size,
    redelivered_webhook_ids: count([...got.values()], (n) => n > 1),
    message_events_delivered: delivered,
    message_events_with_two_ids: count([...messageIds.values()], (s) => s.size > 1),
    drained: delivered === acked.length,
    drain_seconds_after_up: round(drainSeconds, 1),
    first_post_after_up_ms: firstAt === null ? null : round(firstAt - tUp, 0),
    deliveries_per_s: lastAt && firstAt && lastAt > firstAt ? round(posts / ((lastAt - firstAt) / 1000), 0) : null,
    max_payload_bytes: maxBody,
    delivery_log_rows_sampled: deliveriesLog,
    server,
  };
  const fails = [];
  if (!out.drained) fails.push(`${acked.length - delivered} message events not delivered within ${c.drain_timeout_s} s of the receiver coming up`);
  if (out.message_events_with_two_ids) fails.push("an event delivered under two webhook-ids");
  if (maxBody > 128 * 1024) fails.push("a payload over 128 KB");
  return { out, fails };
}

// ---- L7: one socket stops reading while 10 MB is broadcast -------------------------------------------
// Parley's bound is protocol-level flow control (docs/protocol.md "Flow control"): every reader here
// confirms what it reads (`received`); the stalled one cannot (it does not read) and the room must
// close it with 4009 once it is 300 messages or 4 MiB behind and silent for 2 s, or 8 MiB behind, and
// send it nothing more (a second of grace after the bound is seen). When it reads
// again it finds a contiguous prefix and the close; resuming by seq over a new socket fills the rest.

async function L7() {
  const c = config.L7;
  const [conv] = await conversations(1, "L7");
  const others = (await openAgents(conv, c.others, 8)).sockets;
  const stalled = await parleyLogSocket(agentUrl(conv.id), { headers: bearer(conv.org) });
  const stalledLog = stalled.log;
  stalled.ws.pause(); // stops reading: the TCP window closes, the server's writes back up
  const sender = await parleyLogSocket(agentUrl(conv.id), { headers: bearer(conv.org) });
  const prefix = `L7${Date.now().toString(36)}`;
  const body = "x".repeat(c.message_kb * 1024 - 64);
  const n = Math.ceil((c.megabytes * 1024) / c.message_kb);
  const sentAt = new Map();
  const lat = [];
  const mon = serverMonitor();
  const acks = [];
  const t0 = performance.now();
  let stalledClosedAt = null;
  stalled.closed.then(() => (stalledClosedAt = performance.now() - t0));
  // Latency seen by the reading sockets: patch their logs' take to time each message.
  for (const s of others) {
    const take = s.log.take.bind(s.log);
    s.log.take = (m) => {
      const t = sentAt.get(m.client_msg_id);
      if (t !== undefined) lat.push(performance.now() - t);
      return take(m);
    };
  }
  await mapLimit(Array.from({ length: n }), 16, async (_, i) => {
    const key = `${prefix}.${i}`;
    sentAt.set(key, performance.now());
    const a = await sender.send(key, `${i} ${body}`).catch(() => null);
    if (a) acks.push(key);
  });
  const sendSeconds = (performance.now() - t0) / 1000;
  const logs = others.map((s) => s.log);
  await waitUntil(() => logs.every((l) => acks.every((k) => l.keys.has(k))), 30_000, 200);
  await sleep(3000);
  const during = mon.stop();
  // Let it read again: what had the runtime kept for it, and was it closed?
  const pausedSeconds = (performance.now() - t0) / 1000;
  stalled.ws.resume();
  await waitUntil(() => stalled.closeCode !== null, 30_000, 100);
  const stalledClose = stalled.closeCode;
  const beforeClose = { received: stalledLog.received, last_seq: stalledLog.lastSeq, gaps: stalledLog.gaps, complete: acks.every((k) => stalledLog.keys.has(k)) };
  // Resume by seq over a new socket: the replay fills the gap, or (more than 300 missed) the
  // server says resync_required and the client refetches what it missed over REST, as clients do.
  const again = await parleyLogSocket(agentUrl(conv.id), { headers: bearer(conv.org), log: stalledLog, resume: true });
  let refetched = 0;
  if (again.ready.resync_required) {
    const missed = [];
    for (let offset = 0; ; offset += 100) {
      const res = await fetch(`${parley.baseUrl}/api/conversations/${conv.id}/messages?limit=100&offset=${offset}`, { headers: bearer(conv.org), signal: AbortSignal.timeout(30_000) });
      if (!res.ok) throw new Error(`history: HTTP ${res.status}`);
      const page = await res.json();
      missed.push(...page.filter((m) => m.seq > stalledLog.lastSeq));
      if (page.length < 100 || page.some((m) => m.seq <= stalledLog.lastSeq + 1)) break;
    }
    missed.sort((a, b) => a.seq - b.seq);
    for (const m of missed) if (m.seq > stalledLog.lastSeq && stalledLog.take(m, "rest")) refetched++;
  }
  await waitUntil(() => acks.every((k) => stalledLog.keys.has(k)), 10_000, 100);
  const resumed = { recovered: again.ready.recovered, resync_required: again.ready.resync_required, replayed: again.ready.messages.length, refetched_over_rest: refetched, complete: acks.every((k) => stalledLog.keys.has(k)), gaps: stalledLog.gaps, duplicated: stalledLog.duplicated };
  const checks = logChecks(logs, acks);
  const readersClosed = count(others, (s) => s.closeCode !== null);
  const d1 = await d1Check(stateDir, prefix, acks);
  for (const s of [...others, sender, again]) s.close();
  const out = {
    broadcast_mb: round((n * c.message_kb) / 1024, 1),
    messages: n,
    acked: acks.length,
    send_seconds: round(sendSeconds, 1),
    readers: others.length,
    reader_latency_ms: summary(lat),
    reader_checks: checks,
    readers_closed: readersClosed,
    stalled_paused_seconds: round(pausedSeconds, 1),
    stalled_close_code: stalledClose,
    stalled_close_reason: stalled.closeReason ?? null,
    stalled_closed_seen_after_ms: stalledClosedAt === null ? null : round(stalledClosedAt, 0),
    stalled_before_close: { ...beforeClose, mb: round((beforeClose.received * c.message_kb) / 1024, 1) },
    stalled_resume_by_seq: resumed,
    server_rss_growth_mb: round(during.rss_mb_peak - during.rss_mb_start, 1),
    d1,
    server: during,
  };
  // The documented bound (docs/protocol.md "Flow control"): past 8 MiB unconfirmed a socket is closed
  // after one second of grace, whatever else; so it can get at most 8 MiB plus a second of the burst.
  const stalledBeforeCloseMb = out.stalled_before_close.mb;
  out.stalled_allowed_mb = round(8 + (n * c.message_kb) / 1024 / Math.max(sendSeconds, 0.001), 1);
  const fails = [];
  if (stalledClose !== 4009) fails.push(`the stalled socket was not closed with 4009 slow_consumer (close code ${stalledClose})`);
  else if (stalledBeforeCloseMb > out.stalled_allowed_mb) fails.push(`the stalled socket got ${stalledBeforeCloseMb} MB before its close, past the documented bound (${out.stalled_allowed_mb} MB: 8 MiB plus the second of grace at this burst's rate)`);
  if (beforeClose.gaps) fails.push("the stalled socket's messages before the close were not a contiguous prefix");
  if (readersClosed) fails.push(`${readersClosed} reading socket(s) closed`);
  if (!logOk(checks)) fails.push("a reading socket missed, repeated or reordered a message");
  if (!resumed.complete || resumed.gaps || resumed.duplicated) fails.push("resume by seq (or the REST resync it asked for) did not fill the stalled socket's gap exactly");
  if (!d1.ok) fails.push("D1 not exactly once");
  return { out, fails };
}

// ---- run ---------------------------------------------------------------------------------------------

const cases = { L1, L1relay, L2, L3, L4, L5, L6, L7 };
const results = [];
try {
  for (const name of config.cases) {
    if (!cases[name]) throw new Error(`unknown case ${name}`);
    log(`${name} ...`);
    const t0 = Date.now();
    let line;
    try {
      await settle(parley.pid, 15_000);
      // Closed sockets of the previous case release their descriptors slowly (L3 needs them).
      await waitUntil(() => openFds(parley.pid) < 3000, 30_000, 500);
      const { out, fails } = await cases[name]();
      line = { case: name, asked: config[name].asked, limit: config[name].limit, size: { ...config[name], asked: undefined, limit: undefined }, ...out, seconds: Math.round((Date.now() - t0) / 1000), pass: fails.length === 0, fails };
    } catch (err) {
      log(`${name} failed: ${err.stack ?? err}`);
      line = { case: name, asked: config[name].asked, limit: config[name].limit, size: { ...config[name], asked: undefined, limit: undefined }, error: String(err.message ?? err), seconds: Math.round((Date.now() - t0) / 1000), pass: false, fails: [`did not complete: ${String(err.message ?? err).slice(0, 200)}`] };
    }
    results.push(line);
    process.stdout.write(`${JSON.stringify(line)}\n`);
    log(`${name}: ${line.pass ? "pass" : `FAIL (${line.fails.join("; ")})`}`);
  }
} finally {
  await parley.stop();
  rmSync(work, { recursive: true, force: true });
}

const loadAfter = machineLoad();
const date = new Date().toISOString().slice(0, 10);
const file = join(root, "bench", "results", `load-${date}${QUICK ? "-quick" : ""}.md`);
const nodeV = process.version;
writeLoadReport(file, {
  title: `Load cases L1-L7 (${new Date().toISOString()})`,
  setup: [
    `\`npm run load\`${QUICK ? " with LOAD_QUICK=1" : ""}: Parley ${commit.slice(0, 12)} under ${runtimeLabel()} (local D1, Durable Objects and Queues; state on ${stateFs}, bench/lib/state-dir.mjs), Node ${nodeV},`,
    `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GB; open-file limit per server process ${nofile}; load average ${loadBefore.load1} before, ${loadAfter.load1} after. One load generator and the server share the cores (and other engineers' work shares the machine).`,
  ],
}, results);
log(`wrote ${file}`);
process.exit(0);
