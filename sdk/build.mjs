// Builds the Web SDK from sdk/src/index.ts (partysocket bundled in, no other dependency):
//   sdk/dist/parley-sdk.mjs      ES module: import { createClient } from ".../parley-sdk.mjs"
//   sdk/dist/parley-sdk.iife.js  script tag: window.Parley.createClient(...)
//   sdk/dist/parley-sdk.d.ts     the typings (tsc --emitDeclarationOnly)
//
//   npm run sdk:build            (node sdk/build.mjs [--outdir <dir>] [--no-types])
//
// dist/ is not committed (the repo's .gitignore): it is a pure function of the source and the
// pinned esbuild; the e2e test builds it and runs the built files against the server.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
const version = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).version;
const BANNER = `/* Parley Web SDK ${version}: built from sdk/src by \`npm run sdk:build\`; MIT. */`;
const TARGET = ["es2022", "chrome100", "firefox100", "safari15.4", "node22"];

/**
 * @param {{ outdir?: string, types?: boolean, minify?: boolean }} [opts]
 * @returns {Promise<{ esm: string, iife: string, types: string | null }>} the written files' paths
 */
export async function buildSdk(opts = {}) {
  const outdir = resolve(opts.outdir ?? join(here, "dist"));
  mkdirSync(outdir, { recursive: true });
  const entry = join(here, "src", "index.ts");
  /** @type {import("esbuild").BuildOptions} */
  const common = {
    entryPoints: [entry],
    bundle: true,
    platform: "neutral",
    mainFields: ["module", "main"],
    target: TARGET,
    minify: opts.minify ?? false,
    legalComments: "none",
    banner: { js: BANNER },
    logLevel: "silent",
  };
  const esm = join(outdir, "parley-sdk.mjs");
  const iife = join(outdir, "parley-sdk.iife.js");
  await build({ ...common, format: "esm", outfile: esm });
  await build({ ...common, format: "iife", globalName: "Parley", outfile: iife, minify: opts.minify ?? true });
  let types = null;
  if (opts.types ?? true) types = emitTypes(entry, outdir);
  return { esm, iife, types };
}

/** @param {string} entry @param {string} outdir */
function emitTypes(entry, outdir) {
  const tmp = join(outdir, ".types");
  rmSync(tmp, { recursive: true, force: true });
  const tsc = join(here, "..", "node_modules", "typescript", "bin", "tsc");
  const args = [tsc, entry, "--declaration", "--emitDeclarationOnly", "--outDir", tmp, "--rootDir", join(here, ".."), "--target", "es2022", "--module", "esnext",
    "--moduleResolution", "bundler", "--lib", "es2022,dom", "--types", "", "--strict", "--skipLibCheck", "--ignoreConfig"];
  const run = spawnSync(process.execPath, args, { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`tsc (declarations) failed:\n${run.stdout}${run.stderr}`);
  const out = join(outdir, "parley-sdk.d.ts");
  const index = readFileSync(join(tmp, "sdk", "src", "index.d.ts"), "utf8");
  const wire = readFileSync(join(tmp, "src", "core", "wire.d.ts"), "utf8");
  writeFileSync(out, `${BANNER}\n${inlineWire(index, wire)}`);
  rmSync(tmp, { recursive: true, force: true });
  return out;
}

/**
 * The typings name the server's wire types (src/core/wire.ts), which are not shipped: they go into
 * the one file as a private namespace, and the SDK's imports and re-exports of them become aliases.
 * @param {string} index the SDK's declarations @param {string} wire src/core/wire.ts's
 */
function inlineWire(index, wire) {
  const from = /^(import|export) type \{([^}]*)\} from "\.\.\/\.\.\/src\/core\/wire(?:\.ts)?";\n/gm;
  /** @type {Map<string, string>} */
  const aliases = new Map();
  /** @type {string[]} */
  const exported = [];
  for (const [, kind, names = ""] of index.matchAll(from)) {
    for (const name of names.split(",").map((n) => n.trim()).filter(Boolean)) {
      const [original = name, local = original] = name.split(/\s+as\s+/);
      aliases.set(local, original);
      if (kind === "export") exported.push(local);
    }
  }
  const namespace = `declare namespace Wire {\n${wire.replace(/^export \{\};\n?/m, "").replace(/^export declare /gm, "export ").trimEnd()}\n}\n`;
  const imports = [...aliases].map(([local, original]) => `import ${local} = Wire.${original};\n`).join("");
  const reexports = exported.length ? `export type { ${exported.join(", ")} };\n` : "";
  return `${namespace}${imports}${reexports}${index.replace(from, "")}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const i = process.argv.indexOf("--outdir");
  const files = await buildSdk({ outdir: i > 0 ? process.argv[i + 1] : undefined, types: !process.argv.includes("--no-types") });
  for (const path of Object.values(files)) if (path) console.log(`wrote ${path} (${readFileSync(path).byteLength} bytes)`);
}
