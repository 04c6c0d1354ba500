import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import {
  applyLocalMigrations,
  freePort,
  root,
  startWranglerDev,
  stopWranglerDev,
  waitForHealthy,
} from "../../scripts/lib/wrangler.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

/** Where the server's output goes; kept after the run for debugging failed tests. */
const logPath = join(root, "test-results", "e2e-wrangler.log");

/**
 * One real `wrangler dev` for the whole e2e run, on a free port with its own fresh local state
 * (D1 + Durable Objects), so it never touches `npm start`'s .wrangler/state and can run beside it.
 */
export default async function setup(project: TestProject) {
  const stateDir = mkdtempSync(join(tmpdir(), "parley-e2e-"));
  applyLocalMigrations(stateDir);

  mkdirSync(join(root, "test-results"), { recursive: true });
  const log = openSync(logPath, "w");
  const port = await freePort();
  const child = startWranglerDev({
    port,
    inspectorPort: await freePort(),
    persistTo: stateDir,
    stdio: ["ignore", log, log],
    // The local trace collector and data explorer are dev-UI features the tests do not use.
    env: { X_LOCAL_OBSERVABILITY: "false", X_LOCAL_EXPLORER: "false" },
  });
  closeSync(log);

  const teardown = async () => {
    await stopWranglerDev(child);
    rmSync(stateDir, { recursive: true, force: true });
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHealthy(baseUrl, child, 60_000);
  } catch (err) {
    await teardown();
    const output = readFileSync(logPath, "utf8").slice(-8_000);
    throw new Error(`${(err as Error).message}\n--- wrangler dev output (${logPath}) ---\n${output}`);
  }
  project.provide("baseUrl", baseUrl);
  return teardown;
}
