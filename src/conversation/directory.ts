/**
 * Finding a conversation and its object, for each kind of caller. Every lookup is scoped: by the
 * agent's organisation, or by the visitor's channel credential plus their external id. A miss
 * and a foreign id answer the same 404.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import { hmacSha256Hex, randomToken, safeEqual, sha256Hex } from "../core/crypto";
import type { ChannelSettings, ConversationRef } from "../core/conversation-ref";
import type { Principal } from "../core/message";
import { ApiError } from "../core/errors";
import { database, prepared, schema, type Database } from "../db/client";
import { limitNewConversation } from "../http/abuse";

export type Channel = typeof schema.channels.$inferSelect;

export interface VisitorCredentials {
  /** A public API key (`pk_...`): the organisation's default webchat channel. */
  publicKey?: string | undefined;
  /** An embed token (`ew_...`): that channel, a webchat channel's (for web pages) or a mobile channel's (for apps). */
  embedToken?: string | undefined;
}

export interface VisitorIdentity {
  external_id?: string | undefined;
  identity_hash?: string | undefined;
  display_name?: string | undefined;
  email?: string | undefined;
  phone?: string | undefined;
  /** Free attributes (string values), merged into the end user's. */
  attributes?: Record<string, string> | undefined;
}

const publicKeyQuery = (db: Database) =>
  db
    .select({ channel: schema.channels })
    .from(schema.apiKeys)
    .innerJoin(schema.channels, and(eq(schema.channels.org_id, schema.apiKeys.org_id), eq(schema.channels.is_default, true)))
    .where(and(eq(schema.apiKeys.key_hash, sql.placeholder("hash")), eq(schema.apiKeys.kind, "public"), isNull(schema.apiKeys.revoked_at)))
    .prepare();

/** What a ConversationRef is made of (conversationRef). */
export type RefConversation = Pick<typeof schema.conversations.$inferSelect, "id" | "org_id" | "channel_id">;
export type RefEndUser = Pick<typeof schema.endUsers.$inferSelect, "id" | "external_id" | "display_name">;
/** An end user's profile as openForVisitor compares it (profilePatch). */
type Profile = Pick<typeof schema.endUsers.$inferSelect, "id" | "external_id" | "display_name" | "email" | "phone" | "attributes" | "verified">;

/** A visitor's end user and conversation, when both exist (a returning visitor). */
export interface KnownVisitor {
  conv: RefConversation;
  user: Profile;
}

// Only the columns a returning visitor's request reads: every column is carried and mapped per request.
const knownColumns = {
  user: {
    id: schema.endUsers.id,
    external_id: schema.endUsers.external_id,
    display_name: schema.endUsers.display_name,
    email: schema.endUsers.email,
    phone: schema.endUsers.phone,
    attributes: schema.endUsers.attributes,
    verified: schema.endUsers.verified,
  },
  conv: { id: schema.conversations.id, org_id: schema.conversations.org_id, channel_id: schema.conversations.channel_id },
};

// The credential's channel, and on it the visitor named `:external` with their conversation
// (LEFT JOINs: the channel's row comes whether or not the visitor is known).
const publicKeyVisitorQuery = (db: Database) =>
  db
    .select({ channel: schema.channels, ...knownColumns })
    .from(schema.apiKeys)
    .innerJoin(schema.channels, and(eq(schema.channels.org_id, schema.apiKeys.org_id), eq(schema.channels.is_default, true)))
    .leftJoin(schema.endUsers, and(eq(schema.endUsers.channel_id, schema.channels.id), eq(schema.endUsers.external_id, sql.placeholder("external"))))
    .leftJoin(schema.conversations, and(eq(schema.conversations.channel_id, schema.channels.id), eq(schema.conversations.end_user_id, schema.endUsers.id)))
    .where(and(eq(schema.apiKeys.key_hash, sql.placeholder("hash")), eq(schema.apiKeys.kind, "public"), isNull(schema.apiKeys.revoked_at)))
    .prepare();

const embedTokenVisitorQuery = (db: Database) =>
  db
    .select({ channel: schema.channels, ...knownColumns })
    .from(schema.embedTokens)
    .innerJoin(schema.channels, eq(schema.channels.id, schema.embedTokens.channel_id))
    .leftJoin(schema.endUsers, and(eq(schema.endUsers.channel_id, schema.channels.id), eq(schema.endUsers.external_id, sql.placeholder("external"))))
    .leftJoin(schema.conversations, and(eq(schema.conversations.channel_id, schema.channels.id), eq(schema.conversations.end_user_id, schema.endUsers.id)))
    .where(eq(schema.embedTokens.token_hash, sql.placeholder("hash")))
    .prepare();

