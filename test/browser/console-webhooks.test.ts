// Webhook endpoints from the console's settings, in a real browser, against a real local receiver:
// the signing secret shown once verifies what arrives; the delivery log; a receiver answering
// 410 Gone disables the endpoint and kills the delivery, which is replayed from the console once
// the endpoint is enabled again; rotating the secret; deleting the endpoint.
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { startReceiver, stopReceiver, verifySignature, type Received } from "../e2e/webhook-receiver.ts";
import { consolePage, useBrowser, waitFor } from "./browser.ts";

const env = useBrowser({ site: false });
let receiver: Server;
let receiverUrl: string;
/** What the receiver answers; every request it gets. */
let answer = 200;
const received: Received[] = [];

beforeAll(async () => {
  receiver = await startReceiver(0, received, () => answer);
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/parley-events`;
});

afterAll(() => stopReceiver(receiver));

const hookRow = (page: Page) => page.locator("tr[data-hook-id]");

describe("webhooks in the console", () => {
  it("adds an endpoint whose secret verifies the deliveries, shows the log, replays a dead delivery after a 410 disabled the endpoint, rotates the secret and deletes the endpoint", async () => {
    const owner = await signupOrg("Hooks Co");
    const pk = (await owner.createKey("public")).key;
    const { context, page } = await consolePage(env.browser, owner);
    await page.click("#nav-settings");
    await page.fill("#hook-url", receiverUrl);
    await page.check("#hook-event-message-created");
    await page.click("#hook-form button[type=submit]");
    const secret = (await page.textContent("#hook-result .copy-box.hook-secret code", { timeout: 10_000 }))!;
    expect(secret).toMatch(/^whsec_/);
    await hookRow(page).locator(".hook-state:has-text('Active')").waitFor({ timeout: 10_000 });
    expect(await hookRow(page).textContent()).toContain("message.created");

    // A visitor writes: the receiver gets message.created, signed with the secret the console showed.
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "hook-visitor", message: "first" } })).status).toBe(200);
    const first = await waitFor(() => received.find((r) => r.json?.type === "message.created" && r.body.includes('"first"')), { timeoutMs: 15_000, message: "the first delivery" });
    expect(verifySignature(secret, first)).toBe(true);
    await hookRow(page).locator("button", { hasText: "Deliveries" }).click();
    await page.waitForSelector("#deliveries tr[data-status='delivered']", { timeout: 10_000 });

    // The receiver says 410 Gone: the endpoint is disabled and the delivery dead.
    answer = 410;
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "hook-visitor", message: "second" } })).status).toBe(200);
    const gone = await waitFor(() => received.find((r) => r.body.includes('"second"')), { timeoutMs: 15_000, message: "the delivery answered 410" });
    await waitFor(
      async () => {
        await page.click("#nav-inbox");
        await page.click("#nav-settings");
        return (await hookRow(page).locator(".hook-state").textContent())?.startsWith("Disabled");
      },
      { timeoutMs: 15_000, intervalMs: 500, message: "the endpoint disabled after 410" },
    );

    // Back up, enabled again from the console, the dead delivery is replayed from the log: same webhook-id.
    answer = 200;
    await hookRow(page).locator("button", { hasText: "Enable" }).click();
    await hookRow(page).locator(".hook-state:has-text('Active')").waitFor({ timeout: 10_000 });
    await hookRow(page).locator("button", { hasText: "Deliveries" }).click();
    const dead = page.locator("#deliveries tr[data-status='dead']");
    await dead.waitFor({ timeout: 10_000 });
    await dead.locator("button", { hasText: "Replay" }).click();
    await waitFor(() => received.filter((r) => r.id === gone.id).length === 2, { timeoutMs: 15_000, message: "the replayed delivery" });
    expect(verifySignature(secret, received.filter((r) => r.id === gone.id)[1]!)).toBe(true);
    await waitFor(
      async () => {
        await page.click("#deliveries-refresh");
        return (await page.locator("#deliveries tr[data-status='dead']").count()) === 0 && (await page.locator("#deliveries tr[data-status='delivered']").count()) === 2;
      },
      { timeoutMs: 15_000, intervalMs: 500, message: "both deliveries delivered in the log" },
    );

    // A new secret, shown once; then the endpoint goes.
    await hookRow(page).locator("button", { hasText: "Rotate secret" }).click();
    await hookRow(page).locator("button", { hasText: "Confirm rotate" }).click();
    await page.waitForSelector("#hook-result:has-text('New secret')", { timeout: 10_000 });
    const rotated = (await page.textContent("#hook-result .copy-box.hook-secret code"))!;
    expect(rotated).toMatch(/^whsec_/);
    expect(rotated).not.toBe(secret);
    await hookRow(page).locator("button", { hasText: "Delete" }).click();
    await hookRow(page).locator("button", { hasText: "Confirm delete" }).click();
    await page.waitForSelector("#settings td:has-text('No endpoints yet.')", { timeout: 10_000 });
    expect((await owner.api("/api/webhooks")).json).toEqual([]);
    await context.close();
  });
});
