// Helpers for e2e tests that speak real HTTP to the `wrangler dev` started by global-setup.ts.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { inject } from "vitest";

export function baseUrl(): string {
  return inject("baseUrl");
}

export interface ApiOptions {
  method?: string;
  /** Sent as JSON; makes the default method POST. */
  body?: unknown;
  /** A Cookie header value, e.g. `session=...`. */
  cookie?: string;
  /** Sent as X-CSRFToken, which cookie-authenticated writes require. */
  csrf?: string;
  headers?: Record<string, string>;
}

export interface ApiResponse<T = any> {
  status: number;
  /** The parsed body, or null when it is not JSON (see text). */
  json: T;
  text: string;
  headers: Headers;
}

export async function api<T = any>(path: string, opts: ApiOptions = {}): Promise<ApiResponse<T>> {
  const headers = new Headers(opts.headers);
  if (opts.body !== undefined) headers.set("content-type", "application/json");
  if (opts.cookie) headers.set("cookie", opts.cookie);
  if (opts.csrf) headers.set("x-csrftoken", opts.csrf);
  const res = await fetch(new URL(path, baseUrl()), {
    method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    redirect: "manual",
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: the caller can look at text.
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** Throws with the response body when the status is not the expected one. */
export function expectStatus<T>(res: ApiResponse<T>, status: number, what: string): ApiResponse<T> {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status}: ${res.text}`);
  return res;
}

/** The `name=value` part of the named cookie in the response's Set-Cookie headers. */
export function cookieFrom(headers: Headers, name: string): string | undefined {
  return headers
    .getSetCookie()
    .map((c) => c.split(";", 1)[0]!)
    .find((c) => c.startsWith(`${name}=`));
}

export interface ApiKey {
  id: string;
  name: string;
  kind: "public" | "secret";
  key: string;
}

export interface Webchat {
  id: string;
  channel_id: string;
  token: string;
}

/** A signed-in agent: every call carries its session cookie and CSRF token. */
export interface Client {
  email: string;
  password: string;
  cookie: string;
  csrf: string;
  user: any;
  organization: any;
  api<T = any>(path: string, opts?: ApiOptions): Promise<ApiResponse<T>>;
  createKey(kind: ApiKey["kind"], name?: string): Promise<ApiKey>;
  createWebchat(allowed_origins: string[], opts?: { name?: string; title?: string }): Promise<Webchat>;
}

/** Signs up a new organisation with a random agent and returns that agent's client. */
export async function signupOrg(organization_name = `E2E Org ${randomUUID().slice(0, 8)}`): Promise<Client> {
  const email = `agent-${randomUUID()}@e2e.parley.test`;
  const password = `pw-${randomUUID()}`;
  const res = await api("/auth/signup", { body: { organization_name, name: "E2E Agent", email, password } });
  if (res.status < 200 || res.status > 299) throw new Error(`signup: got ${res.status}: ${res.text}`);
  const cookie = cookieFrom(res.headers, "session");
  if (!cookie) throw new Error(`signup: no session cookie in ${JSON.stringify(res.headers.getSetCookie())}`);
  const csrf: string | undefined = res.json?.csrf_token;
  if (!csrf) throw new Error(`signup: no csrf_token in ${res.text}`);

  const client: Client = {
    email,
    password,
    cookie,
    csrf,
    user: res.json.user,
    organization: res.json.organization,
    api: (path, opts = {}) => api(path, { cookie, csrf, ...opts }),
    async createKey(kind, name = `e2e ${kind} key`) {
      const res = await client.api<ApiKey>("/api/company/api-keys", { body: { name, kind } });
      return expectStatus(res, 201, "create API key").json;
    },
    async createWebchat(allowed_origins, opts = {}) {
      const body = { name: opts.name ?? "e2e webchat", allowed_origins, title: opts.title };
      const res = await client.api<Webchat>("/api/integrations/webchat", { body });
      return expectStatus(res, 201, "create webchat").json;
    },
  };
  return client;
}

/**
 * Calls fn until it returns something other than undefined/null/false, or until timeoutMs has
 * passed; a throw counts as "not yet" and is reported if time runs out.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 5_000, intervalMs = 50, message = "condition" }: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false) return value as Exclude<T, undefined | null | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError === undefined ? "" : `; last error: ${String(lastError)}`;
      throw new Error(`waitFor: ${message} not met within ${timeoutMs} ms${cause}`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}
