/**
 * Push notifications inside workerd: the credentials API, device registration, and the senders.
 *
 * Keys are real: each test organisation gets an RSA-2048 service-account key and a P-256 APNs key
 * made here with WebCrypto, and every JWT Parley sends is verified with the public halves.
 * FCM, Google's token endpoint and APNs are answered here: the Worker and these tests share one
 * isolate, so the Worker's outbound fetch() to those hosts is intercepted (every other request
 * goes to the real fetch). The endpoints are Parley's defaults (no FCM_BASE_URL etc. is set), so
 * this also checks the production URLs. Parley's own code is not mocked.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { providerToken } from "../../src/push/apns";
import { open, pkcs8Der, seal } from "../../src/push/crypto";
import { serviceAccountAssertion } from "../../src/push/fcm";
import { truncate } from "../../src/push/payload";
import { endUserLive } from "../../src/push/presence";
import { withRetries } from "../../src/push/send";
import type { Subscribers } from "../../src/conversation/subscribers";
import { call, dostiVisitor, eventually, newOrg, openSocket } from "./helpers";

// ---- keys -----------------------------------------------------------------------------------

function toPem(der: ArrayBuffer): string {
  let bin = "";
  for (const b of new Uint8Array(der)) bin += String.fromCharCode(b);
  const body = btoa(bin).replace(/(.{64})/g, "$1\n").trim();
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

async function rsaKey() {
  const pair = (await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
  return { pem: toPem((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer), publicKey: pair.publicKey };
}

async function ecKey() {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  return { pem: toPem((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer), publicKey: pair.publicKey };
}

const b64urlBytes = (s: string) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const b64urlJson = (s: string) => JSON.parse(new TextDecoder().decode(b64urlBytes(s)));

/** Checks the JWS signature with the public key and returns header and claims. */
async function verifyJwt(jwt: string, publicKey: CryptoKey): Promise<{ header: any; claims: any }> {
  const [h, c, s] = jwt.split(".");
  expect(h && c && s, `three parts: ${jwt}`).toBeTruthy();
  const alg = publicKey.algorithm.name === "ECDSA" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5" };
  const ok = await crypto.subtle.verify(alg, publicKey, b64urlBytes(s!), new TextEncoder().encode(`${h}.${c}`));
  expect(ok, "JWT signature verifies with the public key").toBe(true);
  return { header: b64urlJson(h!), claims: b64urlJson(c!) };
}

// ---- the fake FCM / Google OAuth / APNs -------------------------------------------------------

interface Hit {
  host: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  json: any;
  form: URLSearchParams | null;
  at: number;
}

type Answer = (hit: Hit, n: number) => Response | Promise<Response>;

const HOSTS = new Set(["oauth2.googleapis.com", "fcm.googleapis.com", "api.push.apple.com", "api.sandbox.push.apple.com"]);
let hits: Hit[] = [];
let issued = 0;
/** Per-test overrides, by a predicate on the hit. */
let rules: { match: (h: Hit) => boolean; answer: Answer; count: number }[] = [];

function when(match: (h: Hit) => boolean, answer: Answer) {
  rules.push({ match, answer, count: 0 });
}

function defaultAnswer(hit: Hit): Response {
  if (hit.host === "oauth2.googleapis.com") return Response.json({ access_token: `ya29.fake-${++issued}`, expires_in: 3599, token_type: "Bearer" });
  if (hit.host === "fcm.googleapis.com") return Response.json({ name: `projects/x/messages/${crypto.randomUUID()}` });
  return new Response(null, { status: 200, headers: { "apns-id": crypto.randomUUID() } });
}

const realFetch = globalThis.fetch;
beforeAll(() => {
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    const url = new URL(req.url);
    if (!HOSTS.has(url.hostname)) return realFetch(input, init);
    const body = new TextDecoder().decode(await req.arrayBuffer());
    let parsed: any = null;
    try {
      parsed = JSON.parse(body);
    } catch {
      // form or empty
    }
    const hit: Hit = {
      host: url.hostname,
      path: url.pathname,
      headers: Object.fromEntries(req.headers),
      body,
      json: parsed,
      form: req.headers.get("content-type")?.startsWith("application/x-www-form-urlencoded") ? new URLSearchParams(body) : null,
      at: Date.now(),
    };
    expect(req.method).toBe("POST");
    hits.push(hit);
    const rule = rules.find((r) => r.match(hit));
    if (rule) return rule.answer(hit, ++rule.count);
    return defaultAnswer(hit);
  }) as typeof fetch;
});
afterAll(() => {
  globalThis.fetch = realFetch;
});
beforeEach(() => {
  rules = [];
});

