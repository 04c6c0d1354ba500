// Rewrites a run's report from its stdout: `node bench/report.mjs <file with the JSON lines>`
// (e.g. `npm run bench > run.jsonl`). Writes bench/results/<date of the run>.md and .svg.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { root } from "../scripts/lib/wrangler.mjs";
import { writeReport } from "./lib/report.mjs";

const file = process.argv[2];
if (!file) throw new Error("usage: node bench/report.mjs <run output with one JSON line per scenario>");
const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
const meta = lines.find((l) => l.scenario === "meta");
if (!meta) throw new Error(`${file}: no meta line (did the run finish?)`);
const results = {};
for (const { scenario, ...body } of lines) if (scenario !== "meta") results[scenario] = body;
process.env.BENCH_OVERWRITE = "1";
console.log(writeReport(join(root, "bench", "results"), meta, results));
