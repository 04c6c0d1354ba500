/**
 * The queue consumer for webhooks (the Worker's `queue` handler).
 *
 * `parley-webhooks` carries two kinds of messages:
 * - `event` (one per event, from a conversation object): expanded into one `webhook_deliveries`
 *   row and one `delivery` message per subscribed endpoint. The delivery id is derived from the
 *   event id and the endpoint id, so a redelivered event re-creates nothing and re-sends only
 *   what is still pending.
 * - `delivery` (one per (event, endpoint)): one HTTP attempt (deliver.ts). Every attempt updates
 *   the row (status, attempts, last_status, last_error). Success is acked at once; a failure is
 *   retried with `message.retry({delaySeconds})`, so a failing endpoint never holds back another
 *   endpoint's messages, and the `webhook-id` stays the same on every attempt.
 * After max_retries the platform moves a message to `parley-webhooks-dlq`, whose consumer
 * marks the delivery `dead` (keeping the last status and error). Admins replay dead letters
 * through the API (routes/webhooks.ts).
 *
 * Every message is acked or retried explicitly as soon as it is done, and the handler never
 * throws: one bad message cannot make the platform redeliver the whole batch.
 */
import { and, eq, inArray, isNull, ne, sql } from "drizzle-orm";
import { sha256Hex } from "../core/crypto";
import { database, schema } from "../db/client";
import { replyObjects } from "../adapters/chat-api";
import type { Message as StoredMessage } from "../core/message";
import { attemptDelivery, backoffSeconds, type AttemptOutcome } from "./deliver";
import type { QueueBody, WebhookEvent } from "./events";
import { allowLocalWebhooks, checkWebhookUrl } from "./url";

export const WEBHOOK_QUEUE = "parley-webhooks";
export const WEBHOOK_DLQ = "parley-webhooks-dlq";

type Db = ReturnType<typeof database>;

export async function handleWebhookBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const deadLetters = batch.queue === WEBHOOK_DLQ;
  await Promise.all(
    batch.messages.map(async (msg) => {
      try {
        const body = parseBody(msg.body);
        if (!body) {
          console.error(JSON.stringify({ at: "webhooks.bad_message", queue: batch.queue, id: msg.id, body: msg.body }));
          return msg.ack();
        }
        if (body.kind === "event") {
          await expandEvent(env, body.event);
          return msg.ack();
        }
        if (deadLetters) {
          await markDead(database(env.DB), body.delivery_id);
          return msg.ack();
        }
        await deliver(env, body.delivery_id, msg);
      } catch (err) {
        const delaySeconds = backoffSeconds(env, msg.attempts);
        console.error(JSON.stringify({ at: "webhooks.consumer_error", queue: batch.queue, id: msg.id, attempts: msg.attempts, retry_in: delaySeconds, error: String(err) }));
        msg.retry({ delaySeconds });
      }
    }),
  );
}

function parseBody(body: unknown): QueueBody | null {
  if (typeof body !== "object" || body === null) return null;
  const b = body as Record<string, unknown>;
  if (b.v !== 1) return null;
  if (b.kind === "delivery" && typeof b.delivery_id === "string") return b as QueueBody;
  if (b.kind === "event" && typeof b.event === "object" && b.event !== null) {
    const e = b.event as Record<string, unknown>;
    if (typeof e.id === "string" && typeof e.type === "string" && typeof e.org_id === "string") return b as QueueBody;
  }
  return null;
}

/** The stable `webhook-id` of an event's delivery to one endpoint. */
export async function deliveryId(eventId: string, endpointId: string): Promise<string> {
  return `msg_${(await sha256Hex(`${eventId}:${endpointId}`)).slice(0, 32)}`;
}

/** Whether an endpoint's `events` list (JSON; empty means all) includes this type. */
export function subscribes(eventsJson: string, type: string): boolean {
  const events = JSON.parse(eventsJson) as string[];
  return events.length === 0 || events.includes(type);
}

/** Fan-out: one delivery row and one queue message per subscribed, active endpoint. */
export async function expandEvent(env: Env, event: WebhookEvent): Promise<string[]> {
  const db = database(env.DB);
  const w = schema.webhooks;
  const endpoints = await db
    .select({ id: w.id, events: w.events })
    .from(w)
    .where(and(eq(w.org_id, event.org_id), isNull(w.channel_id), eq(w.active, true)))
    .all();
  const wanted = endpoints.filter((e) => subscribes(e.events, event.type));
  const payload = JSON.stringify(event);
  const now = new Date().toISOString();
  const rows: (typeof schema.webhookDeliveries.$inferInsert & { id: string })[] = await Promise.all(
    wanted.map(async (e) => ({
      id: await deliveryId(event.id, e.id),
      webhook_id: e.id,
      org_id: event.org_id,
      event_type: event.type,
      event_id: event.id,
      payload,
      status: "pending" as const,
      attempts: 0,
      updated_at: now,
    })),
  );
  rows.push(...(await chatApiAgentReply(env, event, now)));
  if (rows.length === 0) return [];
  const d = schema.webhookDeliveries;
  const [first, ...more] = rows.map((r) => db.insert(d).values(r).onConflictDoNothing());
  await db.batch([first!, ...more]);
  // A redelivered event must not resend what has already gone out (or died).
  const pending = await db
    .select({ id: d.id })
    .from(d)
    .where(and(inArray(d.id, rows.map((r) => r.id)), eq(d.status, "pending")))
    .all();
  await enqueueDeliveries(env, pending.map((p) => p.id));
  return pending.map((p) => p.id);
}

/**
 * Seed 004: a Chat API client's webhook also gets the agents' replies, in its own shape (an
 * array of `{clientId, questionId, data:{replies, answer, ...}, timestamp}`).
 */