/** A visitor's conversation, with its channel as read from D1 at `channelReadAt` (epoch ms). */
export interface VisitorConversation {
  channel: Channel;
  channelReadAt: number;
  ref: ConversationRef;
}

/**
 * What every visitor surface does first, in order: the credential's channel and its allowed
 * origins (channelForVisitor), the new-conversation limit per client address (S15), then the
 * visitor's conversation (openForVisitor). For a visitor who names their id, the channel and a
 * returning visitor's conversation come from one D1 statement, and a returning visitor is not
 * counted against the limit without a second look: seed 000's polls and sends, the widget's
 * session, the native visitor socket are one D1 read each, and none while the visitor is in this
 * isolate's cache of returning visitors (below).
 */
export async function conversationForVisitor(env: Env, req: Request, creds: VisitorCredentials, origin: string | undefined, who: VisitorIdentity): Promise<VisitorConversation> {
  if (who.external_id === undefined) {
    const channel = await channelForVisitor(env, creds, origin);
    const channelReadAt = Date.now();
    await limitNewConversation(env, req, channel.id, undefined);
    return { channel, channelReadAt, ref: await openForVisitor(env, channel, who) };
  }
  const credential = creds.publicKey?.startsWith("pk_") ? creds.publicKey : creds.embedToken?.startsWith("ew_") ? creds.embedToken : undefined;
  if (credential === undefined) throw new ApiError("unauthorized", "unknown or revoked public key / embed token");
  const cacheKey = `${credential}\n${who.external_id}`;
  const hit = returningVisitors.get(cacheKey);
  if (hit && hit.expires > Date.now() && hit.identity_hash === who.identity_hash && !profilePatch(hit.user, who, hit.verified)) {
    checkOrigin(hit.channel, origin);
    return { channel: hit.channel, channelReadAt: hit.expires - RETURNING_VISITOR_TTL_MS, ref: hit.ref };
  }
  const values = { external: who.external_id, hash: await sha256Hex(credential) };
  const row: { channel: Channel; user: KnownVisitor["user"] | null; conv: KnownVisitor["conv"] | null } | undefined =
    credential === creds.publicKey ? await prepared(env.DB, publicKeyVisitorQuery).get(values) : await prepared(env.DB, embedTokenVisitorQuery).get(values);
  if (!row) throw new ApiError("unauthorized", "unknown or revoked public key / embed token");
  const channelReadAt = Date.now();
  checkOrigin(row.channel, origin);
  const known = row.user && row.conv ? { user: row.user, conv: row.conv } : null;
  await limitNewConversation(env, req, row.channel.id, who.external_id, known !== null);
  const { ref, user, verified } = await openVisitor(env, row.channel, who, known);
  rememberVisitor(cacheKey, { identity_hash: who.identity_hash, verified, user, channel: row.channel, ref, expires: channelReadAt + RETURNING_VISITOR_TTL_MS });
  return { channel: row.channel, channelReadAt, ref };
}

/**
 * Returning visitors, per isolate: a visitor's credential and external id, with the same identity
 * hash and no profile change against the profile their last request left, resolve to the channel
 * and conversation they resolved to then, without D1 (a change is the D1 path, which writes it).
 * A long-poll client (seed 000's devices) asks every 15-30 s, and the D1 read was half of a
 * poll's CPU locally (3.1 -> 1.6 ms per poll, bench/profile.mjs).
 *
 * A visitor's conversation never changes once it exists. What an entry can hold stale is the
 * profile, when the visitor changed it through another isolate, and the credential and the
 * channel: revoking a public key and changing a channel (allowed origins, identity requirement)
 * forget every entry of this isolate (forgetVisitors), so they take effect at once where they
 * were made, and within RETURNING_VISITOR_TTL_MS in the other isolates of a deployment
 * (docs/guarantees.md, "Who may do what").
 */
const RETURNING_VISITOR_TTL_MS = 60_000;
const RETURNING_VISITORS_MAX = 10_000;
interface ReturningVisitor {
  identity_hash: string | undefined;
  verified: boolean;
  user: Profile;
  channel: Channel;
  ref: ConversationRef;
  expires: number;
}
const returningVisitors = new Map<string, ReturningVisitor>();

