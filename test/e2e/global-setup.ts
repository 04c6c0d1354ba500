import type { ChildProcess } from "node:child_process";
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
import { startFakePush, type FakePush } from "./fake-push.ts";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
    /** The fake FCM / Google OAuth / APNs server (fake-push.ts) that `wrangler dev` pushes to. */
    pushFakeUrl: string;
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
  let server: ChildProcess | undefined;
  let fakePush: FakePush | undefined;
  const teardown = async () => {
    if (server) await stopWranglerDev(server);
    await fakePush?.close();
    rmSync(stateDir, { recursive: true, force: true });
  };

  try {
    applyLocalMigrations(stateDir);
    const port = await freePort();
    mkdirSync(join(root, "test-results"), { recursive: true });
    const log = openSync(logPath, "w");
    fakePush = await startFakePush();
    server = startWranglerDev({
      port,
      inspectorPort: await freePort(),
      persistTo: stateDir,
      stdio: ["ignore", log, log],
      env: {
        // Dev-UI features the tests do not use: the local trace collector and data explorer.
        X_LOCAL_OBSERVABILITY: "false",
        X_LOCAL_EXPLORER: "false",
        // Use the placeholder `request.cf` instead of fetching one (3 s timeout when offline).
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
      },
      // Push notifications go to the local fake instead of Google and Apple (docs/push.md).
      vars: { FCM_BASE_URL: fakePush.url, FCM_TOKEN_URL: `${fakePush.url}/token`, APNS_BASE_URL: fakePush.url },
    });
    closeSync(log);
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitForHealthy(baseUrl, server, 60_000).catch((err: Error) => {
      const output = readFileSync(logPath, "utf8").slice(-8_000);
      throw new Error(`${err.message}\n--- wrangler dev output (${logPath}) ---\n${output}`);
    });
    project.provide("baseUrl", baseUrl);
    project.provide("pushFakeUrl", fakePush.url);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}
