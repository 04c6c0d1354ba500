// RELIABILITY S16: the widget's postMessage bridge. The widget (a frame from Parley's origin)
// takes commands only from its parent window at the embedding page's exact origin (the loader's
// parent_origin, which the server accepts only when the channel allows it), ignores everyone else
// without an answer (a foreign page that holds a handle on it, a foreign frame, a sibling frame
// on the allowed origin, a page that frames it with a forged parent_origin), and posts only to
// that exact origin, never "*", never with the embed token or the visitor's id.
import type { BrowserContext, Frame, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signupOrg, type Client } from "../e2e/harness.ts";
import { hostPage, hostSite, parleyOrigin, useBrowser, visitorSends, waitFor, widgetFrame, type HostSite } from "./browser.ts";

const env = useBrowser();
let evil: HostSite;

beforeAll(async () => {
  evil = await hostSite();
});

afterAll(async () => {
  await evil?.close();
});

interface Outbound {
  targetOrigin: unknown;
  data: unknown;
}
interface Received {
  origin: string;
  fromParent: boolean;
  type: unknown;
}

/**
 * Instruments the widget frame (Parley's /chat-widget only) before its scripts run, without
 * touching the widget's code: `window.parent` is [Replaceable], so it becomes a stand-in whose
 * postMessage records (message, targetOrigin) and forwards to the real parent; MessageEvent's
 * `source` answers that stand-in for the real parent, so the widget's "from my parent" check sees
 * what it would see unwrapped. Every message the frame receives is recorded too (registered
 * before the widget's listener: once a message is recorded, the widget has handled it).
 */
function instrumentWidget(parley: string): string {
  return `(() => {
  if (location.origin !== ${JSON.stringify(parley)} || location.pathname !== "/chat-widget") return;
  const real = window.parent;
  if (real === window) return;
  window.__outbound = [];
  window.__received = [];
  const standIn = {
    postMessage(data, targetOrigin, ...rest) {
      let copy;
      try { copy = JSON.parse(JSON.stringify(data)); } catch { copy = String(data); }
      window.__outbound.push({ targetOrigin, data: copy });
      return real.postMessage(data, targetOrigin, ...rest);
    },
  };
  Object.defineProperty(window, "parent", { value: standIn, configurable: true, writable: true });
  const source = Object.getOwnPropertyDescriptor(MessageEvent.prototype, "source");
  Object.defineProperty(MessageEvent.prototype, "source", {
    configurable: true,
    get() { const s = source.get.call(this); return s === real ? standIn : s; },
  });
  addEventListener("message", (e) => {
    window.__received.push({ origin: e.origin, fromParent: source.get.call(e) === real, type: e.data && typeof e.data === "object" ? e.data.type : typeof e.data });
  });
})();`;
}

/** Records every message a page or frame receives, with its origin. */
const listen = `<script>window.__got = []; addEventListener("message", (e) => window.__got.push({ origin: e.origin, data: e.data }));</script>`;

/** What a foreign sender tries: the bridge's own commands, other products' commands, junk. */
const attacks = (nonce: string) => [
  { type: "parley:open" },
  { type: "parley:identify", name: `Mallory ${nonce}`, email: `mallory-${nonce}@evil.example`, attributes: { pwned: nonce } },
  { type: "setUser", user: { id: `evil_${nonce}`, name: `Mallory ${nonce}` } },
  { type: "getToken" },
  { type: "parley:getToken" },
  { type: "parley:close" },
  null,
  `{"type":"parley:open"}`,
  { type: 42 },
  [{ type: "parley:open" }],
];

/** Posts every attack, to every frame of `target` (a window), with targetOrigin "*"; returns how many. */
async function postAttacks(from: Frame, path: "parent" | "opener-popup", nonce: string): Promise<number> {
  return from.evaluate(
    ({ path, list }) => {
      const target = path === "parent" ? window.parent : (window as unknown as { __popup: Window }).__popup;
      let n = 0;
      for (let i = 0; i < target.frames.length; i++) {
        if (target.frames[i] === window) continue;
        for (const m of list) {
          target.frames[i]!.postMessage(m, "*");
          n++;
        }
      }
      return n;
    },
    { path, list: attacks(nonce) },
  );
}