function rememberVisitor(key: string, entry: ReturningVisitor): void {
  returningVisitors.delete(key); // re-inserted last: the map's order is oldest first
  returningVisitors.set(key, entry);
  if (returningVisitors.size > RETURNING_VISITORS_MAX) returningVisitors.delete(returningVisitors.keys().next().value!);
}

/** After a credential's revocation or a channel's change: every visitor is looked up in D1 again. */
export function forgetVisitors(): void {
  returningVisitors.clear();
}

export async function channelForVisitor(env: Env, creds: VisitorCredentials, origin: string | undefined): Promise<Channel> {
  const db = database(env.DB);
  let channel: Channel | undefined;
  if (creds.publicKey?.startsWith("pk_")) {
    channel = (await prepared(env.DB, publicKeyQuery).get({ hash: await sha256Hex(creds.publicKey) }))?.channel;
  } else if (creds.embedToken?.startsWith("ew_")) {
    channel = await db
      .select({ channel: schema.channels })
      .from(schema.embedTokens)
      .innerJoin(schema.channels, eq(schema.channels.id, schema.embedTokens.channel_id))
      .where(eq(schema.embedTokens.token_hash, await sha256Hex(creds.embedToken)))
      .get()
      .then((r) => r?.channel);
  }
  if (!channel) throw new ApiError("unauthorized", "unknown or revoked public key / embed token");
  checkOrigin(channel, origin);
  return channel;
}

/**
 * The Origin a channel's allow-list must accept: none for requests from Parley's own pages (the
 * widget's iframe is served by Parley; who may frame it is enforced by CSP frame-ancestors), nor
 * for Parley's own address in its ws/wss spelling, which some native WebSocket libraries send as
 * the Origin of an app's connection (a browser's Origin is always a page's http(s) origin).
 */
export function requestOrigin(req: Request): string | undefined {
  const origin = req.headers.get("origin") ?? undefined;
  if (origin === undefined) return undefined; // servers and devices (no URL to parse)
  const self = new URL(req.url);
  const selfWs = `${self.protocol === "https:" ? "wss:" : "ws:"}//${self.host}`;
  return origin === self.origin || origin === selfWs ? undefined : origin;
}

/**
 * Browsers always send Origin on cross-origin requests, on every POST and on WebSocket
 * handshakes; a listed webchat channel answers only exact scheme://host:port matches. Requests
 * without Origin come from servers and devices, which an origin list cannot restrict.
 *
 * A mobile channel's credential is an app's, not a web page's: apps send no Origin, so any Origin
 * left here is a web page's (`null` included) and is refused, whatever the organisation's webchat
 * channels allow. A page cannot borrow the app's credential to get round a webchat channel's
 * allowed origins; the widget page itself, for an app's WebView, may be opened but never framed
 * (widget-page.ts).
 */
export function checkOrigin(channel: Channel, origin: string | undefined): void {
  if (channel.kind === "mobile_sdk") {
    if (origin !== undefined) throw new ApiError("origin_not_allowed", `origin ${origin} is a web page: a mobile channel's credential is for apps (web pages use a webchat channel)`);
    return;
  }
  const allowed = JSON.parse(channel.allowed_origins) as string[];
  if (allowed.length === 0 || origin === undefined) return;
  if (!allowed.includes(origin)) throw new ApiError("origin_not_allowed", `origin ${origin} is not allowed for this channel`);
}

/**
 * Opens (or finds) the visitor's conversation on a channel. With identity verification required,
 * the external id must come with HMAC-SHA256(external_id, channel secret); without it, a visitor
 * that names no id gets an unguessable one (anyone who knows or guesses a named id can read that
 * thread: see docs/identity.md).
 */
export async function openForVisitor(env: Env, channel: Channel, who: VisitorIdentity, known?: KnownVisitor | null): Promise<ConversationRef> {
  return (await openVisitor(env, channel, who, known)).ref;
}

