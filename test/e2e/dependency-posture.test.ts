// S17: production dependencies at or above the versions that fix their known advisories, checked
// offline (the registry reachable here has no audit endpoint; `npm run audit` says so).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ADVISORY_FLOORS, compareVersions } from "../../scripts/lib/advisory-floors.mjs";
import { root } from "../../scripts/lib/wrangler.mjs";

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string>; scripts: Record<string, string> };
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string; dev?: boolean }> };
const floors = ADVISORY_FLOORS;

describe("dependency posture", () => {
  it("production dependencies are at or above the versions that fix their known advisories (declared ranges and every locked copy); each has a row", () => {
    const missing = Object.keys(pkg.dependencies).filter((n) => !(n in floors));
    expect(missing, "add a row to scripts/lib/advisory-floors.mjs").toEqual([]);
    const below: string[] = [];
    for (const [name, range] of Object.entries(pkg.dependencies)) {
      const { floor } = floors[name]!;
      const declared = range.match(/^[\^~]?(\d+\.\d+\.\d+(?:-[\w.]+)?)$/)?.[1];
      if (!declared) below.push(`${name}: range ${range} is not a plain ^, ~ or exact version`);
      else if (compareVersions(declared, floor) < 0) below.push(`${name}: package.json allows ${declared} < ${floor}`);
    }
    // Every production copy in the lockfile, nested ones included (a dependency's own dependency).
    for (const [path, entry] of Object.entries(lock.packages)) {
      const name = path.split("node_modules/").at(-1)!;
      if (!path || entry.dev || !(name in floors) || !entry.version) continue;
      if (compareVersions(entry.version, floors[name]!.floor) < 0) below.push(`${path}: locked ${entry.version} < ${floors[name]!.floor}`);
    }
    expect(below).toEqual([]);
    // Where the public advisory endpoint answers, this is the full audit.
    expect(pkg.scripts.audit).toBe("node scripts/audit.mjs");
  });

  it("compareVersions orders releases numerically and a pre-release below its release", () => {
    expect(compareVersions("4.12.26", "4.12.3")).toBe(1);
    expect(compareVersions("4.9.0", "4.12.26")).toBe(-1);
    expect(compareVersions("0.45.2", "0.45.2")).toBe(0);
    expect(compareVersions("4.12.26-rc.1", "4.12.26")).toBe(-1);
    expect(compareVersions("5.0.0", "4.99.99")).toBe(1);
  });
});