async function webchat(agent: Client, allowed: string[]) {
  // Parley's own origin too, as in embed.test.ts: the widget's API calls come from its frame.
  return agent.createWebchat([...allowed, parleyOrigin()], { title: "Acme help" });
}

const received = (frame: Frame) => frame.evaluate(() => (window as unknown as { __received: Received[] }).__received);
const outbound = (frame: Frame) => frame.evaluate(() => (window as unknown as { __outbound: Outbound[] }).__outbound);
const got = (target: Frame | Page) => target.evaluate(() => (window as unknown as { __got: { origin: string; data: any }[] }).__got);

/** Waits until every message the widget was sent so far (by anyone) has reached it and been handled. */
async function settled(frame: Frame, count: number, what: string): Promise<Received[]> {
  return waitFor(async () => {
    const r = await received(frame);
    return r.length >= count ? r : null;
  }, { message: what });
}

/**
 * Drains the widget -> host channel: the test posts a marker from the widget frame to the host page
 * (as the harness, not the widget); posts from one window to another arrive in order, so once the
 * marker is there, everything the widget posted before it is there too.
 */
async function drain(page: Page, frame: Frame, origin: string): Promise<{ atPage: any[]; posted: Outbound[] }> {
  const marker = `drain-${Math.random()}`;
  await frame.evaluate(({ marker, origin }) => {
    // window.parent is the instrumented stand-in; its postMessage forwards (and records the marker).
    window.parent.postMessage({ type: "test:drain", marker }, origin);
  }, { marker, origin });
  const isMarker = (d: any) => d?.type === "test:drain" && d.marker === marker;
  const before = <T>(list: T[], data: (x: T) => any) => list.slice(0, list.findIndex((x) => isMarker(data(x)))).filter((x) => data(x)?.type !== "test:drain");
  const events = await waitFor(async () => {
    const all = (await got(page)).filter((e) => e.origin === parleyOrigin()).map((e) => e.data);
    return all.some(isMarker) ? all : null;
  }, { message: "the drain marker at the host page" });
  // What reached the page before the marker, and what the widget posted before it.
  return { atPage: before(events, (d) => d), posted: before(await outbound(frame), (o) => o.data) };
}

const widgetState = (page: Page) => page.evaluate(() => ({ expanded: document.getElementById("parley-launcher")?.getAttribute("aria-expanded"), frameShown: getComputedStyle(document.getElementById("parley-frame")!).display !== "none" }));

