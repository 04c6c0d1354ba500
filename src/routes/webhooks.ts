/**
 * `/api/webhooks`: the organisation's webhook endpoints and their delivery log. Owners and
 * admins (cookie + CSRF, or a secret key). Every query is scoped to the caller's org: another
 * org's id is a plain 404. A Chat API channel's webhook (channel_id set) is not managed here.
 * Delivery itself: src/webhooks/. Reference: docs/webhooks.md.
 */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { ApiError } from "../core/errors";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { parse, readJson } from "../http/body";
import { enqueueDeliveries } from "../webhooks/consumer";
import { EVENT_TYPES, forgetEndpointCache } from "../webhooks/events";
import { newSecret } from "../webhooks/signature";
import { actorOf, auditInsert, recordAudit, urlForAudit, type AuditEntry } from "../audit/log";
import type { Agent } from "../http/auth";
import { allowLocalWebhooks, checkWebhookUrl, MAX_URL_LENGTH } from "../webhooks/url";

export const MAX_ENDPOINTS_PER_ORG = 20;
/** After a rotation the old secret keeps signing (as a second signature) this long. */
export const ROTATION_OVERLAP_MS = 24 * 3600 * 1000;

const Events = z
  .array(z.enum(EVENT_TYPES))
  .max(EVENT_TYPES.length * 2)
  .transform((list) => [...new Set(list)]);
const Url = z.string().trim().min(1).max(MAX_URL_LENGTH);
const NewEndpoint = z.object({ url: Url, events: Events.default([]) });
const Change = z
  .object({ url: Url.optional(), events: Events.optional(), active: z.boolean().optional() })
  .refine((c) => c.url !== undefined || c.events !== undefined || c.active !== undefined, { message: "nothing to change: send url, events or active" });
const DeliveryQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  status: z.enum(["pending", "delivered", "failed", "dead"]).optional(),
});

type Endpoint = typeof schema.webhooks.$inferSelect;
type Delivery = typeof schema.webhookDeliveries.$inferSelect;

const w = schema.webhooks;
const d = schema.webhookDeliveries;

