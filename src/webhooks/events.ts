/**
 * Webhook events: what a conversation object emits after a durable change, and the queue
 * messages that carry them.
 *
 * A conversation object builds the drafts (`draftsFor`) synchronously, from its own state, in the
 * same turn as the write (so they describe exactly what was stored), and keeps them in its durable
 * outbox (src/conversation/webhook-outbox.ts) until its alarm has handed them to the `WEBHOOKS`
 * queue (`sendEvents`). One queue message per event; the consumer (consumer.ts) expands it into
 * one message per (event, endpoint).
 *
 * Event ids are derived from what happened (the message id, the session id and version), so an
 * event enqueued twice expands into the same deliveries with the same `webhook-id`s.
 */
import type { ConversationRef } from "../core/conversation-ref";
import { sha256Hex } from "../core/crypto";
import { type Message, messageView } from "../core/message";
import type { Session } from "../conversation/sessions";
import type { HubEvent } from "../org/hub";

export const EVENT_TYPES = ["message.created", "conversation.created", "conversation.assigned", "conversation.resolved"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The JSON body every endpoint receives (and that is signed). */
export interface WebhookEvent {
  id: string;
  type: EventType;
  created_at: string;
  org_id: string;
  data: Record<string, unknown>;
}

/** What travels through the queues. `event`: fan-in from a room; `delivery`: one (event, endpoint). */
export type QueueBody = { v: 1; kind: "event"; event: WebhookEvent } | { v: 1; kind: "delivery"; delivery_id: string };

/** A conversation object's view of itself, read synchronously inside `publish()`. */
export interface RoomView {
  ref: ConversationRef;
  /** The stored message with this seq (whispers included). */
  message(seq: number): Message | null;
  /** A session by id, or the newest one. */
  session(id?: string | null): Session | null;
}

/** Events above this size (UTF-8 bytes of the JSON) are sent thin: the message without its content. */
export const MAX_EVENT_BYTES = 96 * 1024;

/** How long a room trusts its answer to "does this org have any webhook endpoint?" (ms). */
export const ENDPOINT_CACHE_MS = 10_000;

export interface Draft {
  type: EventType;
  /** What makes this event unique (hashed into its id). */
  key: string;
  created_at: string;
  data: Record<string, unknown>;
}

export function draftsFor(hubEvent: HubEvent, room: RoomView): Draft[] {
  const conversation = conversationView(room.ref);
  switch (hubEvent.type) {
    case "conversation_updated": {
      const drafts: Draft[] = [];
      const message = typeof hubEvent.seq === "number" ? room.message(hubEvent.seq) : null;
      if (hubEvent.new_session === true) {
        const session = room.session(typeof hubEvent.session_id === "string" ? hubEvent.session_id : message?.session_id);
        if (session) drafts.push({ type: "conversation.created", key: session.id, created_at: session.opened_at, data: { conversation, session: sessionView(session) } });
      }
      if (message) drafts.push({ type: "message.created", key: message.id, created_at: message.created_at, data: { conversation, message: messageView(message) } });
      return drafts;
    }
    case "conversation_assigned": {
      const session = room.session();
      if (!session?.assigned_agent_id) return [];
      const agent = { id: session.assigned_agent_id, name: typeof hubEvent.agent_name === "string" ? hubEvent.agent_name : null };
      return [
        {
          type: "conversation.assigned",
          key: `${session.id}:${session.assigned_agent_id}:${session.assigned_at}`,
          created_at: session.assigned_at ?? new Date().toISOString(),
          data: { conversation, session: sessionView(session), agent },
        },
      ];
    }
    case "conversation_resolved": {
      const session = room.session(typeof hubEvent.session_id === "string" ? hubEvent.session_id : null);
      if (!session || session.status !== "resolved") return [];
      return [
        {
          type: "conversation.resolved",
          key: `${session.id}:${session.resolved_at}`,
          created_at: session.resolved_at ?? new Date().toISOString(),
          data: { conversation, session: sessionView(session) },
        },
      ];
    }
    default:
      return [];
  }
}

/** Queues take at most 100 messages and 256 KB a batch. */
const QUEUE_BATCH_MESSAGES = 100;
const QUEUE_BATCH_BYTES = 240 * 1024;

/**
 * Sends a room's outbox entries to the WEBHOOKS queue, in order, and returns how many of them
 * (a prefix) went out; throws when the queue refused the first batch. Orgs without any endpoint
 * send nothing (their entries count as done).
 */
export async function sendEvents(env: Env, orgId: string, drafts: Draft[]): Promise<number> {
  if (!(await orgHasEndpoints(env, orgId))) return drafts.length;
  const events = await Promise.all(drafts.map((d) => toEvent(orgId, d)));
  let done = 0;
  while (done < events.length) {
    const batch: { body: QueueBody; contentType: "json" }[] = [];
    let bytes = 0;
    for (const event of events.slice(done, done + QUEUE_BATCH_MESSAGES)) {
      const size = byteLength(JSON.stringify(event)) + 100;
      if (batch.length > 0 && bytes + size > QUEUE_BATCH_BYTES) break;
      batch.push({ body: { v: 1, kind: "event", event }, contentType: "json" });
      bytes += size;
    }
    try {
      await env.WEBHOOKS.sendBatch(batch);
    } catch (err) {
      if (done === 0) throw err;
      return done;
    }
    done += batch.length;
  }
  return done;
}

export async function toEvent(orgId: string, d: Draft): Promise<WebhookEvent> {
  const event: WebhookEvent = { id: `evt_${(await sha256Hex(`${d.type}:${d.key}`)).slice(0, 32)}`, type: d.type, created_at: d.created_at, org_id: orgId, data: d.data };
  return byteLength(JSON.stringify(event)) > MAX_EVENT_BYTES ? thin(event) : event;
}

/** A message too large to carry: the event keeps every id and drops the content (`data.thin`). */
function thin(event: WebhookEvent): WebhookEvent {
  const message = event.data.message as Record<string, unknown> | undefined;
  if (!message) return event;
  return { ...event, data: { ...event.data, message: { ...message, content: null, rich_media: null }, thin: true } };
}

const byteLength = (s: string) => new TextEncoder().encode(s).byteLength;

// ---- is anyone listening? ------------------------------------------------------------------

const endpointCache = new Map<string, { has: boolean; until: number }>();

const refreshing = new Set<string>();

/**
 * False only when this isolate's last answer (at most 10 s old, or being renewed) is that the org
 * has no endpoint: rooms skip writing outbox entries then. Unknown counts as yes (the drain checks
 * again). An expired answer still counts while one D1 read renews it in the background: treating
 * it as unknown made every room of an org without endpoints (most orgs) write, and then drop, an
 * outbox entry per message for a flush's time every 10 s (4.5% of a hot room's CPU, S3).
 */
export function mayHaveEndpoints(env: Env, orgId: string): boolean {
  const cached = endpointCache.get(orgId);
  if (!cached) return true;
  if (cached.until <= Date.now() && !refreshing.has(orgId)) {
    refreshing.add(orgId);
    void orgHasEndpoints(env, orgId).finally(() => refreshing.delete(orgId));
  }
  return cached.has;
}

/** Rooms skip the queue for orgs without endpoints; the answer is cached per isolate for 10 s. */
async function orgHasEndpoints(env: Env, orgId: string): Promise<boolean> {
  const cached = endpointCache.get(orgId);
  if (cached && cached.until > Date.now()) return cached.has;
  try {
    // Organisation endpoints, and Chat API channels' webhooks (agent replies, see consumer.ts).
    const row = await env.DB.prepare("SELECT 1 AS one FROM webhooks WHERE org_id = ? AND active = 1 LIMIT 1").bind(orgId).first();
    const has = row !== null;
    if (endpointCache.size > 10_000) endpointCache.clear();
    endpointCache.set(orgId, { has, until: Date.now() + ENDPOINT_CACHE_MS });
    return has;
  } catch (err) {
    // D1 unreachable: enqueue anyway; the consumer checks again (and retries while D1 is down).
    console.error(JSON.stringify({ at: "webhooks.endpoint_check", org: orgId, error: String(err) }));
    return true;
  }
}

/** The admin API calls this after a change, so this isolate's rooms see it at once (other isolates within 10 s). */
export function forgetEndpointCache(orgId: string): void {
  endpointCache.delete(orgId);
}

// ---- payload shapes (Parley's snake_case) ---------------------------------------------------

function conversationView(ref: ConversationRef) {
  return {
    id: ref.id,
    channel_id: ref.channel_id,
    end_user: { id: ref.end_user.id, external_id: ref.end_user.external_id, display_name: ref.end_user.display_name },
  };
}


function sessionView(s: Session) {
  return {
    id: s.id,
    status: s.status,
    assigned_agent_id: s.assigned_agent_id,
    tags: s.tags,
    opened_at: s.opened_at,
    first_message_at: s.first_message_at,
    assigned_at: s.assigned_at,
    resolved_at: s.resolved_at,
    handed_off_at: s.handed_off_at,
  };
}
