/**
 * Pushes for offline end users. The conversation room calls `pushIfOffline` once per stored
 * message (in `append()`, right after the broadcast); everything else happens here, in the
 * background of the room's turn (`waitUntil`), so storing and broadcasting never wait for Google
 * or Apple.
 *
 * - Only agent and bot messages the end user may see (never whispers), and only while the end
 *   user has no live connection to the room (src/push/presence.ts).
 * - One push per registered device of that end user, through the credentials of the device's
 *   mobile channel (see `credentialsFor`).
 * - Best-effort delivery: up to 3 quick retries (0.2 s, 0.8 s, 3.2 s; a Retry-After up to 10 s is
 *   honoured) for 429, 5xx, timeouts, connection errors and expired auth; then the failure is
 *   logged and dropped. Nothing is stored for a later retry (docs/push.md says why).
 * - A token FCM or APNs reports unregistered is deleted.
 */
import { and, eq, isNotNull } from "drizzle-orm";
import type { ConversationRef } from "../core/conversation-ref";
import type { Message } from "../core/message";
import { database, schema } from "../db/client";
import { sendApns } from "./apns";
import { openingSecrets } from "./config";
import { openApns, openFcm, type Platform } from "./credentials";
import { sendFcm } from "./fcm";
import type { SendOutcome } from "./http";
import { pushContent, type PushContent } from "./payload";

export const RETRY_DELAYS_MS = [200, 800, 3200];
export const MAX_RETRY_AFTER_MS = 10_000;

/**
 * The room's one call. `endUserLive` is asked only for messages that would be pushed; `onDevices`
 * hears how many devices the end user has once they were looked up (the room remembers "none").
 */
export function pushIfOffline(
  env: Env,
  ctx: { waitUntil(p: Promise<unknown>): void },
  ref: ConversationRef,
  message: Message,
  endUserLive: () => boolean,
  onDevices?: (count: number) => void,
): void {
  if (message.private || (message.sender_type !== "agent" && message.sender_type !== "bot")) return;
  if (endUserLive()) return;
  ctx.waitUntil(
    pushMessage(env, ref, message)
      .then((results) => onDevices?.(results.length))
      .catch((err: unknown) => log("push.error", { conversation: ref.id, message: message.id, error: String(err) })),
  );
}

type Device = typeof schema.devices.$inferSelect;
type CredentialsRow = typeof schema.pushCredentials.$inferSelect;

export interface DeviceResult {
  device_id: string;
  platform: Platform;
  outcome: SendOutcome | { kind: "skipped"; reason: string };
  attempts: number;
}

/** Sends one message to every device of the conversation's end user. */
export async function pushMessage(env: Env, ref: ConversationRef, message: Message): Promise<DeviceResult[]> {
  const db = database(env.DB);
  const devices = await db
    .select()
    .from(schema.devices)
    .where(and(eq(schema.devices.org_id, ref.org_id), eq(schema.devices.channel_id, ref.channel_id), eq(schema.devices.external_id, ref.end_user.external_id)))
    .all();
  if (devices.length === 0) return [];
  if (openingSecrets(env).length === 0) {
    log("push.not_configured", { conversation: ref.id, reason: "PUSH_ENCRYPTION_KEY is not set" });
    return [];
  }
  const content = pushContent(message);
  const rows = new Map<string, Promise<CredentialsRow | null>>();
  const results = await Promise.all(devices.map((d) => pushDevice(env, ref, d, content, rows)));
  return results;
}

