/**
 * Push notifications over HTTP (docs/push.md).
 *
 * - `pushIntegrations` (mounted at /api/integrations; owners and admins, org-scoped, another
 *   org's channel is a plain 404): `PUT|GET|DELETE /:channel_id/push`, a mobile channel's FCM and
 *   APNs credentials. Stored sealed; never shown again.
 * - `pushDevices` (mounted at /chat-widget; end users, authorised like GET /chat-widget/history by
 *   conversation id + external id [+ identity hash]): `POST|DELETE /devices`, push tokens.
 */
import { and, desc, eq } from "drizzle-orm";
import { z } from "zod";
import { ApiError, unwrap } from "../core/errors";
import { channelOfOrg, conversationForEndUser, roomFor } from "../conversation/directory";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { parse, readJson } from "../http/body";
import { sealingSecret } from "../push/config";
import { actorOf, recordAudit } from "../audit/log";
import { checkKeys, credentialsRow, describe, PushCredentialsInput, saveCredentials } from "../push/credentials";

/** Older registrations of one end user beyond this many are dropped (newest kept). */
export const MAX_DEVICES_PER_END_USER = 10;

const admin = requireAgent("owner", "admin");

// Routes carry their own auth (no `use("*")`): this router is mounted beside `integrations`.
export const pushIntegrations = router()
  .put("/:id/push", admin, async (c) => {
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    const body = await readJson(c, PushCredentialsInput);
    if (channel.kind !== "mobile_sdk") throw new ApiError("validation_failed", "push credentials belong to a mobile channel (POST /api/integrations/mobile)");
    if (!sealingSecret(c.env)) throw new ApiError("unavailable", "push is not set up on this server: set the PUSH_ENCRYPTION_KEY secret (docs/push.md)");
    const bad = await checkKeys(body);
    if (bad) throw new ApiError("validation_failed", bad);
    const row = await saveCredentials(c.env, channel, body);
    // Which platforms were set; never the credentials.
    const set = (["fcm", "apns"] as const).filter((p) => body[p]);
    const removed = (["fcm", "apns"] as const).filter((p) => body[p] === null);
    await recordAudit(c.env, { org_id: channel.org_id, actor: actorOf(c.get("agent")), action: "channel.push_set", target: { type: "channel", id: channel.id }, detail: { name: channel.name, set, removed } });
    return c.json(await describe(c.env, channel.id, row));
  })
  .get("/:id/push", admin, async (c) => {
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    return c.json(await describe(c.env, channel.id, await credentialsRow(c.env, channel.org_id, channel.id)));
  })
  .delete("/:id/push", admin, async (c) => {
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    const { platform } = parse(z.object({ platform: z.enum(["fcm", "apns"]).optional() }), c.req.query());
    const db = database(c.env.DB);
    const where = and(eq(schema.pushCredentials.channel_id, channel.id), eq(schema.pushCredentials.org_id, channel.org_id));
    if (platform) await db.update(schema.pushCredentials).set({ ...(platform === "fcm" ? { fcm: null } : { apns: null }), updated_at: new Date().toISOString() }).where(where);
    else await db.delete(schema.pushCredentials).where(where);
    await recordAudit(c.env, { org_id: channel.org_id, actor: actorOf(c.get("agent")), action: "channel.push_removed", target: { type: "channel", id: channel.id }, detail: { name: channel.name, platforms: platform ? [platform] : ["fcm", "apns"] } });
    return c.json(await describe(c.env, channel.id, await credentialsRow(c.env, channel.org_id, channel.id)));
  });

const DeviceRef = z.object({
  conversation_id: z.string().min(1).max(200),
  external_id: z.string().min(1).max(200),
  identity_hash: z.string().max(200).optional(),
});

/** FCM registration tokens: URL-safe characters, typically ~160; APNs device tokens: hex (32 bytes today). */
const Token = z.discriminatedUnion("platform", [
  z.object({ platform: z.literal("fcm"), token: z.string().regex(/^[\w:.-]{16,4096}$/, "an FCM registration token") }),
  z.object({
    platform: z.literal("apns"),
    token: z
      .string()
      .regex(/^[0-9a-fA-F]{32,400}$/, "an APNs device token (hex)")
      .transform((t) => t.toLowerCase()),
  }),
]);

const RegisterDevice = z.intersection(
  DeviceRef.extend({
    /** The app's mobile channel (its push credentials); optional when the organisation has one. */
    channel_id: z.string().min(1).max(200).optional(),
  }),
  Token,
);
const RemoveDevice = z.intersection(DeviceRef, Token);

export const pushDevices = router()
  .post("/devices", async (c) => {
    const body = await readJson(c, RegisterDevice);
    const ref = await conversationForEndUser(c.env, body.conversation_id, body.external_id, body.identity_hash);
    const db = database(c.env.DB);
    if (body.channel_id) {
      const app = await db
        .select({ id: schema.channels.id })
        .from(schema.channels)
        .where(and(eq(schema.channels.id, body.channel_id), eq(schema.channels.org_id, ref.org_id), eq(schema.channels.kind, "mobile_sdk")))
        .get();
      if (!app) throw new ApiError("not_found", "mobile channel not found");
    }
    const key = and(eq(schema.devices.channel_id, ref.channel_id), eq(schema.devices.platform, body.platform), eq(schema.devices.token, body.token));
    const now = new Date().toISOString();
    const existing = await db.select({ id: schema.devices.id }).from(schema.devices).where(key).get();
    // One row per token: a token registered again (or by another user of the same app on the device) moves to this end user.
    const set = { org_id: ref.org_id, external_id: ref.end_user.external_id, push_channel_id: body.channel_id ?? null, created_at: now };
    await db
      .insert(schema.devices)
      .values({ id: crypto.randomUUID(), channel_id: ref.channel_id, platform: body.platform, token: body.token, ...set })
      .onConflictDoUpdate({ target: [schema.devices.channel_id, schema.devices.platform, schema.devices.token], set });
    const row = (await db.select().from(schema.devices).where(key).get())!;
    const stale = await db
      .select({ id: schema.devices.id })
      .from(schema.devices)
      .where(and(eq(schema.devices.channel_id, ref.channel_id), eq(schema.devices.external_id, ref.end_user.external_id)))
      .orderBy(desc(schema.devices.created_at), desc(schema.devices.id))
      .offset(MAX_DEVICES_PER_END_USER)
      .limit(100)
      .all();
    for (const s of stale) await db.delete(schema.devices).where(eq(schema.devices.id, s.id));
    unwrap(await roomFor(c.env, ref).devicesChanged(ref)); // the room stops assuming "no devices"
    return c.json(
      { id: row.id, conversation_id: ref.id, platform: row.platform, push_channel_id: row.push_channel_id, registered_at: row.created_at, created: !existing },
      existing ? 200 : 201,
    );
  })
  .delete("/devices", async (c) => {
    const body = await readJson(c, RemoveDevice);
    const ref = await conversationForEndUser(c.env, body.conversation_id, body.external_id, body.identity_hash);
    const removed = await database(c.env.DB)
      .delete(schema.devices)
      .where(
        and(
          eq(schema.devices.channel_id, ref.channel_id),
          eq(schema.devices.external_id, ref.end_user.external_id),
          eq(schema.devices.platform, body.platform),
          eq(schema.devices.token, body.token),
        ),
      )
      .returning({ id: schema.devices.id });
    return c.json({ conversation_id: ref.id, platform: body.platform, deleted: removed.length > 0 });
  });