async function chatApiAgentReply(env: Env, event: WebhookEvent, now: string) {
  if (event.type !== "message.created") return [];
  const data = event.data as { conversation?: { channel_id: string; end_user: { external_id: string } }; message?: StoredMessage };
  if (!data.conversation || data.message?.sender_type !== "agent" || data.message.private) return [];
  const w = schema.webhooks;
  const endpoint = await database(env.DB)
    .select({ id: w.id })
    .from(w)
    .where(and(eq(w.org_id, event.org_id), eq(w.channel_id, data.conversation.channel_id), eq(w.active, true)))
    .get();
  if (!endpoint) return [];
  const message = data.message;
  const replies = replyObjects(message);
  const body = [
    {
      clientId: data.conversation.end_user.external_id,
      questionId: message.id,
      data: { replies, answer: message.content, nlpClass: "", confidence: 0, newSessionStarted: false, endSession: false, agent: { id: message.sender_id, name: message.sender_name } },
      timestamp: message.created_at,
    },
  ];
  return [
    {
      id: await deliveryId(event.id, endpoint.id),
      webhook_id: endpoint.id,
      org_id: event.org_id,
      event_type: "chat_api.reply",
      event_id: event.id,
      payload: JSON.stringify(body),
      status: "pending" as const,
      attempts: 0,
      updated_at: now,
    },
  ];
}

export async function enqueueDeliveries(env: Env, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100).map((id) => ({ body: { v: 1, kind: "delivery", delivery_id: id } satisfies QueueBody, contentType: "json" as const }));
    await env.WEBHOOKS.sendBatch(chunk);
  }
}

async function deliver(env: Env, id: string, msg: Message<unknown>): Promise<void> {
  const db = database(env.DB);
  const d = schema.webhookDeliveries;
  const w = schema.webhooks;
  const row = await db
    .select({ delivery: d, endpoint: w })
    .from(d)
    .innerJoin(w, and(eq(w.id, d.webhook_id), eq(w.org_id, d.org_id)))
    .where(eq(d.id, id))
    .get();
  // The endpoint was deleted, or this is a stale copy of a finished delivery.
  if (!row || row.delivery.status === "delivered" || row.delivery.status === "dead") return msg.ack();
  const { delivery, endpoint } = row;
  if (!endpoint.active) {
    await record(db, id, { kind: "failed", status: null, error: `endpoint disabled${endpoint.disabled_reason ? `: ${endpoint.disabled_reason}` : ""}` }, "dead", false);
    return msg.ack();
  }
  // Checked again at send time: the policy may have changed since the endpoint was saved.
  const url = checkWebhookUrl(endpoint.url, allowLocalWebhooks(env));
  if (!url.ok) {
    await record(db, id, { kind: "failed", status: null, error: `URL refused: ${url.reason}` }, "dead", false);
    return msg.ack();
  }
  const outcome = await attemptDelivery(url.url, signingSecrets(endpoint), id, delivery.payload ?? "{}");
  if (outcome.kind === "delivered") {
    // Acked even if the log update fails: resending would only duplicate the delivery.
    await record(db, id, outcome, "delivered", true).catch((err: unknown) =>
      console.error(JSON.stringify({ at: "webhooks.record_failed", delivery: id, error: String(err) })),
    );
    return msg.ack();
  }
  if (outcome.kind === "gone") {
    await db.batch([
      recordStatement(db, id, outcome, "dead", true),
      db.update(w).set({ active: false, disabled_reason: "the endpoint answered 410 Gone" }).where(eq(w.id, endpoint.id)),
    ]);
    console.warn(JSON.stringify({ at: "webhooks.endpoint_disabled", endpoint: endpoint.id, org: endpoint.org_id, reason: "410" }));
    return msg.ack();
  }
  await record(db, id, outcome, "failed", true);
  msg.retry({ delaySeconds: outcome.retryAfterSeconds ?? backoffSeconds(env, msg.attempts) });
}

/** The current secret, plus the previous one while it is still valid (rotation). */
export function signingSecrets(endpoint: { secret: string; previous_secret: string | null; previous_secret_expires_at: string | null }): string[] {
  const previousValid = endpoint.previous_secret && endpoint.previous_secret_expires_at && endpoint.previous_secret_expires_at > new Date().toISOString();
  return previousValid ? [endpoint.secret, endpoint.previous_secret!] : [endpoint.secret];
}

type Status = "delivered" | "failed" | "dead";

function recordStatement(db: Db, id: string, outcome: AttemptOutcome, status: Status, attempted: boolean) {
  const d = schema.webhookDeliveries;
  return db
    .update(d)
    .set({
      status,
      ...(attempted ? { attempts: sql`${d.attempts} + 1` } : {}),
      last_status: outcome.status,
      last_error: outcome.kind === "delivered" ? null : outcome.error,
      updated_at: new Date().toISOString(),
    })
    .where(eq(d.id, id));
}

async function record(db: Db, id: string, outcome: AttemptOutcome, status: Status, attempted: boolean): Promise<void> {
  await recordStatement(db, id, outcome, status, attempted);
}

/** Dead-letter queue: the delivery keeps its last status and error, and becomes `dead`. */
async function markDead(db: Db, id: string): Promise<void> {
  const d = schema.webhookDeliveries;
  await db
    .update(d)
    .set({ status: "dead", updated_at: new Date().toISOString() })
    .where(and(eq(d.id, id), ne(d.status, "delivered")));
}

/** The Worker's `queue` handler (src/index.ts): both webhook queues. */
export const queue = (batch: MessageBatch<unknown>, env: Env): Promise<void> => handleWebhookBatch(batch, env);
