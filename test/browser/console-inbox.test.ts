// The console around the conversation, in a real browser: teammates' presence, the visitor's
// details beside the conversation (markup in them stays text), and the alerts for a conversation
// arriving in the unassigned inbox (a chime and a desktop notification; none when muted).
import { createHmac } from "node:crypto";
import type { BrowserContext } from "playwright-core";
import { describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { consolePage, hostPage, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();

/**
 * Records what the page asks the browser for: each `new Notification(...)` (title, body) and each
 * oscillator started (the chime). The real APIs still run underneath.
 */
async function recordAlerts(context: BrowserContext) {
  await context.grantPermissions(["notifications"], { origin: parleyOrigin() });
  await context.addInitScript(() => {
    const w = window as unknown as { __notes: { title: string; body: string }[]; __tones: number; Notification: typeof Notification };
    w.__notes = [];
    w.__tones = 0;
    const Real = window.Notification;
    class Recorded extends Real {
      constructor(title: string, options?: NotificationOptions) {
        w.__notes.push({ title, body: options?.body ?? "" });
        super(title, options);
      }
    }
    Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
    w.Notification = Recorded as unknown as typeof Notification;
    const start = OscillatorNode.prototype.start;
    OscillatorNode.prototype.start = function (...args: Parameters<typeof start>) {
      w.__tones += 1;
      return start.apply(this, args);
    };
  });
}

/** A visitor opens a session through the widget API with details, then writes (seed 000 REST). */
async function visitorArrives(pk: string, visitorId: string, details: Record<string, unknown>, text: string) {
  const session = await api("/chat-widget/session", { body: { key: pk, session_id: visitorId, ...details } });
  expect(session.status).toBe(200);
  expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId, message: text } })).status).toBe(200);
  return session.json.conversation_id as string;
}

const XSS = {
  name: "<img src=x onerror=window.__xss=31>",
  attr: "<svg onload=window.__xss=32>",
  page: "https://shop.example/cart?item=<script>window.__xss=33</script>",
};

