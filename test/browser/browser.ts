// Helpers for the browser tests: Debian's Chromium driven by playwright-core, host pages served
// from another origin than Parley, and the agent console.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { chromium, type Browser, type BrowserContext, type Frame, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { baseUrl, waitFor } from "../e2e/harness.ts";

export { waitFor };

/** Where Debian puts Chromium; `.ci/run` installs it when missing. */
function chromiumPath(): string {
  for (const candidate of [process.env.CHROMIUM_PATH, "/usr/bin/chromium"]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  try {
    const found = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
    if (found) return found;
  } catch {
    // not on PATH either: reported below
  }
  throw new Error(
    "The browser tests need Debian's chromium and found none (not /usr/bin/chromium, not on PATH, no CHROMIUM_PATH). " +
      "Install it: apt-get update && apt-get install -y --no-install-recommends chromium (.ci/run does this in CI).",
  );
}

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/**
 * Parley as the browser sees it: `http://localhost:<port>`. Host pages live on
 * `http://127.0.0.1:<other port>`, so the two are different origins (and different sites).
 */
export function parleyOrigin(): string {
  const url = new URL(baseUrl());
  return `http://localhost:${url.port}`;
}

export interface HostSite {
  origin: string;
  /** Serves `html` at `path` from now on. */
  page(path: string, html: string): string;
  close(): Promise<void>;
}

/** A tiny web server on 127.0.0.1 (a random port): the customer's website. */
export async function hostSite(): Promise<HostSite> {
  const pages = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const html = pages.get(path);
    if (html === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" }).end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    page(path, html) {
      pages.set(path, html);
      return `${origin}${path}`;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A host page: some shop content, then the given snippet, as a customer would paste it. */
export function hostPage(snippet: string, title = "Acme shop"): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title></head>
<body>
<h1>${title}</h1>
<p>Anvils, rocket skates and giant magnets.</p>
${snippet}
</body></html>`;
}

/** The widget iframe of a page (the loader gives it id parley-frame), once it has loaded. */
export async function widgetFrame(page: Page): Promise<Frame> {
  const handle = await page.waitForSelector("#parley-frame", { state: "attached", timeout: 10_000 });
  return waitFor(async () => {
    const frame = await handle.contentFrame();
    return frame && frame.url().startsWith(`${parleyOrigin()}/chat-widget`) ? frame : null;
  }, { timeoutMs: 10_000, message: "the widget frame to load" });
}

/**
 * Opens the widget and waits for the composer: by clicking the launcher (a toggle), or through
 * the loader's `Parley.open()` (idempotent: after a reload the chat may reopen by itself).
 */
export async function openWidget(page: Page, via: "launcher" | "api" = "api"): Promise<Frame> {
  const frame = await widgetFrame(page);
  if (via === "launcher") await page.click("#parley-launcher");
  else await page.evaluate(() => (window as unknown as { Parley: { open(): void } }).Parley.open());
  await frame.waitForSelector("#pw-text", { state: "visible", timeout: 10_000 });
  await page.waitForSelector("#parley-launcher[aria-expanded=true]", { timeout: 10_000 });
  return frame;
}

/** Sends a visitor message from the widget and waits until it is stored (no longer pending). */
export async function visitorSends(frame: Frame, text: string): Promise<void> {
  await frame.fill("#pw-text", text);
  await frame.press("#pw-text", "Enter");
  await waitFor(
    () => frame.evaluate((t) => [...document.querySelectorAll(".messages .msg.mine:not(.pending) .msg-text")].some((el) => el.textContent === t), text),
    { timeoutMs: 10_000, message: `the visitor's message "${text}" to be stored` },
  );
}

/** Texts of the messages shown in a list (widget or console). */
export function messageTexts(frame: Frame | Page, selector = ".messages .msg:not(.pending) .msg-text"): Promise<string[]> {
  return frame.evaluate((sel) => [...document.querySelectorAll(sel)].map((el) => el.textContent ?? ""), selector);
}

/** The console, logged in as this agent, in its own browser context (its own cookies). */
export async function consolePage(browser: Browser, agent: { email: string; password: string }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  await page.goto(`${parleyOrigin()}/console/`);
  await page.fill("#login-email", agent.email);
  await page.fill("#login-password", agent.password);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])", { timeout: 10_000 });
  await page.waitForSelector("#org-conn:has-text('Live')", { timeout: 10_000 });
  return { context, page };
}

/** `window.__xss` in the page and every frame in it: undefined everywhere, or where it is set. */
export async function xssSentinels(page: Page): Promise<string[]> {
  const hits: string[] = [];
  for (const frame of page.frames()) {
    const value = await frame.evaluate(() => (window as unknown as { __xss?: unknown }).__xss).catch(() => undefined);
    if (value !== undefined) hits.push(`${frame.url()}: ${String(value)}`);
  }
  return hits;
}

const repo = join(import.meta.dirname, "..", "..");

/**
 * Saves a PNG as a test artifact (test-results/screenshots/). With SCREENSHOTS=docs it goes to
 * docs/screenshots/ instead, the committed copies the README shows (so a plain test run never
 * leaves the work tree changed).
 */
export async function screenshot(target: Page, name: string): Promise<void> {
  const dir = process.env.SCREENSHOTS === "docs" ? join(repo, "docs", "screenshots") : join(repo, "test-results", "screenshots");
  mkdirSync(dir, { recursive: true });
  await target.screenshot({ path: join(dir, name), animations: "disabled" });
}

/** What {@link useBrowser} sets up: filled in by its beforeAll hook, so read it inside tests. */
export interface BrowserFixture {
  browser: Browser;
  /** The customer's website (only with `site: true`, the default). */
  site: HostSite;
}

/**
 * The browser tests' common set-up: registers beforeAll/afterAll hooks that launch Chromium (and,
 * unless `site: false`, a {@link hostSite}) and close them again. Call it at a test file's top level.
 */
export function useBrowser(options: { site?: boolean } = {}): BrowserFixture {
  const fixture = {} as Partial<BrowserFixture>;
  beforeAll(async () => {
    fixture.browser = await launch();
    if (options.site !== false) fixture.site = await hostSite();
  });
  afterAll(async () => {
    await fixture.browser?.close();
    await fixture.site?.close();
  });
  return fixture as BrowserFixture;
}

/** A small PNG (an orange box with a darker band), encoded here so the test needs no files. */
export function png(width = 96, height = 64): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const band = y > height / 3 && y < (height * 2) / 3;
      rows.set(band ? [180, 70, 20] : [240, 150, 60], y * (width * 3 + 1) + 1 + x * 3);
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header), chunk("IDAT", deflateSync(rows)), chunk("IEND", Buffer.alloc(0))]);
}

/** The loaded images (naturalWidth > 0) in a message list, by alt text. */
export const loadedImages = (target: Frame | Page) =>
  target.evaluate(() => [...document.querySelectorAll<HTMLImageElement>(".messages .msg:not(.pending) img.msg-image")].filter((i) => i.complete && i.naturalWidth > 0).map((i) => i.alt));
