// `npm run audit`: npm audit of the production dependencies, failing on high or critical.
// It needs the registry's advisory endpoint (POST /-/npm/v1/security/advisories/bulk). The registry
// reachable from this workplace and its CI answers 405 there, so the script says so and exits 2
// rather than passing silently. It is not part of .ci/run (docs/guarantees.md, S17); the offline
// floor check in test/e2e/dependency-posture.test.ts is.
import { spawnSync } from "node:child_process";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const run = spawnSync(npm, ["audit", "--omit=dev", "--audit-level=high"], { encoding: "utf8" });
process.stdout.write(run.stdout ?? "");
const err = run.stderr ?? "";
if (/audit endpoint returned an error|405 Method Not Allowed|404 Not Found - POST/.test(err)) {
  const registry = spawnSync(npm, ["config", "get", "registry"], { encoding: "utf8" }).stdout.trim();
  console.error(`npm audit cannot run: the registry ${registry} has no advisory endpoint. The offline check of known advisories is test/e2e/dependency-posture.test.ts.`);
  process.exit(2);
}
process.stderr.write(err);
process.exit(run.status ?? 1);
