// Seed 001's embed.js on a customer's page (a strict CSP, another origin than Parley): the
// visitor id in localStorage, the postMessage bridge both ways, and a site that is not allowed.
import type { ConsoleMessage } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, signupOrg, type Client } from "../e2e/harness.ts";
import { hostPage, hostSite, messageTexts, openWidget, parleyOrigin, useBrowser, visitorSends, waitFor, widgetFrame, xssSentinels, type HostSite } from "./browser.ts";

const env = useBrowser();
let evil: HostSite;

beforeAll(async () => {
  evil = await hostSite();
});

afterAll(async () => {
  await evil?.close();
});

/** Records what the widget posts to this page (messages from Parley's origin only). */
const recorder = (parley: string) => `<script>
window.__events = [];
addEventListener("message", (e) => { if (e.origin === ${JSON.stringify(parley)}) window.__events.push(e.data); });
</script>`;

/** A customer's page with a strict policy: no inline styles, scripts only from itself and Parley. */
const strictCsp = (parley: string) =>
  `<meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' 'unsafe-inline' ${parley}; style-src 'self'; frame-src ${parley} 'self' http://127.0.0.1:*; connect-src ${parley}">`;

/**
 * A webchat channel that allows `allowed`. The widget's own calls come from its iframe, that is
 * from Parley's origin, which the channel check does not accept by itself yet (a core change is
 * requested): until it does, the channel lists Parley's origin too. Framing is unaffected: only
 * the listed sites (and Parley's own pages) may frame the widget.
 */
/** Seed 001's "passing a known user identity" snippet, as printed there. */
const seed001Iframe = (parley: string, token: string, userId: string, name: string) => `<script>
(function() {
  var USER_ID = ${JSON.stringify(userId)}, USER_DISPLAY_NAME = ${JSON.stringify(name)};
  var iframe = document.createElement('iframe');
  iframe.src = '${parley}/chat-widget'
    + '?embed_token=${token}'
    + '&session_id=' + encodeURIComponent('user_' + USER_ID)
    + '&customer_name=' + encodeURIComponent(USER_DISPLAY_NAME)
    + '&title=Support+Chat';
  iframe.style.cssText = 'position:fixed;bottom:0;right:0;width:380px;height:560px;border:none;z-index:2147483647;border-radius:12px 12px 0 0;box-shadow:0 8px 32px rgba(0,0,0,0.18);';
  document.body.appendChild(iframe);
})();
</script>`;

async function webchat(agent: Client, allowed: string[], title?: string) {
  return agent.createWebchat([...allowed, parleyOrigin()], { title });
}

