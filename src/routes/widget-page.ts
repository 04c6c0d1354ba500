/**
 * `GET /chat-widget`: the widget's iframe page (seed 001's URL and params, seed 000's key).
 *
 * Served by the Worker, not as a static asset, because its headers depend on the channel:
 * `Content-Security-Policy: frame-ancestors` lists the channel's allowed origins (`*` when it
 * lists none; `'none'` for a mobile channel's page, which its app opens in a WebView and no site
 * may frame). A frame load carries no usable Origin header, so this header is what keeps other
 * sites from framing the widget; the browser enforces it. The rest of the policy forbids inline
 * script: the page is an empty shell that loads the app (`/chat-widget/app.js`, a static asset).
 *
 * The page reads nothing but the credential: the app reads its own query (title, customer_name,
 * session_id, parent_origin, launcher) and talks to the widget API like any visitor client.
 */
import type { Context } from "hono";
import { z } from "zod";
import { ApiError } from "../core/errors";
import { channelForVisitor, type Channel, requestOrigin } from "../conversation/directory";
import { router, type AppEnv } from "../http/app";

const PageQuery = z.object({
  embed_token: z.string().max(200).optional(),
  key: z.string().max(200).optional(),
  title: z.string().max(200).optional(),
  parent_origin: z.string().max(300).optional(),
});

/** An exact `scheme://host[:port]` origin (what the loader passes as parent_origin). */
const isOrigin = (value: string) => URL.canParse(value) && new URL(value).origin === value && /^https?:$/.test(new URL(value).protocol);

export const widgetPage = router().get("/", async (c) => {
  const q = PageQuery.safeParse(c.req.query());
  if (!q.success || (!q.data.embed_token && !q.data.key)) {
    return errorPage(c, 400, "This chat link is incomplete", "The address needs an embed_token=ew_… or key=pk_… parameter.");
  }
  let channel: Channel;
  try {
    // A fetch() from a page carries its Origin (the loader's diagnosis after a refused frame);
    // an iframe navigation carries none and is checked by frame-ancestors below.
    channel = await channelForVisitor(c.env, { embedToken: q.data.embed_token, publicKey: q.data.key }, requestOrigin(c.req.raw));
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (err.code === "origin_not_allowed") {
      return errorPage(c, 403, "This site may not show this chat", `${err.message}. Add it to the channel's allowed origins.`, err.code);
    }
    return errorPage(c, err.status === 401 ? 401 : 404, "This chat is not available", "The embed token or public key is unknown or revoked.", err.code);
  }
  const allowed = (JSON.parse(channel.allowed_origins) as string[]).filter(isOrigin);
  const parent = q.data.parent_origin;
  const self = new URL(c.req.url).origin;
  const app = channel.kind === "mobile_sdk";
  if (app && parent !== undefined) {
    // A mobile channel's page is an app's WebView, never a widget on a site.
    return errorPage(c, 403, "This site may not show this chat", "this chat belongs to a mobile app; web pages use a webchat channel", "origin_not_allowed");
  }
  if (parent !== undefined && (!isOrigin(parent) || (allowed.length > 0 && parent !== self && !allowed.includes(parent)))) {
    // Never a grant (frame-ancestors decides who may frame): a loader on a listed site names it.
    return errorPage(c, 403, "This site may not show this chat", `origin ${parent} is not allowed for this channel`, "origin_not_allowed");
  }
  const title = q.data.title?.trim() || channel.title || "Chat with us";
  // Parley's own pages (the demo page) may always show it.
  // A mobile channel's page is opened by its app's WebView, never framed: no site can embed it.
  setHeaders(c, app ? "'none'" : allowed.length > 0 ? ["'self'", ...allowed].join(" ") : "*");
  return c.html(shell(title));
});

function setHeaders(c: Context<AppEnv>, ancestors: string) {
  const self = new URL(c.req.url);
  const ws = `${self.protocol === "https:" ? "wss:" : "ws:"}//${self.host}`;
  c.header(
    "Content-Security-Policy",
    [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      // Agents' images and carousel cards come from anywhere on the web; nothing else does.
      "img-src 'self' https: http: data:",
      `connect-src 'self' ${ws}`,
      "base-uri 'none'",
      "form-action 'none'",
      `frame-ancestors ${ancestors}`,
    ].join("; "),
  );
  // The page's URL holds the visitor's id (session_id): never send it to image hosts.
  c.header("Referrer-Policy", "no-referrer");
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Cache-Control", "no-store");
}

function shell(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/chat-widget/app.css">
<script src="/chat-widget/app.js" defer></script>
</head>
<body>
<main id="parley" class="pw" aria-labelledby="pw-title">
<header class="pw-head"><h1 id="pw-title">${escapeHtml(title)}</h1></header>
<p class="pw-boot" role="status">Loading…</p>
</main>
</body>
</html>
`;
}

/** A 4xx page a person can read (also when opened directly); framable so it shows in place. */
function errorPage(c: Context<AppEnv>, status: 400 | 401 | 403 | 404, heading: string, detail: string, code?: string) {
  c.header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'");
  c.header("Referrer-Policy", "no-referrer");
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Cache-Control", "no-store");
  if (code) c.header("X-Parley-Error", code);
  return c.html(
    `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(heading)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:0;padding:24px;color:#1f2933;background:#fff}h1{font-size:18px;margin:0 0 8px}</style></head>
<body><h1>${escapeHtml(heading)}</h1><p>${escapeHtml(detail)}</p></body>
</html>
`,
    status,
  );
}

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]!);
