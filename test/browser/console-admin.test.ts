// The console's settings screens in a real browser: an owner manages API keys (the secret shown
// once), webchat channels (the snippet pasted on a customer's page works) and agents (add, change
// role, disable: the disabled agent's open console drops to the login screen). Plain agents see
// no settings and the routes answer them 403.
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { consolePage, hostPage, openWidget, parleyOrigin, screenshot, useBrowser, visitorSends, waitFor, xssSentinels } from "./browser.ts";

const env = useBrowser();

async function openSettings(page: Page) {
  await page.click("#nav-settings");
  await page.waitForSelector("#settings:not([hidden]) #key-form", { timeout: 10_000 });
}

/** Text of the `<code>` in a copy box inside `root`, matching `cls` (key-secret, snippet). */
const copied = (page: Page, root: string, cls: string) => page.textContent(`${root} .copy-box.${cls} code`, { timeout: 10_000 });

const XSS_NAME = "<img src=x onerror=window.__xss=21>";

describe("the console's settings (owners and admins)", () => {
  it("an owner creates keys (each secret shown once), revokes one, creates a webchat channel whose pasted snippets work on the allowed site, and adds an agent", async () => {
    const owner = await signupOrg("Snippet Co");
    const { context, page } = await consolePage(env.browser, owner);
    await openSettings(page);

    // A public key: shown once, with seed 000's snippet.
    await page.fill("#key-name", "Website");
    await page.selectOption("#key-kind", "public");
    await page.click("#key-form button[type=submit]");
    const pk = (await copied(page, "#key-result", "key-secret"))!;
    expect(pk).toMatch(/^pk_[\w-]{20,}$/);
    const widgetTag = (await copied(page, "#key-result", "snippet"))!;
    expect(widgetTag).toBe(`<script src="${parleyOrigin()}/widget.js" data-key="${pk}"></script>`);
    const reactComponent = (await copied(page, "#key-result", "snippet-react"))!;
    expect(reactComponent).toContain(`script.src = "${parleyOrigin()}/widget.js";`);
    expect(reactComponent).toContain(`script.setAttribute("data-key", "${pk}");`);
    // The list shows the prefix, never the key.
    const listed = page.locator("tr[data-key-id]", { hasText: "Website" });
    await listed.waitFor({ timeout: 10_000 });
    expect(await listed.textContent()).toContain(pk.slice(0, 7));
    expect(await listed.textContent()).not.toContain(pk);

    // A secret key, then revoked: it stops working.
    await page.fill("#key-name", "CRM sync");
    await page.selectOption("#key-kind", "secret");
    await page.click("#key-form button[type=submit]");
    await page.waitForSelector("#key-result .copy-box.key-secret code:has-text('sk_')", { timeout: 10_000 });
    const sk = (await copied(page, "#key-result", "key-secret"))!;
    expect((await api("/auth/me", { headers: { authorization: `Bearer ${sk}` } })).status).toBe(200);
    const row = page.locator("tr[data-key-id]", { hasText: "CRM sync" });
    await row.locator("button", { hasText: "Revoke" }).click();
    await row.locator("button", { hasText: "Confirm revoke" }).click();
    await row.waitFor({ state: "detached", timeout: 10_000 });
    expect((await api("/auth/me", { headers: { authorization: `Bearer ${sk}` } })).status).toBe(401);
    expect(await page.locator("#key-result").textContent()).not.toContain(sk); // the secret is gone from the page

    // A webchat channel for the customer's site: the snippet to paste, shown with its token.
    await page.selectOption("#channel-kind", "webchat");
    await page.fill("#channel-name", "Shop");
    await page.fill("#channel-origins", env.site.origin);
    await page.fill("#channel-title", "Shop help");
    await page.click("#channel-form button[type=submit]");
    const embedTag = (await copied(page, "#channel-result", "snippet"))!;
    expect(embedTag).toMatch(new RegExp(`^<script src="${parleyOrigin()}/chat-widget/embed\\.js" data-embed-token="ew_[\\w-]{20,}"></script>$`));
    const channelRow = page.locator("tr[data-channel-id]", { hasText: "Shop" });
    await channelRow.waitFor({ timeout: 10_000 });
    expect(await channelRow.textContent()).toContain(env.site.origin);
    await screenshot(page, "console-settings.png");

    // Both snippets, pasted as shown, work on the customer's site.
    const visitor = await env.browser.newContext();
    for (const [path, tag, text] of [["/pasted-embed", embedTag, "Hello from the embed snippet"], ["/pasted-widget", widgetTag, "Hello from the widget snippet"]] as const) {
      const p = await visitor.newPage();
      await p.goto(env.site.page(path, hostPage(tag)));
      await visitorSends(await openWidget(p), text);
    }
    // The React component as shown, run with a stand-in for React's useEffect (mount once).
    const asPlainScript = reactComponent.replace(/^import .*$/m, "const useEffect = (effect) => { effect(); };").replace("export default function", "function");
    const reactVisitor = await env.browser.newContext(); // another visitor (the same key would resume the first one's chat)
    const p2 = await reactVisitor.newPage();
    await p2.goto(env.site.page("/pasted-react", hostPage(`<script>${asPlainScript}\nChatWidget();</script>`, "A React app")));
    await visitorSends(await openWidget(p2), "Hello from the React snippet");
    // "Get snippet" makes a new token for an existing channel; it works too.
    await channelRow.locator("button", { hasText: "Get snippet" }).click();
    await page.waitForSelector(`#channel-result code:not(:has-text("${embedTag.match(/ew_[\w-]+/)![0]}"))`, { timeout: 10_000 });
    const second = (await copied(page, "#channel-result", "snippet"))!;
    expect(second).not.toBe(embedTag);
    const p3 = await visitor.newPage();
    await p3.goto(env.site.page("/pasted-again", hostPage(second)));
    await visitorSends(await openWidget(p3), "Hello from a second token");

    // The conversations reach the inbox.
    await page.click("#nav-inbox");
    for (const text of ["Hello from the embed snippet", "Hello from the widget snippet", "Hello from the React snippet", "Hello from a second token"]) {
      await page.locator("#inbox-list button", { hasText: text }).waitFor({ timeout: 10_000 });
    }

    // An agent, added with markup in the name (shown as text), promoted, then back.
    await openSettings(page);
    const email = `new-agent-${crypto.randomUUID()}@e2e.parley.test`;
    await page.fill("#agent-name", XSS_NAME);
    await page.fill("#agent-email", email);
    await page.fill("#agent-password", "temporary password");
    await page.click("#agent-form button[type=submit]");
    const agentRow = page.locator("tr[data-agent-id]", { hasText: email });
    await agentRow.waitFor({ timeout: 10_000 });
    expect(await agentRow.locator("td").first().textContent()).toBe(XSS_NAME);
    await agentRow.locator("select").selectOption("admin");
    await waitFor(async () => (await owner.api("/api/company/agents")).json.find((a: any) => a.email === email)?.role === "admin", { message: "the role change" });
    // A new temporary password for the agent, set from the console: it works, the first one does not.
    // The form is opened and typed in before the role change back, whose reload draws the team list
    // again: the form stays open with what was typed.
    await agentRow.locator("button", { hasText: "Set password" }).click();
    await agentRow.locator("input.new-password").fill("second temporary password");
    const drawnBefore = await agentRow.elementHandle();
    await agentRow.locator("select").selectOption("agent");
    await waitFor(async () => (await owner.api("/api/company/agents")).json.find((a: any) => a.email === email)?.role === "agent", { message: "the role change back" });
    await page.waitForFunction((row) => !row?.isConnected, drawnBefore, { timeout: 10_000 });
    expect(await agentRow.locator("input.new-password").inputValue()).toBe("second temporary password");
    await agentRow.locator("button", { hasText: "Save password" }).click();
    await page.waitForSelector(`#team-note:has-text('New password set for')`, { timeout: 10_000 });
    expect((await api("/auth/login", { body: { email, password: "temporary password" } })).status).toBe(401);
    expect((await api("/auth/login", { body: { email, password: "second temporary password" } })).status).toBe(200);
    // The owner's own row has no controls (nobody disables or re-roles themselves).
    const ownRow = page.locator("tr[data-agent-id]", { hasText: owner.email });
    expect(await ownRow.locator("button, select").count()).toBe(0);

    expect(await xssSentinels(page)).toEqual([]);

    // Logging out forgets what the settings showed; logging in again on the same page shows them afresh.
    await page.fill("#key-name", "Last one");
    await page.click("#key-form button[type=submit]");
    await page.waitForSelector("#key-result .copy-box.key-secret", { timeout: 10_000 });
    const last = (await copied(page, "#key-result", "key-secret"))!;
    await page.click("#logout");
    await page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
    expect(await page.evaluate(() => document.body.innerHTML)).not.toContain(last);
    await page.fill("#login-email", owner.email);
    await page.fill("#login-password", owner.password);
    await page.click("#login-form button[type=submit]");
    await page.waitForSelector("#app:not([hidden])", { timeout: 10_000 });
    await openSettings(page);
    await page.locator("tr[data-key-id]", { hasText: "Last one" }).waitFor({ timeout: 10_000 });
    await page.locator("tr[data-channel-id]", { hasText: "Shop" }).waitFor({ timeout: 10_000 });
    await page.locator("tr[data-agent-id]", { hasText: email }).waitFor({ timeout: 10_000 });
    expect(await page.textContent("#key-result")).toBe("");

    await visitor.close();
    await reactVisitor.close();
    await context.close();
  });

  it("an owner disables an agent: the agent's open console drops to the login screen and cannot log in again", async () => {
    const owner = await signupOrg("Disable Co");
    const email = `agent-${crypto.randomUUID()}@e2e.parley.test`;
    const made = await owner.api("/api/company/agents", { body: { name: "Dana Agent", email, password: "agent password", role: "agent" } });
    expect(made.status).toBe(201);
    const ownerSide = await consolePage(env.browser, owner);
    const agentSide = await consolePage(env.browser, { email, password: "agent password" });

    // The owner sees Dana online in the team list.
    await ownerSide.page.waitForSelector(`#team-list li.online[data-agent-id="${made.json.id}"]`, { timeout: 10_000 });
    await openSettings(ownerSide.page);
    const row = ownerSide.page.locator(`tr[data-agent-id="${made.json.id}"]`);
    await row.locator(".agent-status:has-text('Online')").waitFor({ timeout: 10_000 });
    await row.locator("button", { hasText: "Disable" }).click();
    await row.locator(".agent-status:has-text('Disabled')").waitFor({ timeout: 10_000 });
    expect(await ownerSide.page.textContent("#team-note")).toBe("Dana Agent is disabled and logged out.");

    // Dana's console: the inbox socket closed (1008), the session is gone: back to the login.
    await agentSide.page.waitForSelector("#login:not([hidden])", { timeout: 10_000 });
    expect(await agentSide.page.textContent("#login-error")).toContain("session has ended");
    await agentSide.page.fill("#login-email", email);
    await agentSide.page.fill("#login-password", "agent password");
    await agentSide.page.click("#login-form button[type=submit]");
    await agentSide.page.waitForSelector("#login-error:has-text('Wrong email or password')", { timeout: 10_000 });
    // Nor is she online any more for her teammates.
    await ownerSide.page.click("#nav-inbox");
    await ownerSide.page.waitForSelector(`#team-list li[data-agent-id="${made.json.id}"]`, { state: "detached", timeout: 10_000 });

    // Enabled again, she can log in.
    await openSettings(ownerSide.page);
    await row.locator("button", { hasText: "Enable" }).click();
    await row.locator(".agent-status:not(:has-text('Disabled'))").waitFor({ timeout: 10_000 });
    await agentSide.page.fill("#login-password", "agent password"); // a failed login clears it
    await agentSide.page.click("#login-form button[type=submit]");
    await agentSide.page.waitForSelector("#app:not([hidden])", { timeout: 10_000 });
    await ownerSide.context.close();
    await agentSide.context.close();
  });

  it("a plain agent sees no settings, and the admin routes answer 403 even when called from the console's own page", async () => {
    const owner = await signupOrg();
    const email = `agent-${crypto.randomUUID()}@e2e.parley.test`;
    expect((await owner.api("/api/company/agents", { body: { name: "Plain", email, password: "agent password", role: "agent" } })).status).toBe(201);
    const { context, page } = await consolePage(env.browser, { email, password: "agent password" });
    expect(await page.isHidden("#nav-settings")).toBe(true);
    expect(await page.isHidden("#settings")).toBe(true);
    // The team list works for everyone.
    await page.waitForSelector("#team-list li.online:has-text('(you)')", { timeout: 10_000 });
    const statuses = await page.evaluate(async (ownerId) => {
      const csrf = (await (await fetch("/auth/me")).json()).csrf_token as string;
      const headers = { "content-type": "application/json", "x-csrftoken": csrf };
      const calls: [string, string, unknown?][] = [
        ["GET", "/api/company/api-keys"],
        ["POST", "/api/company/api-keys", { name: "k", kind: "secret" }],
        ["POST", "/api/integrations/webchat", { name: "w", allowed_origins: [] }],
        ["GET", "/api/integrations"],
        ["POST", "/api/company/agents", { name: "x", email: "x@example.test", password: "long enough", role: "admin" }],
        ["PATCH", `/api/company/agents/${ownerId}`, { disabled: true }],
      ];
      const out: number[] = [];
      for (const [method, path, body] of calls) out.push((await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })).status);
      return out;
    }, owner.user.id);
    expect(statuses).toEqual([403, 403, 403, 403, 403, 403]);
    await context.close();
  });
});
