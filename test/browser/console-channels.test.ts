// Per-channel settings in the console, in a real browser: the bot (issue #5: a flow bot with a
// greeting, quick buttons and an intent, that then answers a visitor; an external webhook bot
// whose secret is never shown back; removing it) and a mobile channel's push credentials (issue
// #6: FCM and APNs keys saved, shown only as "set" with their public fields, removed).
import { generateKeyPairSync } from "node:crypto";
import type { ConsoleMessage, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, signupOrg } from "../e2e/harness.ts";
import { consolePage, hostPage, hostSite, openWidget, parleyOrigin, visitorSends, useBrowser, waitFor, type HostSite } from "./browser.ts";

/** env.site is the channel's old site. */
const env = useBrowser();
let newSite: HostSite;

beforeAll(async () => {
  newSite = await hostSite();
});

afterAll(async () => {
  await newSite?.close();
});

async function configure(page: Page, channelId: string) {
  await page.click("#nav-settings");
  const row = page.locator(`tr[data-channel-id="${channelId}"]`);
  await row.waitFor({ timeout: 10_000 });
  await row.locator("button", { hasText: "Configure" }).click();
  await page.waitForSelector("#channel-panel:not([hidden]) #bot-form", { timeout: 10_000 });
}

/** Everything the page shows or holds in its form fields, to check that no secret is in it. */
const pageText = (page: Page) =>
  page.evaluate(() => [document.body.innerText, ...[...document.querySelectorAll("input, textarea")].map((e) => (e as HTMLInputElement).value)].join("\n"));

