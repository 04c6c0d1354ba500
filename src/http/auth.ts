/**
 * Agent authentication for REST and sockets.
 *
 * - Browser sessions: an HttpOnly cookie, SameSite=Lax, Path=/, no Domain. On https it is
 *   `__Host-session` with Secure (the prefix makes the browser refuse one set by a sibling
 *   subdomain or over http), and a plain `session` cookie is ignored there. On plain http, which
 *   only local development and tests use (`wrangler dev`), it is `session` without Secure: a
 *   Secure or `__Host-` cookie set over http://127.0.0.1 is dropped by some browsers and never sent
 *   by Node clients' cookie jars. Only the cookie's SHA-256 is stored. A session ends after 12 h
 *   without use (sliding: the stored expiry moves forward at most once per 5 minutes, so reading
 *   it is not a D1 write per request) and 7 days after login whatever its use. Every state-changing cookie call needs `X-CSRFToken`, an HMAC of the
 *   session bound to the server secret, compared in constant time; a cross-site Origin or
 *   `Sec-Fetch-Site: cross-site` is refused as well. (Hono's stock csrf() lets JSON through.)
 * - Servers and bots: `Authorization: Bearer sk_...` (a secret API key, stored hashed), acting
 *   as the agent who created it. Refused when a browser sends it (Sec-Fetch-Site present).
 */
import { and, eq, gt, isNull, sql } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { parse as parseCookie } from "hono/utils/cookie";
import { hmacSha256Hex, randomToken, safeEqual, sha256Hex } from "../core/crypto";
import { ApiError } from "../core/errors";
import type { ConversationRef } from "../core/conversation-ref";
import type { Principal } from "../core/message";
import { conversationRef, type RefConversation, type RefEndUser } from "../conversation/directory";
import { database, prepared, schema, type Database } from "../db/client";
import type { AppEnv } from "./app";

/** The session cookie's name on plain http (local development) and on https. */
export const SESSION_COOKIE = "session";
export const SECURE_SESSION_COOKIE = "__Host-session";
/** Absolute lifetime: a session ends this long after login, used or not. */
export const SESSION_TTL_MS = 7 * 24 * 3600 * 1000;
/** Idle lifetime: a session unused this long ends. Stored as `auth_sessions.expires_at`. */
export const SESSION_IDLE_MS = 12 * 3600 * 1000;
/** The idle expiry is moved forward at most this often (one D1 write per session per interval). */
export const SESSION_TOUCH_MS = 5 * 60 * 1000;

const isHttps = (url: string) => url.startsWith("https:");
/** The cookie name a request on this URL uses. */
export const sessionCookieName = (url: string) => (isHttps(url) ? SECURE_SESSION_COOKIE : SESSION_COOKIE);

export type Role = "owner" | "admin" | "agent";

export interface Agent {
  user_id: string;
  org_id: string;
  name: string;
  email: string;
  role: Role;
  via: "cookie" | "key";
  /** The cookie's session token (cookie auth only), for CSRF tokens. */
  session_token: string | null;
  /**
   * What authenticated this agent, without the secret: the SHA-256 of the session cookie, or
   * `key:<api key id>`. Sockets carry it so that logout or revocation closes them (S10).
   */
  auth_ref: string;
  /** The secret key that authenticated this agent (key auth only), for the audit log's actor. */
  key?: { id: string; name: string };
}

export const agentPrincipal = (a: Agent): Principal => ({ type: "agent", id: a.user_id, name: a.name });

export async function startSession(c: Context<AppEnv>, userId: string, orgId: string): Promise<string> {
  const token = randomToken(32);
  await database(c.env.DB)
    .insert(schema.authSessions)
    .values({ id_hash: await sha256Hex(token), user_id: userId, org_id: orgId, expires_at: new Date(Date.now() + SESSION_IDLE_MS).toISOString() });
  // The browser keeps the cookie for the absolute lifetime; the server ends it earlier when idle.
  setCookie(c, sessionCookieName(c.req.url), token, {
    httpOnly: true,
    sameSite: "Lax",
    secure: isHttps(c.req.url),
    path: "/",
    maxAge: SESSION_TTL_MS / 1000,
  });
  return csrfToken(c.env, token);
}

/** Ends the cookie session and closes every socket it opened (S10). */
export async function endSession(c: Context<AppEnv>, orgId: string): Promise<void> {
  const name = sessionCookieName(c.req.url);
  const token = getCookie(c, name);
  deleteCookie(c, name, { path: "/", secure: isHttps(c.req.url) });
  if (!token) return;
  const idHash = await sha256Hex(token);
  await database(c.env.DB).delete(schema.authSessions).where(eq(schema.authSessions.id_hash, idHash));
  await c.env.ORG_HUB.getByName(orgId).revokeAuth(idHash);
}

export const csrfToken = (env: Env, sessionToken: string) => hmacSha256Hex(env.SESSION_SECRET, `csrf:${sessionToken}`);

