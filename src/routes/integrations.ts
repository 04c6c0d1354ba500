/** `/api/integrations`: channels (webchat with embed tokens and allowed origins, mobile). Owners and admins. */
import { and, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { randomToken, sha256Hex } from "../core/crypto";
import { displayName } from "../core/names";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { readJson } from "../http/body";
import { channelOfOrg, forgetVisitors } from "../conversation/directory";
import { BotSettings } from "../bots/config";
import { ApiError } from "../core/errors";
import { actorOf, auditInsert, recordAudit, type AuditEntry } from "../audit/log";
import type { Agent } from "../http/auth";

/** A channel's audit entry (never its identity secret or tokens). */
const channelEntry = (agent: Agent, channelId: string, action: string, detail: Record<string, unknown> = {}): AuditEntry => ({
  org_id: agent.org_id,
  actor: actorOf(agent),
  action,
  target: { type: "channel", id: channelId },
  detail,
});

type ChannelKind = (typeof schema.channels.$inferInsert)["kind"];

/** An exact origin: scheme://host[:port], nothing else (no paths, wildcards or trailing slash). */
const origin = z
  .string()
  .max(300)
  .refine((o) => URL.canParse(o) && new URL(o).origin === o && /^https?:$/.test(new URL(o).protocol), { message: "must be an exact origin like https://shop.example" });

const Webchat = z.object({
  name: displayName(200),
  allowed_origins: z.array(origin).max(50).default([]),
  title: displayName(200).optional(),
  require_identity: z.boolean().default(false),
  typing_preview: z.boolean().default(false),
});
const Mobile = z.object({ name: displayName(200), require_identity: z.boolean().default(false) });
/** `PATCH /:id`: what an admin may change on a channel (origins, title, typing preview: webchat only; `title: null` clears it). */
const ChannelChange = z
  .strictObject({
    name: displayName(200).optional(),
    allowed_origins: z.array(origin).max(50).optional(),
    title: displayName(200).nullable().optional(),
    require_identity: z.boolean().optional(),
    typing_preview: z.boolean().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: "send name, allowed_origins, title, require_identity and/or typing_preview" });

type ChannelRow = typeof schema.channels.$inferSelect;
const channelView = (r: ChannelRow) => ({
  id: r.id,
  kind: r.kind,
  name: r.name,
  is_default: r.is_default,
  allowed_origins: JSON.parse(r.allowed_origins) as string[],
  title: r.title,
  require_identity: r.require_identity,
  typing_preview: r.typing_preview,
  created_at: r.created_at,
});

/** Webhook bot secrets are write-only. */
function botView(row: { channel_id: string; kind: string; config: string; enabled: boolean; updated_at: string }) {
  const config = JSON.parse(row.config) as Record<string, unknown>;
  if (row.kind === "webhook") delete config.secret;
  return { channel_id: row.channel_id, kind: row.kind, enabled: row.enabled, config, updated_at: row.updated_at };
}

export async function createChannel(
  orgId: string,
  opts: { kind: ChannelKind; name: string; is_default?: boolean; allowed_origins?: string[]; title?: string; require_identity?: boolean; typing_preview?: boolean },
) {
  return {
    id: crypto.randomUUID(),
    org_id: orgId,
    kind: opts.kind,
    name: opts.name,
    is_default: opts.is_default ?? false,
    allowed_origins: JSON.stringify(opts.allowed_origins ?? []),
    title: opts.title ?? null,
    identity_secret: randomToken(32),
    require_identity: opts.require_identity ?? false,
    typing_preview: opts.typing_preview ?? false,
  };
}

/** A new embed token (`ew_`, shown once) and its row (only the hash is stored). */
async function newEmbedToken(orgId: string, channelId: string) {
  const token = `ew_${randomToken(24)}`;
  return { token, embed: { id: crypto.randomUUID(), org_id: orgId, channel_id: channelId, token_hash: await sha256Hex(token) } };
}

export const integrations = router()
  .use(requireAgent("owner", "admin"))
  .post("/webchat", async (c) => {
    const body = await readJson(c, Webchat);
    const org = c.get("agent").org_id;
    const channel = await createChannel(org, { kind: "webchat", ...body });
    const { token, embed } = await newEmbedToken(org, channel.id);
    const db = database(c.env.DB);
    await db.batch([
      db.insert(schema.channels).values(channel),
      db.insert(schema.embedTokens).values(embed),
      auditInsert(db, channelEntry(c.get("agent"), channel.id, "channel.created", { kind: "webchat", name: channel.name, allowed_origins: body.allowed_origins, require_identity: channel.require_identity, typing_preview: channel.typing_preview, embed_token_id: embed.id })),
    ]);
    return c.json({ id: embed.id, channel_id: channel.id, token, identity_secret: channel.identity_secret }, 201);
  })
  // Another embed token for an existing webchat channel (the first one is shown only at creation;
  // tokens are stored hashed). Older tokens keep working.
  .post("/:id/embed-tokens", async (c) => {
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    if (channel.kind !== "webchat" && channel.kind !== "mobile_sdk") throw new ApiError("validation_failed", "embed tokens belong to a webchat or mobile channel");
    const { token, embed } = await newEmbedToken(channel.org_id, channel.id);
    const db = database(c.env.DB);
    await db.batch([db.insert(schema.embedTokens).values(embed), auditInsert(db, channelEntry(c.get("agent"), channel.id, "channel.embed_token_issued", { kind: channel.kind, name: channel.name, embed_token_id: embed.id }))]);
    return c.json({ id: embed.id, channel_id: channel.id, token }, 201);
  })
  // A mobile channel comes with its own public credential, the embed token its app embeds (seed
  // 001's WebView URL, /chat-widget/session, /ws/visitor, Socket.IO): the app's conversations,
  // devices and pushes belong to this channel. Refused from web pages (directory.ts checkOrigin).
  .post("/mobile", async (c) => {
    const body = await readJson(c, Mobile);
    const org = c.get("agent").org_id;
    const channel = await createChannel(org, { kind: "mobile_sdk", ...body });
    const { token, embed } = await newEmbedToken(org, channel.id);
    const db = database(c.env.DB);
    await db.batch([
      db.insert(schema.channels).values(channel),
      db.insert(schema.embedTokens).values(embed),
      auditInsert(db, channelEntry(c.get("agent"), channel.id, "channel.created", { kind: "mobile_sdk", name: channel.name, require_identity: channel.require_identity, embed_token_id: embed.id })),
    ]);
    return c.json({ id: channel.id, channel_id: channel.id, token, identity_secret: channel.identity_secret }, 201);
  })
  .get("/", async (c) => {
    const rows = await database(c.env.DB).select().from(schema.channels).where(eq(schema.channels.org_id, c.get("agent").org_id)).all();
    return c.json(rows.map(channelView));
  })
  // Takes effect at once in this isolate (an origin removed here is refused from the next request
  // on) and within RETURNING_VISITOR_TTL_MS in the deployment's others, whose returning visitors'
  // cache may hold the channel as it was (conversationForVisitor). Open sockets keep their origin.
  .patch("/:id", async (c) => {
    const body = await readJson(c, ChannelChange);
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    if ((body.allowed_origins !== undefined || body.title !== undefined || body.typing_preview !== undefined) && channel.kind !== "webchat") {
      throw new ApiError("validation_failed", "allowed_origins, title and typing_preview belong to a webchat channel");
    }
    const set: Partial<typeof schema.channels.$inferInsert> = {};
    if (body.name !== undefined) set.name = body.name;
    if (body.allowed_origins !== undefined) set.allowed_origins = JSON.stringify([...new Set(body.allowed_origins)]);
    if (body.title !== undefined) set.title = body.title;
    if (body.require_identity !== undefined) set.require_identity = body.require_identity;
    if (body.typing_preview !== undefined) set.typing_preview = body.typing_preview;
    const db = database(c.env.DB);
    const [[row]] = await db.batch([
      db
        .update(schema.channels)
        .set(set)
        .where(and(eq(schema.channels.id, channel.id), eq(schema.channels.org_id, channel.org_id)))
        .returning(),
      auditInsert(db, channelEntry(c.get("agent"), channel.id, "channel.updated", { name: channel.name, changed: Object.keys(body).filter((k) => body[k as keyof typeof body] !== undefined), to: body })),
    ]);
    forgetVisitors();
    return c.json(channelView(row!));
  })
  .put("/:id/bot", async (c) => {
    const body = await readJson(c, BotSettings);
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    const row = { channel_id: channel.id, org_id: channel.org_id, kind: body.kind, config: JSON.stringify(body.config), enabled: body.enabled, updated_at: new Date().toISOString() };
    const db = database(c.env.DB);
    await db.batch([
      db
        .insert(schema.bots)
        .values(row)
        .onConflictDoUpdate({ target: schema.bots.channel_id, set: { kind: row.kind, config: row.config, enabled: row.enabled, updated_at: row.updated_at } }),
      // The bot's kind and whether it runs; never its config (a webhook bot's secret is write-only).
      auditInsert(db, channelEntry(c.get("agent"), channel.id, "channel.bot_set", { name: channel.name, kind: row.kind, enabled: row.enabled })),
    ]);
    return c.json(botView(row));
  })
  .get("/:id/bot", async (c) => {
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    const row = await database(c.env.DB).select().from(schema.bots).where(eq(schema.bots.channel_id, channel.id)).get();
    if (!row) throw new ApiError("not_found", "this channel has no bot");
    return c.json(botView(row));
  })
  .delete("/:id/bot", async (c) => {
    const channel = await channelOfOrg(c.env, c.get("agent").org_id, c.req.param("id"));
    const db = database(c.env.DB);
    // The entry only when there was a bot to remove (changes(): the delete's row count, in the batch's transaction).
    await db.batch([
      db.delete(schema.bots).where(eq(schema.bots.channel_id, channel.id)),
      auditInsert(db, channelEntry(c.get("agent"), channel.id, "channel.bot_removed", { name: channel.name }), sql`changes() > 0`),
    ]);
    return c.json({ channel_id: channel.id, deleted: true });
  })
  .get("/:id/identity-secret", async (c) => {
    const row = await database(c.env.DB)
      .select({ secret: schema.channels.identity_secret })
      .from(schema.channels)
      .where(and(eq(schema.channels.id, c.req.param("id")), eq(schema.channels.org_id, c.get("agent").org_id)))
      .get();
    if (!row) throw new ApiError("not_found", "channel not found");
    // Reading a secret is worth knowing about (who saw it, when); the secret itself is not recorded.
    await recordAudit(c.env, channelEntry(c.get("agent"), c.req.param("id"), "channel.identity_secret_viewed"));
    return c.json({ identity_secret: row.secret });
  });
