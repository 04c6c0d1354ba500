// Running the local Parley server with wrangler: shared by `npm start` (scripts/dev.mjs) and the
// e2e tests (test/e2e/global-setup.ts, test/e2e/deploy.test.ts).
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { delimiter, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));
const wranglerBin = join(root, "node_modules", ".bin", "wrangler");

/**
 * Environment for wrangler. Wrangler needs Node >= 22 and its bin starts with
 * `#!/usr/bin/env node`; the machine's node may be older, so the node running this code (the
 * repo's pinned one under `npm run`) goes first on PATH. Telemetry is off unless the caller
 * turns it on: it is a network call on every command.
 * @param {Record<string, string>} [extra]
 * @returns {NodeJS.ProcessEnv}
 */
export function wranglerEnv(extra = {}) {
  return {
    WRANGLER_SEND_METRICS: "false",
    ...process.env,
    PATH: dirname(process.execPath) + delimiter + (process.env.PATH ?? ""),
    ...extra,
  };
}

/**
 * Runs a short wrangler command to completion, throwing with its output if it fails.
 * @param {string[]} args
 * @param {Record<string, string>} [env]
 * @returns {string} stdout and stderr
 */
export function runWrangler(args, env) {
  const r = spawnSync(wranglerBin, args, { cwd: root, env: wranglerEnv(env), encoding: "utf8" });
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== 0) {
    throw new Error(`wrangler ${args.join(" ")} failed (${r.error ?? `exit ${r.status ?? r.signal}`}):\n${output}`);
  }
  return output;
}

/**
 * Applies migrations/ to the local D1 database (under .wrangler/state, or persistTo).
 * CI=true makes wrangler take the default answer to its "continue?" prompt.
 * @param {string} [persistTo]
 */
export function applyLocalMigrations(persistTo) {
  const args = ["d1", "migrations", "apply", "DB", "--local"];
  if (persistTo) args.push("--persist-to", persistTo);
  return runWrangler(args, { CI: "true" });
}

/**
 * Binds 127.0.0.1:port (0 = any) and releases it again. Returns the port, or null if it is taken.
 * Whoever binds it next wins, so a free port can still be lost in the short gap after this.
 * @param {number} port
 * @returns {Promise<number | null>}
 */
export async function probePort(port) {
  const server = createServer();
  try {
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === "EADDRINUSE") return null;
    throw err;
  }
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  server.close();
  await once(server, "close");
  return address.port;
}

/** @returns {Promise<number>} */
export async function freePort() {
  const port = await probePort(0);
  if (port === null) throw new Error("no free port");
  return port;
}

/**
 * @typedef {object} DevOptions
 * @property {number} port
 * @property {number} [inspectorPort] wrangler's default 9229 makes a second `wrangler dev` on the machine fail
 * @property {string} [persistTo] local state directory (default .wrangler/state)
 * @property {import("node:child_process").StdioOptions} stdio
 * @property {Record<string, string>} [env]
 * @property {Record<string, string>} [vars] Worker variables (`--var KEY:VALUE`); .dev.vars still applies
 */

/**
 * Starts `wrangler dev` on 127.0.0.1 in its own process group: wrangler runs workerd as
 * grandchildren, and signalling the group is the one way to stop them all together.
 * A detached group no longer dies with the terminal or the parent, so the group is also killed
 * when this process exits for any reason short of SIGKILL.
 * @param {DevOptions} options
 */
export function startWranglerDev({ port, inspectorPort, persistTo, stdio, env, vars }) {
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--show-interactive-dev-session=false"];
  if (inspectorPort) args.push("--inspector-port", String(inspectorPort));
  if (persistTo) args.push("--persist-to", persistTo);
  for (const [key, value] of Object.entries(vars ?? {})) args.push("--var", `${key}:${value}`);
  const child = spawn(wranglerBin, args, { cwd: root, env: wranglerEnv(env), stdio, detached: true });
  process.once("exit", () => signalGroup(child, "SIGKILL"));
  return child;
}

/**
 * @param {import("node:child_process").ChildProcess} child
 * @param {NodeJS.Signals} signal
 */
function signalGroup(child, signal) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code !== "ESRCH") throw err;
  }
}

/**
 * SIGTERM to the whole group (wrangler and its workerd processes); SIGKILL after graceMs.
 * @param {import("node:child_process").ChildProcess} child
 * @param {number} [graceMs]
 */
export async function stopWranglerDev(child, graceMs = 5_000) {
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, "exit");
  signalGroup(child, "SIGTERM");
  const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs, true)]);
  // Also reaps anything in the group that outlived wrangler or ignored SIGTERM.
  signalGroup(child, "SIGKILL");
  if (timedOut) await exited;
}

/**
 * Polls GET /healthz until it answers 200. Rejects as soon as wrangler exits, or after timeoutMs.
 * @param {string} baseUrl
 * @param {import("node:child_process").ChildProcess} child
 * @param {number} [timeoutMs]
 */
export async function waitForHealthy(baseUrl, child, timeoutMs = 60_000) {
  const url = new URL("/healthz", baseUrl);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`wrangler dev exited (${child.exitCode ?? child.signalCode}) before ${url} answered`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs / 1000} s`);
}