const fcmSends = (token: string) => hits.filter((h) => h.host === "fcm.googleapis.com" && h.json?.message?.token === token);
const apnsSends = (token: string) => hits.filter((h) => h.host.endsWith("push.apple.com") && h.path === `/3/device/${token}`);
const tokenCalls = (email: string) =>
  hits.filter((h) => h.host === "oauth2.googleapis.com" && h.form && b64urlJson(h.form.get("assertion")!.split(".")[1]!).iss === email);

// ---- fixtures -------------------------------------------------------------------------------

type Org = Awaited<ReturnType<typeof newOrg>>;
let serial = 0;

async function mobileChannel(o: Org, name = "App") {
  const r = await o.agent.call("/api/integrations/mobile", { body: { name } });
  expect(r.status).toBe(201);
  return r.body.channel_id as string;
}

async function credentials(environment: "sandbox" | "production" = "sandbox") {
  const [rsa, ec] = await Promise.all([rsaKey(), ecKey()]);
  const n = ++serial;
  const fcm = {
    type: "service_account",
    project_id: `parley-test-${n}`,
    private_key_id: `kid${n}`,
    private_key: rsa.pem,
    client_email: `push-${n}-${crypto.randomUUID().slice(0, 8)}@parley-test-${n}.iam.gserviceaccount.com`,
    client_id: "1234567890",
    token_uri: "https://oauth2.googleapis.com/token",
  };
  const apns = { team_id: "TEAM123456", key_id: `KEY${String(n).padStart(7, "0")}`, bundle_id: `com.example.parley${n}`, private_key: ec.pem, environment };
  return { fcm, apns, rsa, ec };
}

/** An organisation with a mobile channel holding fresh credentials. */
async function pushOrg(environment: "sandbox" | "production" = "sandbox") {
  const o = await newOrg();
  const channel = await mobileChannel(o);
  const creds = await credentials(environment);
  const put = await o.agent.call(`/api/integrations/${channel}/push`, { method: "PUT", body: { fcm: creds.fcm, apns: creds.apns } });
  expect(put.status, JSON.stringify(put.body)).toBe(200);
  return { ...o, channel, creds };
}

/** A mobile user: the app's conversation (through the public key, like seed 001's WebView) and its devices. */
async function mobileUser(o: Org, externalId = `m-${crypto.randomUUID().slice(0, 8)}`) {
  const s = await call("/chat-widget/session", { body: { key: o.pk, session_id: externalId, customer_name: "Mia" } });
  expect(s.status).toBe(200);
  const conversation_id = s.body.conversation_id as string;
  return {
    conversation_id,
    external_id: externalId,
    register: (platform: "fcm" | "apns", token: string, extra: Record<string, unknown> = {}) =>
      call("/chat-widget/devices", { body: { conversation_id, external_id: externalId, platform, token, ...extra } }),
    unregister: (platform: "fcm" | "apns", token: string) =>
      call("/chat-widget/devices", { method: "DELETE", body: { conversation_id, external_id: externalId, platform, token } }),
  };
}