export const webhooks = router()
  .use(requireAgent("owner", "admin"))
  .post("/", async (c) => {
    const body = await readJson(c, NewEndpoint);
    const org = c.get("agent").org_id;
    const url = allowedUrl(c.env, body.url);
    const db = database(c.env.DB);
    const count = await db.select({ n: sql<number>`count(*)` }).from(w).where(and(eq(w.org_id, org), isNull(w.channel_id))).get();
    if ((count?.n ?? 0) >= MAX_ENDPOINTS_PER_ORG) throw new ApiError("conflict", `an organisation can have at most ${MAX_ENDPOINTS_PER_ORG} webhook endpoints`);
    const row = { id: crypto.randomUUID(), org_id: org, channel_id: null, url, secret: newSecret(), events: JSON.stringify(body.events), active: true };
    const [[created]] = await db.batch([db.insert(w).values(row).returning(), auditInsert(db, hookEntry(c.get("agent"), row.id, "webhook.created", { url: urlForAudit(url), events: body.events }))]);
    forgetEndpointCache(org);
    return c.json({ ...endpointView(created!), secret: row.secret }, 201);
  })
  .get("/", async (c) => {
    const rows = await database(c.env.DB)
      .select()
      .from(w)
      .where(and(eq(w.org_id, c.get("agent").org_id), isNull(w.channel_id)))
      .orderBy(w.created_at, w.id)
      .all();
    return c.json(rows.map(endpointView));
  })
  .get("/:id", async (c) => c.json(endpointView(await endpointOf(c.env, c.get("agent").org_id, c.req.param("id")))))
  .patch("/:id", async (c) => {
    const body = await readJson(c, Change);
    const org = c.get("agent").org_id;
    const current = await endpointOf(c.env, org, c.req.param("id"));
    const changes: Partial<Endpoint> = {};
    if (body.url !== undefined) changes.url = allowedUrl(c.env, body.url);
    if (body.events !== undefined) changes.events = JSON.stringify(body.events);
    if (body.active !== undefined) {
      changes.active = body.active;
      changes.disabled_reason = body.active ? null : "disabled by an admin";
    }
    const db = database(c.env.DB);
    const detail = {
      changed: Object.keys(body).filter((k) => body[k as keyof typeof body] !== undefined),
      ...(changes.url !== undefined ? { url: urlForAudit(changes.url) } : {}),
      ...(body.events !== undefined ? { events: body.events } : {}),
      ...(body.active !== undefined ? { active: body.active } : {}),
    };
    const [[updated]] = await db.batch([
      db.update(w).set(changes).where(and(eq(w.id, current.id), eq(w.org_id, org))).returning(),
      auditInsert(db, hookEntry(c.get("agent"), current.id, "webhook.updated", detail)),
    ]);
    forgetEndpointCache(org);
    return c.json(endpointView(updated!));
  })
  .delete("/:id", async (c) => {
    const org = c.get("agent").org_id;
    const endpoint = await endpointOf(c.env, org, c.req.param("id"));
    const db = database(c.env.DB);
    // Queued deliveries find no endpoint and are dropped by the consumer.
    await db.batch([
      db.delete(d).where(and(eq(d.webhook_id, endpoint.id), eq(d.org_id, org))),
      db.delete(w).where(and(eq(w.id, endpoint.id), eq(w.org_id, org))),
      auditInsert(db, hookEntry(c.get("agent"), endpoint.id, "webhook.deleted", { url: urlForAudit(endpoint.url) }), sql`changes() > 0`),
    ]);
    forgetEndpointCache(org);
    return c.json({ id: endpoint.id, deleted: true });
  })
  .post("/:id/rotate-secret", async (c) => {
    const org = c.get("agent").org_id;
    const endpoint = await endpointOf(c.env, org, c.req.param("id"));
    const secret = newSecret();
    const expires = new Date(Date.now() + ROTATION_OVERLAP_MS).toISOString();
    const db = database(c.env.DB);
    await db.batch([
      db
        .update(w)
        .set({ secret, previous_secret: endpoint.secret, previous_secret_expires_at: expires })
        .where(and(eq(w.id, endpoint.id), eq(w.org_id, org))),
      // When the old secret stops signing; never either secret.
      auditInsert(db, hookEntry(c.get("agent"), endpoint.id, "webhook.secret_rotated", { url: urlForAudit(endpoint.url), previous_valid_until: expires })),
    ]);
    return c.json({ id: endpoint.id, secret, previous_secret_expires_at: expires });
  })
  .get("/:id/deliveries", async (c) => {
    const q = parse(DeliveryQuery, c.req.query());
    const org = c.get("agent").org_id;
    const endpoint = await endpointOf(c.env, org, c.req.param("id"));
    const rows = await database(c.env.DB)
      .select()
      .from(d)
      .where(and(eq(d.webhook_id, endpoint.id), eq(d.org_id, org), q.status ? eq(d.status, q.status) : undefined))
      .orderBy(desc(d.created_at), desc(d.id))
      .limit(q.limit)
      .all();
    return c.json(rows.map(deliveryView));
  })
  .get("/:id/deliveries/:delivery_id", async (c) => {
    const delivery = await deliveryOf(c.env, c.get("agent").org_id, c.req.param("id"), c.req.param("delivery_id"));
    return c.json({ ...deliveryView(delivery), payload: delivery.payload ? (JSON.parse(delivery.payload) as unknown) : null });
  })
  .post("/:id/deliveries/:delivery_id/retry", async (c) => {
    const org = c.get("agent").org_id;
    const endpoint = await endpointOf(c.env, org, c.req.param("id"));
    const delivery = await deliveryOf(c.env, org, endpoint.id, c.req.param("delivery_id"));
    if (delivery.status !== "dead") throw new ApiError("conflict", `only dead deliveries can be replayed; this one is ${delivery.status}`);
    if (!endpoint.active) throw new ApiError("conflict", "the endpoint is disabled; re-enable it first (PATCH with active: true)");
    const db = database(c.env.DB);
    const now = new Date().toISOString();
    const [replayed] = await db
      .update(d)
      .set({ status: "pending", updated_at: now })
      .where(and(eq(d.id, delivery.id), eq(d.org_id, org), eq(d.status, "dead")))
      .returning();
    if (!replayed) throw new ApiError("conflict", "the delivery changed meanwhile; reload it");
    try {
      await enqueueDeliveries(c.env, [delivery.id]);
    } catch (err) {
      await db.update(d).set({ status: "dead", updated_at: now }).where(eq(d.id, delivery.id));
      throw new ApiError("unavailable", `could not queue the delivery: ${String(err)}`);
    }
    await recordAudit(c.env, hookEntry(c.get("agent"), endpoint.id, "webhook.delivery_retried", { delivery_id: delivery.id, event_type: delivery.event_type }));
    return c.json(deliveryView(replayed), 202);
  });

const hookEntry = (agent: Agent, id: string, action: string, detail: Record<string, unknown>): AuditEntry => ({
  org_id: agent.org_id,
  actor: actorOf(agent),
  action,
  target: { type: "webhook", id },
  detail,
});

function allowedUrl(env: Env, raw: string): string {
  const check = checkWebhookUrl(raw, allowLocalWebhooks(env));
  if (!check.ok) throw new ApiError("validation_failed", `url: ${check.reason}`);
  return check.url;
}

async function endpointOf(env: Env, org: string, id: string): Promise<Endpoint> {
  const row = await database(env.DB)
    .select()
    .from(w)
    .where(and(eq(w.id, id), eq(w.org_id, org), isNull(w.channel_id)))
    .get();
  if (!row) throw new ApiError("not_found", "webhook endpoint not found");
  return row;
}

async function deliveryOf(env: Env, org: string, endpointId: string, id: string): Promise<Delivery> {
  await endpointOf(env, org, endpointId);
  const row = await database(env.DB)
    .select()
    .from(d)
    .where(and(eq(d.id, id), eq(d.webhook_id, endpointId), eq(d.org_id, org)))
    .get();
  if (!row) throw new ApiError("not_found", "delivery not found");
  return row;
}

function endpointView(e: Endpoint) {
  return {
    id: e.id,
    url: e.url,
    events: JSON.parse(e.events) as string[],
    active: e.active,
    disabled_reason: e.disabled_reason,
    created_at: e.created_at,
  };
}

function deliveryView(r: Delivery) {
  return {
    id: r.id,
    webhook_id: r.webhook_id,
    event_id: r.event_id,
    event_type: r.event_type,
    status: r.status,
    attempts: r.attempts,
    last_status: r.last_status,
    last_error: r.last_error,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}
