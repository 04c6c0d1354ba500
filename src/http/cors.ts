/**
 * CORS for the visitor-side surfaces, which customers' pages call: any Origin is reflected (no
 * credentials are allowed, so that grants a page nothing a server could not do; each handler
 * checks the channel's allowed origins itself, see conversation/directory.ts `checkOrigin`).
 *
 * Hono's cors() answers the same headers but touches `c.res` before the handler runs, which makes
 * an empty Response up front, then a copy of its headers and a second Response when the handler's
 * arrives: three Responses per request, a few per cent of a seed 000 poll's CPU. This one puts its
 * headers into the context's prepared headers, which `c.json()` (and every other context helper,
 * the error envelope included) builds its one Response with. A handler that returns a Response it
 * built itself (Socket.IO's, from its session object) gets them added afterwards.
 */
import type { MiddlewareHandler } from "hono";

export interface OpenCorsOptions {
  methods: string[];
  headers: string[];
  /** Seconds a browser may keep the preflight's answer. */
  maxAge: number;
}

export function openCors(options: OpenCorsOptions): MiddlewareHandler {
  const methods = options.methods.join(",");
  const headers = options.headers.join(",");
  const maxAge = String(options.maxAge);
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (c.req.method === "OPTIONS") {
      const preflight = new Headers({
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": headers,
        "Access-Control-Max-Age": maxAge,
        Vary: "Origin, Access-Control-Request-Headers",
      });
      if (origin) preflight.set("Access-Control-Allow-Origin", origin);
      return new Response(null, { status: 204, headers: preflight });
    }
    if (origin) c.header("Access-Control-Allow-Origin", origin);
    c.header("Vary", "Origin", { append: true });
    await next();
    if (origin && c.res.headers.get("Access-Control-Allow-Origin") !== origin) {
      // The handler's own Response (its headers may be immutable: copy it, as Hono does).
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set("Access-Control-Allow-Origin", origin);
      c.res.headers.append("Vary", "Origin");
    }
  };
}