describe("seed 001's <script src=/chat-widget/embed.js data-embed-token>", () => {
  it("keeps the visitor id in cw_sid_{token}, takes identify/open/close from the page, and reports ready/opened/message/closed to it", async () => {
    const parley = parleyOrigin();
    const agent = await signupOrg();
    const chat = await webchat(agent, [env.site.origin], "Acme help");
    const snippet = `<script src="${parley}/chat-widget/embed.js" data-embed-token="${chat.token}"></script>`;
    const url = env.site.page("/seed001", hostPage(`${recorder(parley)}${snippet}`).replace("<head>", `<head>${strictCsp(parley)}`));
    // A sibling frame from another origin, listening for anything the widget might send it.
    evil.page("/sibling", `<!doctype html><script>window.__got = []; addEventListener("message", (e) => window.__got.push(e.data));</script>`);
    const page = await (await env.browser.newContext()).newPage();
    const csp: string[] = [];
    page.on("console", (m: ConsoleMessage) => m.type() === "error" && csp.push(m.text()));
    await page.goto(url);
    await page.evaluate((src) => {
      const f = document.createElement("iframe");
      f.id = "sibling";
      f.src = src;
      document.body.append(f);
    }, `${evil.origin}/sibling`);

    const events = () => page.evaluate(() => (window as unknown as { __events: { type: string }[] }).__events);
    await waitFor(async () => (await events()).some((e) => e.type === "parley:ready"), { message: "parley:ready" });
    const sid = await page.evaluate((t) => localStorage.getItem(`cw_sid_${t}`), chat.token);
    expect(sid).toMatch(/^v_[0-9a-f]{36}$/);
    const frame = await widgetFrame(page);
    expect(new URL(frame.url()).searchParams.get("session_id")).toBe(sid);
    expect(new URL(frame.url()).searchParams.get("parent_origin")).toBe(env.site.origin);

    // Another origin's frame tells the widget to open: ignored (the exact origin and the parent only).
    const sibling = page.frames().find((f) => f.url().startsWith(evil.origin))!;
    await sibling.evaluate(() => {
      for (let i = 0; i < parent.frames.length; i++) if (parent.frames[i] !== window) parent.frames[i]!.postMessage({ type: "parley:open" }, "*");
    });

    // The page identifies its logged-in user and opens the chat, by postMessage.
    await page.evaluate((o) => {
      const w = (document.getElementById("parley-frame") as HTMLIFrameElement).contentWindow!;
      w.postMessage({ type: "parley:identify", name: "Grace Hopper", email: "grace@example.com", attributes: { plan: "pro" } }, o);
      w.postMessage({ type: "parley:open" }, o);
    }, parley);
    await waitFor(async () => (await events()).filter((e) => e.type === "parley:opened").length === 1, { message: "parley:opened" });
    await page.waitForSelector("#parley-frame", { state: "visible" });
    expect(await frame.textContent("#pw-title")).toBe("Acme help");
    await visitorSends(frame, "Hi, it is Grace");

    // The agent side sees the identified visitor under the loader's id.
    const conv = await waitFor(async () => (await agent.api("/api/conversations/?filter=all")).json.find((c: any) => c.end_user.external_id === sid), { message: "the conversation" });
    expect(conv.end_user.display_name).toBe("Grace Hopper");
    const reply = await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "Hello Grace!" } });
    expect(reply.status).toBe(201);
    await waitFor(async () => (await events()).some((e: any) => e.type === "parley:message" && e.message.content === "Hello Grace!" && e.message.sender_type === "agent"), { message: "parley:message" });

    await page.evaluate((o) => (document.getElementById("parley-frame") as HTMLIFrameElement).contentWindow!.postMessage({ type: "parley:close" }, o), parley);
    await waitFor(async () => (await events()).some((e) => e.type === "parley:closed"), { message: "parley:closed" });
    await page.waitForSelector("#parley-frame", { state: "hidden" });

    // Nothing reached the other origin's frame; the page's strict CSP refused nothing.
    expect(await sibling.evaluate(() => (window as unknown as { __got: unknown[] }).__got)).toEqual([]);
    expect(csp.filter((t) => /Content Security Policy/i.test(t))).toEqual([]);
    await page.context().close();
  });

  it("refuses a site that is not in the channel's allowed origins: the browser blocks the frame (frame-ancestors), the API answers 403, the console says why", async () => {
    const parley = parleyOrigin();
    const agent = await signupOrg();
    const chat = await webchat(agent, [env.site.origin]);

    const framePage = await api(`/chat-widget?embed_token=${chat.token}`);
    expect(framePage.status).toBe(200);
    expect(framePage.headers.get("content-security-policy")).toContain(`frame-ancestors 'self' ${env.site.origin} ${parley}`);
    expect(framePage.headers.get("content-security-policy")).toContain("script-src 'self'");

    const url = evil.page("/stolen", hostPage(`<script src="${parley}/chat-widget/embed.js" data-embed-token="${chat.token}"></script>`, "Not the shop"));
    const page = await (await env.browser.newContext()).newPage();
    const errors: string[] = [];
    page.on("console", (m: ConsoleMessage) => m.type() === "error" && errors.push(m.text()));
    await page.goto(url);
    // The loader notices the widget never started, asks the server why, and removes itself.
    await waitFor(() => errors.some((t) => t.startsWith("Parley: the chat widget was refused")), { timeoutMs: 10_000, message: "the loader's console error" });
    expect(errors.find((t) => t.startsWith("Parley:"))).toContain(`this page's origin ${evil.origin} is not in the channel's allowed origins`);
    expect(await page.locator("#parley-launcher, #parley-frame").count()).toBe(0);

    // Seed 001's hand-built iframe on that site: the browser itself refuses to render it.
    const manual = await page.context().newPage();
    await manual.goto(evil.page("/stolen-iframe", hostPage(seed001Iframe(parley, chat.token, "user_42", "Mallory"), "Not the shop")));
    const blocked = await waitFor(() => manual.frames().find((f) => f !== manual.mainFrame()), { message: "the child frame" });
    await waitFor(() => blocked.url().startsWith("chrome-error://"), { message: "Chromium's error page in place of the widget" });
    expect(await manual.locator("iframe").count()).toBe(1);

    // The widget API and socket refuse the origin too.
    const refused = await page.evaluate(async ({ parley, token }) => {
      const res = await fetch(`${parley}/chat-widget/session`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ embed_token: token }) });
      const socket = await new Promise<string>((resolve) => {
        const ws = new WebSocket(`${parley.replace("http", "ws")}/ws/visitor?embed_token=${token}`);
        ws.onopen = () => resolve("open");
        ws.onerror = () => resolve("refused");
      });
      return { status: res.status, body: await res.json(), socket };
    }, { parley, token: chat.token });
    expect(refused).toEqual({ status: 403, body: { error: expect.objectContaining({ code: "origin_not_allowed" }) }, socket: "refused" });
    expect(await xssSentinels(page)).toEqual([]);
    await page.context().close();
  });

  it("works as seed 001's hand-built iframe (session_id, customer_name, title; always open, no bridge)", async () => {
    const parley = parleyOrigin();
    const agent = await signupOrg();
    const chat = await webchat(agent, [env.site.origin]);
    const page = await (await env.browser.newContext()).newPage();
    await page.goto(env.site.page("/manual", hostPage(seed001Iframe(parley, chat.token, "42", "Ada Lovelace"))));
    const frame = await waitFor(() => page.frames().find((f) => f.url().startsWith(`${parley}/chat-widget`)), { message: "the widget frame" });
    await frame.waitForSelector("#pw-text", { state: "visible" });
    expect(await frame.textContent("#pw-title")).toBe("Support Chat");
    expect(await frame.locator(".pw-close").count()).toBe(0);
    await visitorSends(frame, "Hello from the account page");
    const conv = await waitFor(async () => (await agent.api("/api/conversations/?filter=all")).json.find((c: any) => c.end_user.external_id === "user_42"), { message: "the conversation" });
    expect(conv.end_user.display_name).toBe("Ada Lovelace");
    await page.context().close();
  });

  it("answers an unknown token with a readable 4xx page", async () => {
    const res = await api("/chat-widget?embed_token=ew_unknown");
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(res.text).toContain("This chat is not available");
    const none = await api("/chat-widget");
    expect(none.status).toBe(400);
  });
});

