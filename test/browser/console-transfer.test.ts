// Handing a conversation on from the console, in a real browser: an agent claims, transfers it to
// a teammate (who finds it in Mine), the teammate (an owner) gives it back to the unassigned
// queue; a plain agent gets no such controls on a conversation that is not theirs.
import { describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { consolePage, useBrowser, waitFor } from "./browser.ts";

const env = useBrowser({ site: false });

describe("transfer and unassign in the console", () => {
  it("an agent claims and hands a conversation to a teammate, who gives it back to the queue; a plain agent cannot hand on another's", async () => {
    const owner = await signupOrg("Handing Co");
    const pk = (await owner.createKey("public")).key;
    const email = `agent-${crypto.randomUUID()}@e2e.parley.test`;
    const dana = (await owner.api("/api/company/agents", { body: { name: "Dana", email, password: "agent password", role: "agent" } })).json;
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "handed-1", visitorName: "Hugo", message: "Who can help me?" } })).status).toBe(200);
    const conv = await waitFor(async () => (await owner.api("/api/conversations/?filter=unassigned")).json[0], { timeoutMs: 10_000, message: "the conversation listed" });

    const ownerSide = await consolePage(env.browser, owner);
    const danaSide = await consolePage(env.browser, { email, password: "agent password" });
    const d = danaSide.page;
    await d.locator("#inbox-list button", { hasText: "Hugo" }).click();
    await d.waitForSelector("#view-session:has-text('unassigned')", { timeout: 10_000 });
    expect(await d.isHidden("#transfer-form")).toBe(true); // not hers (yet), and she is not an admin
    await d.click("#claim");
    await d.waitForSelector("#view-session:has-text('assigned to you')", { timeout: 10_000 });
    await d.waitForSelector("#transfer-form:not([hidden])", { timeout: 10_000 });

    // To the owner (online): the owner finds it in Mine.
    await d.waitForSelector(`#transfer-to option[value="${owner.user.id}"]`, { state: "attached", timeout: 10_000 });
    await d.selectOption("#transfer-to", owner.user.id);
    await d.click("#transfer");
    await d.waitForSelector("#view-session:has-text('assigned to E2E Agent')", { timeout: 10_000 });
    await d.waitForSelector("#transfer-form", { state: "hidden", timeout: 10_000 }); // no longer hers
    await waitFor(async () => (await owner.api(`/api/conversations/${conv.id}`)).json.active_session?.assigned_agent_id === owner.user.id, { message: "the transfer" });
    const o = ownerSide.page;
    await o.click("#tab-mine");
    await o.locator("#inbox-list button", { hasText: "Hugo" }).click();
    await o.waitForSelector("#view-session:has-text('assigned to you')", { timeout: 10_000 });

    // The owner gives it back: unassigned again, and Dana's unassigned inbox has it.
    await o.click("#unassign");
    await o.waitForSelector("#view-session:has-text('unassigned')", { timeout: 10_000 });
    await waitFor(async () => (await owner.api(`/api/conversations/${conv.id}`)).json.active_session?.assigned_agent_id === null, { message: "the unassign" });
    await d.click("#tab-unassigned");
    await d.locator("#inbox-list button", { hasText: "Hugo" }).waitFor({ timeout: 10_000 });
    // An owner may hand an unassigned conversation straight to someone.
    await o.selectOption("#transfer-to", dana.id);
    await o.click("#transfer");
    await o.waitForSelector("#view-session:has-text('assigned to Dana')", { timeout: 10_000 });
    await danaSide.context.close();
    await ownerSide.context.close();
  });
});