async function pushDevice(env: Env, ref: ConversationRef, device: Device, content: PushContent, rows: Map<string, Promise<CredentialsRow | null>>): Promise<DeviceResult> {
  const base = { device_id: device.id, platform: device.platform };
  const row = await credentialsFor(env, ref, device, rows);
  const skip = (reason: string): DeviceResult => {
    log("push.skipped", { conversation: ref.id, message: content.message_id, device: device.id, platform: device.platform, reason });
    return { ...base, outcome: { kind: "skipped", reason }, attempts: 0 };
  };
  if (!row) return skip(`no ${device.platform} credentials for this device (none configured, or several mobile channels and the device named none)`);
  const send =
    device.platform === "fcm"
      ? await openFcm(env, row).then((c) => c && ((): Promise<SendOutcome> => sendFcm(env, c, device.token, content)))
      : await openApns(env, row).then((c) => c && ((): Promise<SendOutcome> => sendApns(env, c, device.token, content)));
  if (!send) return skip(`the ${device.platform} credentials of channel ${row.channel_id} do not open with the current PUSH_ENCRYPTION_KEY`);

  const { outcome, attempts } = await withRetries(send);
  const fields = { conversation: ref.id, message: content.message_id, device: device.id, platform: device.platform, token: redact(device.token), attempts };
  switch (outcome.kind) {
    case "sent":
      log("push.sent", { ...fields, status: outcome.status, id: outcome.id });
      break;
    case "unregistered":
      await database(env.DB).delete(schema.devices).where(and(eq(schema.devices.id, device.id), eq(schema.devices.token, device.token)));
      log("push.unregistered", { ...fields, status: outcome.status, reason: outcome.reason, removed: true });
      break;
    default:
      log("push.failed", { ...fields, status: outcome.status, reason: outcome.reason });
  }
  return { ...base, outcome, attempts };
}

/** Runs `send`, retrying what is retryable; never waits more than ~4 s plus Retry-After (≤ 10 s). */
export async function withRetries(send: () => Promise<SendOutcome>, delays = RETRY_DELAYS_MS): Promise<{ outcome: SendOutcome; attempts: number }> {
  for (let attempt = 0; ; attempt++) {
    const outcome = await send();
    if (outcome.kind !== "retry") return { outcome, attempts: attempt + 1 };
    if (attempt >= delays.length) return { outcome: { kind: "failed", status: outcome.status, reason: `gave up after ${attempt + 1} attempts: ${outcome.reason}` }, attempts: attempt + 1 };
    if (outcome.retryAfterMs !== undefined && outcome.retryAfterMs > MAX_RETRY_AFTER_MS) {
      return { outcome: { kind: "failed", status: outcome.status, reason: `asked to retry after ${Math.round(outcome.retryAfterMs / 1000)} s (longer than a best-effort retry waits): ${outcome.reason}` }, attempts: attempt + 1 };
    }
    const wait = outcome.refreshAuth ? 0 : Math.max(delays[attempt]!, outcome.retryAfterMs ?? 0);
    await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * Which mobile channel's credentials reach a device, in order: the channel the device named when
 * it registered; the conversation's own channel, when it has credentials; else the organisation's
 * mobile channel with credentials for that platform, if there is exactly one (apps usually talk
 * to Parley through a webchat channel: the WebView of seed 001, the public key, the native
 * WebSocket; the mobile channel only holds the push credentials).
 */
async function credentialsFor(env: Env, ref: ConversationRef, device: Device, rows: Map<string, Promise<CredentialsRow | null>>): Promise<CredentialsRow | null> {
  const db = database(env.DB);
  const byChannel = (channelId: string) => {
    let row = rows.get(channelId);
    if (!row) {
      row = db
        .select()
        .from(schema.pushCredentials)
        .where(and(eq(schema.pushCredentials.channel_id, channelId), eq(schema.pushCredentials.org_id, ref.org_id)))
        .get()
        .then((r) => r ?? null);
      rows.set(channelId, row);
    }
    return row;
  };
  const has = (r: CredentialsRow | null) => !!r && !!r[device.platform];
  if (device.push_channel_id) {
    const r = await byChannel(device.push_channel_id);
    return has(r) ? r : null;
  }
  const own = await byChannel(ref.channel_id);
  if (has(own)) return own;
  const key = `org:${device.platform}`;
  let only = rows.get(key);
  if (!only) {
    const column = device.platform === "fcm" ? schema.pushCredentials.fcm : schema.pushCredentials.apns;
    only = db
      .select({ row: schema.pushCredentials })
      .from(schema.pushCredentials)
      .innerJoin(schema.channels, eq(schema.channels.id, schema.pushCredentials.channel_id))
      .where(and(eq(schema.pushCredentials.org_id, ref.org_id), eq(schema.channels.kind, "mobile_sdk"), isNotNull(column)))
      .limit(2)
      .all()
      .then((found) => (found.length === 1 ? found[0]!.row : null));
    rows.set(key, only);
  }
  return only;
}

/** Tokens are credentials of a sort: logs show their first characters only. */
const redact = (token: string) => `${token.slice(0, 8)}…`;

function log(at: string, fields: Record<string, unknown>) {
  const line = JSON.stringify({ at, ...fields });
  if (at === "push.sent") console.log(line);
  else console.error(line);
}
