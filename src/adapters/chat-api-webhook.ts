/**
 * Seed 004's Chat API webhook: async answers and agent replies are POSTed to the channel's
 * webhook URL as an array of JSON objects. Deliveries go through the webhook pipeline
 * (src/webhooks/: one row per delivery, signed, retried with backoff, dead letters).
 */
import { and, eq } from "drizzle-orm";
import { database, schema } from "../db/client";
import { deliveryId, enqueueDeliveries } from "../webhooks/consumer";

/** Queues one webhook body for a Chat API channel's endpoint; false when it has none. */
export async function queueChatApiWebhook(env: Env, channelId: string, eventId: string, body: unknown[]): Promise<boolean> {
  const db = database(env.DB);
  const endpoint = await db
    .select({ id: schema.webhooks.id, org_id: schema.webhooks.org_id })
    .from(schema.webhooks)
    .where(and(eq(schema.webhooks.channel_id, channelId), eq(schema.webhooks.active, true)))
    .get();
  if (!endpoint) return false;
  const id = await deliveryId(eventId, endpoint.id);
  await db
    .insert(schema.webhookDeliveries)
    .values({
      id,
      webhook_id: endpoint.id,
      org_id: endpoint.org_id,
      event_type: "chat_api.reply",
      event_id: eventId,
      payload: JSON.stringify(body),
      status: "pending",
      attempts: 0,
      updated_at: new Date().toISOString(),
    })
    .onConflictDoNothing();
  await enqueueDeliveries(env, [id]);
  return true;
}
