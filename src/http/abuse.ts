/**
 * Conversation creation per client IP (S15), counted with the Workers Rate Limiting binding
 * (`NEW_CONVERSATIONS` in wrangler.toml: 20 per 60 s per key). Only a request that would create a
 * conversation counts: a visitor resuming their own conversation (a page reload, a reconnect)
 * never does. Over the limit: 429 `rate_limited` with `Retry-After: 60`, before anything is
 * written.
 *
 * The binding counts per Cloudflare location and is eventually consistent (a few requests over
 * the limit may pass); exact per-conversation limits live in the conversation object. The key is
 * `CF-Connecting-IP`, which Cloudflare sets and clients cannot; an IPv6 client is counted by its
 * /64 (one subscriber's prefix). Requests without it, or from a loopback address, are not
 * counted: off Cloudflare that is only `wrangler dev` and the tests, whose many visitors all come
 * from 127.0.0.1. (`wrangler dev` keeps a CF-Connecting-IP the client sends, which is how the
 * tests give each scenario an address of its own.)
 */
import { and, eq } from "drizzle-orm";
import { ApiError } from "../core/errors";
import { NEW_CONVERSATIONS_PER_MINUTE } from "../core/limits";
import { database, schema } from "../db/client";

export const NEW_CONVERSATIONS_RETRY_AFTER_S = 60;

/** The key a client is counted under, or null when it is not counted (see above). */
export function clientIpKey(req: Request): string | null {
  const ip = req.headers.get("cf-connecting-ip")?.trim().toLowerCase();
  if (!ip) return null;
  if (ip.includes(":")) {
    const hextets = expandIpv6(ip);
    if (hextets === null) return `ip:${ip}`;
    if (hextets.slice(0, 7).every((h) => h === 0) && hextets[7] === 1) return null; // ::1
    if (hextets.slice(0, 5).every((h) => h === 0) && hextets[5] === 0xffff) return ipv4Key(`${hextets[6]! >> 8}.${hextets[6]! & 255}.${hextets[7]! >> 8}.${hextets[7]! & 255}`);
    return `ip6:${hextets.slice(0, 4).map((h) => h.toString(16)).join(":")}::/64`;
  }
  return ipv4Key(ip);
}

const ipv4Key = (ip: string) => (ip.startsWith("127.") ? null : `ip:${ip}`);

/** The eight 16-bit groups of an IPv6 address (an embedded IPv4 tail included), or null. */
function expandIpv6(ip: string): number[] | null {
  let text = ip.replace(/%.*$/, "");
  const v4 = text.match(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[0].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((h) => (/^[0-9a-f]{1,4}$/.test(h) ? parseInt(h, 16) : NaN)));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
  const all = [...head, ...Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  return all.some(Number.isNaN) ? null : all;
}

/**
 * Throws 429 when this request would create a conversation on `channelId` and its client has
 * opened NEW_CONVERSATIONS_PER_MINUTE already. `externalId`: the visitor id the request names
 * (none: a new visitor, so a new conversation).
 */
export const limitNewConversation = (env: Env, req: Request, channelId: string, externalId: string | undefined, exists?: boolean) =>
  limitNewConversationFor(env, clientIpKey(req), channelId, externalId, exists);

/**
 * The same, with the client's key taken earlier (a Socket.IO session keeps its handshake's).
 * `exists`: whether the visitor's conversation exists, when the caller has just read it (else it
 * is looked up here).
 */
export async function limitNewConversationFor(env: Env, key: string | null, channelId: string, externalId: string | undefined, exists?: boolean): Promise<void> {
  if (key === null) return;
  if (externalId !== undefined && (exists ?? (await conversationExists(env, channelId, externalId)))) return;
  const { success } = await env.NEW_CONVERSATIONS.limit({ key });
  if (!success) {
    throw new ApiError("rate_limited", `too many new conversations from this address (at most ${NEW_CONVERSATIONS_PER_MINUTE} a minute); try again later`, NEW_CONVERSATIONS_RETRY_AFTER_S);
  }
}

async function conversationExists(env: Env, channelId: string, externalId: string): Promise<boolean> {
  const row = await database(env.DB)
    .select({ id: schema.conversations.id })
    .from(schema.endUsers)
    .innerJoin(schema.conversations, and(eq(schema.conversations.end_user_id, schema.endUsers.id), eq(schema.conversations.channel_id, channelId)))
    .where(and(eq(schema.endUsers.channel_id, channelId), eq(schema.endUsers.external_id, externalId)))
    .get();
  return row !== undefined;
}
