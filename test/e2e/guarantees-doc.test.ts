// docs/guarantees.md names, for each promise and each RELIABILITY.md case, the test that proves
// it. This keeps those names true: every referenced test file exists and holds a test with that
// name, and every case id of ../shared/RELIABILITY.md has a row.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { root } from "../../scripts/lib/wrangler.mjs";

const doc = readFileSync(join(root, "docs", "guarantees.md"), "utf8");

describe("docs/guarantees.md", () => {
  it("every test it names exists, in the file it names", () => {
    const refs = [...doc.matchAll(/`(test\/[\w./-]+\.test\.ts)` › "((?:[^"\\]|\\.)*)"/g)].map((m) => ({ file: m[1]!, name: m[2]!.replace(/\\"/g, '"').replace(/\s+/g, " ") }));
    expect(refs.length).toBeGreaterThan(40);
    const missing: string[] = [];
    for (const { file, name } of refs) {
      const path = join(root, file);
      if (!existsSync(path)) {
        missing.push(`${file}: no such file`);
        continue;
      }
      const source = readFileSync(path, "utf8");
      if (!source.includes(name) && !source.includes(JSON.stringify(name).slice(1, -1))) missing.push(`${file}: no test named "${name}"`);
    }
    expect(missing).toEqual([]);
  });

  it("has a row for every case id of RELIABILITY.md", () => {
    const plan = join(root, "..", "shared", "RELIABILITY.md");
    const ids = existsSync(plan)
      ? [...new Set([...readFileSync(plan, "utf8").matchAll(/^\| ([FLBS]\d+) \|/gm)].map((m) => m[1]!)), "X1"]
      : ([["F", 13], ["L", 7], ["B", 8], ["S", 17]] as const).flatMap(([p, n]) => Array.from({ length: n }, (_, i) => `${p}${i + 1}`)).concat("X1");
    expect(ids.length).toBe(46);
    for (const id of ids) expect(doc, id).toMatch(new RegExp(`^\\| ${id} `, "m"));
  });
});
