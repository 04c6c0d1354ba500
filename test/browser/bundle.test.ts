// The committed widget bundle: built from widget/ as it stands, within its weight budget, and
// never posting to "*".
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildWidget } from "../../widget/build.mjs";
import { widgetSizes } from "../../scripts/widget-size.mjs";

const publicDir = join(import.meta.dirname, "..", "..", "public");

describe("the widget bundle", () => {
  it("is what npm run widget:build makes from widget/ (no stale committed build)", async () => {
    const files: Record<string, string> = await buildWidget();
    for (const [path, text] of Object.entries(files)) {
      expect(readFileSync(join(publicDir, path), "utf8"), `public/${path} is stale: run npm run widget:build`).toBe(text);
    }
  });

  it("weighs at most 5 KB gzipped for the loader and 60 KB for the whole widget", () => {
    const sizes = widgetSizes();
    expect(sizes.loader).toBeLessThanOrEqual(5 * 1024);
    expect(sizes.whole).toBeLessThanOrEqual(60 * 1024);
  });

  it("posts messages only to an exact origin, never to '*'", () => {
    for (const path of ["widget.js", "chat-widget/app.js"]) {
      const code = readFileSync(join(publicDir, path), "utf8");
      expect(code).toContain("postMessage(");
      expect(code).not.toMatch(/postMessage\([^)]*["']\*["']\)/);
    }
  });
});
