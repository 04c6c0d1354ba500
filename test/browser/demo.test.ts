// The demo page (`npm start` prints /demo/?key=pk_…): the real widget, embedded by seed 000's
// snippet with the key from the address; without a key, a notice that says how to get one.
import type { ConsoleMessage } from "playwright-core";
import { describe, expect, it } from "vitest";
import { signupOrg } from "../e2e/harness.ts";
import { messageTexts, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor } from "./browser.ts";

const env = useBrowser({ site: false });

describe("the demo page", () => {
  it("embeds the real widget with the key from ?key=, and chats", async () => {
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    const page = await (await env.browser.newContext()).newPage();
    const errors: string[] = [];
    page.on("console", (m: ConsoleMessage) => m.type() === "error" && errors.push(m.text()));
    await page.goto(`${parleyOrigin()}/demo/?key=${pk.key}`);
    expect(await page.isVisible("#notice")).toBe(false);
    expect(await page.textContent("#snippet")).toBe(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`);
    // Seed 000's loader made the launcher and the frame; there is no other chat on the page.
    expect(await page.locator("script[src$='/widget.js'][data-key]").count()).toBe(1);
    const frame = await openWidget(page, "launcher");
    expect(await page.locator(".chat, #chat-body, #composer-text").count()).toBe(0);
    await visitorSends(frame, "Hello from the demo page");
    const conv = await waitFor(async () => (await agent.api("/api/conversations/?filter=all")).json[0], { message: "the conversation" });
    expect((await agent.api(`/api/conversations/${conv.id}/messages`)).json.map((m: { content: string }) => m.content)).toEqual(["Hello from the demo page"]);
    await screenshot(page, "demo.png");

    // "Start over as a new visitor": a fresh id, an empty chat.
    const before = await page.evaluate((k) => localStorage.getItem(`cw_sid_${k}`), pk.key);
    await page.click("#forget");
    await page.waitForLoadState("load");
    const again = await openWidget(page);
    await again.waitForSelector(".pw-welcome", { state: "visible" });
    expect(await messageTexts(again)).toEqual([]);
    expect(await page.evaluate((k) => localStorage.getItem(`cw_sid_${k}`), pk.key)).not.toBe(before);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("without a key says how to get one, and embeds nothing", async () => {
    const page = await (await env.browser.newContext()).newPage();
    await page.goto(`${parleyOrigin()}/demo/`);
    await page.waitForSelector("#notice:not([hidden])");
    expect(await page.textContent("#notice")).toBe("This demo page needs a public key in its address. Start Parley with npm start and open the demo URL it prints (it ends in ?key=pk_…).");
    await page.waitForTimeout(500);
    await screenshot(page, "demo-no-key.png");
    expect(await page.locator("#parley-launcher, #parley-frame, script[src$='/widget.js']").count()).toBe(0);
    expect(await page.isVisible("#about")).toBe(false);
    await page.context().close();
  });
});
