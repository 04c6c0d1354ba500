import { describe, expect, it } from "vitest";
import { hashPassword, hmacSha256Hex, PBKDF2_ITERATIONS, verifyPassword } from "../../src/core/crypto";
import { call, dostiVisitor, newOrg, withKey } from "./helpers";

describe("agent auth", () => {
  it("pins PBKDF2 at the deployed Workers cap and records it in the stored hash", async () => {
    expect(PBKDF2_ITERATIONS).toBeLessThanOrEqual(100_000);
    const stored = await hashPassword("correct horse battery");
    expect(stored).toMatch(/^pbkdf2-sha256\$100000\$[\w-]+\$[\w-]+$/);
    expect(await verifyPassword("correct horse battery", stored)).toBe(true);
    expect(await verifyPassword("wrong", stored)).toBe(false);
  });

  it("signs up, logs in, reads /auth/me, logs out; the cookie is HttpOnly and SameSite", async () => {
    const o = await newOrg();
    const login = await call("/auth/login", { body: { email: o.email, password: "correct horse battery" } });
    expect(login.status).toBe(200);
    const setCookie = login.headers.get("set-cookie")!;
    expect(setCookie).toMatch(/^__Host-session=/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Lax/i);
    expect(setCookie).toMatch(/Secure/i); // https request
    const cookie = setCookie.split(";")[0]!;
    const me = await call("/auth/me", { headers: { cookie } });
    expect(me.body).toMatchObject({ user: { email: o.email, role: "owner" }, organization: { id: o.org.id } });
    expect(me.body.csrf_token).toBe(login.body.csrf_token);
    expect((await call("/auth/logout", { method: "POST", headers: { cookie, "x-csrftoken": login.body.csrf_token } })).status).toBe(200);
    expect((await call("/auth/me", { headers: { cookie } })).status).toBe(401);
  });

  it("refuses a second signup with the same email and wrong passwords; throttles repeated failures", async () => {
    const o = await newOrg();
    const again = await call("/auth/signup", { body: { organization_name: "X", name: "Y", email: o.email.toUpperCase(), password: "another password" } });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("email_taken");
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await call("/auth/login", { body: { email: o.email, password: `nope-${i}` } })).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses[10]).toBe(429);
    // Even the right password waits out the window.
    expect((await call("/auth/login", { body: { email: o.email, password: "correct horse battery" } })).status).toBe(429);
    expect((await call("/auth/login", { body: { email: o.email, password: "x".repeat(2000) } })).status).toBe(400);
  });

  it("a secret key authenticates the agent API without a browser; revoked keys and browsers are refused", async () => {
    const o = await newOrg();
    await dostiVisitor(o.pk, "k-visitor").send("hello");
    const server = withKey(o.sk);
    const list = await server.call("/api/conversations/?filter=all");
    expect(list.status).toBe(200);
    const fromBrowser = await server.call("/api/conversations/?filter=all", { headers: { "sec-fetch-site": "cross-site" } });
    expect(fromBrowser.status).toBe(403);
    const keys = await o.agent.call("/api/company/api-keys");
    expect(JSON.stringify(keys.body)).not.toContain(o.sk);
    const secret = keys.body.find((k: any) => k.kind === "secret");
    expect((await o.agent.call(`/api/company/api-keys/${secret.id}`, { method: "DELETE" })).status).toBe(200);
    expect((await server.call("/api/conversations/?filter=all")).status).toBe(401);
    expect((await call("/api/conversations/")).status).toBe(401);
  });

  it("only owners and admins manage keys and channels", async () => {
    const o = await newOrg();
    const email = `agent-${crypto.randomUUID()}@example.test`;
    expect((await o.agent.call("/api/company/agents", { body: { name: "Al", email, password: "agent password", role: "agent" } })).status).toBe(201);
    const login = await call("/auth/login", { body: { email, password: "agent password" } });
    const cookie = login.headers.get("set-cookie")!.split(";")[0]!;
    const headers = { cookie, "x-csrftoken": login.body.csrf_token };
    expect((await call("/api/company/api-keys", { body: { name: "k", kind: "secret" }, headers })).status).toBe(403);
    expect((await call("/api/integrations/webchat", { body: { name: "w", allowed_origins: [] }, headers })).status).toBe(403);
    expect((await call("/api/conversations/?filter=mine", { headers })).status).toBe(200);
  });
});

describe("visitor identity and origins", () => {
  it("with identity verification required, an unsigned or wrongly signed id never reaches the thread", async () => {
    const o = await newOrg({ require_identity: true });
    const token = o.webchat.token;
    const secret = o.webchat.identity_secret as string;
    const good = await hmacSha256Hex(secret, "customer-42");
    const opened = await call("/chat-widget/session", { body: { embed_token: token, session_id: "customer-42", identity_hash: good } });
    expect(opened.status).toBe(200);
    for (const identity_hash of [undefined, "", "00".repeat(32), await hmacSha256Hex(secret, "customer-43")]) {
      const r = await call("/chat-widget/session", { body: { embed_token: token, session_id: "customer-42", ...(identity_hash === undefined ? {} : { identity_hash }) } });
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe("identity_required");
    }
    const history = await call(`/chat-widget/history/${opened.body.conversation_id}?external_id=customer-42`);
    expect(history.status).toBe(404);
    const signed = await call(`/chat-widget/history/${opened.body.conversation_id}?external_id=customer-42&identity_hash=${good}`);
    expect(signed.status).toBe(200);
  });

  it("without verification, a visitor that names no id gets an unguessable one", async () => {
    const o = await newOrg();
    const a = await call("/chat-widget/session", { body: { embed_token: o.webchat.token } });
    const b = await call("/chat-widget/session", { body: { embed_token: o.webchat.token } });
    expect(a.body.external_id).toMatch(/^v_[\w-]{24}$/);
    expect(a.body.external_id).not.toBe(b.body.external_id);
    expect(a.body.conversation_id).not.toBe(b.body.conversation_id);
  });

  it("answers only exact allowed origins for a webchat channel", async () => {
    const o = await newOrg({ allowed_origins: ["https://shop.example"] });
    const open = (origin?: string) => call("/chat-widget/session", { body: { embed_token: o.webchat.token }, headers: origin ? { origin } : {} });
    expect((await open("https://shop.example")).status).toBe(200);
    // Parley's own pages (the widget's iframe) are not a foreign site.
    expect((await open("https://parley.test")).status).toBe(200);
    for (const bad of ["https://evil.test", "null", "https://shop.example.evil.test", "https://evilshop.example", "http://shop.example", "https://shop.example:8443"]) {
      const r = await open(bad);
      expect(r.status, bad).toBe(403);
      expect(r.body.error.code).toBe("origin_not_allowed");
    }
  });

  it("a visitor's external id does not open another visitor's history", async () => {
    const o = await newOrg();
    const a = await call("/chat-widget/session", { body: { embed_token: o.webchat.token, session_id: "alice" } });
    await call("/chat-widget/session", { body: { embed_token: o.webchat.token, session_id: "bob" } });
    expect((await call(`/chat-widget/history/${a.body.conversation_id}?external_id=bob`)).status).toBe(404);
    expect((await call(`/chat-widget/history/${a.body.conversation_id}?external_id=alice`)).status).toBe(200);
    expect((await call("/api/chat/poll?apiKey=pk_unknown&visitorId=alice")).status).toBe(401);
  });
});
