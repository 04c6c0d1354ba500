// Push notifications end to end: a real `wrangler dev` (global-setup.ts) sends to a local fake
// FCM / Google OAuth / APNs (fake-push.ts) over real HTTP. The keys are made here with WebCrypto;
// every JWT that reaches the fake is verified with the public keys.
//
// The mobile user reaches Parley like seed 001's app does (a conversation opened with the
// public key, live over the native WebSocket /ws/visitor; or, in the last test, with the mobile
// channel's own credential, over seed 001's WebView URL, REST and Socket.IO); its devices are
// registered through POST /chat-widget/devices; the push credentials live on a mobile channel.
import { randomUUID, webcrypto } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, inject, it } from "vitest";
import { api, expectStatus, waitFor } from "./harness.ts";
import { newOrg } from "./fixtures.ts";
import { openSocket, refusedSocket } from "./ws-client.ts";
import { ack, nextEvent, SioPool } from "./sio.ts";

const subtle = webcrypto.subtle;

interface Hit {
  at: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

async function hits(): Promise<Hit[]> {
  const res = await fetch(new URL("/__hits", inject("pushFakeUrl")));
  return (await res.json()) as Hit[];
}

const json = (h: Hit) => JSON.parse(h.body);
const b64url = (s: string) => Buffer.from(s, "base64url");
const part = (jwt: string, i: number) => JSON.parse(b64url(jwt.split(".")[i]!).toString("utf8"));

function pem(der: ArrayBuffer): string {
  const body = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").trim();
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

async function keyPair(kind: "rsa" | "ec") {
  const pair =
    kind === "rsa"
      ? await subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"])
      : await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  return { pem: pem(await subtle.exportKey("pkcs8", pair.privateKey)), publicKey: pair.publicKey };
}

async function verified(jwt: string, publicKey: webcrypto.CryptoKey) {
  const [h, c, s] = jwt.split(".");
  const alg = publicKey.algorithm.name === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5" };
  const ok = await subtle.verify(alg, publicKey, b64url(s!), new TextEncoder().encode(`${h}.${c}`));
  expect(ok, `signature of ${jwt.slice(0, 40)}…`).toBe(true);
  return { header: part(jwt, 0), claims: part(jwt, 1) };
}

const hexToken = (prefix = "") => prefix + Buffer.from(webcrypto.getRandomValues(new Uint8Array(32))).toString("hex").slice(prefix.length);

describe("push notifications (FCM HTTP v1 and APNs) against wrangler dev", () => {
  it("pushes to an offline mobile user's devices, not while they are online, and forgets unregistered tokens", async () => {
    const { agent, pk } = await newOrg();
    const [rsa, ec] = await Promise.all([keyPair("rsa"), keyPair("ec")]);
    const suffix = randomUUID().slice(0, 8);

    // The admin's side: a mobile channel with both platforms' credentials.
    const channel = expectStatus(await agent.api("/api/integrations/mobile", { body: { name: "Acme app" } }), 201, "mobile channel").json.channel_id as string;
    const fcm = { project_id: `acme-${suffix}`, client_email: `push@acme-${suffix}.iam.gserviceaccount.com`, private_key: rsa.pem, private_key_id: `kid-${suffix}` };
    const apns = { team_id: "ABCDE12345", key_id: "KEYID12345", bundle_id: `com.acme.app${suffix}`, private_key: ec.pem, environment: "production" };
    const put = expectStatus(await agent.api(`/api/integrations/${channel}/push`, { method: "PUT", body: { fcm, apns } }), 200, "PUT push");
    expect(put.json.fcm).toMatchObject({ configured: true, project_id: fcm.project_id });
    const shown = expectStatus(await agent.api(`/api/integrations/${channel}/push`), 200, "GET push");
    expect(shown.json.apns).toEqual({ configured: true, readable: true, team_id: "ABCDE12345", key_id: "KEYID12345", bundle_id: apns.bundle_id, environment: "production" });
    expect(shown.text).not.toContain("PRIVATE KEY");

    // The app's side: its conversation and four devices (two the fake will call unregistered).
    const externalId = `app-user-${suffix}`;
    const session = expectStatus(await api("/chat-widget/session", { body: { key: pk, session_id: externalId, customer_name: "Mia" } }), 200, "session").json;
    const conversation = session.conversation_id as string;
    const tokens = { fcm: `fcm-${suffix}:APA91b${randomUUID().replace(/-/g, "")}`, fcmGone: `gone-${suffix}:APA91b${randomUUID().replace(/-/g, "")}`, apns: hexToken(), apnsDead: hexToken("dead") };
    for (const [platform, token] of [["fcm", tokens.fcm], ["fcm", tokens.fcmGone], ["apns", tokens.apns], ["apns", tokens.apnsDead]] as const) {
      const r = await api("/chat-widget/devices", { body: { conversation_id: conversation, external_id: externalId, platform, token } });
      expectStatus(r, 201, `register ${platform}`);
    }
    // Registering again changes nothing.
    expectStatus(await api("/chat-widget/devices", { body: { conversation_id: conversation, external_id: externalId, platform: "fcm", token: tokens.fcm } }), 200, "re-register");

    const say = async (content: string) =>
      expectStatus(await agent.api(`/api/conversations/${conversation}/messages`, { body: { content } }), 201, "agent message").json as { id: string; seq: number };
    const pushesOf = (all: Hit[], messageId: string) =>
      all.filter((h) => (h.path.includes("messages:send") && json(h).message.data.message_id === messageId) || (h.path.startsWith("/3/device/") && json(h).message_id === messageId));

    // Online: connected over the native WebSocket, the user gets the message live and no push.
    const ws = await openSocket(`/ws/visitor?key=${encodeURIComponent(pk)}&external_id=${encodeURIComponent(externalId)}`);
    await ws.next((f) => f.type === "ready");
    const live = await say("I am looking into it now");
    await ws.next((f) => f.type === "message" && f.message.id === live.id);
    await ws.close();

    // Offline: the next message is pushed to all four devices.
    const offline = await say(`Your refund is on its way ${"🎉".repeat(3)} ${"and more ".repeat(40)}`);
    const first = await waitFor(async () => {
      const p = pushesOf(await hits(), offline.id);
      return p.length === 4 && p;
    }, { timeoutMs: 15_000, message: "four pushes for the offline message" });
    await sleep(300);
    expect(pushesOf(await hits(), live.id)).toEqual([]);

    // Google OAuth: the RS256 service-account assertion, exchanged once.
    const all = await hits();
    const exchanges = all.filter((h) => h.path === "/token" && new URLSearchParams(h.body).get("assertion")?.includes(".") && part(new URLSearchParams(h.body).get("assertion")!, 1).iss === fcm.client_email);
    expect(exchanges).toHaveLength(1);
    const form = new URLSearchParams(exchanges[0]!.body);
    expect(exchanges[0]!.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(form.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
    const assertion = await verified(form.get("assertion")!, rsa.publicKey);
    expect(assertion.header).toEqual({ alg: "RS256", typ: "JWT", kid: fcm.private_key_id });
    expect(assertion.claims).toMatchObject({ iss: fcm.client_email, scope: "https://www.googleapis.com/auth/firebase.messaging", aud: "https://oauth2.googleapis.com/token" });
    expect(assertion.claims.exp - assertion.claims.iat).toBe(3600);
    expect(Math.abs(assertion.claims.iat - Date.now() / 1000)).toBeLessThan(120);

    // FCM v1 sends: the project's URL, the access token the fake issued, the payload.
    const fcmSends = first.filter((h) => h.path.includes("messages:send"));
    expect(fcmSends.map((h) => json(h).message.token).sort()).toEqual([tokens.fcm, tokens.fcmGone].sort());
    for (const h of fcmSends) {
      expect(h.path).toBe(`/v1/projects/${fcm.project_id}/messages:send`);
      expect(h.headers.authorization).toMatch(/^Bearer fake-access-\d+$/);
      expect(h.headers["content-type"]).toMatch(/^application\/json/);
      const message = json(h).message;
      expect(message.notification.title).toBe("E2E Agent");
      expect(message.notification.body).toMatch(/^Your refund is on its way 🎉🎉🎉 and more/);
      expect([...new Intl.Segmenter().segment(message.notification.body)].length).toBeLessThanOrEqual(140);
      expect(message.notification.body.endsWith("…")).toBe(true);
      expect(message.data).toEqual({
        type: "parley.message",
        conversation_id: conversation,
        message_id: offline.id,
        seq: String(offline.seq),
        sender_type: "agent",
        sender_name: "E2E Agent",
        preview: message.notification.body,
      });
    }

    // APNs: token auth (ES256 provider token), topic and push type headers, the alert payload.
    const apnsSends = first.filter((h) => h.path.startsWith("/3/device/"));
    expect(apnsSends.map((h) => h.path).sort()).toEqual([`/3/device/${tokens.apns}`, `/3/device/${tokens.apnsDead}`].sort());
    for (const h of apnsSends) {
      expect(h.headers["apns-topic"]).toBe(apns.bundle_id);
      expect(h.headers["apns-push-type"]).toBe("alert");
      expect(h.headers["apns-priority"]).toBe("10");
      const jwt = h.headers.authorization!.replace(/^bearer /, "");
      const provider = await verified(jwt, ec.publicKey);
      expect(provider.header).toEqual({ alg: "ES256", kid: "KEYID12345" });
      expect(provider.claims).toEqual({ iss: "ABCDE12345", iat: expect.any(Number) });
      expect(Math.abs(provider.claims.iat - Date.now() / 1000)).toBeLessThan(120);
      const body = json(h);
      expect(body).toMatchObject({ conversation_id: conversation, message_id: offline.id, seq: offline.seq, sender_type: "agent", sender_name: "E2E Agent" });
      expect(body.aps).toEqual({ alert: { title: "E2E Agent", body: fcmSends[0] && json(fcmSends[0]).message.notification.body }, sound: "default", "thread-id": conversation });
    }

    // The fake called "gone…" and "dead…" unregistered: the next push skips them.
    const next = await say("One more thing");
    const second = await waitFor(async () => {
      const p = pushesOf(await hits(), next.id);
      return p.length === 2 && p;
    }, { timeoutMs: 15_000, message: "two pushes for the next message" });
    await sleep(500);
    const targets = pushesOf(await hits(), next.id).map((h) => (h.path.startsWith("/3/") ? h.path.slice("/3/device/".length) : json(h).message.token));
    expect(targets.sort()).toEqual([tokens.fcm, tokens.apns].sort());
    expect(second).toHaveLength(2);
    // The access token was cached: still one exchange for this service account.
    const again = (await hits()).filter((h) => h.path === "/token" && part(new URLSearchParams(h.body).get("assertion")!, 1).iss === fcm.client_email);
    expect(again).toHaveLength(1);

    // A whisper is never pushed.
    const whisper = expectStatus(await agent.api(`/api/conversations/${conversation}/messages`, { body: { content: "note to self", private: true } }), 201, "whisper").json;
    const after = await say("Bye!");
    await waitFor(async () => pushesOf(await hits(), after.id).length === 2, { timeoutMs: 15_000, message: "pushes after the whisper" });
    await sleep(300);
    expect(pushesOf(await hits(), whisper.id)).toEqual([]);
  });

  it("refuses the legacy FCM server key and hides credentials from other organisations", async () => {
    const a = await newOrg();
    const b = await newOrg();
    const channel = expectStatus(await a.agent.api("/api/integrations/mobile", { body: { name: "App" } }), 201, "mobile").json.channel_id;
    const legacy = await a.agent.api(`/api/integrations/${channel}/push`, { method: "PUT", body: { fcm: { server_key: "AAAA:legacy", sender_id: "1234" } } });
    expect(legacy.status).toBe(400);
    expect(legacy.json.error.message).toMatch(/legacy FCM server key/);
    expect((await b.agent.api(`/api/integrations/${channel}/push`)).status).toBe(404);
  });

  it("a mobile channel's own credential: the app's conversation, device and pushes belong to that channel; web pages cannot use it", async () => {
    const { agent } = await newOrg();
    const rsa = await keyPair("rsa");
    const suffix = randomUUID().slice(0, 8);
    const sio = new SioPool();
    try {
      // Two apps with push credentials: with several, only the conversation's own channel says which.
      const made = expectStatus(await agent.api("/api/integrations/mobile", { body: { name: "Acme app" } }), 201, "mobile channel").json;
      expect(made).toEqual({ id: made.channel_id, channel_id: expect.any(String), token: expect.stringMatching(/^ew_[\w-]{20,}$/), identity_secret: expect.any(String) });
      const other = expectStatus(await agent.api("/api/integrations/mobile", { body: { name: "Other app" } }), 201, "second mobile channel").json;
      const fcm = (project: string) => ({ project_id: project, client_email: `push@${project}.iam.gserviceaccount.com`, private_key: rsa.pem, private_key_id: `kid-${project}` });
      for (const [id, project] of [[made.channel_id, `acme-${suffix}`], [other.channel_id, `other-${suffix}`]]) {
        expectStatus(await agent.api(`/api/integrations/${id}/push`, { method: "PUT", body: { fcm: fcm(project!) } }), 200, "PUT push");
      }
      // A web page that a webchat channel allows is still a web page for the app's credential.
      await agent.createWebchat(["https://shop.example"]);
      const token = made.token as string;
      const externalId = `app-user-${suffix}`;

      // Seed 001's Option A: the app's WebView opens the widget URL with the token. No site may frame it.
      const page = await api(`/chat-widget?embed_token=${token}&session_id=${externalId}`);
      expectStatus(page, 200, "widget page");
      expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expectStatus(await api(`/chat-widget?embed_token=${token}&parent_origin=${encodeURIComponent("https://shop.example")}`), 403, "widget page on a site");
      // The page's own request (same origin) and an app's (no Origin) open the conversation on the mobile channel.
      const opened = expectStatus(await api("/chat-widget/session", { body: { embed_token: token, session_id: externalId, customer_name: "Mia" }, headers: { origin: new URL(inject("baseUrl")).origin } }), 200, "session from the page").json;
      expect(opened.channel.id).toBe(made.channel_id);
      const conversation = opened.conversation_id as string;
      expect(expectStatus(await api("/chat-widget/session", { body: { embed_token: token, session_id: externalId } }), 200, "session from the app").json.conversation_id).toBe(conversation);
      expect(expectStatus(await agent.api(`/api/conversations/${conversation}`), 200, "agent view").json.channel).toMatchObject({ id: made.channel_id, kind: "mobile_sdk" });
      // Web pages presenting the app's credential: refused, whether or not a webchat channel allows them.
      for (const origin of ["https://evil.example", "https://shop.example", "null"]) {
        const r = await api("/chat-widget/session", { body: { embed_token: token, session_id: externalId }, headers: { origin } });
        expect([origin, r.status, r.json?.error?.code]).toEqual([origin, 403, "origin_not_allowed"]);
        expect((await refusedSocket(`/ws/visitor?embed_token=${token}&external_id=${externalId}`, { origin })).status).toBe(403);
      }
      const page2 = await sio.connect({ transports: ["websocket"], extraHeaders: { origin: "https://shop.example" } });
      expect(await ack(page2, "send_message", { embed_token: token, external_id: `web-${suffix}`, content: "hi", content_type: "text" })).toMatchObject({ error: { code: "origin_not_allowed" } });

      // The app registers its push token (no channel_id: the conversation's channel is the app's).
      const device = expectStatus(await api("/chat-widget/devices", { body: { conversation_id: conversation, external_id: externalId, platform: "fcm", token: `fcm-${suffix}:APA91b${randomUUID().replace(/-/g, "")}` } }), 201, "register").json;
      expect(device).toMatchObject({ conversation_id: conversation, platform: "fcm", push_channel_id: null, created: true });

      // Seed 001's Option B: native Socket.IO with the conversation id. Online: no push.
      const app = await sio.connect({ transports: ["websocket"] });
      expect(await ack(app, "join_conversation", { conversation_id: conversation, external_id: externalId })).toEqual({ ok: true, conversation_id: conversation });
      const say = async (content: string) => expectStatus(await agent.api(`/api/conversations/${conversation}/messages`, { body: { content } }), 201, "agent message").json as { id: string };
      const live = await say("Hello Mia");
      expect(await nextEvent(app, "message_received", (m) => m.id === live.id)).toMatchObject({ content: "Hello Mia", sender_type: "agent" });
      // The app goes to the background and closes its socket: the next message is pushed at once, with the app's credentials.
      app.disconnect();
      const offline = await say("Your refund is on its way");
      const sendsOf = (all: Hit[], id: string) => all.filter((h) => h.path.includes("messages:send") && json(h).message.data.message_id === id);
      const pushed = await waitFor(async () => {
        const p = sendsOf(await hits(), offline.id);
        return p.length === 1 && p;
      }, { timeoutMs: 15_000, message: "a push for the message after the app closed its socket" });
      expect(pushed[0]!.path).toBe(`/v1/projects/acme-${suffix}/messages:send`);
      expect(json(pushed[0]!).message.data.conversation_id).toBe(conversation);
      await sleep(300);
      expect(sendsOf(await hits(), live.id)).toEqual([]);
    } finally {
      sio.closeAll();
    }
  });
});
