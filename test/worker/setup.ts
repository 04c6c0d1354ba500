import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Applies the real migrations to this test file's isolated local D1.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS ?? []);
