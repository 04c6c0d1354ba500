/**
 * Push credentials per mobile channel: an FCM HTTP v1 service account and an APNs token key.
 * Validated (the keys are imported and must sign) before they are stored, sealed with AES-GCM
 * (src/push/crypto.ts) in `push_credentials`, and opened only to send. Nothing here ever returns
 * a private key to a caller: `describe` shows which credentials exist and their public fields.
 */
import { and, eq } from "drizzle-orm";
import { z } from "zod";
import { database, schema } from "../db/client";
import { openingSecrets, sealingSecret } from "./config";
import { importSigningKey, KeyFormatError, open, seal } from "./crypto";

const field = (max: number) => z.string().trim().min(1).max(max);
const pem = z.string().min(1).max(10_000);

/** A Google service account (the JSON file from Firebase → Project settings → Service accounts). */
export const FcmCredentials = z
  .object({
    project_id: field(200).regex(/^[a-z0-9-]+$/, "a Firebase project id (lowercase letters, digits, -)"),
    client_email: z.email().max(320),
    private_key: pem,
    private_key_id: field(200).optional(),
  })
  .strip();
export type FcmCredentials = z.infer<typeof FcmCredentials>;

export const ApnsCredentials = z.strictObject({
  team_id: field(20).regex(/^[A-Z0-9]{10}$/, "the 10-character Team ID"),
  key_id: field(20).regex(/^[A-Z0-9]{10}$/, "the 10-character Key ID of the APNs auth key"),
  bundle_id: field(255).regex(/^[A-Za-z0-9.-]+$/, "the app's bundle identifier, e.g. com.example.app"),
  private_key: pem,
  environment: z.enum(["sandbox", "production"]),
});
export type ApnsCredentials = z.infer<typeof ApnsCredentials>;

/** Seed 001's legacy fields: Google shut the legacy API down (see docs/push.md). */
const LEGACY_FCM_FIELDS = ["server_key", "sender_id", "serverKey", "senderId"];

/** `PUT /api/integrations/:channel_id/push`: each platform replaced when present, removed when null. */
export const PushCredentialsInput = z
  .object({
    fcm: z.preprocess((v, ctx) => {
      if (v && typeof v === "object" && LEGACY_FCM_FIELDS.some((k) => k in v) && !("private_key" in v)) {
        ctx.addIssue({
          code: "custom",
          message:
            "the legacy FCM server key / sender id no longer work (Google shut the legacy API down in 2024): send the HTTP v1 service account (project_id, client_email, private_key)",
        });
      }
      return v;
    }, FcmCredentials.nullable().optional()),
    apns: ApnsCredentials.nullable().optional(),
  })
  .strict()
  .refine((b) => b.fcm !== undefined || b.apns !== undefined, { message: "send fcm and/or apns (null removes one)" });
export type PushCredentialsInput = z.infer<typeof PushCredentialsInput>;

export type Platform = "fcm" | "apns";

/** Imports the keys (so a wrong or truncated key is refused now, not at the first push). */
export async function checkKeys(input: PushCredentialsInput): Promise<string | null> {
  try {
    if (input.fcm) await importSigningKey(input.fcm.private_key, "RS256");
  } catch (err) {
    return `fcm.private_key: ${err instanceof KeyFormatError ? err.message : "unreadable"}`;
  }
  try {
    if (input.apns) await importSigningKey(input.apns.private_key, "ES256");
  } catch (err) {
    return `apns.private_key: ${err instanceof KeyFormatError ? err.message : "unreadable"}`;
  }
  return null;
}

const context = (channelId: string, platform: Platform) => `push:${channelId}:${platform}`;

type Row = typeof schema.pushCredentials.$inferSelect;

/** Stores the credentials (sealed). Throws when the deployment has no PUSH_ENCRYPTION_KEY. */
export async function saveCredentials(env: Env, channel: { id: string; org_id: string }, input: PushCredentialsInput): Promise<Row> {
  const secret = sealingSecret(env);
  if (!secret) throw new Error("PUSH_ENCRYPTION_KEY is not set");
  const db = database(env.DB);
  const sealField = async (platform: Platform, value: object | null | undefined) =>
    value === undefined ? undefined : value === null ? null : await seal(secret, context(channel.id, platform), JSON.stringify(value));
  const fcm = await sealField("fcm", input.fcm);
  const apns = await sealField("apns", input.apns);
  const updated_at = new Date().toISOString();
  const set = { updated_at, ...(fcm !== undefined ? { fcm } : {}), ...(apns !== undefined ? { apns } : {}) };
  await db
    .insert(schema.pushCredentials)
    .values({ channel_id: channel.id, org_id: channel.org_id, fcm: fcm ?? null, apns: apns ?? null, updated_at })
    .onConflictDoUpdate({ target: schema.pushCredentials.channel_id, set });
  return (await db.select().from(schema.pushCredentials).where(eq(schema.pushCredentials.channel_id, channel.id)).get())!;
}

export async function credentialsRow(env: Env, orgId: string, channelId: string): Promise<Row | null> {
  const row = await database(env.DB)
    .select()
    .from(schema.pushCredentials)
    .where(and(eq(schema.pushCredentials.channel_id, channelId), eq(schema.pushCredentials.org_id, orgId)))
    .get();
  return row ?? null;
}

export async function openFcm(env: Env, row: Row): Promise<FcmCredentials | null> {
  if (!row.fcm) return null;
  const plain = await open(openingSecrets(env), context(row.channel_id, "fcm"), row.fcm);
  return plain === null ? null : FcmCredentials.parse(JSON.parse(plain));
}

export async function openApns(env: Env, row: Row): Promise<ApnsCredentials | null> {
  if (!row.apns) return null;
  const plain = await open(openingSecrets(env), context(row.channel_id, "apns"), row.apns);
  return plain === null ? null : ApnsCredentials.parse(JSON.parse(plain));
}

/**
 * What an admin may see: which platforms are configured and their public identifiers. A row the
 * current keys cannot open (PUSH_ENCRYPTION_KEY rotated without PUSH_ENCRYPTION_KEY_PREVIOUS)
 * shows `readable: false`: PUT the credentials again.
 */
export async function describe(env: Env, channelId: string, row: Row | null) {
  const fcm = row?.fcm ? await openFcm(env, row) : null;
  const apns = row?.apns ? await openApns(env, row) : null;
  return {
    channel_id: channelId,
    fcm: row?.fcm
      ? fcm
        ? { configured: true, readable: true, project_id: fcm.project_id, client_email: fcm.client_email }
        : { configured: true, readable: false }
      : { configured: false },
    apns: row?.apns
      ? apns
        ? { configured: true, readable: true, team_id: apns.team_id, key_id: apns.key_id, bundle_id: apns.bundle_id, environment: apns.environment }
        : { configured: true, readable: false }
      : { configured: false },
    updated_at: row?.updated_at ?? null,
  };
}
