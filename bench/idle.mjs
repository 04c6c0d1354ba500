// Idle Socket.IO sessions: the server's CPU per second (their heartbeats) for one Parley commit.
//
//   IDLE_N=300 IDLE_SECONDS=50 BENCH_PARLEY_REF=HEAD node bench/idle.mjs
//
// Each session is a seed 000 visitor on a WebSocket (as S4 opens them); CPU is the server process
// tree's over IDLE_SECONDS (two ping cycles at 50 s), after the sessions are open.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { root } from "../scripts/lib/wrangler.mjs";
import { parleyOrg, parleySioTarget } from "./lib/clients.mjs";
import { exportParley, parleyServer } from "./lib/servers.mjs";
import { treeUsage } from "./lib/procs.mjs";
import { mapLimit } from "./lib/stats.mjs";
import { stateWorkDir } from "./lib/state-dir.mjs";
const n = Number(process.env.IDLE_N ?? 300), seconds = Number(process.env.IDLE_SECONDS ?? 50);
const { dir: work } = stateWorkDir("parley-idle-");
const dir = join(work, "parley");
const commit = exportParley(process.env.BENCH_PARLEY_REF ?? "HEAD", dir);
const server = parleyServer({ dir, stateDir: join(work, "state"), logPath: join(root, "test-results", "idle-parley.log"), env: {} });
await server.start();
try {
  const org = await parleyOrg(server.baseUrl, "Idle Org");
  const t = parleySioTarget(server, org);
  const socks = await mapLimit(Array.from({ length: n }, (_, i) => ({ ext: `idle-${i}` })), 8, (c) => t.openIdle(c));
  await sleep(5000);
  const u0 = treeUsage(server.pid);
  await sleep(seconds * 1000);
  const u1 = treeUsage(server.pid);
  const alive = socks.filter((s) => s.alive()).length;
  console.log(`Parley ${String(commit).slice(0, 12)}: ${n} idle Socket.IO sessions (${alive} alive): ${((u1.cpuMs - u0.cpuMs) / seconds).toFixed(1)} ms/s of CPU over ${seconds} s`);
  for (const s of socks) s.close();
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