/** openForVisitor, with the end user's profile as this request left it and whether its identity was verified. */
async function openVisitor(env: Env, channel: Channel, who: VisitorIdentity, known?: KnownVisitor | null): Promise<{ ref: ConversationRef; user: Profile; verified: boolean }> {
  const verified = await verifyIdentity(channel, who);
  const external_id = who.external_id ?? `v_${randomToken(18)}`;
  // A returning visitor is one read when nothing changes (none when `known` was read with the
  // channel: conversationForVisitor; null there means not known).
  if (who.external_id !== undefined) {
    const found = known !== undefined ? known : await prepared(env.DB, visitorQuery).get({ channel: channel.id, external: external_id });
    if (found && !profilePatch(found.user, who, verified)) return { ref: conversationRef(found.conv, found.user), user: found.user, verified };
  }
  const db = database(env.DB);
  const now = new Date().toISOString();
  await db
    .insert(schema.endUsers)
    .values({
      id: crypto.randomUUID(),
      org_id: channel.org_id,
      channel_id: channel.id,
      external_id,
      display_name: who.display_name ?? null,
      email: who.email ?? null,
      phone: who.phone ?? null,
      attributes: JSON.stringify(who.attributes ?? {}),
      verified,
    })
    .onConflictDoNothing();
  const endUser = (await db
    .select()
    .from(schema.endUsers)
    .where(and(eq(schema.endUsers.channel_id, channel.id), eq(schema.endUsers.external_id, external_id)))
    .get())!;
  const patch = profilePatch(endUser, who, verified);
  if (patch) {
    await db.update(schema.endUsers).set(patch).where(eq(schema.endUsers.id, endUser.id));
    Object.assign(endUser, patch);
  }
  await db
    .insert(schema.conversations)
    .values({ id: crypto.randomUUID(), org_id: channel.org_id, channel_id: channel.id, end_user_id: endUser.id, updated_at: now })
    .onConflictDoNothing();
  const conv = (await db
    .select()
    .from(schema.conversations)
    .where(and(eq(schema.conversations.channel_id, channel.id), eq(schema.conversations.end_user_id, endUser.id)))
    .get())!;
  return { ref: conversationRef(conv, endUser), user: endUser, verified };
}

const visitorQuery = (db: Database) =>
  db
    .select(knownColumns)
    .from(schema.endUsers)
    .innerJoin(schema.conversations, and(eq(schema.conversations.channel_id, schema.endUsers.channel_id), eq(schema.conversations.end_user_id, schema.endUsers.id)))
    .where(and(eq(schema.endUsers.channel_id, sql.placeholder("channel")), eq(schema.endUsers.external_id, sql.placeholder("external"))))
    .prepare();

/** What the caller's identity changes in the stored profile, or null. An unverified caller never rewrites a verified end user's. */
function profilePatch(endUser: Profile, who: VisitorIdentity, verified: boolean): Partial<typeof schema.endUsers.$inferSelect> | null {
  if (!verified && endUser.verified) return null;
  let attributes: string | undefined;
  if (who.attributes) {
    const merged = JSON.stringify({ ...(JSON.parse(endUser.attributes) as object), ...who.attributes });
    if (merged !== endUser.attributes) attributes = merged;
  }
  const patch = {
    ...(who.display_name && who.display_name !== endUser.display_name ? { display_name: who.display_name } : {}),
    ...(who.email && who.email !== endUser.email ? { email: who.email } : {}),
    ...(who.phone && who.phone !== endUser.phone ? { phone: who.phone } : {}),
    ...(attributes !== undefined ? { attributes } : {}),
  };
  return Object.keys(patch).length > 0 ? patch : null;
}

async function verifyIdentity(channel: Channel, who: VisitorIdentity): Promise<boolean> {
  const hash = who.identity_hash;
  const valid =
    who.external_id !== undefined && hash !== undefined && channel.identity_secret !== null &&
    safeEqual(hash.toLowerCase(), await hmacSha256Hex(channel.identity_secret, who.external_id));
  if (channel.require_identity && !valid) {
    throw new ApiError("identity_required", "this channel requires external_id with a valid identity_hash (HMAC-SHA256 of the id)");
  }
  return valid;
}

/** A conversation of the agent's organisation, or 404. */
const agentConversationQuery = (db: Database) =>
  db
    .select({ conv: schema.conversations, user: schema.endUsers, typing_preview: schema.channels.typing_preview })
    .from(schema.conversations)
    .innerJoin(schema.endUsers, eq(schema.endUsers.id, schema.conversations.end_user_id))
    .leftJoin(schema.channels, eq(schema.channels.id, schema.conversations.channel_id))
    .where(and(eq(schema.conversations.id, sql.placeholder("id")), eq(schema.conversations.org_id, sql.placeholder("org"))))
    .prepare();