const fcmToken = () => `fcm-${crypto.randomUUID()}:APA91b${crypto.randomUUID().replace(/-/g, "")}`;
const apnsToken = () => [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");

async function agentSays(o: Org, conversationId: string, content: string, extra: Record<string, unknown> = {}) {
  const r = await o.agent.call(`/api/conversations/${conversationId}/messages`, { body: { content, ...extra } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body as { id: string; seq: number };
}

const devicesOf = (externalId: string) => env.DB.prepare("SELECT * FROM devices WHERE external_id = ? ORDER BY created_at").bind(externalId).all<any>().then((r) => r.results);
const settle = () => new Promise((r) => setTimeout(r, 300));

// ---- tests ----------------------------------------------------------------------------------

describe("credentials API", () => {
  it("stores FCM and APNs credentials sealed, and shows only which are configured", async () => {
    const o = await pushOrg();
    const got = await o.agent.call(`/api/integrations/${o.channel}/push`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual({
      channel_id: o.channel,
      fcm: { configured: true, readable: true, project_id: o.creds.fcm.project_id, client_email: o.creds.fcm.client_email },
      apns: { configured: true, readable: true, team_id: "TEAM123456", key_id: o.creds.apns.key_id, bundle_id: o.creds.apns.bundle_id, environment: "sandbox" },
      updated_at: expect.any(String),
    });
    expect(JSON.stringify(got.body)).not.toContain("PRIVATE KEY");
    const row = await env.DB.prepare("SELECT * FROM push_credentials WHERE channel_id = ?").bind(o.channel).first<any>();
    for (const column of [row.fcm, row.apns]) {
      expect(column).toMatch(/^v1\.[\w-]+\.[\w-]+$/);
      expect(column).not.toContain("PRIVATE");
    }
    expect(row.fcm).not.toContain(o.creds.fcm.client_email);
    expect(row.org_id).toBe(o.org.id);
  });

  it("is for owners and admins of the channel's organisation: 404 across orgs, 403 for agents", async () => {
    const o = await pushOrg();
    const other = await newOrg();
    expect((await other.agent.call(`/api/integrations/${o.channel}/push`)).status).toBe(404);
    const put = await other.agent.call(`/api/integrations/${o.channel}/push`, { method: "PUT", body: { fcm: null } });
    expect(put.status).toBe(404);
    expect((await other.agent.call(`/api/integrations/${o.channel}/push`, { method: "DELETE" })).status).toBe(404);
    expect((await call(`/api/integrations/${o.channel}/push`)).status).toBe(401);

    const email = `ag-${crypto.randomUUID()}@example.test`;
    const agent = await o.agent.call("/api/company/agents", { body: { name: "Ag", email, password: "correct horse battery", role: "agent" } });
    expect(agent.status).toBe(201);
    const login = await call("/auth/login", { body: { email, password: "correct horse battery" } });
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    expect((await call(`/api/integrations/${o.channel}/push`, { headers: { cookie } })).status).toBe(403);
    // Still configured after all that.
    expect((await o.agent.call(`/api/integrations/${o.channel}/push`)).body.fcm.configured).toBe(true);
  });

  it("refuses the legacy FCM server key, bad keys, and non-mobile channels", async () => {
    const o = await newOrg();
    const channel = await mobileChannel(o);
    const creds = await credentials();
    const put = (body: unknown, id = channel) => o.agent.call(`/api/integrations/${id}/push`, { method: "PUT", body });

    const legacy = await put({ fcm: { server_key: "AAAA1234:APA91bLegacy", sender_id: "123456789012" } });
    expect(legacy.status).toBe(400);
    expect(legacy.body.error.message).toMatch(/legacy FCM server key.*HTTP v1 service account/);

    const swapped = await put({ fcm: { ...creds.fcm, private_key: creds.apns.private_key } });
    expect(swapped.status).toBe(400);
    expect(swapped.body.error.message).toMatch(/fcm\.private_key: not an RSA private key/);
    const ec = await put({ apns: { ...creds.apns, private_key: creds.fcm.private_key } });
    expect(ec.status).toBe(400);
    expect(ec.body.error.message).toMatch(/apns\.private_key: not a P-256 EC private key/);
    const pkcs1 = await put({ fcm: { ...creds.fcm, private_key: "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----" } });
    expect(pkcs1.status).toBe(400);
    expect(pkcs1.body.error.message).toMatch(/openssl pkcs8 -topk8/);
    expect((await put({ apns: { ...creds.apns, environment: "staging" } })).status).toBe(400);
    expect((await put({ apns: { ...creds.apns, team_id: "short" } })).status).toBe(400);
    expect((await put({})).status).toBe(400);

    const web = (await o.agent.call("/api/integrations/")).body.find((c: any) => c.kind === "webchat");
    const onWeb = await put({ fcm: creds.fcm }, web.id);
    expect(onWeb.status).toBe(400);
    expect(onWeb.body.error.message).toMatch(/mobile channel/);

    // A key pasted with escaped newlines (out of the JSON file by hand) is accepted.
    const escaped = await put({ fcm: { ...creds.fcm, private_key: creds.fcm.private_key.replace(/\n/g, "\\n") } });
    expect(escaped.status, JSON.stringify(escaped.body)).toBe(200);
    expect(escaped.body.fcm.configured).toBe(true);
    expect(escaped.body.apns.configured).toBe(false);
  });

  it("replaces one platform at a time; null or DELETE removes", async () => {
    const o = await pushOrg();
    const url = `/api/integrations/${o.channel}/push`;
    const other = await credentials("production");
    const r1 = await o.agent.call(url, { method: "PUT", body: { apns: other.apns } });
    expect(r1.body.apns.environment).toBe("production");
    expect(r1.body.fcm.project_id).toBe(o.creds.fcm.project_id);
    const r2 = await o.agent.call(url, { method: "PUT", body: { fcm: null } });
    expect(r2.body.fcm).toEqual({ configured: false });
    expect(r2.body.apns.configured).toBe(true);
    const r3 = await o.agent.call(`${url}?platform=apns`, { method: "DELETE" });
    expect(r3.body.apns).toEqual({ configured: false });
    await o.agent.call(url, { method: "PUT", body: { fcm: o.creds.fcm } });
    const r4 = await o.agent.call(url, { method: "DELETE" });
    expect(r4.body).toEqual({ channel_id: o.channel, fcm: { configured: false }, apns: { configured: false }, updated_at: null });
  });

  it("seals with AES-GCM bound to the channel and field: a copied ciphertext does not open", async () => {
    const secret = "x".repeat(40);
    const sealed = await seal(secret, "push:a:fcm", '{"k":1}');
    expect(await open([secret], "push:a:fcm", sealed)).toBe('{"k":1}');
    expect(await open([secret], "push:b:fcm", sealed)).toBeNull();
    expect(await open([secret], "push:a:apns", sealed)).toBeNull();
    expect(await open(["y".repeat(40)], "push:a:fcm", sealed)).toBeNull();
    expect(await open(["y".repeat(40), secret], "push:a:fcm", sealed)).toBe('{"k":1}'); // rotation: the previous key still opens
    const [v, iv, ct] = sealed.split(".");
    const bytes = b64urlBytes(ct!);
    bytes[0] = bytes[0]! ^ 1;
    const flipped = `${v}.${iv}.${btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
    expect(await open([secret], "push:a:fcm", flipped)).toBeNull();

    const a = await pushOrg();
    const b = await pushOrg();
    // Copy a's sealed FCM credentials into b's row: b's GET shows them unreadable, never a's values.
    const rowA = await env.DB.prepare("SELECT fcm FROM push_credentials WHERE channel_id = ?").bind(a.channel).first<{ fcm: string }>();
    await env.DB.prepare("UPDATE push_credentials SET fcm = ? WHERE channel_id = ?").bind(rowA!.fcm, b.channel).run();
    expect((await b.agent.call(`/api/integrations/${b.channel}/push`)).body.fcm).toEqual({ configured: true, readable: false });
  });
});

describe("JWTs", () => {
  it("signs the FCM service-account assertion with RS256 for Google's token endpoint", async () => {
    const creds = await credentials();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await serviceAccountAssertion(creds.fcm, now);
    const { header, claims } = await verifyJwt(jwt, creds.rsa.publicKey);
    expect(header).toEqual({ alg: "RS256", typ: "JWT", kid: creds.fcm.private_key_id });
    expect(claims).toEqual({
      iss: creds.fcm.client_email,
      scope: "https://www.googleapis.com/auth/firebase.messaging",
      aud: "https://oauth2.googleapis.com/token",
      iat: now,
      exp: now + 3600,
    });
    // Another key does not verify it.
    const other = await rsaKey();
    const [h, c, s] = jwt.split(".");
    expect(await crypto.subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, other.publicKey, b64urlBytes(s!), new TextEncoder().encode(`${h}.${c}`))).toBe(false);
  });

  it("signs the APNs provider token with ES256 and reuses it for 50 minutes", async () => {
    const creds = await credentials();
    const now = Math.floor(Date.now() / 1000);
    const jwt = await providerToken(creds.apns, now);
    const { header, claims } = await verifyJwt(jwt, creds.ec.publicKey);
    expect(header).toEqual({ alg: "ES256", kid: creds.apns.key_id });
    expect(claims).toEqual({ iss: "TEAM123456", iat: now });
    expect(b64urlBytes(jwt.split(".")[2]!).byteLength).toBe(64); // raw r||s, not DER
    expect(await providerToken(creds.apns, now + 49 * 60)).toBe(jwt);
    const renewed = await providerToken(creds.apns, now + 50 * 60);
    expect(renewed).not.toBe(jwt);
    expect((await verifyJwt(renewed, creds.ec.publicKey)).claims.iat).toBe(now + 50 * 60);
  });

  it("reads PKCS#8 PEM only", () => {
    expect(() => pkcs8Der("hello")).toThrow(/not a PEM private key/);
    expect(() => pkcs8Der("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----")).toThrow(/openssl pkcs8/);
  });
});

describe("device registration", () => {
  it("registers a token once (dedupe), moves it between end users, and deletes it", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const token = fcmToken();
    const first = await u.register("fcm", token);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({ conversation_id: u.conversation_id, platform: "fcm", created: true, push_channel_id: null });
    const again = await u.register("fcm", token);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(await devicesOf(u.external_id)).toHaveLength(1);

    // APNs tokens are hex, stored lowercase, so a differently-cased copy is the same token.
    const hex = apnsToken();
    expect((await u.register("apns", hex.toUpperCase())).status).toBe(201);
    expect((await u.register("apns", hex)).status).toBe(200);
    expect((await devicesOf(u.external_id)).map((d: any) => [d.platform, d.token])).toEqual([
      ["fcm", token],
      ["apns", hex],
    ]);

    // Another user signs in on the same phone: the token now belongs to them.
    const w = await mobileUser(o);
    expect((await w.register("fcm", token)).status).toBe(200);
    expect(await devicesOf(u.external_id)).toHaveLength(1);
    expect(await devicesOf(w.external_id)).toHaveLength(1);

    expect((await u.unregister("apns", hex)).body).toEqual({ conversation_id: u.conversation_id, platform: "apns", deleted: true });
    expect((await u.unregister("apns", hex)).body.deleted).toBe(false);
    expect((await u.unregister("fcm", token)).body.deleted).toBe(false); // not theirs any more
    expect(await devicesOf(w.external_id)).toHaveLength(1);
  });

  it("checks the end user like the widget's history does", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const wrong = await call("/chat-widget/devices", { body: { conversation_id: u.conversation_id, external_id: "someone-else", platform: "fcm", token: fcmToken() } });
    expect(wrong.status).toBe(404);
    const other = await newOrg();
    const ou = await mobileUser(other);
    const cross = await call("/chat-widget/devices", { body: { conversation_id: ou.conversation_id, external_id: u.external_id, platform: "fcm", token: fcmToken() } });
    expect(cross.status).toBe(404);
    expect((await u.register("apns", "not-hex")).status).toBe(400);
    expect((await u.register("fcm", "short")).status).toBe(400);
    expect((await call("/chat-widget/devices", { body: { conversation_id: u.conversation_id, external_id: u.external_id, platform: "hms", token: fcmToken() } })).status).toBe(400);

    // With identity verification required, the identity hash is needed too.
    const verified = await newOrg({ require_identity: true });
    const ext = "user-42";
    const hmac = async (secret: string, text: string) => {
      const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      return [...new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("");
    };
    const identity_hash = await hmac(verified.webchat.identity_secret, ext);
    const s = await call("/chat-widget/session", { body: { embed_token: verified.webchat.token, session_id: ext, identity_hash } });
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    const body = { conversation_id: s.body.conversation_id, external_id: ext, platform: "fcm", token: fcmToken() };
    expect((await call("/chat-widget/devices", { body })).status).toBe(404);
    expect((await call("/chat-widget/devices", { body: { ...body, identity_hash } })).status).toBe(201);
  });

  it("names the app's mobile channel only within the organisation, and keeps the newest 10 devices", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const other = await pushOrg();
    expect((await u.register("fcm", fcmToken(), { channel_id: other.channel })).status).toBe(404);
    const web = (await o.agent.call("/api/integrations/")).body.find((c: any) => c.kind === "webchat");
    expect((await u.register("fcm", fcmToken(), { channel_id: web.id })).status).toBe(404);
    const named = await u.register("fcm", fcmToken(), { channel_id: o.channel });
    expect(named.status).toBe(201);
    expect(named.body.push_channel_id).toBe(o.channel);

    const tokens: string[] = [];
    for (let i = 0; i < 11; i++) {
      tokens.push(apnsToken());
      expect((await u.register("apns", tokens.at(-1)!)).status).toBe(201);
    }
    const kept = await devicesOf(u.external_id);
    expect(kept).toHaveLength(10);
    expect(kept.map((d: any) => d.token)).toEqual(tokens.slice(1));
  });
});

describe("sending", () => {
  it("pushes an agent's message to every device of an offline end user, signed and shaped for FCM v1 and APNs", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const ft = fcmToken();
    const at = apnsToken();
    await u.register("fcm", ft);
    await u.register("apns", at);
    const long = `Your order ${"x".repeat(300)} ships tomorrow`;
    const m = await agentSays(o, u.conversation_id, long);
    await eventually(async () => fcmSends(ft).length === 1 && apnsSends(at).length === 1, "both pushes sent");

    // Google: one token exchange with a valid RS256 assertion.
    const [exchange] = tokenCalls(o.creds.fcm.client_email);
    expect(exchange!.path).toBe("/token");
    expect(exchange!.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(exchange!.form!.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer");
    const assertion = await verifyJwt(exchange!.form!.get("assertion")!, o.creds.rsa.publicKey);
    expect(assertion.header).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(assertion.claims).toMatchObject({ iss: o.creds.fcm.client_email, aud: "https://oauth2.googleapis.com/token", scope: "https://www.googleapis.com/auth/firebase.messaging" });
    expect(assertion.claims.exp - assertion.claims.iat).toBe(3600);
    expect(Math.abs(assertion.claims.iat - Date.now() / 1000)).toBeLessThan(60);

    // FCM v1 send.
    const [fcm] = fcmSends(ft);
    expect(fcm!.path).toBe(`/v1/projects/${o.creds.fcm.project_id}/messages:send`);
    expect(fcm!.headers.authorization).toMatch(/^Bearer ya29\.fake-\d+$/);
    const preview = truncate(long, 140);
    expect(preview.length).toBeLessThanOrEqual(140);
    expect(preview.endsWith("…")).toBe(true);
    expect(fcm!.json).toEqual({
      message: {
        token: ft,
        notification: { title: o.user.name, body: preview },
        data: {
          type: "parley.message",
          conversation_id: u.conversation_id,
          message_id: m.id,
          seq: String(m.seq),
          sender_type: "agent",
          sender_name: o.user.name,
          preview,
        },
        android: { priority: "HIGH", notification: { tag: u.conversation_id } },
      },
    });

    // APNs: sandbox host, token auth, headers, body.
    const [apns] = apnsSends(at);
    expect(apns!.host).toBe("api.sandbox.push.apple.com");
    expect(apns!.headers["apns-topic"]).toBe(o.creds.apns.bundle_id);
    expect(apns!.headers["apns-push-type"]).toBe("alert");
    expect(apns!.headers["apns-priority"]).toBe("10");
    expect(Number(apns!.headers["apns-expiration"])).toBeGreaterThan(Date.now() / 1000);
    const bearer = apns!.headers.authorization!.match(/^bearer (.+)$/)![1]!;
    const provider = await verifyJwt(bearer, o.creds.ec.publicKey);
    expect(provider.header).toEqual({ alg: "ES256", kid: o.creds.apns.key_id });
    expect(provider.claims).toEqual({ iss: "TEAM123456", iat: expect.any(Number) });
    expect(apns!.json).toEqual({
      aps: { alert: { title: fcm!.json.message.notification.title, body: preview }, sound: "default", "thread-id": u.conversation_id },
      type: "parley.message",
      conversation_id: u.conversation_id,
      message_id: m.id,
      seq: m.seq,
      sender_type: "agent",
      sender_name: fcm!.json.message.notification.title,
    });
    expect(new TextEncoder().encode(apns!.body).byteLength).toBeLessThan(4096);

    // A second message reuses the cached access token and provider token.
    await agentSays(o, u.conversation_id, "Anything else?");
    await eventually(async () => fcmSends(ft).length === 2 && apnsSends(at).length === 2, "second pushes");
    expect(tokenCalls(o.creds.fcm.client_email)).toHaveLength(1);
    expect(fcmSends(ft)[1]!.headers.authorization).toBe(fcm!.headers.authorization);
    expect(apnsSends(at)[1]!.headers.authorization).toBe(apns!.headers.authorization);
  });

  it("looks up an offline end user's devices once while there are none; a device registered later gets the next message", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const room = env.CONVERSATION.getByName(u.conversation_id);
    const devicesKnown = () => runInDurableObject(room, (r) => (r as unknown as { pushDevices: boolean | undefined }).pushDevices);
    await agentSays(o, u.conversation_id, "nobody to push to");
    await eventually(async () => (await devicesKnown()) === false, "the room remembers there is no device");
    const ft = fcmToken();
    await u.register("fcm", ft);
    expect(await devicesKnown()).toBeUndefined();
    await agentSays(o, u.conversation_id, "now there is");
    await eventually(async () => fcmSends(ft).length === 1, "the new device gets the next message");
    expect(fcmSends(ft)[0]!.json.message.notification.body).toBe("now there is");
    expect(await devicesKnown()).toBe(true);
  });

  it("does not push whispers, the end user's own messages, or while the end user is connected", async () => {
    const o = await pushOrg("production");
    const u = await mobileUser(o);
    const at = apnsToken();
    await u.register("apns", at);
    const whisper = await agentSays(o, u.conversation_id, "internal note", { private: true });
    const own = await dostiVisitor(o.pk, u.external_id).send("hello from the app");
    expect(own.status).toBe(200);

    // Online over the native WebSocket: no push.
    const ws = await openSocket(`/ws/visitor?key=${o.pk}&external_id=${u.external_id}`);
    await ws.next((f) => f.type === "ready");
    const live = await agentSays(o, u.conversation_id, "while you are here");
    await ws.next((f) => f.type === "message" && f.message.id === live.id);
    ws.close();
    await ws.waitClosed();

    // Offline again: pushed (production host).
    const later = await eventually(async () => {
      const m = await agentSays(o, u.conversation_id, `are you there? ${crypto.randomUUID()}`);
      await settle();
      return apnsSends(at).some((h) => h.json.message_id === m.id) && m;
    }, "push after the socket closed");
    await settle();
    const pushed = apnsSends(at).map((h) => h.json.message_id);
    expect(pushed).toContain(later.id);
    expect(pushed).not.toContain(whisper.id);
    expect(pushed).not.toContain(live.id);
    expect(apnsSends(at).every((h) => h.host === "api.push.apple.com")).toBe(true);
  });

  it("does not push while the end user has a Socket.IO subscription to the room", async () => {
    expect(endUserLive([], [])).toBe(false);
    const socket = (readyState: number) => ({ readyState }) as WebSocket;
    expect(endUserLive([socket(WebSocket.READY_STATE_OPEN)], [])).toBe(true);
    expect(endUserLive([socket(WebSocket.READY_STATE_CLOSING), socket(WebSocket.READY_STATE_CLOSED)], [])).toBe(false);
    expect(endUserLive([], [{ name: "s1", audience: "staff" }])).toBe(false);
    expect(endUserLive([], [{ name: "s1", audience: "end_user" }])).toBe(true);

    const o = await pushOrg();
    const u = await mobileUser(o);
    const ft = fcmToken();
    await u.register("fcm", ft);
    const stub = env.CONVERSATION.getByName(u.conversation_id);
    // The room's own subscriber store (its table is made at the first subscriber). A subscriber
    // the room cannot reach is dropped after the first delivery attempt.
    const subscribers = (room: unknown) => (room as { subscribers: Subscribers }).subscribers;
    await runInDurableObject(stub, (room) => subscribers(room).add({ name: "sio-test", audience: "end_user" }));
    const quiet = await agentSays(o, u.conversation_id, "you have the app open");
    await runInDurableObject(stub, (room) => subscribers(room).remove("sio-test"));
    const loud = await agentSays(o, u.conversation_id, "you closed it");
    await eventually(async () => fcmSends(ft).some((h) => h.json.message.data.message_id === loud.id), "pushed once unsubscribed");
    await settle();
    expect(fcmSends(ft).map((h) => h.json.message.data.message_id)).toEqual([loud.id]);
    expect(quiet.id).not.toBe(loud.id);
  });

  it("pushes a bot's replies to an end user writing over REST", async () => {
    const o = await pushOrg();
    const web = (await o.agent.call("/api/integrations/")).body.find((c: any) => c.is_default);
    const bot = await o.agent.call(`/api/integrations/${web.id}/bot`, {
      method: "PUT",
      body: { kind: "flow", config: { intents: [{ name: "hours", keywords: ["hours"], reply: { content: "We are open 9-17." } }] } },
    });
    expect(bot.status).toBe(200);
    const u = await mobileUser(o);
    const ft = fcmToken();
    await u.register("fcm", ft);
    await dostiVisitor(o.pk, u.external_id).send("what are your hours?");
    const push = await eventually(async () => fcmSends(ft)[0], "bot reply pushed");
    expect(push.json.message.data).toMatchObject({ sender_type: "bot", sender_name: "Bot", preview: "We are open 9-17." });
    expect(push.json.message.notification).toEqual({ title: "Bot", body: "We are open 9-17." });
  });

  it("removes tokens FCM and APNs report unregistered, and keeps the others", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const [goneFcm, goneApns, liveFcm, liveApns] = [fcmToken(), apnsToken(), fcmToken(), apnsToken()];
    for (const [p, t] of [["fcm", goneFcm], ["apns", goneApns], ["fcm", liveFcm], ["apns", liveApns]] as const) expect((await u.register(p, t)).status).toBe(201);
    when(
      (h) => h.json?.message?.token === goneFcm,
      () =>
        Response.json(
          { error: { code: 404, message: "Requested entity was not found.", status: "NOT_FOUND", details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" }] } },
          { status: 404 },
        ),
    );
    when((h) => h.path === `/3/device/${goneApns}`, () => Response.json({ reason: "Unregistered", timestamp: Date.now() }, { status: 410 }));
    await agentSays(o, u.conversation_id, "first");
    await eventually(async () => (await devicesOf(u.external_id)).length === 2, "dead tokens removed");
    expect((await devicesOf(u.external_id)).map((d: any) => d.token).sort()).toEqual([liveFcm, liveApns].sort());
    await agentSays(o, u.conversation_id, "second");
    await eventually(async () => fcmSends(liveFcm).length === 2 && apnsSends(liveApns).length === 2, "second round");
    await settle();
    expect(fcmSends(goneFcm)).toHaveLength(1);
    expect(apnsSends(goneApns)).toHaveLength(1);
  });

  it("retries 5xx and expired auth quickly, gives up after 3 retries, and never retries a 400", async () => {
    const o = await pushOrg();
    const u = await mobileUser(o);
    const flaky = fcmToken();
    await u.register("fcm", flaky);
    when(
      (h) => h.json?.message?.token === flaky,
      (_h, n) => (n <= 2 ? new Response("busy", { status: 503 }) : n === 3 ? Response.json({ error: { code: 401, status: "UNAUTHENTICATED" } }, { status: 401 }) : Response.json({ name: "ok" })),
    );
    await agentSays(o, u.conversation_id, "hello");
    await eventually(async () => fcmSends(flaky).length === 4, "four attempts", 10_000);
    // The 401 made Parley fetch a new access token for the last attempt.
    expect(tokenCalls(o.creds.fcm.client_email)).toHaveLength(2);
    const auths = fcmSends(flaky).map((h) => h.headers.authorization);
    expect(auths[2]).toBe(auths[0]);
    expect(auths[3]).not.toBe(auths[2]);

    const bad = apnsToken();
    await u.register("apns", bad);
    when((h) => h.path === `/3/device/${bad}`, () => Response.json({ reason: "BadDeviceToken" }, { status: 400 }));
    await agentSays(o, u.conversation_id, "again");
    await eventually(async () => apnsSends(bad).length === 1, "one attempt");
    await new Promise((r) => setTimeout(r, 1000));
    expect(apnsSends(bad)).toHaveLength(1);
    expect((await devicesOf(u.external_id)).map((d: any) => d.token)).toContain(bad); // a 400 is not "unregistered"

    // The retry policy itself: 3 retries, then failed; a long Retry-After is not waited for.
    let n = 0;
    const always = await withRetries(async () => (n++, { kind: "retry", status: 503, reason: "down" }), [1, 1, 1]);
    expect(always).toEqual({ outcome: { kind: "failed", status: 503, reason: "gave up after 4 attempts: down" }, attempts: 4 });
    const slow = await withRetries(async () => ({ kind: "retry", status: 429, reason: "quota", retryAfterMs: 60_000 }), [1, 1, 1]);
    expect(slow.attempts).toBe(1);
    expect(slow.outcome.kind).toBe("failed");
  });

  it("picks the device's mobile channel when the organisation has several", async () => {
    const o = await pushOrg();
    const second = await mobileChannel(o, "Second app");
    const creds2 = await credentials();
    expect((await o.agent.call(`/api/integrations/${second}/push`, { method: "PUT", body: { fcm: creds2.fcm } })).status).toBe(200);
    const u = await mobileUser(o);
    const unnamed = fcmToken();
    const named = fcmToken();
    await u.register("fcm", unnamed);
    await u.register("fcm", named, { channel_id: second });
    const m = await agentSays(o, u.conversation_id, "which app?");
    const push = await eventually(async () => fcmSends(named)[0], "named device pushed");
    expect(push.path).toBe(`/v1/projects/${creds2.fcm.project_id}/messages:send`);
    expect(push.json.message.data.message_id).toBe(m.id);
    await settle();
    expect(fcmSends(unnamed)).toHaveLength(0); // ambiguous: two mobile channels hold FCM credentials
  });
});