describe("channel settings in the console", () => {
  it("an admin moves a webchat channel to another site from the console: the widget works there at once and is refused on the old one; the identity secret is shown on request", async () => {
    const owner = await signupOrg("Move Co");
    const chat = (await owner.api("/api/integrations/webchat", { body: { name: "Storefront", allowed_origins: [env.site.origin] } })).json;
    const snippet = `<script src="${parleyOrigin()}/chat-widget/embed.js" data-embed-token="${chat.token}"></script>`;
    const { context, page } = await consolePage(env.browser, owner);
    await configure(page, chat.channel_id);
    expect(await page.inputValue("#edit-channel-origins")).toBe(env.site.origin);
    await page.fill("#edit-channel-origins", `${newSite.origin}\n`);
    await page.fill("#edit-channel-title", "Storefront help");
    await page.click("#channel-edit-form button[type=submit]");
    await page.waitForSelector("#channel-edit-form .form-status:has-text('Saved')", { timeout: 10_000 });
    await page.locator(`tr[data-channel-id="${chat.channel_id}"]`, { hasText: newSite.origin }).waitFor({ timeout: 10_000 });

    // The same snippet: works on the new site, refused on the old one.
    const visitors = await env.browser.newContext();
    const fresh = await visitors.newPage();
    await fresh.goto(newSite.page("/shop", hostPage(snippet)));
    await visitorSends(await openWidget(fresh), "Hello from the new site");
    const stale = await visitors.newPage();
    const errors: string[] = [];
    stale.on("console", (m: ConsoleMessage) => m.type() === "error" && errors.push(m.text()));
    await stale.goto(env.site.page("/shop", hostPage(snippet)));
    await waitFor(() => errors.some((t) => t.startsWith("Parley: the chat widget was refused")), { timeoutMs: 10_000, message: "the loader's refusal on the old site" });
    expect(errors.find((t) => t.startsWith("Parley:"))).toContain(env.site.origin);

    // The identity secret, on request, is the channel's.
    await page.click("#show-identity-secret");
    const secret = await page.textContent("#identity-secret .copy-box code", { timeout: 10_000 });
    expect(secret).toBe((await owner.api(`/api/integrations/${chat.channel_id}/identity-secret`)).json.identity_secret);
    await visitors.close();
    await context.close();
  });

  it("a flow bot set up in the console greets a visitor with quick buttons and answers an intent; a webhook bot's secret is never shown back; 'No bot' removes it", async () => {
    const owner = await signupOrg("Bot Co");
    const pk = (await owner.createKey("public")).key;
    const website = (await owner.api("/api/integrations")).json.find((c: any) => c.is_default).id as string;
    const { context, page } = await consolePage(env.browser, owner);
    await configure(page, website);

    expect(await page.inputValue("#bot-kind")).toBe("none");
    await page.selectOption("#bot-kind", "flow");
    await page.fill("#bot-greeting", "Hi! What do you need?");
    await page.fill("#bot-greeting-buttons", "Billing, Shipping");
    await page.click("#bot-add-intent");
    await page.fill(".intent .intent-name", "billing");
    await page.fill(".intent .intent-keywords", "invoice, Refund");
    await page.fill(".intent .intent-reply", "Billing will email you today.");
    await page.click("#bot-form button[type=submit]");
    await page.waitForSelector("#bot-form .form-status:has-text('Saved (flow bot, enabled)')", { timeout: 10_000 });

    const saved = (await owner.api(`/api/integrations/${website}/bot`)).json;
    expect(saved).toMatchObject({
      kind: "flow",
      enabled: true,
      config: {
        greeting: { content: "Hi! What do you need?", content_type: "quick_button", rich_media: { buttons: [{ label: "Billing", value: "Billing" }, { label: "Shipping", value: "Shipping" }] } },
        intents: [{ name: "billing", keywords: ["invoice", "refund"], reply: { content: "Billing will email you today.", content_type: "text" } }],
      },
    });

    // The bot answers a visitor: the greeting with its buttons, then the intent's reply.
    expect((await api("/api/chat/send", { body: { apiKey: pk, visitorId: "bot-visitor", message: "I need an invoice" } })).status).toBe(200);
    await waitFor(
      async () => {
        const polled = (await api(`/api/chat/poll?apiKey=${pk}&visitorId=bot-visitor&lastTimestamp=0`)).json;
        const texts = (polled?.messages ?? []).map((m: any) => m.message);
        return texts.includes("Hi! What do you need?") && texts.includes("Billing will email you today.");
      },
      { timeoutMs: 10_000, message: "the bot's greeting and answer" },
    );

    // Reopened, the form shows what is stored.
    await page.click("#nav-inbox");
    await configure(page, website);
    expect(await page.inputValue("#bot-kind")).toBe("flow");
    expect(await page.inputValue("#bot-greeting")).toBe("Hi! What do you need?");
    expect(await page.inputValue("#bot-greeting-buttons")).toBe("Billing, Shipping");
    expect(await page.inputValue(".intent .intent-keywords")).toBe("invoice, refund");

    // An external bot: its secret goes in, and never comes back out.
    const secret = `whsec-${crypto.randomUUID()}`;
    await page.selectOption("#bot-kind", "webhook");
    await page.fill("#bot-url", "https://bot.example/parley");
    await page.fill("#bot-secret", secret);
    await page.click("#bot-form button[type=submit]");
    await page.waitForSelector("#bot-form .form-status:has-text('Saved (external bot, enabled)')", { timeout: 10_000 });
    expect(await pageText(page)).not.toContain(secret);
    const hook = await owner.api(`/api/integrations/${website}/bot`);
    expect(hook.json).toMatchObject({ kind: "webhook", config: { url: "https://bot.example/parley", timeout_ms: 3000 } });
    expect(hook.text).not.toContain(secret);
    await page.click("#nav-inbox");
    await configure(page, website);
    expect(await page.inputValue("#bot-kind")).toBe("webhook");
    expect(await page.getAttribute("#bot-secret", "placeholder")).toContain("A secret is stored");
    expect(await pageText(page)).not.toContain(secret);
    // Saving without retyping it is refused with the server's reason, nothing changes.
    await page.click("#bot-form button[type=submit]");
    await page.waitForSelector("#bot-form .form-status.error:has-text('Could not save the bot')", { timeout: 10_000 });

    // No bot.
    await page.selectOption("#bot-kind", "none");
    await page.click("#bot-form button[type=submit]");
    await page.waitForSelector("#bot-form .form-status:has-text('No bot on this channel')", { timeout: 10_000 });
    expect((await owner.api(`/api/integrations/${website}/bot`)).status).toBe(404);
    await context.close();
  });

  it("a mobile channel's FCM and APNs credentials are saved from the console, shown only as set with their public fields, and removed", async () => {
    const owner = await signupOrg("Push Co");
    const { context, page } = await consolePage(env.browser, owner);
    await page.click("#nav-settings");
    await page.selectOption("#channel-kind", "mobile");
    await page.fill("#channel-name", "iOS and Android app");
    await page.click("#channel-form button[type=submit]");
    const token = (await page.textContent("#channel-result .copy-box.app-token code", { timeout: 10_000 }))!;
    expect(token).toMatch(/^ew_[\w-]{20,}$/);
    expect(await page.textContent("#channel-result .copy-box.snippet code")).toBe(`${parleyOrigin()}/chat-widget?embed_token=${token}&session_id=YOUR_USER_ID`);
    const app = (await owner.api("/api/integrations")).json.find((c: any) => c.kind === "mobile_sdk").id as string;
    // The token shown is the app's credential: it opens conversations on the mobile channel (a native client: no Origin).
    expect((await api("/chat-widget/session", { body: { embed_token: token, session_id: "app-user-1" } })).json.channel.id).toBe(app);
    // Another one, from the list.
    await page.locator(`tr[data-channel-id="${app}"] button`, { hasText: "New app token" }).click();
    await page.waitForSelector(`#channel-result .copy-box.app-token code:not(:has-text("${token}"))`, { timeout: 10_000 });
    const second = (await page.textContent("#channel-result .copy-box.app-token code"))!;
    expect((await api("/chat-widget/session", { body: { embed_token: second, session_id: "app-user-2" } })).json.channel.id).toBe(app);
    await page.click("#nav-inbox");
    await configure(page, app);
    await page.waitForSelector("#push-state dd[data-platform=fcm]:has-text('not set')", { timeout: 10_000 });
    expect(await page.textContent("#push-state dd[data-platform=apns]")).toBe("not set");

    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    const keyBody = (pem: string) => pem.split("\n")[2]!; // a line from the middle of the key

    // A truncated key is refused with the reason.
    await page.fill("#push-fcm", JSON.stringify({ type: "service_account", project_id: "parley-test", client_email: "push@parley-test.iam.gserviceaccount.com", private_key: rsa.slice(0, 200) }));
    await page.click("#push-fcm-form button[type=submit]");
    await page.waitForSelector(".push-editor .form-status.error:has-text('fcm.private_key')", { timeout: 10_000 });

    await page.fill("#push-fcm", JSON.stringify({ type: "service_account", project_id: "parley-test", client_email: "push@parley-test.iam.gserviceaccount.com", private_key: rsa }));
    await page.click("#push-fcm-form button[type=submit]");
    await page.waitForSelector("#push-state dd[data-platform=fcm]:has-text('set · project parley-test · push@parley-test.iam.gserviceaccount.com')", { timeout: 10_000 });
    await page.fill("#push-apns-team", "ABCDE12345");
    await page.fill("#push-apns-key", "KEY1234567");
    await page.fill("#push-apns-bundle", "com.example.app");
    await page.selectOption("#push-apns-env", "sandbox");
    await page.fill("#push-apns-pem", ec);
    await page.click("#push-apns-form button[type=submit]");
    await page.waitForSelector("#push-state dd[data-platform=apns]:has-text('set · team ABCDE12345 · key KEY1234567 · com.example.app · sandbox')", { timeout: 10_000 });
    for (const pem of [rsa, ec]) expect(await pageText(page)).not.toContain(keyBody(pem));
    const described = await owner.api(`/api/integrations/${app}/push`);
    for (const pem of [rsa, ec]) expect(described.text).not.toContain(keyBody(pem));

    // Reopened: still only "set".
    await page.click("#nav-inbox");
    await configure(page, app);
    await page.waitForSelector("#push-state dd[data-platform=fcm]:has-text('set · project parley-test')", { timeout: 10_000 });
    for (const pem of [rsa, ec]) expect(await pageText(page)).not.toContain(keyBody(pem));

    // Removing FCM leaves APNs.
    await page.click("#push-fcm-form button:has-text('Remove FCM')");
    await page.click("#push-fcm-form button:has-text('Confirm remove')");
    await page.waitForSelector("#push-state dd[data-platform=fcm]:has-text('not set')", { timeout: 10_000 });
    expect(await page.textContent("#push-state dd[data-platform=apns]")).toContain("set · team ABCDE12345");
    expect((await owner.api(`/api/integrations/${app}/push`)).json).toMatchObject({ fcm: { configured: false }, apns: { configured: true } });
    await context.close();
  });
});