describe("seed 000's React/Next.js snippet (a script inserted and removed at run time)", () => {
  it("starts once under StrictMode's mount-unmount-mount, chats, and leaves nothing behind on unmount", async () => {
    const parley = parleyOrigin();
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    // The snippet's useEffect body, verbatim but for the names.
    const effect = `<script>
function useEffectBody() {
  const script = document.createElement('script');
  script.src = ${JSON.stringify(`${parley}/widget.js`)};
  script.setAttribute('data-key', ${JSON.stringify(pk.key)});
  script.async = true;
  document.body.appendChild(script);
  return () => { document.body.removeChild(script); };
}
// React 18 StrictMode in development: mount, clean up, mount again.
useEffectBody()();
window.__cleanup = useEffectBody();
</script>`;
    const page = await (await env.browser.newContext()).newPage();
    await page.goto(env.site.page("/react", hostPage(effect, "A React app")));
    const frame = await openWidget(page, "launcher");
    expect(await page.locator("#parley-launcher").count()).toBe(1);
    expect(await page.locator("#parley-frame").count()).toBe(1);
    await visitorSends(frame, "Hello from a React app");
    expect(await messageTexts(frame)).toEqual(["Hello from a React app"]);

    // Unmount: the cleanup removes the script tag, and the widget goes with it.
    await page.evaluate(() => (window as unknown as { __cleanup(): void }).__cleanup());
    await waitFor(async () => (await page.locator("#parley-launcher, #parley-frame").count()) === 0, { message: "the widget removed" });
    expect(await page.evaluate(() => "Parley" in window)).toBe(false);

    // Mount again (a route change back): the same visitor, the same conversation.
    await page.evaluate(() => {
      (window as unknown as { __cleanup: () => void }).__cleanup = (window as unknown as { useEffectBody(): () => void }).useEffectBody();
    });
    const again = await openWidget(page); // it reopens by itself (open when it went): no toggle
    await waitFor(async () => (await messageTexts(again)).includes("Hello from a React app"), { message: "the history after a remount" });
    await page.context().close();
  });

  it("on a phone-sized screen takes the whole screen, and works from the keyboard (Enter opens, Escape closes, focus returns)", async () => {
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    const page = await (await env.browser.newContext({ viewport: { width: 375, height: 667 }, isMobile: true, hasTouch: true })).newPage();
    await page.goto(env.site.page("/phone", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`)));
    const frame = await widgetFrame(page);
    await page.focus("#parley-launcher");
    await page.keyboard.press("Enter");
    await frame.waitForSelector("#pw-text", { state: "visible" });
    expect(await page.locator("#parley-frame").boundingBox()).toEqual({ x: 0, y: 0, width: 375, height: 667 });
    await page.waitForSelector("#parley-launcher", { state: "hidden" });
    await waitFor(() => frame.evaluate(() => document.activeElement?.id === "pw-text"), { message: "focus in the composer" });
    await page.keyboard.press("Escape");
    await page.waitForSelector("#parley-frame", { state: "hidden" });
    await waitFor(() => page.evaluate(() => document.activeElement?.id === "parley-launcher"), { message: "focus back on the launcher" });
    await page.context().close();
  });
});
