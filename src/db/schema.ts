/**
 * D1 schema: the org-wide store. The conversation Durable Objects are the authority for each
 * conversation's ordered log and session state; they flush into `messages` and
 * `conversation_sessions` here (idempotently), so D1 can serve org-wide queries.
 *
 * Migrations are generated from this file (`npm run db:generate`) into `migrations/`, and
 * applied by wrangler (`wrangler d1 migrations apply`). Every table that holds org data carries
 * `org_id`, and every query filters on it.
 */
import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const createdAt = () => text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`);

export const organizations = sqliteTable("organizations", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  created_at: createdAt(),
});

export const users = sqliteTable(
  "users",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull().references(() => organizations.id),
    name: text("name").notNull(),
    email: text("email").notNull(),
    password_hash: text("password_hash").notNull(),
    role: text("role", { enum: ["owner", "admin", "agent"] }).notNull(),
    disabled: integer("disabled", { mode: "boolean" }).notNull().default(false),
    created_at: createdAt(),
  },
  (t) => [uniqueIndex("users_email").on(t.email), index("users_org").on(t.org_id)],
);

/** Cookie sessions. Only the SHA-256 of the cookie value is stored. */
export const authSessions = sqliteTable(
  "auth_sessions",
  {
    id_hash: text("id_hash").primaryKey(),
    user_id: text("user_id").notNull().references(() => users.id),
    org_id: text("org_id").notNull(),
    created_at: createdAt(),
    expires_at: text("expires_at").notNull(),
  },
  (t) => [index("auth_sessions_user").on(t.user_id)],
);

/** Failed logins, for throttling per account. */
export const loginFailures = sqliteTable(
  "login_failures",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    email: text("email").notNull(),
    at_ms: integer("at_ms").notNull(),
  },
  (t) => [index("login_failures_email").on(t.email, t.at_ms)],
);

/** Public (`pk_`) and secret (`sk_`) API keys. Only the SHA-256 of the key is stored. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull().references(() => organizations.id),
    name: text("name").notNull(),
    kind: text("kind", { enum: ["public", "secret"] }).notNull(),
    key_hash: text("key_hash").notNull(),
    key_prefix: text("key_prefix").notNull(),
    created_by: text("created_by").notNull(),
    created_at: createdAt(),
    revoked_at: text("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_hash").on(t.key_hash), index("api_keys_org").on(t.org_id)],
);

export const channels = sqliteTable(
  "channels",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull().references(() => organizations.id),
    kind: text("kind", { enum: ["webchat", "mobile_sdk", "chat_api", "connector"] }).notNull(),
    /** Chat API: refuse text while the bot shows buttons (seed 004). */
    disable_text_input_with_buttons: integer("disable_text_input_with_buttons", { mode: "boolean" }).notNull().default(false),
    name: text("name").notNull(),
    is_default: integer("is_default", { mode: "boolean" }).notNull().default(false),
    /** JSON: string[] of exact origins (scheme://host[:port]); empty allows any. */
    allowed_origins: text("allowed_origins").notNull().default("[]"),
    title: text("title"),
    /** When set, visitors must present HMAC-SHA256(external_id, identity_secret). */
    identity_secret: text("identity_secret"),
    require_identity: integer("require_identity", { mode: "boolean" }).notNull().default(false),
    /** Webchat: agents see the visitor's draft as it is typed (disclosed in the widget; never stored). */
    typing_preview: integer("typing_preview", { mode: "boolean" }).notNull().default(false),
    created_at: createdAt(),
  },
  (t) => [index("channels_org").on(t.org_id)],
);

/** Webchat embed tokens (`ew_`); stored hashed, shown once. */
export const embedTokens = sqliteTable(
  "embed_tokens",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    channel_id: text("channel_id").notNull().references(() => channels.id),
    token_hash: text("token_hash").notNull(),
    created_at: createdAt(),
  },
  (t) => [uniqueIndex("embed_tokens_hash").on(t.token_hash)],
);

export const endUsers = sqliteTable(
  "end_users",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    channel_id: text("channel_id").notNull().references(() => channels.id),
    external_id: text("external_id").notNull(),
    display_name: text("display_name"),
    email: text("email"),
    phone: text("phone"),
    /** JSON object of free attributes. */
    attributes: text("attributes").notNull().default("{}"),
    verified: integer("verified", { mode: "boolean" }).notNull().default(false),
    created_at: createdAt(),
  },
  (t) => [uniqueIndex("end_users_channel_external").on(t.channel_id, t.external_id), index("end_users_org").on(t.org_id)],
);

/** One conversation per end user per channel. */
export const conversations = sqliteTable(
  "conversations",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    channel_id: text("channel_id").notNull(),
    end_user_id: text("end_user_id").notNull().references(() => endUsers.id),
    created_at: createdAt(),
    updated_at: text("updated_at").notNull(),
    last_seq: integer("last_seq").notNull().default(0),
  },
  (t) => [uniqueIndex("conversations_end_user").on(t.channel_id, t.end_user_id), index("conversations_org").on(t.org_id, t.updated_at)],
);

/** Flushed from the conversation object; the object's copy is the authority. */
export const conversationSessions = sqliteTable(
  "conversation_sessions",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    conversation_id: text("conversation_id").notNull(),
    status: text("status", { enum: ["bot", "open", "resolved"] }).notNull(),
    assigned_agent_id: text("assigned_agent_id"),
    tags: text("tags").notNull().default("[]"),
    first_message_at: text("first_message_at"),
    assigned_at: text("assigned_at"),
    resolved_at: text("resolved_at"),
    opened_at: text("opened_at").notNull(),
    version: integer("version").notNull(),
  },
  (t) => [index("sessions_conversation").on(t.conversation_id), index("sessions_org_status").on(t.org_id, t.status)],
);

/**
 * Flushed from the conversation object (INSERT ... ON CONFLICT DO NOTHING). The object is the
 * source of truth and its reads come from the object, so this table keeps only the unique key the
 * flush's exactly-once rests on (conversation, seq) besides the id: D1 bills every index a write
 * touches as another row written (Cloudflare's D1 pricing), and no query here reads messages by
 * org or by client id (the object enforces a sender's client id before anything is stored).
 */
export const messages = sqliteTable(
  "messages",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    conversation_id: text("conversation_id").notNull(),
    session_id: text("session_id").notNull(),
    seq: integer("seq").notNull(),
    sender_type: text("sender_type", { enum: ["end_user", "agent", "bot", "system"] }).notNull(),
    sender_id: text("sender_id").notNull(),
    sender_name: text("sender_name"),
    content_type: text("content_type").notNull(),
    content: text("content").notNull(),
    rich_media: text("rich_media"),
    client_msg_id: text("client_msg_id"),
    /** Whispers / private notes: never shown to the end user. */
    private: integer("private", { mode: "boolean" }).notNull().default(false),
    created_at: text("created_at").notNull(),
    status: text("status").notNull(),
  },
  (t) => [uniqueIndex("messages_conversation_seq").on(t.conversation_id, t.seq)],
);

/** One bot per channel: a built-in flow bot, or an external bot reached by webhook. */
export const bots = sqliteTable("bots", {
  channel_id: text("channel_id").primaryKey(),
  org_id: text("org_id").notNull(),
  kind: text("kind", { enum: ["flow", "webhook"] }).notNull(),
  /** JSON, validated by src/bots/config.ts. */
  config: text("config").notNull(),
  enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
  updated_at: text("updated_at").notNull(),
});

/** Chat API (seed 004): the client's saved state object, returned unchanged. */
export const clientStates = sqliteTable(
  "client_states",
  {
    channel_id: text("channel_id").notNull(),
    external_id: text("external_id").notNull(),
    org_id: text("org_id").notNull(),
    state: text("state").notNull(),
    updated_at: text("updated_at").notNull(),
  },
  (t) => [uniqueIndex("client_states_key").on(t.channel_id, t.external_id)],
);

/** Organisation webhook endpoints (and a Chat API channel's webhook, with channel_id set). */
export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    channel_id: text("channel_id"),
    url: text("url").notNull(),
    /** Signing secret (Standard Webhooks `whsec_...`), per endpoint. */
    secret: text("secret").notNull(),
    /** JSON string[] of event types; empty means all. */
    events: text("events").notNull().default("[]"),
    active: integer("active", { mode: "boolean" }).notNull().default(true),
    /** Why the endpoint stopped receiving (it answered 410 Gone, or an admin disabled it). */
    disabled_reason: text("disabled_reason"),
    /** The secret before the last rotation; still signs (as a second signature) until it expires. */
    previous_secret: text("previous_secret"),
    previous_secret_expires_at: text("previous_secret_expires_at"),
    created_at: createdAt(),
  },
  (t) => [index("webhooks_org").on(t.org_id)],
);

/** One row per (event, endpoint): the delivery log, including dead letters. */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    /** The stable `webhook-id` header value. */
    id: text("id").primaryKey(),
    webhook_id: text("webhook_id").notNull(),
    org_id: text("org_id").notNull(),
    event_type: text("event_type").notNull(),
    /** The event's own id (the payload's `id`), shared by every endpoint's delivery of it. */
    event_id: text("event_id"),
    /** The exact JSON body that is signed and sent on every attempt (replays resend it unchanged). */
    payload: text("payload"),
    status: text("status", { enum: ["pending", "delivered", "failed", "dead"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    last_status: integer("last_status"),
    last_error: text("last_error"),
    created_at: createdAt(),
    updated_at: text("updated_at"),
  },
  (t) => [index("webhook_deliveries_hook").on(t.webhook_id, t.created_at)],
);

/** Skill groups (seed 002's Subject picks one): who may take its conversations, and when it is open. */
export const queues = sqliteTable(
  "queues",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    name: text("name").notNull(),
    /** Assign to the available agent with the fewest open conversations; otherwise agents claim. */
    auto_assign: integer("auto_assign", { mode: "boolean" }).notNull().default(true),
    /** JSON business hours (src/routing/hours.ts); null: always open. */
    business_hours: text("business_hours"),
    closed_message: text("closed_message"),
    created_at: createdAt(),
  },
  (t) => [uniqueIndex("queues_org_name").on(t.org_id, t.name)],
);

export const agentSkills = sqliteTable(
  "agent_skills",
  {
    org_id: text("org_id").notNull(),
    user_id: text("user_id").notNull(),
    queue_id: text("queue_id").notNull(),
  },
  (t) => [uniqueIndex("agent_skills_key").on(t.user_id, t.queue_id), index("agent_skills_queue").on(t.queue_id)],
);

/** Per agent: how many open conversations auto-assignment may give them at once. */
export const agentCapacity = sqliteTable("agent_capacity", {
  user_id: text("user_id").primaryKey(),
  org_id: text("org_id").notNull(),
  capacity: integer("capacity").notNull().default(5),
});

/** Push credentials per mobile channel (FCM HTTP v1 service account, APNs token key), encrypted. */
export const pushCredentials = sqliteTable("push_credentials", {
  channel_id: text("channel_id").primaryKey(),
  org_id: text("org_id").notNull(),
  /** AES-GCM ciphertext (base64) of the JSON credentials; see src/push/. */
  fcm: text("fcm"),
  apns: text("apns"),
  updated_at: text("updated_at").notNull(),
});

/** End users' device push tokens. `channel_id` + `external_id` is the end user (their conversation's channel). */
export const devices = sqliteTable(
  "devices",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    channel_id: text("channel_id").notNull(),
    external_id: text("external_id").notNull(),
    platform: text("platform", { enum: ["fcm", "apns"] }).notNull(),
    token: text("token").notNull(),
    /** The mobile channel (the app) whose push credentials reach this token; null: resolved at send time (src/push/). */
    push_channel_id: text("push_channel_id"),
    created_at: createdAt(),
  },
  (t) => [uniqueIndex("devices_token").on(t.channel_id, t.platform, t.token), index("devices_user").on(t.channel_id, t.external_id)],
);

/**
 * Who changed what (RELIABILITY.md S2): one row per state-changing action of an agent, an admin, a
 * secret key or the system (src/audit/). Never a secret: `detail` is a small JSON object of
 * non-secret facts (names, roles, kinds, which fields changed), built per action.
 */
export const auditLog = sqliteTable(
  "audit_log",
  {
    id: text("id").primaryKey(),
    org_id: text("org_id").notNull(),
    /** ISO time of the action (the Worker's clock); entries sort by (at, id), newest first. */
    at: text("at").notNull(),
    actor_type: text("actor_type", { enum: ["agent", "key", "system"] }).notNull(),
    actor_id: text("actor_id").notNull(),
    actor_name: text("actor_name"),
    /** Dotted: `api_key.revoked`, `conversation.assigned`, ... (docs in src/audit/log.ts). */
    action: text("action").notNull(),
    target_type: text("target_type").notNull(),
    target_id: text("target_id").notNull(),
    /** JSON object, no secrets. */
    detail: text("detail").notNull().default("{}"),
  },
  (t) => [index("audit_log_org_at").on(t.org_id, t.at, t.id), index("audit_log_org_action").on(t.org_id, t.action, t.at), index("audit_log_org_actor").on(t.org_id, t.actor_id, t.at)],
);
