// The three servers of one bench run, each on its own free loopback port with fresh state:
// Parley (wrangler dev over a clean export of a commit), the bare Durable Object relay
// (wrangler dev -c bench/relay/wrangler.toml) and the Node Socket.IO peer.
import { execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, root, runWrangler, stopWranglerDev, waitForHealthy, wranglerEnv } from "../../scripts/lib/wrangler.mjs";

const wranglerBin = join(root, "node_modules", ".bin", "wrangler");

/**
 * How Parley and the relay are run: the Miniflare API (default: the same workerd and bindings as
 * `wrangler dev`, without its proxy; `node bench/runtimes.mjs` measured it the leaner) or
 * `wrangler dev` (BENCH_RUNTIME=wrangler).
 */
export const RUNTIME = process.env.BENCH_RUNTIME === "wrangler" ? "wrangler" : "miniflare";

const versionOf = (pkg) => JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")).version;

/** What the numbers come from, for reports. */
export function runtimeLabel(runtime = RUNTIME) {
  const workerd = `workerd ${versionOf("workerd")}`;
  return runtime === "miniflare"
    ? `the Miniflare API (miniflare ${versionOf("miniflare")}, ${workerd}; \`bench/lib/miniflare-host.mjs\`: the bindings wrangler ${versionOf("wrangler")} derives from each wrangler.toml, no \`wrangler dev\` proxy)`
    : `\`wrangler dev\` ${versionOf("wrangler")} (${workerd}) with \`${Object.entries(LEAN_ENV).map(([k, v]) => `${k}=${v}`).join(" ")}\``;
}

/** The leanest honest local runtime: real workerd via wrangler dev, dev-UI extras off. */
export const LEAN_ENV = {
  X_LOCAL_OBSERVABILITY: "false",
  X_LOCAL_EXPLORER: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

/**
 * Parley's sources at `ref`, exported with `git archive` so a dirty work tree (teammates editing
 * src/ beside the bench) never leaks into the numbers. node_modules is the repo's, symlinked.
 */
export function exportParley(ref, dir) {
  const commit = execFileSync("git", ["rev-parse", ref], { cwd: root, encoding: "utf8" }).trim();
  mkdirSync(dir, { recursive: true });
  execFileSync("sh", ["-c", `git archive ${commit} | tar -x -C "${dir}"`], { cwd: root });
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  return commit;
}

/**
 * `wrangler dev` in its own process group (so the whole tree can be signalled and measured).
 * @param {{cwd: string, config?: string, port: number, persistTo: string, logPath: string, env?: Record<string,string>}} o
 */
function spawnWrangler(o) {
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(o.port), "--persist-to", o.persistTo, "--show-interactive-dev-session=false"];
  if (o.config) args.push("-c", o.config);
  // A pre-built bundle: nothing for wrangler's watcher to rebuild (a teammate's npm install in the
  // shared node_modules reloaded the server mid-run, closing every socket).
  if (o.script) args.push(o.script, "--no-bundle");
  mkdirSync(dirname(o.logPath), { recursive: true });
  const log = openSync(o.logPath, "a");
  const miniflare = [join(root, "bench", "lib", "miniflare-host.mjs"), join(o.cwd, o.config ?? "wrangler.toml"), String(o.port), String(o.inspectorPort), o.persistTo];
  if (o.script) miniflare.push(join(o.cwd, o.script));
  const [bin, argv] = (o.runtime ?? RUNTIME) === "miniflare" ? [process.execPath, miniflare] : [wranglerBin, [...args, "--inspector-port", String(o.inspectorPort)]];
  const child = spawn(bin, argv, {
    cwd: o.cwd,
    env: wranglerEnv({ ...LEAN_ENV, ...o.env }),
    stdio: ["ignore", log, log],
    detached: true,
  });
  closeSync(log);
  process.once("exit", () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  });
  return child;
}

export class WranglerServer {
  /** @param {{name: string, cwd: string, config?: string, persistTo: string, logPath: string, env?: Record<string,string>}} o */
  constructor(o) {
    this.o = o;
    this.child = null;
    this.port = 0;
  }
  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid() {
    return this.child.pid;
  }
  async start() {
    this.port = this.port || (await freePort());
    const inspectorPort = await freePort();
    const t0 = Date.now();
    this.child = spawnWrangler({ ...this.o, port: this.port, inspectorPort });
    await waitForHealthy(this.baseUrl, this.child, 90_000).catch((err) => {
      const tail = existsSync(this.o.logPath) ? readFileSync(this.o.logPath, "utf8").slice(-4000) : "";
      throw new Error(`${this.o.name}: ${err.message}\n${tail}`);
    });
    this.inspectorPort = inspectorPort;
    return Date.now() - t0;
  }
  async stop() {
    if (this.child) await stopWranglerDev(this.child, 10_000);
    this.child = null;
  }
}

/**
 * Parley: migrations into a fresh state dir, one bundle (`wrangler deploy --dry-run`, exactly what
 * would be deployed), then wrangler dev on that bundle without rebuilding.
 */
export function parleyServer({ dir, stateDir, logPath, env, runtime }) {
  const config = join(dir, "wrangler.toml");
  runWrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", stateDir, "--config", config], { CI: "true" });
  runWrangler(["deploy", "--dry-run", "--outdir", join(dir, ".bench-dist"), "--config", config]);
  return new WranglerServer({ name: "parley", cwd: dir, persistTo: stateDir, logPath, env, runtime, script: ".bench-dist/index.js" });
}

export function relayServer({ stateDir, logPath, runtime }) {
  return new WranglerServer({ name: "relay", cwd: join(root, "bench", "relay"), config: "wrangler.toml", persistTo: stateDir, logPath, runtime });
}

export class PeerServer {
  constructor({ dbPath, logPath }) {
    this.dbPath = dbPath;
    this.logPath = logPath;
    this.child = null;
    this.port = 0;
  }
  get baseUrl() {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid() {
    return this.child.pid;
  }
  async start() {
    const t0 = Date.now();
    const log = openSync(this.logPath, "a");
    this.child = spawn(process.execPath, [join(root, "bench", "peer", "server.mjs")], {
      env: { ...process.env, PORT: String(this.port), PEER_DB: this.dbPath },
      stdio: ["ignore", "pipe", log],
    });
    closeSync(log);
    process.once("exit", () => this.child?.kill("SIGKILL"));
    const port = await new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("peer did not start within 20 s")), 20_000);
      this.child.stdout.on("data", (d) => {
        buf += d;
        const line = buf.split("\n")[0];
        if (buf.includes("\n")) {
          clearTimeout(timer);
          resolve(JSON.parse(line).port);
        }
      });
      this.child.once("exit", (code) => reject(new Error(`peer exited (${code})`)));
    });
    this.port = port;
    return Date.now() - t0;
  }
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await Promise.race([exited, sleep(5_000)]);
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
    this.child = null;
  }
}

/** The local D1 database file of a wrangler --persist-to dir (miniflare keeps D1 as SQLite). */
export function d1File(stateDir) {
  const dir = join(stateDir, "v3", "d1", "miniflare-D1DatabaseObject");
  const files = readdirSync(dir).filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite");
  if (files.length !== 1) throw new Error(`expected one D1 database under ${dir}, found ${files.join(", ")}`);
  return join(dir, files[0]);
}
