// The typing preview in a real browser: a webchat channel that opts in shows the agent what the
// visitor types before it is sent; the widget says so under its composer; the draft is text.
import { describe, expect, it } from "vitest";
import { signupOrg } from "../e2e/harness.ts";
import { consolePage, hostPage, openWidget, parleyOrigin, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();

describe("typing preview", () => {
  it("opted in: the widget discloses it, the agent sees the draft as typed (as text), and it clears once sent", async () => {
    const agent = await signupOrg("Preview Co");
    const pk = await agent.createKey("public");
    const channels = await agent.api<{ id: string; is_default: boolean; kind: string }[]>("/api/integrations");
    const channel = channels.json.find((c) => c.kind === "webchat" && c.is_default)!;
    const patched = await agent.api(`/api/integrations/${channel.id}`, { method: "PATCH", body: { typing_preview: true } });
    expect(patched.status).toBe(200);

    const visitor = await (await env.browser.newContext()).newPage();
    await visitor.goto(env.site.page("/preview", hostPage(`<script src="${parleyOrigin()}/widget.js" data-key="${pk.key}"></script>`)));
    const frame = await openWidget(visitor);
    await frame.waitForSelector("#pw-preview:visible", { timeout: 10_000 });
    expect(await frame.textContent("#pw-preview")).toContain("sees what you type");
    expect(await frame.getAttribute("#pw-text", "aria-describedby")).toBe("pw-preview");
    await visitorSends(frame, "Hi there");

    const { page } = await consolePage(env.browser, agent);
    const item = page.locator("#inbox-list button").first();
    await item.waitFor({ timeout: 10_000 });
    await item.click();
    await page.waitForSelector("#view-messages .msg-text:has-text('Hi there')", { timeout: 10_000 });
    expect(await page.isHidden("#view-draft")).toBe(true);

    await frame.click("#pw-text");
    await frame.locator("#pw-text").pressSequentially("Where is my <img src=x onerror=window.__xss=51> order", { delay: 20 });
    await waitFor(async () => ((await page.textContent("#view-draft")) ?? "").endsWith("is writing: Where is my <img src=x onerror=window.__xss=51> order"), {
      timeoutMs: 10_000,
      message: "the whole draft in the console",
    });
    expect(await page.locator("#view-draft img").count()).toBe(0);

    await frame.press("#pw-text", "Enter");
    await page.waitForSelector("#view-messages .msg-text:has-text('Where is my')", { timeout: 10_000 });
    await page.waitForSelector("#view-draft", { state: "hidden", timeout: 10_000 });
    expect(await xssSentinels(page)).toEqual([]);
  });
});
