import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { runWrangler } from "../../scripts/lib/wrangler.mjs";

const outdir = mkdtempSync(join(tmpdir(), "parley-bundle-"));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

// Bundles exactly what `npm run deploy` would upload, without an account or network.
it("builds a deployable bundle", () => {
  runWrangler(["deploy", "--dry-run", "--outdir", outdir]);
  const bundle = readdirSync(outdir).filter((f) => f.endsWith(".js"));
  expect(bundle).toContain("index.js");
  expect(statSync(join(outdir, "index.js")).size).toBeGreaterThan(0);
});