/** Resolves the calling agent, or null. Does not check CSRF (see requireAgent). */
export const authenticateAgent = (c: Context<AppEnv>) => agentFromHeaders(c.env, c.req.raw.headers, c.req.url);

/**
 * The same, for callers outside Hono (Socket.IO sessions). `url` is the request's: on https only
 * the `__Host-` cookie counts. Without it (older callers) either name is read, `__Host-` first.
 */
export async function agentFromHeaders(env: Env, headers: Headers, url?: string): Promise<Agent | null> {
  return (await agentAndConversation(env, headers, url, undefined))?.agent ?? null;
}

/**
 * The calling agent and, when `conversationId` is given, that conversation if it is in the
 * agent's organisation (null when it is not, or does not exist): the credential's row and the
 * conversation's come from one D1 statement (a LEFT JOIN on `conversations.org_id = users.org_id`),
 * so a hot route such as an agent's send pays one round trip for both. The credential is checked
 * exactly as on its own (revoked keys, expired sessions and disabled agents are refused).
 */
async function agentAndConversation(env: Env, headers: Headers, url: string | undefined, conversationId: string | undefined): Promise<{ agent: Agent; conversation: ConversationRef | null } | null> {
  const bearer = headers.get("authorization")?.match(/^Bearer\s+(sk_[\w-]+)$/)?.[1];
  if (bearer) return agentFromSecretKeyWith(env, bearer, headers, conversationId);
  const cookies = parseCookie(headers.get("cookie") ?? "");
  const token = url === undefined ? (cookies[SECURE_SESSION_COOKIE] ?? cookies[SESSION_COOKIE]) : cookies[sessionCookieName(url)];
  if (!token) return null;
  const idHash = await sha256Hex(token);
  const now = Date.now();
  const values = { idHash, now: new Date(now).toISOString(), since: new Date(now - SESSION_TTL_MS).toISOString() };
  const row = conversationId === undefined
    ? await prepared(env.DB, sessionQuery).get(values)
    : await prepared(env.DB, sessionConversationQuery).get({ ...values, conversation: conversationId });
  if (!row || row.user.disabled) return null;
  await touchSession(env, idHash, row, now);
  return { agent: toAgent(row.user, "cookie", token, idHash), conversation: conversationOfRow(row) };
}

// The columns an agent request needs (not the password hash, not whole rows: each column is
// carried and mapped on every request).
const userColumns = {
  id: schema.users.id,
  org_id: schema.users.org_id,
  name: schema.users.name,
  email: schema.users.email,
  role: schema.users.role,
  disabled: schema.users.disabled,
};
const refColumns = {
  conv: { id: schema.conversations.id, org_id: schema.conversations.org_id, channel_id: schema.conversations.channel_id },
  end_user: { id: schema.endUsers.id, external_id: schema.endUsers.external_id, display_name: schema.endUsers.display_name },
};

const sessionWhere = () =>
  and(
    eq(schema.authSessions.id_hash, sql.placeholder("idHash")),
    gt(schema.authSessions.expires_at, sql.placeholder("now")),
    gt(schema.authSessions.created_at, sql.placeholder("since")),
  );

const sessionQuery = (db: Database) =>
  db
    .select({ user: userColumns, created_at: schema.authSessions.created_at, expires_at: schema.authSessions.expires_at })
    .from(schema.authSessions)
    .innerJoin(schema.users, eq(schema.users.id, schema.authSessions.user_id))
    .where(sessionWhere())
    .prepare();

/** The org isolation of the joined queries below: `:conversation` only if it is the caller's organisation's. */
const conversationInCallersOrg = () => and(eq(schema.conversations.id, sql.placeholder("conversation")), eq(schema.conversations.org_id, schema.users.org_id));

// With a conversation: `:conversation` if it is the credential's organisation's (LEFT JOIN: the credential's row comes either way).
const sessionConversationQuery = (db: Database) =>
  db
    .select({ user: userColumns, created_at: schema.authSessions.created_at, expires_at: schema.authSessions.expires_at, ...refColumns })
    .from(schema.authSessions)
    .innerJoin(schema.users, eq(schema.users.id, schema.authSessions.user_id))
    .leftJoin(schema.conversations, conversationInCallersOrg())
    .leftJoin(schema.endUsers, eq(schema.endUsers.id, schema.conversations.end_user_id))
    .where(sessionWhere())
    .prepare();

const secretKeyWhere = () => and(eq(schema.apiKeys.key_hash, sql.placeholder("hash")), eq(schema.apiKeys.kind, "secret"), isNull(schema.apiKeys.revoked_at));

const secretKeyQuery = (db: Database) =>
  db
    .select({ user: userColumns, key_id: schema.apiKeys.id, key_name: schema.apiKeys.name })
    .from(schema.apiKeys)
    .innerJoin(schema.users, eq(schema.users.id, schema.apiKeys.created_by))
    .where(secretKeyWhere())
    .prepare();

