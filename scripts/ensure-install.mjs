// Runs before `npm start` and `npm test` (prestart/pretest) on whatever Node the machine has, so
// that one command works on a fresh clone: it installs the dependencies, the pinned Node among
// them, when they are missing. The scripts themselves then run on the pinned Node.
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
if (!existsSync(`${root}/node_modules/.bin/wrangler`) || !existsSync(`${root}/node_modules/node/package.json`)) {
  console.log("Installing dependencies (first run)…");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const r = spawnSync(npm, ["install", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