export async function conversationForAgent(env: Env, orgId: string, conversationId: string): Promise<ConversationRef> {
  return (await agentConversation(env, orgId, conversationId)).ref;
}

/** The same, with the channel settings a socket's room starts from (x-parley-channel). */
export async function agentConversation(env: Env, orgId: string, conversationId: string): Promise<{ ref: ConversationRef; settings: ChannelSettings }> {
  const row = await prepared(env.DB, agentConversationQuery).get({ id: conversationId, org: orgId });
  if (!row) throw new ApiError("not_found", "conversation not found");
  return { ref: conversationRef(row.conv, row.user), settings: { typing_preview: row.typing_preview === true, read_at: Date.now() } };
}

/** A conversation whose end user has this external id (seed 001's widget rule), or 404. */
export async function conversationForEndUser(env: Env, conversationId: string, externalId: string, identityHash?: string): Promise<ConversationRef> {
  const row = await database(env.DB)
    .select({ conv: schema.conversations, user: schema.endUsers, channel: schema.channels })
    .from(schema.conversations)
    .innerJoin(schema.endUsers, eq(schema.endUsers.id, schema.conversations.end_user_id))
    .innerJoin(schema.channels, eq(schema.channels.id, schema.conversations.channel_id))
    .where(and(eq(schema.conversations.id, conversationId), eq(schema.endUsers.external_id, externalId)))
    .get();
  if (!row) throw new ApiError("not_found", "conversation not found");
  if (row.channel.require_identity) {
    const ok = identityHash !== undefined && safeEqual(identityHash.toLowerCase(), await hmacSha256Hex(row.channel.identity_secret!, externalId));
    if (!ok) throw new ApiError("not_found", "conversation not found");
  }
  return conversationRef(row.conv, row.user);
}

export function conversationRef(conv: RefConversation, user: RefEndUser): ConversationRef {
  return {
    id: conv.id,
    org_id: conv.org_id,
    channel_id: conv.channel_id,
    end_user: { id: user.id, external_id: user.external_id, display_name: user.display_name },
  };
}

export const roomFor = (env: Env, ref: ConversationRef) => env.CONVERSATION.getByName(ref.id);

/** An enabled agent of the organisation (to hand a conversation to), or 404. */
export async function agentOfOrg(env: Env, orgId: string, userId: string): Promise<Principal> {
  const row = await database(env.DB)
    .select({ id: schema.users.id, name: schema.users.name })
    .from(schema.users)
    .where(and(eq(schema.users.id, userId), eq(schema.users.org_id, orgId), eq(schema.users.disabled, false)))
    .get();
  if (!row) throw new ApiError("not_found", "agent not found");
  return { type: "agent", id: row.id, name: row.name };
}

/** A conversation by id within an organisation, or the one a session id belongs to. */
export async function conversationOfSession(env: Env, orgId: string, id: string): Promise<{ ref: ConversationRef; sessionId: string | null }> {
  const session = await database(env.DB)
    .select({ conversation_id: schema.conversationSessions.conversation_id })
    .from(schema.conversationSessions)
    .where(and(eq(schema.conversationSessions.id, id), eq(schema.conversationSessions.org_id, orgId)))
    .get();
  if (session) return { ref: await conversationForAgent(env, orgId, session.conversation_id), sessionId: id };
  return { ref: await conversationForAgent(env, orgId, id), sessionId: null };
}

/** One of the organisation's channels, or 404. */
export async function channelOfOrg(env: Env, orgId: string, id: string): Promise<Channel> {
  const row = await database(env.DB)
    .select()
    .from(schema.channels)
    .where(and(eq(schema.channels.id, id), eq(schema.channels.org_id, orgId)))
    .get();
  if (!row) throw new ApiError("not_found", "channel not found");
  return row;
}

/** The org's channel for a named external medium (seed 002's fb, sms, twitter), made on first use. */
export async function connectorChannel(env: Env, orgId: string, name: string): Promise<Channel> {
  const db = database(env.DB);
  const id = `ch_${(await sha256Hex(`${orgId}/connector/${name}`)).slice(0, 32)}`;
  await db
    .insert(schema.channels)
    .values({ id, org_id: orgId, kind: "connector", name, identity_secret: randomToken(32) })
    .onConflictDoNothing();
  return (await db.select().from(schema.channels).where(eq(schema.channels.id, id)).get())!;
}