const secretKeyConversationQuery = (db: Database) =>
  db
    .select({ user: userColumns, key_id: schema.apiKeys.id, key_name: schema.apiKeys.name, ...refColumns })
    .from(schema.apiKeys)
    .innerJoin(schema.users, eq(schema.users.id, schema.apiKeys.created_by))
    .leftJoin(schema.conversations, conversationInCallersOrg())
    .leftJoin(schema.endUsers, eq(schema.endUsers.id, schema.conversations.end_user_id))
    .where(secretKeyWhere())
    .prepare();

/** The joined conversation of a credential's row (see agentAndConversation), or null. */
function conversationOfRow(row: object): ConversationRef | null {
  const { conv, end_user } = row as { conv?: RefConversation | null; end_user?: RefEndUser | null };
  return conv && end_user ? conversationRef(conv, end_user) : null;
}

/**
 * Slides the idle expiry to now + SESSION_IDLE_MS (never past the absolute end) when that moves
 * it by at least SESSION_TOUCH_MS, i.e. at most once per 5 minutes of use. Otherwise no write.
 */
async function touchSession(env: Env, idHash: string, s: { created_at: string; expires_at: string }, now: number): Promise<void> {
  const end = Math.min(now + SESSION_IDLE_MS, Date.parse(s.created_at) + SESSION_TTL_MS);
  if (end - Date.parse(s.expires_at) < SESSION_TOUCH_MS) return;
  await database(env.DB).update(schema.authSessions).set({ expires_at: new Date(end).toISOString() }).where(eq(schema.authSessions.id_hash, idHash));
}

export async function agentFromSecretKey(env: Env, key: string, headers: Headers): Promise<Agent | null> {
  return (await agentFromSecretKeyWith(env, key, headers, undefined))?.agent ?? null;
}

async function agentFromSecretKeyWith(env: Env, key: string, headers: Headers, conversationId: string | undefined): Promise<{ agent: Agent; conversation: ConversationRef | null } | null> {
  if (headers.get("sec-fetch-site")) throw new ApiError("forbidden", "secret keys are for servers; browsers use a session or a public key");
  const hash = await sha256Hex(key);
  const row = conversationId === undefined
    ? await prepared(env.DB, secretKeyQuery).get({ hash })
    : await prepared(env.DB, secretKeyConversationQuery).get({ hash, conversation: conversationId });
  if (!row || row.user.disabled) return null;
  return { agent: { ...toAgent(row.user, "key", null, `key:${row.key_id}`), key: { id: row.key_id, name: row.key_name } }, conversation: conversationOfRow(row) };
}

function toAgent(u: Pick<typeof schema.users.$inferSelect, "id" | "org_id" | "name" | "email" | "role">, via: Agent["via"], token: string | null, authRef: string): Agent {
  return { user_id: u.id, org_id: u.org_id, name: u.name, email: u.email, role: u.role, via, session_token: token, auth_ref: authRef };
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Requires an agent; for cookie sessions, state changes also need a valid CSRF token and same-origin. */
export function requireAgent(...roles: Role[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const agent = await authenticateAgent(c);
    await admit(c, agent, roles);
    await next();
  };
}

/**
 * requireAgent for a route on one conversation (`:id`), which also resolves that conversation
 * in the caller's organisation in the same D1 statement as the credential (an agent's REST send:
 * one round trip, not two). Sets `agent` and `conversation`; a conversation that is not the
 * organisation's (or does not exist) is 404 once the caller is authenticated, as with
 * conversationForAgent.
 */
export function requireAgentInConversation(...roles: Role[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const found = await agentAndConversation(c.env, c.req.raw.headers, c.req.url, c.req.param("id"));
    await admit(c, found?.agent ?? null, roles);
    if (!found!.conversation) throw new ApiError("not_found", "conversation not found");
    c.set("conversation", found!.conversation);
    await next();
  };
}

/** The checks every agent route makes once the credential is resolved; sets `agent`. */
async function admit(c: Context<AppEnv>, agent: Agent | null, roles: Role[]): Promise<void> {
  if (!agent) throw new ApiError("unauthorized", "log in, or send Authorization: Bearer sk_...");
  if (agent.via === "cookie" && !SAFE_METHODS.has(c.req.method)) await checkCsrf(c, agent.session_token!);
  if (roles.length > 0 && !roles.includes(agent.role)) throw new ApiError("forbidden", `needs role ${roles.join(" or ")}`);
  c.set("agent", agent);
}

async function checkCsrf(c: Context<AppEnv>, sessionToken: string) {
  if (!isSameOrigin(c)) throw new ApiError("csrf_failed", "cross-site request refused");
  const sent = c.req.header("x-csrftoken") ?? "";
  if (!safeEqual(sent, await csrfToken(c.env, sessionToken))) throw new ApiError("csrf_failed", "missing or invalid X-CSRFToken");
}

/** A request the browser marks cross-site, or whose Origin is not ours, is not same-origin. */
export const isSameOrigin = (c: Context) => sameOrigin(c.req.raw);

export function sameOrigin(req: Request): boolean {
  if (req.headers.get("sec-fetch-site") === "cross-site") return false;
  const origin = req.headers.get("origin");
  return origin === null || origin === new URL(req.url).origin;
}
