/** S10: the session cookie's name and flags per scheme, the idle and absolute timeouts. */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/core/crypto";
import { SESSION_IDLE_MS, SESSION_TOUCH_MS, SESSION_TTL_MS } from "../../src/http/auth";
import { call, newOrg } from "./helpers";

const PASSWORD = "correct horse battery";

async function loginOver(origin: string, email: string) {
  const res = await exports.default.fetch(new Request(`${origin}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email, password: PASSWORD }) }));
  return { status: res.status, setCookie: res.headers.get("set-cookie") ?? "", body: (await res.json()) as { csrf_token: string } };
}

const me = async (origin: string, cookie: string) => (await exports.default.fetch(new Request(`${origin}/auth/me`, { headers: { cookie } }))).status;

async function stored(token: string) {
  return (await env.DB.prepare("SELECT created_at, expires_at FROM auth_sessions WHERE id_hash = ?").bind(await sha256Hex(token)).first<{ created_at: string; expires_at: string }>())!;
}

async function setTimes(token: string, t: { created_at?: number; expires_at?: number }) {
  const id = await sha256Hex(token);
  if (t.created_at !== undefined) await env.DB.prepare("UPDATE auth_sessions SET created_at = ? WHERE id_hash = ?").bind(new Date(t.created_at).toISOString(), id).run();
  if (t.expires_at !== undefined) await env.DB.prepare("UPDATE auth_sessions SET expires_at = ? WHERE id_hash = ?").bind(new Date(t.expires_at).toISOString(), id).run();
}

describe("session lifecycle", () => {
  it("on https the cookie is __Host-session (Secure, HttpOnly, SameSite=Lax, Path=/, no Domain) and a plain `session` cookie is ignored; on http (local dev) it is `session` without Secure", async () => {
    const o = await newOrg();
    const https = await loginOver("https://parley.test", o.email);
    expect(https.status).toBe(200);
    const attrs = https.setCookie.split(";").map((s) => s.trim());
    expect(attrs[0]).toMatch(/^__Host-session=[\w-]{40,}$/);
    expect(attrs.map((a) => a.toLowerCase())).toEqual(expect.arrayContaining(["secure", "httponly", "samesite=lax", "path=/"]));
    expect(attrs.some((a) => /^domain=/i.test(a))).toBe(false);
    const token = attrs[0]!.slice("__Host-session=".length);
    expect(await me("https://parley.test", `__Host-session=${token}`)).toBe(200);
    // Cookie tossing: a sibling subdomain or an http page can set `session`, never `__Host-session`.
    expect(await me("https://parley.test", `session=${token}`)).toBe(401);

    const http = await loginOver("http://localhost:8787", o.email);
    expect(http.status).toBe(200);
    const local = http.setCookie.split(";").map((s) => s.trim());
    expect(local[0]).toMatch(/^session=[\w-]{40,}$/);
    expect(local.map((a) => a.toLowerCase())).not.toContain("secure");
    expect(local.map((a) => a.toLowerCase())).toEqual(expect.arrayContaining(["httponly", "samesite=lax", "path=/"]));
    expect(await me("http://localhost:8787", local[0]!)).toBe(200);

    // Logout clears the cookie under the name the scheme uses.
    const out = await exports.default.fetch(new Request("https://parley.test/auth/logout", { method: "POST", headers: { cookie: `__Host-session=${token}`, "x-csrftoken": https.body.csrf_token } }));
    expect(out.status).toBe(200);
    expect(out.headers.get("set-cookie")).toMatch(/^__Host-session=;/);
    expect(out.headers.get("set-cookie")).toMatch(/max-age=0/i);
    expect(out.headers.get("set-cookie")).toMatch(/secure/i);
    expect(await me("https://parley.test", `__Host-session=${token}`)).toBe(401);
  });

  it("a session unused for 12 hours ends; use slides it with at most one D1 write per 5 minutes; 7 days after login it ends however busy", async () => {
    const o = await newOrg();
    const login = await loginOver("https://parley.test", o.email);
    const cookie = login.setCookie.split(";")[0]!;
    const token = cookie.slice("__Host-session=".length);
    const at = await stored(token);
    // The stored expiry is the idle one, not the absolute one.
    expect(Date.parse(at.expires_at) - Date.now()).toBeGreaterThan(SESSION_IDLE_MS - 60_000);
    expect(Date.parse(at.expires_at) - Date.now()).toBeLessThanOrEqual(SESSION_IDLE_MS);

    // Requests within the touch interval write nothing.
    for (let i = 0; i < 5; i++) expect(await me("https://parley.test", cookie)).toBe(200);
    expect((await stored(token)).expires_at).toBe(at.expires_at);

    // Last seen 6 minutes ago: the next request slides the expiry to 12 h from now, once.
    await setTimes(token, { expires_at: Date.now() + SESSION_IDLE_MS - SESSION_TOUCH_MS - 60_000 });
    expect(await me("https://parley.test", cookie)).toBe(200);
    const slid = (await stored(token)).expires_at;
    expect(Date.parse(slid) - Date.now()).toBeGreaterThan(SESSION_IDLE_MS - 60_000);
    expect(await me("https://parley.test", cookie)).toBe(200);
    expect((await stored(token)).expires_at).toBe(slid);

    // Last seen 12 h and a second ago: over, on REST and on sockets alike.
    await setTimes(token, { expires_at: Date.now() - 1000 });
    expect(await me("https://parley.test", cookie)).toBe(401);
    const ws = await exports.default.fetch(new Request("https://parley.test/ws/org", { headers: { upgrade: "websocket", cookie } }));
    expect(ws.status).toBe(401);
    expect(await ws.json()).toMatchObject({ error: { code: "unauthorized" } });

    // Absolute: a session made 7 days ago ends even when used a moment ago, and is never slid past it.
    const busy = await loginOver("https://parley.test", o.email);
    const busyCookie = busy.setCookie.split(";")[0]!;
    const busyToken = busyCookie.slice("__Host-session=".length);
    const created = Date.now() - SESSION_TTL_MS + 10 * 60_000;
    await setTimes(busyToken, { created_at: created, expires_at: Date.now() + 60_000 });
    expect(await me("https://parley.test", busyCookie)).toBe(200);
    expect(Date.parse((await stored(busyToken)).expires_at)).toBe(created + SESSION_TTL_MS);
    await setTimes(busyToken, { created_at: Date.now() - SESSION_TTL_MS - 1000, expires_at: Date.now() + SESSION_IDLE_MS });
    expect(await me("https://parley.test", busyCookie)).toBe(401);
    expect((await call("/auth/me", { headers: { cookie: busyCookie } })).status).toBe(401);
  });
});
