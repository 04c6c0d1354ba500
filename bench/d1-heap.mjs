// What one request that reads the local D1 does to workerd's memory, without Parley: a ten-line
// Worker under the Miniflare API (the runtime bench/run.mjs measures Parley on), each request one
// D1 read or (the control) none. Prints workerd's RSS growth per request in rounds of 1,000.
// S4 warms the local D1 before it counts memory per connection (bench/run.mjs, warmLocalD1):
// this is why.
//
//   node bench/d1-heap.mjs            5 rounds each
//   D1_HEAP_ROUNDS=10 node bench/d1-heap.mjs
import { rmSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { childrenUsage } from "./lib/procs.mjs";
import { mapLimit } from "./lib/stats.mjs";
import { stateWorkDir } from "./lib/state-dir.mjs";

const ROUNDS = Number(process.env.D1_HEAP_ROUNDS ?? 5);
const PER_ROUND = 1000;

const script = `export default {
  async fetch(request, env) {
    if (new URL(request.url).searchParams.get("d1") !== "1") return new Response("ok");
    const row = await env.DB.prepare("SELECT ?1 AS x").bind(request.url).first();
    return new Response(row.x);
  },
};`;

const { dir } = stateWorkDir("parley-d1-heap-");
try {
  for (const d1 of [false, true]) {
    const mf = new Miniflare(
      convertV4MiniflareOptions({
        host: "127.0.0.1",
        port: 0,
        resourcePersistencePath: join(dir, d1 ? "d1" : "control"),
        workers: [{ name: "d1-heap", modules: true, script, compatibilityDate: "2026-11-01", d1Databases: ["DB"] }],
      }),
    );
    const url = await mf.ready;
    const rssKb = () => childrenUsage().rssKb;
    await sleep(1000);
    const start = rssKb();
    const perRound = [];
    for (let r = 0; r < ROUNDS; r++) {
      const before = rssKb();
      await mapLimit(Array.from({ length: PER_ROUND }, (_, i) => i), 32, (i) => fetch(`${url.href}?d1=${d1 ? 1 : 0}&i=${r}.${i}`).then((res) => res.text()));
      await sleep(500);
      perRound.push(Math.round((rssKb() - before) / PER_ROUND));
    }
    const end = rssKb();
    console.log(
      JSON.stringify({
        requests: d1 ? "one local D1 read each" : "no D1 read (control)",
        rounds_of: PER_ROUND,
        rss_start_mib: Math.round(start / 1024),
        rss_end_mib: Math.round(end / 1024),
        kb_per_request_by_round: perRound,
      }),
    );
    await mf.dispose();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
