// Which local runtime adds least overhead (issue #8 asks, and the bench's numbers must say which
// they come from): `wrangler dev` (observability off) against the Miniflare API driving the same
// workerd with the same bindings (bench/lib/miniflare-host.mjs; workerd run directly would be the
// same process with a hand-written config). Runs both, alternating, ROUNDS times each:
//   - GET /healthz latency (a request that does nothing: the runtime's own cost per request);
//   - the relay and Parley over WebSocket: 100 conversations at RATE msg/s for SECONDS s, server
//     tree CPU per message and p50/p99 send-to-receive;
//   - Parley seed 000 polls (wait=0) at 100/s: server tree CPU per request and p50.
// Prints one JSON line per runtime and round, then a summary (medians over rounds).
//   node bench/runtimes.mjs            ROUNDS=2 RATE=200 SECONDS=8 RUNTIMES=wrangler,miniflare
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { root } from "../scripts/lib/wrangler.mjs";
import { parleyOrg, parleyRest, parleyWsTarget, relayTarget } from "./lib/clients.mjs";
import { treeUsage } from "./lib/procs.mjs";
import { exportParley, parleyServer, relayServer } from "./lib/servers.mjs";
import { mapLimit, percentile, round } from "./lib/stats.mjs";
import { stateWorkDir } from "./lib/state-dir.mjs";

const ROUNDS = Number(process.env.ROUNDS ?? 2);
const RATE = Number(process.env.RATE ?? 200);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CONVS = 100;
const RUNTIMES = (process.env.RUNTIMES ?? "wrangler,miniflare").split(",");

const { dir: work } = stateWorkDir("parley-runtimes-");
const dir = join(work, "parley");
const commit = exportParley(process.env.BENCH_PARLEY_REF ?? "HEAD", dir);

/** Sequential GETs: the runtime's per-request floor. */
async function healthz(server, n = 200) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await (await fetch(`${server.baseUrl}/healthz`)).text();
    ms.push(performance.now() - t0);
  }
  return { p50: round(percentile(ms, 50)), p99: round(percentile(ms, 99)) };
}

/** Drives `send(i)` at RATE for SECONDS; `done()` counts completions. Returns CPU per op and latencies. */
async function atRate(pid, rate, open) {
  const lat = [];
  const sentAt = new Map();
  const ops = await open((key) => {
    const t = sentAt.get(key);
    if (t !== undefined) lat.push(performance.now() - t);
  });
  await sleep(1000);
  const u0 = treeUsage(pid);
  const total = rate * SECONDS;
  const t0 = performance.now();
  let i = 0;
  let failed = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    for (; i < due; i++) {
      const key = `rt.${i}.${Math.random().toString(36).slice(2, 8)}`;
      sentAt.set(key, performance.now());
      ops.send(i, key).catch(() => failed++);
    }
    await sleep(1);
  }
  const until = performance.now() + 5000;
  while (lat.length + failed < total && performance.now() < until) await sleep(10);
  const u1 = treeUsage(pid);
  ops.close();
  return {
    done: lat.length,
    failed,
    cpu_us_per_op: round(((u1.cpuMs - u0.cpuMs) * 1000) / Math.max(1, lat.length), 0),
    p50_ms: round(percentile(lat, 50)),
    p99_ms: round(percentile(lat, 99)),
  };
}

async function wsLoad(server, target) {
  const convs = await target.provision(CONVS, `rt${Math.random().toString(36).slice(2, 6)}`);
  return atRate(server.pid, RATE, async (onReceived) => {
    const pairs = await mapLimit(convs, 8, (conv) => target.openPair(conv, { sender: "agent", onMessage: onReceived }));
    return { send: (i, key) => pairs[i % pairs.length].send(key, "runtime bench"), close: () => pairs.forEach((p) => p.close()) };
  });
}

async function pollLoad(server, org) {
  const target = parleyWsTarget(server, org);
  const rest = parleyRest(server, org);
  const convs = await target.provision(CONVS, `rp${Math.random().toString(36).slice(2, 6)}`);
  const never = new AbortController().signal;
  return atRate(server.pid, 100, async (onReceived) => ({
    send: (i, key) => rest.poll(convs[i % convs.length].ext, Date.now(), 0, never).then(() => onReceived(key)),
    close() {},
  }));
}

async function oneRound(runtime, round_) {
  const relay = relayServer({ stateDir: join(work, `relay-${runtime}-${round_}`), logPath: join(root, "test-results", "runtimes-relay.log"), runtime });
  const parley = parleyServer({ dir, stateDir: join(work, `parley-${runtime}-${round_}`), logPath: join(root, "test-results", "runtimes-parley.log"), runtime });
  const out = { runtime, round: round_ };
  await relay.start();
  try {
    out.relay_healthz_ms = await healthz(relay);
    out.relay_ws = await wsLoad(relay, relayTarget(relay));
  } finally {
    await relay.stop();
  }
  await parley.start();
  try {
    out.parley_healthz_ms = await healthz(parley);
    const org = await parleyOrg(parley.baseUrl, `Runtimes ${runtime} ${round_}`);
    out.parley_ws = await wsLoad(parley, parleyWsTarget(parley, org));
    out.parley_poll = await pollLoad(parley, org);
  } finally {
    await parley.stop();
  }
  console.log(JSON.stringify(out));
  return out;
}

const results = [];
try {
  for (let r = 1; r <= ROUNDS; r++) for (const runtime of r % 2 ? RUNTIMES : [...RUNTIMES].reverse()) results.push(await oneRound(runtime, r));
} finally {
  rmSync(work, { recursive: true, force: true });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return round(s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2);
};
const rows = [
  ["healthz p50 ms (relay)", (o) => o.relay_healthz_ms.p50],
  ["relay WS CPU µs/msg", (o) => o.relay_ws.cpu_us_per_op],
  ["relay WS p99 ms", (o) => o.relay_ws.p99_ms],
  ["Parley WS CPU µs/msg", (o) => o.parley_ws.cpu_us_per_op],
  ["Parley WS p99 ms", (o) => o.parley_ws.p99_ms],
  ["Parley poll CPU µs/request", (o) => o.parley_poll.cpu_us_per_op],
  ["Parley poll p50 ms", (o) => o.parley_poll.p50_ms],
];
console.log(`\nParley ${commit.slice(0, 12)}, ${ROUNDS} round(s) each, WS at ${RATE} msg/s over ${CONVS} conversations for ${SECONDS} s (medians)`);
console.log(`| | wrangler dev | Miniflare API |\n|---|---:|---:|`);
for (const [label, f] of rows) {
  const of = (rt) => median(results.filter((o) => o.runtime === rt).map(f));
  console.log(`| ${label} | ${of("wrangler")} | ${of("miniflare")} |`);
}
