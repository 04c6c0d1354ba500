// The widget's features that come through the Web SDK (sdk/src/index.ts, bundled into the widget):
// a file picked in the widget becomes an image message in the widget and in the agent's console,
// and a waiting customer sees their place in the agents' queue.
import { describe, expect, it } from "vitest";
import { api, expectStatus, signupOrg } from "../e2e/harness.ts";
import { consolePage, loadedImages, png, hostPage, messageTexts, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();

const PNG = png();


describe("the widget on the Web SDK", () => {
  it("uploads an image from the attach button: it shows in the widget and in the agent's console; a refused file says why", async () => {
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    const page = await (await env.browser.newContext()).newPage();
    await page.goto(env.site.page("/upload", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`)));
    const frame = await openWidget(page);
    await visitorSends(frame, "Here is a photo of the dent");

    // The attach button opens the file picker; the picked file goes up and becomes a message.
    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), frame.click(".pw-attach")]);
    expect(chooser.isMultiple()).toBe(true);
    await chooser.setFiles({ name: "dent.png", mimeType: "image/png", buffer: PNG });
    await waitFor(async () => (await loadedImages(frame)).includes("dent.png"), { timeoutMs: 15_000, message: "the image message in the widget" });
    expect(await frame.locator(".msg.pending").count()).toBe(0);
    expect(await frame.getAttribute(".msg.mine img.msg-image", "src")).toMatch(new RegExp(`^${parleyOrigin()}/files/`));

    // The agent's console shows the same image.
    const { context, page: console_ } = await consolePage(env.browser, agent);
    const item = console_.locator("#inbox-list button").first();
    await item.waitFor({ timeout: 10_000 });
    await item.click();
    await waitFor(async () => (await messageTexts(console_)).includes("Here is a photo of the dent"), { message: "the conversation in the console" });
    await waitFor(async () => (await loadedImages(console_)).includes("dent.png"), { timeoutMs: 15_000, message: "the image message in the console" });

    // A file the server does not accept (HTML) is refused, and the widget says so.
    await frame.setInputFiles("#pw-file", { name: "page.html", mimeType: "text/html", buffer: Buffer.from("<!doctype html><script>window.__xss=1</script>") });
    await frame.waitForSelector(".msg.pending.failed:has-text('unsupported_media_type')", { timeout: 15_000 });
    expect(await frame.textContent(".msg.pending.failed")).toContain("page.html");
    await frame.click(".msg.pending.failed button:has-text('Dismiss')");
    await frame.waitForSelector(".msg.pending", { state: "detached" });

    await screenshot(page, "widget-upload.png");
    expect(await xssSentinels(page)).toEqual([]);
    await page.context().close();
    await context.close();
  });

  it("shows a waiting customer their place in line, which moves as the agents take conversations, and goes away once an agent has theirs", async () => {
    const agent = await signupOrg();
    const pk = await agent.createKey("public");
    expectStatus(await agent.api("/api/routing/queues", { body: { name: "Support" } }), 201, "create a routing queue");

    // Someone is already waiting: a customer of the same organisation over the REST API.
    const other = expectStatus(await api("/chat-widget/session", { body: { key: pk.key, customer_name: "Earlier customer" } }), 200, "the other customer's session").json;
    expectStatus(await api("/api/chat/send", { body: { apiKey: pk.key, visitorId: other.external_id, message: "Is anyone there?" } }), 200, "the other customer's message");

    const page = await (await env.browser.newContext()).newPage();
    await page.goto(env.site.page("/queue", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`)));
    const frame = await openWidget(page);
    expect(await frame.isVisible(".pw-queue")).toBe(false);
    await visitorSends(frame, "Hello, I need help with my order");
    await frame.waitForSelector(".pw-queue:has-text('You are number 2 in line')", { timeout: 10_000 });
    expect(await frame.textContent(".pw-queue")).toMatch(/^You are number 2 in line \(about \d+ min\)$/);
    await screenshot(page, "widget-queue.png");

    // The agent takes the earlier customer: this one is next.
    expectStatus(await agent.api(`/api/conversations/${other.conversation_id}/assign`, { body: {} }), 200, "claim the earlier customer");
    await frame.waitForSelector(".pw-queue:has-text('You are number 1 in line')", { timeout: 10_000 });

    // Then this one: no more place in line.
    const mine = await waitFor(async () => (await agent.api("/api/conversations/?filter=unassigned")).json.find((c: any) => c.id !== other.conversation_id), { message: "the visitor's conversation" });
    expectStatus(await agent.api(`/api/conversations/${mine.id}/assign`, { body: {} }), 200, "claim the visitor");
    await frame.waitForSelector(".pw-queue", { state: "hidden", timeout: 10_000 });
    await page.context().close();
  });
});
