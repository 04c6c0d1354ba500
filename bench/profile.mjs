// CPU profile of Parley's Worker and objects under a fixed bench load, through workerd's inspector
// (the one the runtime exposes). Writes test-results/parley-<surface>.cpuprofile (open it in
// Chrome DevTools) and prints the functions with the most self time.
//
//   node bench/profile.mjs                      native WS, 100 conversations, 200 msg/s, 10 s
//   PROFILE_SURFACE=sio PROFILE_RATE=100 node bench/profile.mjs
//   PROFILE_SURFACE=rest node bench/profile.mjs  agents send over REST (Bearer secret key, as S5), visitors receive on WS
//   PROFILE_SURFACE=poll node bench/profile.mjs  visitors' seed 000 polls (wait=0) at the rate: what one poll request costs
import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import WebSocket from "ws";
import { root } from "../scripts/lib/wrangler.mjs";
import { parleyOrg, parleyRest, parleySioTarget, parleyWsTarget } from "./lib/clients.mjs";
import { exportParley, parleyServer } from "./lib/servers.mjs";
import { readFileSync } from "node:fs";
import { treePids } from "./lib/procs.mjs";
import { mapLimit } from "./lib/stats.mjs";
import { stateWorkDir } from "./lib/state-dir.mjs";

const surface = process.env.PROFILE_SURFACE ?? "ws";
const rate = Number(process.env.PROFILE_RATE ?? 200);
const seconds = Number(process.env.PROFILE_SECONDS ?? 10);
const convCount = Number(process.env.PROFILE_CONVS ?? 100);

