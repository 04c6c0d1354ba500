// The console's audit log (RELIABILITY.md S2) in a real browser: an owner sees who changed what,
// newest first, with hostile names as inert text, filters it by action and by who, and pages back
// with "Older". A plain agent's console has no settings, and the route answers them 403.
import { describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { consolePage, useBrowser, xssSentinels } from "./browser.ts";

const env = useBrowser({ site: false });

const XSS_NAME = "<img src=x onerror=window.__xss=41>";

describe("the console's audit log", () => {
  it("shows who changed what, newest first, hostile names as text, never a secret; filters by action and by who; 'Older' pages back", async () => {
    const owner = await signupOrg("Audit Co");
    const key = await owner.createKey("secret", XSS_NAME);
    expect((await owner.api(`/api/company/api-keys/${key.id}`, { method: "DELETE" })).status).toBe(200);
    const email = `audited-${crypto.randomUUID()}@e2e.parley.test`;
    const agent = await owner.api("/api/company/agents", { body: { name: XSS_NAME, email, password: "agent password 1", role: "agent" } });
    expect(agent.status).toBe(201);
    for (let i = 0; i < 55; i++) expect((await owner.api("/api/routing/queues", { body: { name: `queue ${i}`, auto_assign: false } })).status).toBe(201);

    const { context, page } = await consolePage(env.browser, owner);
    await page.click("#nav-settings");
    const rows = page.locator("#audit-list tr[data-audit-id]");
    await page.waitForSelector("#audit-list tr[data-audit-id]", { timeout: 10_000 });
    // Newest first: the owner's login into this console, the 55 queues, then the agent, the revoke,
    // the key (50 on the first page).
    expect(await rows.count()).toBe(50);
    expect(await rows.first().getAttribute("data-action")).toBe("auth.login");
    expect(await page.locator('#audit-list tr[data-action="routing.queue_created"] .audit-detail').first().textContent()).toContain("queue 54");
    await page.click("#audit-more");
    await page.waitForFunction(() => document.querySelectorAll("#audit-list tr[data-audit-id]").length > 50, null, { timeout: 10_000 });
    const actions = await page.locator("#audit-list tr[data-audit-id]").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-action")));
    expect(actions.slice(50)).toEqual(expect.arrayContaining(["agent.created", "api_key.revoked", "api_key.created", "org.created"]));
    expect(actions.at(-1)).toBe("org.created");
    expect(await page.isHidden("#audit-more")).toBe(true);
    const text = (await page.textContent("#audit-list"))!;
    expect(text).toContain(XSS_NAME);
    expect(text).not.toContain(key.key);
    expect(text).not.toContain("agent password 1");

    // By action: the revoke alone, by the owner.
    await page.fill("#audit-action", "api_key.revoked");
    await page.click("#audit-form button[type=submit]");
    await page.waitForFunction(() => [...document.querySelectorAll("#audit-list tr[data-audit-id]")].every((tr) => tr.getAttribute("data-action") === "api_key.revoked"), null, { timeout: 10_000 });
    expect(await rows.count()).toBe(1);
    expect(await rows.first().locator(".audit-actor").textContent()).toBe("E2E Agent");
    expect(await page.isHidden("#audit-more")).toBe(true);
    // By who: the new agent has done nothing.
    await page.fill("#audit-action", "");
    await page.selectOption("#audit-actor", agent.json.id);
    await page.click("#audit-form button[type=submit]");
    await page.waitForSelector("#audit-list td.hint", { timeout: 10_000 });
    expect(await rows.count()).toBe(0);
    expect(await xssSentinels(page)).toEqual([]);
    await context.close();

    // A plain agent: 403 from the route.
    const login = await api("/auth/login", { body: { email, password: "agent password 1" } });
    expect(login.status).toBe(200);
    const cookie = login.headers.getSetCookie().map((c) => c.split(";", 1)[0]!).find((c) => c.startsWith("session="))!;
    expect((await api("/api/audit", { cookie })).status).toBe(403);
  });
});
