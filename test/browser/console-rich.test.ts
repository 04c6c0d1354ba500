// Replying from the console with more than text and quick buttons, in a real browser: an image
// uploaded from the agent's computer (R2, through the agent upload routes), a dropdown and a
// carousel in seed 001's shapes; the visitor's widget renders each and the visitor's choices
// come back to the agent as replies. A file the server refuses says why.
import { describe, expect, it } from "vitest";
import { signupOrg } from "../e2e/harness.ts";
import { consolePage, loadedImages, png, hostPage, messageTexts, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();



describe("rich replies from the console", () => {
  it("an agent sends an image with a caption, a dropdown and a carousel; the visitor sees each and answers by choosing; a refused file says why", async () => {
    const agent = await signupOrg("Rich Co");
    const pk = await agent.createKey("public");
    const visitor = await (await env.browser.newContext()).newPage();
    await visitor.goto(env.site.page("/rich", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`)));
    const frame = await openWidget(visitor);
    await visitorSends(frame, "Which part do I need?");

    const { context, page } = await consolePage(env.browser, agent);
    const item = page.locator("#inbox-list button").first(); // the only conversation (previews come from live events)
    await item.waitFor({ timeout: 10_000 });
    await item.click();
    await page.click("#claim");
    await page.waitForSelector("#view-session:has-text('assigned to you')", { timeout: 10_000 });

    // An image from the agent's computer; the reply text is its caption.
    await page.fill("#reply-text", "This is the replacement part");
    await page.setInputFiles("#upload-file", { name: "part.png", mimeType: "image/png", buffer: png() });
    await waitFor(async () => (await loadedImages(frame)).includes("part.png") || (await loadedImages(frame)).includes("This is the replacement part"), {
      timeoutMs: 15_000,
      message: "the image in the widget",
    });
    expect(await frame.textContent(".msg:not(.mine) figcaption")).toBe("This is the replacement part");
    expect(await frame.getAttribute(".msg:not(.mine) img.msg-image", "src")).toMatch(new RegExp(`^${parleyOrigin()}/files/`));
    await waitFor(async () => (await loadedImages(page)).length === 1, { timeoutMs: 15_000, message: "the image in the console" });
    expect(await page.inputValue("#reply-text")).toBe(""); // the caption went with it
    expect(await page.textContent("#upload-status")).toBe("");

    // A file the server does not accept: nothing is sent, and the console says why.
    await page.setInputFiles("#upload-file", { name: "page.html", mimeType: "text/html", buffer: Buffer.from("<!doctype html><script>window.__xss=41</script>") });
    await page.waitForSelector("#upload-status.error:has-text('page.html was not sent')", { timeout: 15_000 });
    expect(await page.textContent("#upload-status")).toContain("only PNG, JPEG, GIF, WebP, PDF, ZIP and plain text");

    // A dropdown; the visitor picks an option and sends it.
    await page.check("#reply-quick");
    await page.selectOption("#reply-choices-as", "dropdown");
    await page.fill("#reply-buttons", "Small, Medium, Large");
    await page.fill("#reply-text", "Which size is your anvil?");
    await page.click("#reply-form button[type=submit]");
    const select = frame.locator(".msg:not(.mine) .dropdown select");
    await select.waitFor({ timeout: 10_000 });
    expect(await select.locator("option").allTextContents()).toEqual(["Choose…", "Small", "Medium", "Large"]);
    await select.selectOption("Medium");
    await frame.click(".msg:not(.mine) .dropdown button:has-text('Send')");
    await waitFor(async () => (await messageTexts(page)).includes("Medium"), { timeoutMs: 10_000, message: "the chosen option in the console" });

    // Cards: a malformed line is refused before sending; then a carousel the visitor answers.
    await page.check("#reply-cards");
    expect(await page.isChecked("#reply-quick")).toBe(false);
    await page.fill("#reply-cards-text", " | no title here");
    await page.click("#reply-form button[type=submit]");
    await page.waitForSelector("#view-error:has-text('Cards: card 1 needs a title')", { timeout: 10_000 });
    await page.fill("#reply-cards-text", "Rocket skates | Size 42 | | Buy skates, Details\nGiant magnet | Holds 2 t");
    await page.fill("#reply-text", "You might also like:");
    await page.click("#reply-form button[type=submit]");
    const cards = frame.locator(".msg:not(.mine) .carousel .card");
    await cards.first().waitFor({ timeout: 10_000 });
    expect(await cards.locator("strong").allTextContents()).toEqual(["Rocket skates", "Giant magnet"]);
    await screenshot(visitor, "widget-rich.png");
    await cards.first().locator("button", { hasText: "Buy skates" }).click();
    await waitFor(async () => (await messageTexts(page)).includes("Buy skates"), { timeoutMs: 10_000, message: "the card button's value in the console" });
    await screenshot(page, "console-rich.png");

    expect(await xssSentinels(page)).toEqual([]);
    expect(await xssSentinels(visitor)).toEqual([]);
    await visitor.context().close();
    await context.close();
  });
});
