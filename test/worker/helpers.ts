/** Drives the real Worker in-process (exports.default.fetch) the way clients do. */
import { exports } from "cloudflare:workers";

export const BASE = "https://parley.test";

export interface Res<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function call<T = any>(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; raw?: string } = {}): Promise<Res<T>> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | undefined = init.raw;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers["content-type"] ??= "application/json";
  }
  const res = await exports.default.fetch(new Request(BASE + path, { method: init.method ?? (body === undefined ? "GET" : "POST"), headers, body }));
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

let n = 0;

/** A new organisation with its owner logged in, a public key, a secret key and a webchat channel. */
export async function newOrg(opts: { allowed_origins?: string[]; require_identity?: boolean } = {}) {
  const email = `owner${++n}-${crypto.randomUUID()}@example.test`;
  const signup = await call("/auth/signup", { body: { organization_name: `Org ${n}`, name: `Owner ${n}`, email, password: "correct horse battery" } });
  if (signup.status !== 201) throw new Error(`signup: ${signup.status} ${JSON.stringify(signup.body)}`);
  const cookie = signup.headers.get("set-cookie")!.split(";")[0]!;
  const agent = asAgent(cookie, signup.body.csrf_token);
  const pk = (await agent.call("/api/company/api-keys", { body: { name: "public", kind: "public" } })).body.key as string;
  const sk = (await agent.call("/api/company/api-keys", { body: { name: "secret", kind: "secret" } })).body.key as string;
  const webchat = (await agent.call("/api/integrations/webchat", { body: { name: "site", allowed_origins: opts.allowed_origins ?? [], require_identity: opts.require_identity ?? false } })).body;
  return { email, user: signup.body.user, org: signup.body.organization, cookie, csrf: signup.body.csrf_token as string, agent, pk, sk, webchat };
}

export function asAgent(cookie: string, csrf: string) {
  return {
    call: <T = any>(path: string, init: Parameters<typeof call>[1] = {}) =>
      call<T>(path, { ...init, headers: { cookie, "x-csrftoken": csrf, ...init.headers } }),
  };
}

export function withKey(sk: string) {
  return {
    call: <T = any>(path: string, init: Parameters<typeof call>[1] = {}) => call<T>(path, { ...init, headers: { authorization: `Bearer ${sk}`, ...init.headers } }),
  };
}

/** A visitor on seed 000's REST. */
export function dostiVisitor(apiKey: string, visitorId: string, visitorName = "Visitor") {
  return {
    send: (message: string, extra: Record<string, unknown> = {}) => call("/api/chat/send", { body: { apiKey, visitorId, visitorName, message, ...extra } }),
    poll: (lastTimestamp = 0, wait?: number) =>
      call(`/api/chat/poll?apiKey=${apiKey}&visitorId=${encodeURIComponent(visitorId)}&lastTimestamp=${lastTimestamp}${wait ? `&wait=${wait}` : ""}`),
  };
}

/** Opens a native-protocol WebSocket through the Worker and collects its frames. */
export async function openSocket(path: string, headers: Record<string, string> = {}) {
  const res = await exports.default.fetch(new Request(BASE + path, { headers: { upgrade: "websocket", ...headers } }));
  const ws = res.webSocket;
  if (!ws) throw new Error(`no upgrade: ${res.status} ${await res.text()}`);
  ws.accept();
  const frames: any[] = [];
  const waiters: (() => void)[] = [];
  let closed: { code: number; reason: string } | null = null;
  ws.addEventListener("message", (e) => {
    frames.push(JSON.parse(e.data as string));
    waiters.splice(0).forEach((w) => w());
  });
  ws.addEventListener("close", (e) => {
    closed = { code: e.code, reason: e.reason };
    waiters.splice(0).forEach((w) => w());
  });
  return {
    ws,
    frames,
    get closed() {
      return closed;
    },
    send: (frame: unknown) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    /** Waits (bounded) for a frame matching `pred`, returning it. */
    async next(pred: (f: any) => boolean, timeoutMs = 5000): Promise<any> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = frames.find(pred);
        if (found) return found;
        if (closed) throw new Error(`socket closed ${JSON.stringify(closed)} while waiting; frames: ${JSON.stringify(frames)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for frame; got ${JSON.stringify(frames)}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, left);
        });
      }
    },
    async waitClosed(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!closed && Date.now() < deadline) await new Promise<void>((r) => { waiters.push(r); setTimeout(r, deadline - Date.now()); });
      if (!closed) throw new Error("socket did not close");
      return closed as { code: number; reason: string };
    },
    close: () => ws.close(1000, "done"),
  };
}

/** Bounded polling for a condition (no bare sleeps). */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, message: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`eventually: ${message}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
