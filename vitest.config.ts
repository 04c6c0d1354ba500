import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const migrations = await readD1Migrations(fileURLToPath(new URL("./migrations", import.meta.url)));

/**
 * Two projects, both against the real runtime:
 * - `worker`: tests that run inside workerd (the vitest plugin), with per-file isolated
 *   D1 / Durable Object storage, driving the Worker through `exports.default.fetch`.
 * - `e2e`: Node tests that start `wrangler dev` and speak real HTTP and WebSocket to it.
 * - `browser`: Node tests that drive Chromium against such a server (the widget, the console).
 */
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            // Webhooks: loopback receivers allowed; retries without delay (backoff base 0 s).
            miniflare: { bindings: { TEST_MIGRATIONS: migrations, ALLOW_LOCAL_WEBHOOKS: "true", WEBHOOK_BACKOFF_BASE_SECONDS: "0" } },
          }),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          // Generous: the runtime shares two cores with wrangler dev and the browser tests.
          testTimeout: 20_000,
          setupFiles: ["./test/worker/setup.ts"],
        },
      },
      {
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["./test/e2e/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Real Chromium (Debian's, driven by playwright-core) against the same kind of server:
        // the widget on host pages of another origin, the agent console beside it.
        test: {
          name: "browser",
          environment: "node",
          include: ["test/browser/**/*.test.ts"],
          globalSetup: ["./test/e2e/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
