// The whole support flow in a real browser: a customer's page (another origin) embeds the widget
// by seed 000's script tag; an agent in another browser context answers from the console.
import type { WebSocketRoute } from "playwright-core";
import { describe, expect, it } from "vitest";
import { signupOrg } from "../e2e/harness.ts";
import { consolePage, hostPage, messageTexts, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();

describe("seed 000's <script src=/widget.js data-key> on a customer's page, the console beside it", () => {
  it("visitor and agent chat live: claim, text and quick-button replies, typing, read receipts, unread badge, resolve with tags, history after a reload", async () => {
    const agent = await signupOrg("Acme Support");
    const pk = await agent.createKey("public");
    const url = env.site.page("/seed000", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`));

    const agentSide = await consolePage(env.browser, agent);
    const console_ = agentSide.page;
    const visitorContext = await env.browser.newContext({ viewport: { width: 1000, height: 720 } });
    const page = await visitorContext.newPage();
    await page.goto(url);

    // The launcher opens the chat; the agent's console is connected, so the team shows online.
    const frame = await openWidget(page, "launcher");
    await frame.waitForSelector(".pw-presence.online", { timeout: 10_000 });
    await visitorSends(frame, "Hello, my anvil arrived cracked");

    // The conversation appears in the agent's inbox without a reload.
    const item = console_.locator("#inbox-list button", { hasText: "Hello, my anvil arrived cracked" });
    await item.waitFor({ timeout: 10_000 });
    await item.click();
    await waitFor(async () => (await messageTexts(console_)).includes("Hello, my anvil arrived cracked"), { message: "the visitor's message in the console" });
    await console_.click("#claim");
    await console_.waitForSelector("#view-session:has-text('assigned to you')", { timeout: 10_000 });

    // Typing, both ways.
    await frame.fill("#pw-text", "It is the 50 kg one");
    await frame.dispatchEvent("#pw-text", "input");
    await console_.waitForSelector("#view-typing:has-text('typing')", { timeout: 10_000 });
    await console_.fill("#reply-text", "So sorry");
    await console_.dispatchEvent("#reply-text", "input");
    await frame.waitForSelector(".typing:has-text('typing')", { timeout: 10_000 });
    await frame.press("#pw-text", "Enter");

    // A text reply, then a question with quick buttons.
    await console_.fill("#reply-text", "So sorry about that! We will make it right.");
    await console_.press("#reply-text", "Enter");
    await console_.check("#reply-quick");
    await console_.fill("#reply-buttons", "Refund, Replacement");
    await console_.fill("#reply-text", "Would you like a refund or a replacement?");
    await console_.click("#reply-form button[type=submit]");
    await frame.waitForSelector(".msg:not(.mine) .msg-text:has-text('We will make it right.')", { timeout: 10_000 });
    const replacement = frame.locator(".msg:not(.mine) button.choice", { hasText: "Replacement" });
    await replacement.waitFor({ timeout: 10_000 });
    // The agent's console read the visitor's messages: the widget says so.
    await frame.waitForSelector(".pw-seen:has-text('Seen')", { timeout: 10_000 });
    await screenshot(page, "widget.png");

    // The visitor answers by clicking; the agent sees the button's value as the reply.
    await replacement.click();
    await waitFor(async () => (await messageTexts(console_)).includes("Replacement"), { message: "the clicked value in the console" });
    await screenshot(console_, "console.png");

    // Closed chat: a new reply raises the unread badge on the launcher; opening clears it.
    await page.click("#parley-launcher");
    await page.waitForSelector("#parley-frame", { state: "hidden" });
    await console_.fill("#reply-text", "A new anvil ships today.");
    await console_.press("#reply-text", "Enter");
    await page.waitForSelector("#parley-launcher .parley-badge:has-text('1')", { timeout: 10_000 });
    expect(await page.getAttribute("#parley-launcher", "aria-label")).toBe("Open chat, 1 unread message");
    await page.click("#parley-launcher");
    await page.waitForSelector("#parley-launcher .parley-badge", { state: "hidden", timeout: 10_000 });

    // Resolve with tags.
    await console_.fill("#resolve-tags", "shipping, damaged");
    await console_.click("#resolve");
    await console_.waitForSelector("#view-session:has-text('Resolved · tags: shipping, damaged')", { timeout: 10_000 });

    // A reload keeps the history (same visitor id from localStorage, same conversation).
    await page.reload();
    const again = await openWidget(page);
    await waitFor(async () => {
      const texts = await messageTexts(again);
      return ["Hello, my anvil arrived cracked", "So sorry about that! We will make it right.", "Replacement", "A new anvil ships today."].every((t) => texts.includes(t));
    }, { timeoutMs: 10_000, message: "the history after a reload" });

    expect(await xssSentinels(page)).toEqual([]);
    await visitorContext.close();
    await agentSide.context.close();
  });

  it("shows a visible reconnecting state when the network drops, then resumes and sends what was written meanwhile", async () => {
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    const context = await env.browser.newContext();
    // The visitor's sockets pass through the test, which can cut them (and refuse new ones)
    // like a dropped network would; offline emulation leaves open WebSockets alone.
    let down = false;
    const open = new Set<WebSocketRoute>();
    await context.routeWebSocket(/\/ws\/visitor/, (ws) => {
      if (down) return void ws.close({ code: 1011, reason: "network down" });
      ws.connectToServer();
      open.add(ws);
    });
    const page = await context.newPage();
    await page.goto(env.site.page("/offline", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`)));
    const frame = await openWidget(page);
    await visitorSends(frame, "Before the tunnel");
    down = true;
    for (const ws of open) await ws.close({ code: 1011, reason: "network down" });
    await frame.waitForSelector(".conn.warn:has-text('Reconnecting')", { timeout: 10_000 });
    await frame.fill("#pw-text", "Written in the tunnel");
    await frame.press("#pw-text", "Enter");
    await frame.waitForSelector(".msg.pending:has-text('Waiting for the connection')", { timeout: 10_000 });
    down = false;
    await frame.click(".conn button:has-text('Retry now')").catch(() => undefined); // skip the backoff wait if still shown
    await waitFor(async () => (await messageTexts(frame)).join("|") === "Before the tunnel|Written in the tunnel", { timeoutMs: 15_000, message: "the outbox sent after the reconnect" });
    await frame.waitForSelector(".conn", { state: "hidden", timeout: 10_000 });
    await context.close();
  });
});