const { dir: work } = stateWorkDir("parley-profile-");
const dir = join(work, "parley");
let commit;
if (process.env.BENCH_PARLEY_DIR) {
  execFileSync("cp", ["-a", process.env.BENCH_PARLEY_DIR, dir]);
  commit = process.env.BENCH_PARLEY_LABEL ?? process.env.BENCH_PARLEY_DIR;
} else commit = exportParley(process.env.BENCH_PARLEY_REF ?? "HEAD", dir);
// PROFILE_OBSERVABILITY=default (with BENCH_RUNTIME=wrangler) runs wrangler dev with its default dev-UI features on.
const env = process.env.PROFILE_OBSERVABILITY === "default" ? { X_LOCAL_OBSERVABILITY: "true", X_LOCAL_EXPLORER: "true" } : {};
const server = parleyServer({ dir, stateDir: join(work, "state"), logPath: join(root, "test-results", "profile-parley.log"), env });
await server.start();
try {
  const org = await parleyOrg(server.baseUrl, "Profile Org");
  const target = surface === "sio" ? parleySioTarget(server, org) : parleyWsTarget(server, org);
  const convs = await target.provision(convCount, "prof");
  let received = 0;
  const rest = surface === "rest" || surface === "poll" ? parleyRest(server, org) : null;
  const never = new AbortController().signal;
  const pairs = await mapLimit(convs, 8, async (conv) => {
    const pair = await target.openPair(conv, { sender: "agent", onMessage: () => received++ });
    if (surface === "poll") return { ...pair, send: () => rest.poll(conv.ext, Date.now(), 0, never).then(() => void received++) };
    return rest ? { ...pair, send: (key, content) => rest.agentSend(conv.id, content, key) } : pair;
  });

  // Warm-up, not measured: each conversation's first message opens its support session (and
  // queues it at the org hub), which is a different cost from a message's.
  await Promise.all(pairs.map((p, i) => p.send(`warm.${i}`, "warm-up").catch(() => {})));
  await sleep(3000);
  received = 0;

  // The user worker's isolate (the Worker and its Durable Objects share it under workerd).
  const targets = await (await fetch(`http://127.0.0.1:${server.inspectorPort}/json`)).json();
  const t = targets.find((x) => !/ProxyWorker|InspectorProxy/i.test(x.title ?? "")) ?? targets[0];
  const ws = new WebSocket(t.webSocketDebuggerUrl);
  await new Promise((r, j) => (ws.once("open", r), ws.once("error", j)));
  let id = 0;
  const pending = new Map();
  ws.on("message", (d) => {
    const m = JSON.parse(String(d));
    if (m.id && pending.has(m.id)) pending.get(m.id)(m), pending.delete(m.id);
  });
  const call = (method, params = {}) => new Promise((r) => (pending.set(++id, r), ws.send(JSON.stringify({ id, method, params }))));
  // PROFILE_SAMPLE=0: only measure CPU per message (no sampling overhead).
  const sample = process.env.PROFILE_SAMPLE !== "0";
  if (sample) {
    await call("Profiler.enable");
    await call("Profiler.setSamplingInterval", { interval: 200 });
    await call("Profiler.start");
  }
  const perProc = () =>
    new Map(
      treePids(server.pid).map((pid) => {
        try {
          const st = readFileSync(`/proc/${pid}/stat`, "utf8");
          const rest = st.slice(st.lastIndexOf(")") + 2).split(" ");
          const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, 3).join(" ").slice(-90);
          return [pid, { cmd, ms: (Number(rest[11]) + Number(rest[12])) * 10, sys: Number(rest[12]) * 10 }];
        } catch {
          return [pid, { cmd: "?", ms: 0, sys: 0 }];
        }
      }),
    );
  const procs0 = perProc();

  const total = rate * seconds;
  const t0 = performance.now();
  let i = 0;
  let acked = 0;
  while (i < total && performance.now() - t0 < seconds * 1000 + 5000) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
    for (; i < due; i++) pairs[i % pairs.length].send(`prof.${i}`, `profile ${i}`).then(() => acked++, () => {});
    await sleep(1);
  }
  const until = performance.now() + 5000;
  while (received < total && performance.now() < until) await sleep(20);
  await sleep(Number(process.env.PROFILE_TAIL_MS ?? 1500)); // the flush's D1 writes land after the last message
  const { result } = sample ? await call("Profiler.stop") : { result: { profile: { nodes: [], samples: [] } } };
  const procs1 = perProc();
  for (const [pid, p] of procs1) console.log(`cpu ${String(p.ms - (procs0.get(pid)?.ms ?? 0)).padStart(6)} ms (kernel ${String(p.sys - (procs0.get(pid)?.sys ?? 0)).padStart(5)})  pid ${pid} ${p.cmd}`);
  ws.close();
  for (const p of pairs) p.close();
  const file = join(root, "test-results", `parley-${surface}.cpuprofile`);
  writeFileSync(file, JSON.stringify(result.profile));

  // Self time per function (sampled), top 25.
  const prof = result.profile;
  const byNode = new Map(prof.nodes.map((n) => [n.id, n]));
  const counts = new Map();
  for (const s of prof.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
  const self = new Map();
  let all = 0;
  for (const [nodeId, n] of counts) {
    const f = byNode.get(nodeId).callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + n);
    all += n;
  }
  const workerdMs = [...procs1].filter(([, p]) => p.cmd.includes("workerd")).reduce((a, [pid, p]) => a + p.ms - (procs0.get(pid)?.ms ?? 0), 0);
  console.log(`server tree CPU: ${[...procs1].reduce((a, [pid, p]) => a + p.ms - (procs0.get(pid)?.ms ?? 0), 0)} ms (workerd ${workerdMs} ms) = ${(([...procs1].reduce((a, [pid, p]) => a + p.ms - (procs0.get(pid)?.ms ?? 0), 0) * 1000) / Math.max(1, received)).toFixed(0)} us per received message`);
  console.log(`Parley ${String(commit).slice(0, 40)}, ${surface}, ${rate} msg/s for ${seconds} s over ${convCount} conversations: ${acked}/${total} acked, ${received} received; ${all} samples`);
  for (const [k, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${((100 * n) / all).toFixed(1).padStart(5)}%  ${k}`);
  console.log(`profile: ${file}`);
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
