// `npm run widget:size`: the widget's weight over the wire (gzip, level 9), against its budget.
//   loader: what every page of a site downloads (/widget.js or /chat-widget/embed.js), <= 5 KB
//   whole widget: the loader plus everything the iframe loads (its HTML, app.js, app.css), <= 60 KB
// Exits 1 when over budget. `--json` prints the numbers as JSON (the browser tests read them).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = fileURLToPath(new URL("..", import.meta.url));
export const LOADER_BUDGET = 5 * 1024;
export const WIDGET_BUDGET = 60 * 1024;

/** @param {string} path public/-relative */
const gz = (path) => {
  const raw = readFileSync(join(root, "public", path));
  return { path: `public/${path}`, raw: raw.byteLength, gzip: gzipSync(raw, { level: 9 }).byteLength };
};

/** The iframe page is rendered by the Worker; its shell is a few hundred bytes (counted as 1 KB). */
const PAGE_ALLOWANCE = 1024;

export function widgetSizes() {
  const files = [gz("widget.js"), gz("chat-widget/embed.js"), gz("chat-widget/app.js"), gz("chat-widget/app.css")];
  const loader = Math.max(files[0]?.gzip ?? 0, files[1]?.gzip ?? 0);
  const whole = loader + (files[2]?.gzip ?? 0) + (files[3]?.gzip ?? 0) + PAGE_ALLOWANCE;
  return { files, loader, whole, loaderBudget: LOADER_BUDGET, wholeBudget: WIDGET_BUDGET };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const sizes = widgetSizes();
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(sizes));
  } else {
    const kb = (/** @type {number} */ n) => `${(n / 1024).toFixed(1)} KB`;
    for (const f of sizes.files) console.log(`${f.path.padEnd(30)} ${kb(f.raw).padStart(9)} raw ${kb(f.gzip).padStart(8)} gzip`);
    console.log(`loader         ${kb(sizes.loader).padStart(8)} gzip (budget ${kb(LOADER_BUDGET)})`);
    console.log(`whole widget   ${kb(sizes.whole).padStart(8)} gzip (budget ${kb(WIDGET_BUDGET)}; loader + app.js + app.css + 1 KB for the page)`);
  }
  if (sizes.loader > LOADER_BUDGET || sizes.whole > WIDGET_BUDGET) {
    console.error("Over budget.");
    process.exit(1);
  }
}
