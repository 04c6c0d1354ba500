// Routing from the console's settings, in a real browser: a skill-group queue with business hours,
// edited; an agent given the skill and a capacity; then a customer asking for that queue (seed
// 002's Subject) is assigned to that agent automatically.
import { describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { consolePage, useBrowser, waitFor } from "./browser.ts";

const env = useBrowser({ site: false });

describe("routing in the console", () => {
  it("a queue with business hours and an agent's skill set in the console route a customer's conversation to that agent", async () => {
    const owner = await signupOrg("Routing Co");
    const pk = (await owner.createKey("public")).key;
    const { context, page } = await consolePage(env.browser, owner);
    await page.click("#nav-settings");

    // A queue, open every day all day (UTC), assigned automatically.
    await page.fill("#queue-name", "Billing");
    await page.uncheck("#queue-always");
    await page.fill("#queue-timezone", "UTC");
    for (const day of ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]) await page.fill(`#queue-hours-${day}`, "00:00-23:59");
    await page.fill("#queue-closed-message", "Closed: leave us a message.");
    await page.click("#queue-form button[type=submit]");
    await page.waitForSelector("#routing-note:has-text('Queue “Billing” saved.')", { timeout: 10_000 });
    const queueRow = page.locator("tr[data-queue-id]", { hasText: "Billing" });
    await queueRow.waitFor({ timeout: 10_000 });
    expect(await queueRow.textContent()).toContain("automatic");
    expect(await queueRow.textContent()).toContain("mon 00:00-23:59");

    // Edited: the form comes back filled; a new name; a malformed range is refused first.
    await queueRow.locator("button", { hasText: "Edit" }).click();
    expect(await page.inputValue("#queue-name")).toBe("Billing");
    expect(await page.inputValue("#queue-hours-wed")).toBe("00:00-23:59");
    await page.fill("#queue-name", "Billing EU");
    await page.fill("#queue-hours-sun", "all day");
    await page.click("#queue-form button[type=submit]");
    await page.waitForSelector("#settings .error:has-text('is not a range like 09:00-17:00')", { timeout: 10_000 });
    await page.fill("#queue-hours-sun", "00:00-23:59");
    await page.click("#queue-form button[type=submit]");
    await page.waitForSelector("#routing-note:has-text('Queue “Billing EU” saved.')", { timeout: 10_000 });
    const queues = (await owner.api("/api/routing/queues")).json;
    expect(queues).toHaveLength(1);
    expect(queues[0]).toMatchObject({ name: "Billing EU", auto_assign: true, closed_message: "Closed: leave us a message.", business_hours: { timezone: "UTC", hours: { sun: [["00:00", "23:59"]] } } });

    // The owner takes the skill, with room for two conversations.
    const me = page.locator(`tr[data-routing-agent="${owner.user.id}"]`);
    await me.locator("label", { hasText: "Billing EU" }).click();
    await me.locator("input.capacity").fill("2");
    await me.locator("button", { hasText: "Save" }).click();
    await page.waitForSelector("#routing-note:has-text('saved')", { timeout: 10_000 });
    expect((await owner.api("/api/routing/agents")).json.find((a: any) => a.user_id === owner.user.id)).toMatchObject({ skills: [queues[0].id], capacity: 2 });

    // A customer asking for billing (seed 002's Subject) is assigned to the owner, who is online.
    const init = await api("/api/customer/init", { body: { apiKey: pk, Channel: "web", refId: "routed-1", firstName: "Rita", Subject: "Billing EU" } });
    expect(init.status).toBe(200);
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "routed-1", message: "My invoice is wrong" } })).status).toBe(200);
    await waitFor(async () => (await owner.api(`/api/conversations/${init.json.conversationId}`)).json.active_session?.assigned_agent_id === owner.user.id, {
      timeoutMs: 15_000,
      message: "the conversation assigned to the owner",
    });
    await page.click("#nav-inbox");
    await page.click("#tab-mine");
    await page.locator("#inbox-list button", { hasText: "Rita" }).waitFor({ timeout: 10_000 });
    await context.close();
  });
});