describe("the console around the conversation", () => {
  it("shows teammates online and offline as they come and go", async () => {
    const owner = await signupOrg("Presence Co");
    const email = `agent-${crypto.randomUUID()}@e2e.parley.test`;
    const made = await owner.api("/api/company/agents", { body: { name: "Pat Teammate", email, password: "agent password", role: "agent" } });
    expect(made.status).toBe(201);
    const ownerSide = await consolePage(env.browser, owner);
    const page = ownerSide.page;
    await page.waitForSelector(`#team-list li.online[data-agent-id="${owner.user.id}"]:has-text('(you)')`, { timeout: 10_000 });
    await page.waitForSelector(`#team-list li.offline[data-agent-id="${made.json.id}"]:has-text('Pat Teammate')`, { timeout: 10_000 });

    const pat = await consolePage(env.browser, { email, password: "agent password" });
    await page.waitForSelector(`#team-list li.online[data-agent-id="${made.json.id}"]`, { timeout: 10_000 });
    await page.waitForSelector("#org-conn:has-text('2 agents online')", { timeout: 10_000 });
    // Pat sees the owner too.
    await pat.page.waitForSelector(`#team-list li.online[data-agent-id="${owner.user.id}"]`, { timeout: 10_000 });

    await pat.page.click("#logout");
    await page.waitForSelector(`#team-list li.offline[data-agent-id="${made.json.id}"]`, { timeout: 10_000 });
    await page.waitForSelector("#org-conn:has-text('1 agent online')", { timeout: 10_000 });
    await pat.context.close();
    await ownerSide.context.close();
  });

  it("alerts with a chime and a desktop notification when a conversation arrives unassigned, shows the visitor's details as text, and stays quiet when muted", async () => {
    const owner = await signupOrg("Alerts Co");
    const pk = (await owner.createKey("public")).key;
    const context = await env.browser.newContext({ viewport: { width: 1280, height: 760 } });
    await recordAlerts(context);
    const page = await context.newPage();
    await page.goto(`${parleyOrigin()}/console/`);
    await page.fill("#login-email", owner.email);
    await page.fill("#login-password", owner.password);
    await page.click("#login-form button[type=submit]"); // a user gesture: the chime may play from now on
    await page.waitForSelector("#org-conn:has-text('Live')", { timeout: 10_000 });
    expect(await page.textContent("#alerts")).toBe("Alerts on");
    expect(await page.isHidden("#desktop-alerts")).toBe(true); // permission already granted: nothing to ask

    const convId = await visitorArrives(
      pk,
      "alert-visitor-1",
      { customer_name: XSS.name, email: "ann@example.test", attributes: { page_url: XSS.page, plan: XSS.attr, orders: "3" } },
      "Where is my parcel?",
    );
    const notes = await waitFor(async () => {
      const n = await page.evaluate(() => (window as unknown as { __notes: { title: string; body: string }[] }).__notes);
      return n.length > 0 ? n : null;
    }, { timeoutMs: 10_000, message: "a desktop notification" });
    expect(notes).toEqual([{ title: "New conversation", body: `${XSS.name}: Where is my parcel?` }]);
    expect(await page.evaluate(() => (window as unknown as { __tones: number }).__tones)).toBeGreaterThanOrEqual(1);

    // Opening it shows who the visitor is, beside the conversation, as text.
    const item = page.locator("#inbox-list button", { hasText: "Where is my parcel?" });
    await item.waitFor({ timeout: 10_000 });
    await item.click();
    await page.waitForSelector("#details:not([hidden]) dd[data-field='email']", { timeout: 10_000 });
    expect(await page.textContent("dd[data-field='name']")).toBe(XSS.name);
    expect(await page.textContent("dd[data-field='email']")).toBe("ann@example.test");
    expect(await page.textContent("dd[data-field='channel']")).toBe("Website · webchat");
    expect(await page.textContent("dd[data-field='page-url']")).toBe(XSS.page);
    expect(await page.getAttribute("dd[data-field='page-url'] a", "href")).toBe(new URL(XSS.page).href);
    expect(await page.getAttribute("dd[data-field='page-url'] a", "rel")).toContain("noopener");
    const attrs = await page.$$eval("#details-attrs dt, #details-attrs dd", (els) => els.map((e) => e.textContent));
    expect(attrs).toEqual(["plan", XSS.attr, "orders", "3"]);
    expect(await page.$$eval("#details img, #details svg, #details script", (els) => els.length)).toBe(0);
    expect(await xssSentinels(page)).toEqual([]);
    await screenshot(page, "console-details.png");

    // The same visitor writing again in the same session: no second alert.
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "alert-visitor-1", message: "Hello again?" } })).status).toBe(200);
    await page.waitForSelector("#view-messages .msg-text:has-text('Hello again?')", { timeout: 10_000 });
    await page.click("#claim");
    await page.waitForSelector("#view-session:has-text('assigned to you')", { timeout: 10_000 });

    // Muted: a new conversation arrives in the inbox, silently.
    await page.click("#alerts");
    expect(await page.textContent("#alerts")).toBe("Alerts muted");
    expect(await page.getAttribute("#alerts", "aria-pressed")).toBe("false");
    const tonesBefore = await page.evaluate(() => (window as unknown as { __tones: number }).__tones);
    await page.click("#tab-unassigned");
    await visitorArrives(pk, "alert-visitor-2", { customer_name: "Bo" }, "Quiet please");
    await page.locator("#inbox-list button", { hasText: "Quiet please" }).waitFor({ timeout: 10_000 });
    // The event that put it there was handled (the list shows it), and muted alerts stop before
    // anything asynchronous: nothing more was announced.
    expect(await page.evaluate(() => (window as unknown as { __notes: unknown[] }).__notes.length)).toBe(1);
    expect(await page.evaluate(() => (window as unknown as { __tones: number }).__tones)).toBe(tonesBefore);

    // The choice survives a reload; unmuted again, the next one alerts.
    await page.reload();
    await page.waitForSelector("#org-conn:has-text('Live')", { timeout: 10_000 });
    expect(await page.textContent("#alerts")).toBe("Alerts muted");
    await page.click("#alerts");
    expect(await page.textContent("#alerts")).toBe("Alerts on");
    await visitorArrives(pk, "alert-visitor-3", { customer_name: "Cy" }, "Loud please");
    await waitFor(async () => (await page.evaluate(() => (window as unknown as { __notes: { body: string }[] }).__notes)).some((n) => n.body === "Cy: Loud please"), {
      timeoutMs: 10_000,
      message: "the notification after unmuting",
    });
    expect(convId).toBeTruthy();
    await context.close();
  });

  it("a bot's session alerts nobody; its hand-off to a person alerts once", async () => {
    const owner = await signupOrg("Handoff Co");
    const pk = (await owner.createKey("public")).key;
    const channel = (await owner.api("/api/integrations")).json.find((c: any) => c.is_default).id as string;
    const bot = await owner.api(`/api/integrations/${channel}/bot`, { method: "PUT", body: { kind: "flow", config: { greeting: { content: "Hi, I am the bot." }, intents: [] } } });
    expect(bot.status).toBe(200);
    const context = await env.browser.newContext();
    await recordAlerts(context);
    const page = await context.newPage();
    await page.goto(`${parleyOrigin()}/console/`);
    await page.fill("#login-email", owner.email);
    await page.fill("#login-password", owner.password);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#org-conn:has-text('Live')", { timeout: 10_000 });

    const send = async (message: string) => expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "bot-visitor", visitorName: "Hana", message } })).status).toBe(200);
    const polled = async () => ((await api(`/api/chat/poll?apiKey=${pk}&visitorId=bot-visitor&lastTimestamp=0`)).json?.messages ?? []).map((m: any) => m.message);
    await send("hello");
    await waitFor(async () => (await polled()).includes("Hi, I am the bot."), { timeoutMs: 10_000, message: "the bot's greeting" });
    await send("I want a human please");
    const notes = await waitFor(async () => {
      const n = await page.evaluate(() => (window as unknown as { __notes: { title: string; body: string }[] }).__notes);
      return n.length > 0 ? n : null;
    }, { timeoutMs: 10_000, message: "the hand-off's notification" });
    expect(notes).toEqual([{ title: "New conversation", body: "Hana: asked for a person" }]);
    await page.locator("#inbox-list button", { hasText: "Hana" }).waitFor({ timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { __notes: unknown[] }).__notes.length)).toBe(1);
    await context.close();
  });

  it("shows the page the widget's visitor is on (from the loader), without its fragment", async () => {
    const owner = await signupOrg("Page Co");
    const pk = (await owner.createKey("public")).key;
    const url = env.site.page("/shop/anvils", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk}"></script>`));
    const visitor = await (await env.browser.newContext()).newPage();
    await visitor.goto(`${url}?size=50kg#reviews`);
    await visitorSends(await openWidget(visitor), "Is the 50 kg anvil in stock?");
    const { context, page } = await consolePage(env.browser, owner);
    await page.locator("#inbox-list button").first().click();
    await page.waitForSelector("#details dd[data-field='page-url'] a", { timeout: 10_000 });
    expect(await page.getAttribute("#details dd[data-field='page-url'] a", "href")).toBe(`${url}?size=50kg`);
    expect(await page.textContent("dd[data-field='channel']")).toBe("Website · webchat");
    // An unverified visitor's id (their only credential for their history) is not shown.
    expect(await page.textContent("dd[data-field='identity']")).toBe("not verified");
    expect(await page.locator("dd[data-field='user-id']").count()).toBe(0);
    await visitor.context().close();
    await context.close();
  });

  it("shows a verified visitor's own user id (identity verification, docs/identity.md)", async () => {
    const owner = await signupOrg("Verified Co");
    const pk = (await owner.createKey("public")).key;
    const channel = (await owner.api("/api/integrations")).json.find((c: any) => c.is_default).id as string;
    const secret = (await owner.api(`/api/integrations/${channel}/identity-secret`)).json.identity_secret as string;
    const identity_hash = createHmac("sha256", secret).update("customer-4417").digest("hex");
    const session = await api("/chat-widget/session", { body: { key: pk, session_id: "customer-4417", identity_hash, customer_name: "Vera" } });
    expect(session.status).toBe(200);
    const { context, page } = await consolePage(env.browser, owner);
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "customer-4417", message: "It is me", identityHash: identity_hash } })).status).toBe(200);
    await page.locator("#inbox-list button", { hasText: "Vera" }).click();
    await page.waitForSelector("#details dd[data-field='user-id']", { timeout: 10_000 });
    expect(await page.textContent("dd[data-field='user-id']")).toBe("customer-4417");
    expect(await page.textContent("dd[data-field='identity']")).toBe("verified (signed by your site)");
    await context.close();
  });
});