describe("RELIABILITY S16: the widget's postMessage bridge", () => {
  it("obeys only its parent at the allowed origin: a foreign opener, a foreign frame and a same-origin sibling frame are ignored without an answer; it posts only to the parent's exact origin, without tokens", async () => {
    const parley = parleyOrigin();
    const nonce = Math.random().toString(36).slice(2, 10);
    const agent = await signupOrg();
    const chat = await webchat(agent, [env.site.origin]);
    const context: BrowserContext = await env.browser.newContext();
    await context.addInitScript(instrumentWidget(parley));
    const errors: string[] = [];

    // The customer's page (an allowed origin): the loader, a foreign frame, a sibling frame from itself.
    evil.page("/frame", `<!doctype html>${listen}`);
    env.site.page("/sibling", `<!doctype html>${listen}`);
    const shopUrl = env.site.page(
      "/s16",
      hostPage(`${listen}<script src="${parley}/chat-widget/embed.js" data-embed-token="${chat.token}"></script>
<iframe id="foreign" src="${evil.origin}/frame"></iframe><iframe id="sibling" src="${env.site.origin}/sibling"></iframe>`),
    );
    // A foreign page that opens the shop in a popup, so it holds a handle on the widget's frame.
    const opener = await context.newPage();
    opener.on("pageerror", (e) => errors.push(`opener: ${e.message}`));
    await opener.goto(evil.page("/opener", `<!doctype html>${listen}<button id="go">go</button>
<script>document.getElementById("go").onclick = () => { window.__popup = window.open(${JSON.stringify(shopUrl)}, "shop"); };</script>`));
    const [page] = await Promise.all([context.waitForEvent("page"), opener.click("#go")]);
    page.on("pageerror", (e) => errors.push(`page: ${e.message}`));
    await page.waitForLoadState();

    const frame = await widgetFrame(page);
    const foreign = await waitFor(() => page.frames().find((f) => f.url().startsWith(`${evil.origin}/frame`)), { message: "the foreign frame" });
    const sibling = await waitFor(() => page.frames().find((f) => f.url() === `${env.site.origin}/sibling`), { message: "the sibling frame" });
    await waitFor(async () => (await got(page)).some((e) => e.origin === parley && e.data?.type === "parley:ready"), { message: "parley:ready" });
    const sid = await page.evaluate((t) => localStorage.getItem(`cw_sid_${t}`), chat.token);
    expect(sid).toMatch(/^v_[0-9a-f]{36}$/);
    expect(await received(frame)).toEqual([]);

    // Everyone but the parent tries: the foreign opener (through the popup), the foreign frame, the sibling.
    let sent = 0;
    sent += await postAttacks(opener.mainFrame(), "opener-popup", nonce);
    sent += await postAttacks(foreign, "parent", nonce);
    sent += await postAttacks(sibling, "parent", nonce);
    const attempts = attacks(nonce).length;
    // Each sender reached every other frame of the shop; the widget got 3 x attempts of them.
    const seen = await settled(frame, 3 * attempts, "the foreign messages at the widget");
    expect(seen.length).toBe(3 * attempts);
    expect(new Set(seen.map((r) => r.origin))).toEqual(new Set([evil.origin, env.site.origin]));
    expect(seen.every((r) => !r.fromParent)).toBe(true);
    expect(sent).toBeGreaterThanOrEqual(3 * attempts);

    // Nothing changed: no parley:opened (or anything but ready) reached the page, the chat is closed,
    // no conversation exists, and no one else got a word.
    expect((await drain(page, frame, env.site.origin)).atPage).toEqual([{ type: "parley:ready", conversation: false }]);
    expect(await widgetState(page)).toEqual({ expanded: "false", frameShown: false });
    // (opening starts the connection at once: "Connecting…" in the frame.)
    expect(await frame.textContent(".conn")).toBe("");
    expect((await agent.api("/api/conversations/?filter=all")).json).toEqual([]);

    // The genuine parent's commands work: identify, open, chat.
    await page.evaluate((o) => {
      const w = (document.getElementById("parley-frame") as HTMLIFrameElement).contentWindow!;
      w.postMessage({ type: "parley:identify", email: "grace@example.com", attributes: { plan: "pro" } }, o);
      w.postMessage({ type: "parley:open" }, o);
    }, parley);
    await settled(frame, 3 * attempts + 2, "the parent's commands at the widget");
    await waitFor(async () => (await widgetState(page)).frameShown, { message: "the chat shown" });
    await frame.waitForSelector("#pw-text", { state: "visible" });
    await visitorSends(frame, `Hello ${nonce}`);
    const conv = await waitFor(async () => (await agent.api("/api/conversations/?filter=all")).json.find((c: any) => c.end_user.external_id === sid), { message: "the conversation" });
    const all = (await agent.api("/api/conversations/?filter=all")).json;
    expect(all).toHaveLength(1);
    // The foreign identify and setUser left no trace on the visitor.
    const detail = await waitFor(async () => {
      const text = JSON.stringify((await agent.api(`/api/conversations/${conv.id}`)).json);
      return text.includes("grace@example.com") ? text : null;
    }, { message: "the parent's identify saved on the visitor" });
    expect(detail).not.toContain(nonce);
    expect(JSON.stringify(conv)).not.toContain(nonce);
    const reply = await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: `Hi there ${nonce}-reply` } });
    expect(reply.status).toBe(201);
    await waitFor(async () => (await got(page)).some((e) => e.data?.type === "parley:message" && e.data.message.content === `Hi there ${nonce}-reply`), { message: "parley:message at the page" });

    // The foreign senders try again while the conversation is live: still nothing.
    await postAttacks(foreign, "parent", `${nonce}b`);
    await postAttacks(opener.mainFrame(), "opener-popup", `${nonce}b`);
    await settled(frame, 5 * attempts + 2, "the second round at the widget");
    const { atPage, posted } = await drain(page, frame, env.site.origin);
    expect(atPage.filter((d) => d.type === "parley:closed")).toEqual([]);
    expect(await widgetState(page)).toEqual({ expanded: "true", frameShown: true });

    // Outbound: every post went to the parent, at its exact origin, never "*", with no secret in it.
    const out = (await outbound(frame)).filter((o: any) => o.data?.type !== "test:drain");
    expect(out.map((o: any) => o.data.type)).toEqual(expect.arrayContaining(["parley:ready", "parley:opened", "parley:message"]));
    expect(out.filter((o) => o.targetOrigin !== env.site.origin)).toEqual([]);
    const text = JSON.stringify(out);
    for (const secret of [chat.token, sid!]) expect(text).not.toContain(secret);
    // ... and up to the last marker the page got exactly those (nothing the recorder missed);
    // the others got nothing from Parley.
    expect(posted.length).toBeGreaterThanOrEqual(3);
    expect(atPage).toEqual(posted.map((o) => o.data));
    for (const [who, target] of [["the foreign frame", foreign], ["the sibling frame", sibling], ["the foreign opener", opener.mainFrame()]] as const) {
      expect((await got(target)).filter((e) => e.origin === parley), who).toEqual([]);
    }
    expect(errors).toEqual([]);
    await context.close();
  });

  it("a page that frames the widget under another site's parent_origin, or names none, gets no bridge: its commands are ignored and nothing is posted to it", async () => {
    // A channel with no allowed origins may be framed anywhere (frame-ancestors *); a page on evil
    // frames it, naming the shop as parent_origin, to steer it or to read its traffic.
    const parley = parleyOrigin();
    const nonce = Math.random().toString(36).slice(2, 10);
    const agent = await signupOrg();
    const open = await agent.createWebchat([], { title: "Open channel" });
    const context = await env.browser.newContext();
    await context.addInitScript(instrumentWidget(parley));
    const errors: string[] = [];
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(e.message));
    const q = new URLSearchParams({ embed_token: open.token, session_id: `victim_${nonce}`, parent_origin: env.site.origin, launcher: "1" });
    await page.goto(evil.page("/forged", hostPage(`${listen}<iframe id="w" src="${parley}/chat-widget?${q}"></iframe>`, "Not the shop")));
    const frame = await waitFor(() => page.frames().find((f) => f.url().startsWith(`${parley}/chat-widget`)), { message: "the widget frame" });
    await frame.waitForSelector("#pw-text", { state: "attached" });
    await page.evaluate((list) => {
      const w = (document.getElementById("w") as HTMLIFrameElement).contentWindow!;
      for (const m of list) w.postMessage(m, "*");
    }, attacks(nonce));
    const seen = await settled(frame, attacks(nonce).length, "the page's messages at the widget");
    expect(seen.every((r) => r.fromParent && r.origin === evil.origin)).toBe(true);
    // No bridge: the widget posted nothing at all (not even ready), so nothing reached the page.
    expect(await outbound(frame)).toEqual([]);
    expect((await got(page)).filter((e) => e.origin === parley)).toEqual([]);
    // The forged open was ignored: opening starts the connection at once ("Connecting…"), and
    // nothing exists server-side.
    expect(await frame.textContent(".conn")).toBe("");
    expect((await agent.api("/api/conversations/?filter=all")).json).toEqual([]);

    // Seed 001's hand-built iframe names no parent_origin: always open, and no bridge either
    // (the widget does not adopt whoever framed it).
    const plain = new URLSearchParams({ embed_token: open.token, session_id: `plain_${nonce}` });
    await page.evaluate((src) => {
      const f = document.createElement("iframe");
      f.id = "plain";
      f.src = src;
      document.body.append(f);
    }, `${parley}/chat-widget?${plain}`);
    const hand = await waitFor(() => page.frames().find((f) => f.url().includes(`plain_${nonce}`)), { message: "the hand-built frame" });
    await hand.waitForSelector("#pw-text", { state: "visible" });
    await page.evaluate((list) => {
      const w = (document.getElementById("plain") as HTMLIFrameElement).contentWindow!;
      for (const m of list) w.postMessage(m, "*");
    }, attacks(nonce));
    await settled(hand, attacks(nonce).length, "the page's messages at the hand-built frame");
    expect(await outbound(hand)).toEqual([]);
    expect((await got(page)).filter((e) => e.origin === parley)).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });
});
