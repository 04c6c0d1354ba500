// Builds the widget from widget/ into public/ (committed, served as static assets):
//   widget/loader.js -> public/widget.js and public/chat-widget/embed.js (one loader, two names)
//   widget/app.js    -> public/chat-widget/app.js (with public/shared/*.js bundled in)
//   widget/app.css   -> public/chat-widget/app.css (with public/shared/chat.css)
//
//   node widget/build.mjs          write the files
//   node widget/build.mjs --check  exit 1 when a committed file differs from a fresh build
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

const BANNER = "/* Parley widget: built from widget/ by `npm run widget:build`; do not edit. */";

/** @param {string} entry @param {"iife" | undefined} format */
async function bundle(entry, format) {
  const result = await build({
    entryPoints: [join(root, "widget", entry)],
    bundle: true,
    minify: true,
    write: false,
    format,
    target: ["chrome100", "firefox100", "safari15.4"],
    legalComments: "none",
    banner: entry.endsWith(".css") ? { css: BANNER } : { js: BANNER },
    logLevel: "silent",
  });
  return result.outputFiles?.[0]?.text ?? "";
}

/** @returns {Promise<Record<string, string>>} public/-relative path -> contents */
export async function buildWidget() {
  const loader = await bundle("loader.js", "iife");
  return {
    "widget.js": loader,
    "chat-widget/embed.js": loader,
    "chat-widget/app.js": await bundle("app.js", "iife"),
    "chat-widget/app.css": await bundle("app.css", undefined),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = await buildWidget();
  const check = process.argv.includes("--check");
  const stale = [];
  for (const [path, text] of Object.entries(files)) {
    const target = join(root, "public", path);
    if (check) {
      let current = "";
      try {
        current = readFileSync(target, "utf8");
      } catch {
        // missing: stale
      }
      if (current !== text) stale.push(`public/${path}`);
    } else {
      writeFileSync(target, text);
      console.log(`wrote public/${path} (${text.length} bytes)`);
    }
  }
  if (stale.length > 0) {
    console.error(`Out of date (run npm run widget:build): ${stale.join(", ")}`);
    process.exit(1);
  }
}
