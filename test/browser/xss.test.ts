// RELIABILITY S12 in a real browser: markup in names, messages, rich media and file names shows as
// text in the widget and in the console, and no script runs anywhere (window.__xss stays unset).
import { describe, expect, it } from "vitest";
import { signupOrg } from "../e2e/harness.ts";
import { consolePage, hostPage, messageTexts, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();

const PAYLOADS = [
  "<img src=x onerror=window.__xss=1>",
  "<svg onload=window.__xss=2>",
  '"><script>window.__xss=3</script>',
  "[click me](javascript:window.__xss=4)",
  '<a href="java\tscript:window.__xss=5">link</a>',
  '<iframe srcdoc="<script>parent.__xss=6</script>"></iframe>',
  '<div style="background:url(javascript:window.__xss=7);width:expression(window.__xss=8)">css</div>',
];
const NAME = "<img src=x onerror=window.__xss=9>";

/** Elements that markup would have created, inside the message lists and titles. */
const injected = () =>
  [...document.querySelectorAll(".messages img[src='x'], .messages svg, .messages script, .messages iframe, a[href^='javascript'], a[href^='java'], #inbox-list img, #view-title *")].length;

describe("markup in names, messages and rich media renders as text in the widget and the console", () => {
  it("shows every payload as text and runs none of it", async () => {
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    const escaped = NAME.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
    const page = await (await env.browser.newContext()).newPage();
    await page.goto(env.site.page("/xss", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}" data-customer-name="${escaped}"></script>`)));
    const { context, page: console_ } = await consolePage(env.browser, agent);

    const frame = await openWidget(page);
    for (const p of PAYLOADS) await visitorSends(frame, p);

    // The console: the visitor's name and messages, as text.
    const item = console_.locator("#inbox-list button", { hasText: NAME });
    await item.waitFor({ timeout: 10_000 });
    await item.click();
    expect(await console_.textContent("#view-title")).toBe(NAME);
    await waitFor(async () => (await messageTexts(console_)).length >= PAYLOADS.length, { message: "the payloads in the console" });
    expect(await messageTexts(console_)).toEqual(PAYLOADS);

    // The agent answers with the same payloads in every rich media field (REST, as a bot would).
    const conv = (await agent.api("/api/conversations/?filter=all")).json[0];
    const send = async (body: object) => expect((await agent.api(`/api/conversations/${conv.id}/messages`, { body })).status).toBe(201);
    const scriptUrl = await agent.api(`/api/conversations/${conv.id}/messages`, { body: { content: "", content_type: "image", rich_media: { url: "javascript:window.__xss=10" } } });
    expect(scriptUrl.status).toBe(400); // refused at the door; the UIs also drop non-http(s) URLs
    await send({ content: PAYLOADS[0], content_type: "image", rich_media: { url: "https://images.example/anvil.png", alt: PAYLOADS[1] } });
    await send({ content: PAYLOADS[2], content_type: "file", rich_media: { url: "https://files.example/invoice.pdf", filename: PAYLOADS[0], size: 2048, mime_type: PAYLOADS[1] } });
    await send({ content: PAYLOADS[3], content_type: "quick_button", rich_media: { buttons: [{ label: PAYLOADS[0], value: PAYLOADS[0] }] } });
    await send({ content: "", content_type: "carousel", rich_media: { cards: [{ title: PAYLOADS[0], subtitle: PAYLOADS[5], image_url: "https://images.example/card.png", buttons: [{ label: PAYLOADS[1], value: PAYLOADS[1] }] }] } });
    await send({ content: PAYLOADS[4], content_type: "dropdown", rich_media: { placeholder: PAYLOADS[0], options: [{ label: PAYLOADS[6], value: PAYLOADS[6] }] } });

    // The widget shows them as text; clicking the markup-labelled button sends its value as text.
    const button = frame.locator(".msg:not(.mine) button.choice", { hasText: PAYLOADS[0] });
    await button.waitFor({ timeout: 10_000 });
    await frame.waitForSelector(".file-card .file-name", { timeout: 10_000 });
    expect(await frame.textContent(".file-card .file-name")).toBe(PAYLOADS[0]);
    expect(await frame.textContent(".card strong")).toBe(PAYLOADS[0]);
    expect(await frame.locator(".dropdown option").allTextContents()).toEqual([PAYLOADS[0], PAYLOADS[6]]);
    await button.click();
    await waitFor(async () => (await messageTexts(console_, ".messages .msg:not(.mine):not(.pending) .msg-text")).at(-1) === PAYLOADS[0], { message: "the clicked value in the console" });

    await screenshot(page, "widget-markup.png");
    expect(await frame.evaluate(injected)).toBe(0);
    expect(await console_.evaluate(injected)).toBe(0);
    expect(await xssSentinels(page)).toEqual([]);
    expect(await xssSentinels(console_)).toEqual([]);
    await page.context().close();
    await context.close();
  });
});
