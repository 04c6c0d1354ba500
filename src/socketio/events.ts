/**
 * Client -> server events of the seeds' Socket.IO dialects, each validated with zod and turned
 * into a call on the conversation API. Every event answers its ack (when the client passed one)
 * with `{ok:true, ...}` or `{error:{code,message}}`; a failure also emits seed 001's `error`
 * event `{message, code}` to the sender only. Unknown events are refused the same way.
 */
import { z } from "zod";
import { ApiError, unwrap } from "../core/errors";
import { channelForVisitor, connectorChannel, openForVisitor, roomFor } from "../conversation/directory";
import { limitNewConversationFor } from "../http/abuse";
import { displayName } from "../core/names";
import { activity, chatbotMessage, chatMessage, dostiMessage, type Dialect, type Membership } from "./dialects";
import type { SocketIoSession } from "./session";
import type { Message } from "../core/message";
import { recordAudit, type Actor } from "../audit/log";

/** The agent (or the secret key) behind this Socket.IO session, for the audit log; null for end users. */
function socketActor(s: SocketIoSession): Actor | null {
  const socket = s.socket();
  const p = socket?.principal;
  if (!socket?.org_id || p?.type !== "agent") return null;
  if (socket.via_key && socket.auth_ref?.startsWith("key:")) return { type: "key", id: socket.auth_ref.slice(4), name: `${p.name ?? p.id} (key)` };
  return { type: "agent", id: p.id, name: p.name ?? null };
}

type Reply = Record<string, unknown>;
type Ctx = { s: SocketIoSession; env: Env };
type Handler = (c: Ctx, payload: unknown) => Promise<Reply | Later>;

/** An event's answer: its ack's payload, and what runs right after the ack (the sender's own message). */
export interface Outcome {
  reply: Reply;
  after?: () => Promise<void>;
}

/** An answer that comes when the room answers a send (the session goes on with its next events meanwhile). */
class Later {
  constructor(readonly outcome: Promise<Outcome>) {
    outcome.catch(() => {}); // handled when its turn comes (settle in handleEvent)
  }
}

/**
 * Events the session does not wait for before it handles the next one: their room sends go in
 * order, several in one RPC while one is in flight (session.ts sendToRoom), and their acks keep
 * the events' order. Every other event waits until the acks before it are sent.
 */
export const PIPELINED = new Set(["send_message", "sendMessage"]);

const id = z.string().min(1).max(200);
const ConversationOnly = z.object({ conversation_id: id });
// Payload schemas, built once (building a zod schema per event cost more than parsing it).
const SendMessageTarget = z.looseObject({ conversation_id: id.optional(), external_id: id.optional(), sender_type: z.enum(["end_user", "agent"]).optional(), identity_hash: z.string().max(200).optional() });
const DostiSend = z.object({ type: z.string().optional(), message: z.string(), client_msg_id: z.string().optional() });
const NewConversation = z.object({ embed_token: z.string().optional(), key: z.string().optional(), external_id: id, customer_name: displayName(200).optional() });
const JoinConversation = z.object({ conversation_id: id, external_id: id.optional(), identity_hash: z.string().max(200).optional() });
const UserTyping = z.object({ conversation_id: id, sender_type: z.string().optional(), typing: z.boolean().default(true), external_id: id.optional() });
const MarkRead = z.object({ conversation_id: id, message_ids: z.array(id).max(500), external_id: id.optional() });
const RegisterConnector = z.object({ id: z.string().min(1).max(100), name: z.string().max(200).optional(), channel: z.string().min(1).max(100).optional() });
const CustomerMessage = z.object({ refId: z.string().min(1).max(200), text: z.string(), name: displayName(200).optional(), clientMessageId: z.string().optional() });
const ChannelJoin = z.looseObject({ conversationId: id, id: id.optional(), name: z.string().max(200).optional() });
const ActivityTyping = z.looseObject({ typing: z.boolean().default(true) }).catch({ typing: true });
const ChannelEnd = z.looseObject({ conversationId: id, id: id.optional() });
const ChannelSend = z.looseObject({
  conversationId: id,
  type: z.enum(["ChatMessage", "ActivityMessage"]).default("ChatMessage"),
  text: z.string().default(""),
  tag: z.enum(["whisper", ""]).optional(),
  from: z.looseObject({ id: id.optional() }).optional(),
  activityType: z.string().max(50).optional(),
  attachments: z.array(z.looseObject({ type: z.string().max(255).optional(), name: z.string().max(255).optional(), contentUrl: z.string().max(2048) })).max(1).default([]),
});

/** The seed 000 visitor's own conversation (joined at connect). */
function dostiMembership(s: SocketIoSession): Membership {
  const m = s.dostiMembership();
  if (!m) throw new ApiError("forbidden", "connect with apiKey, role=visitor and visitorId to use this event");
  return m;
}

/** Finds or joins the conversation a payload names, for the session's principal (or its external_id). */
async function membershipFor(s: SocketIoSession, conversationId: string, dialect: Dialect, externalId?: string, identityHash?: string): Promise<Membership> {
  const existing = s.membership(conversationId);
  if (existing && (externalId === undefined || existing.principal.type !== "end_user" || existing.principal.id === externalId)) return existing;
  const { ref, principal } = await s.resolveConversation(conversationId, externalId, identityHash);
  return s.join(ref, principal, dialect, null);
}

/**
 * Stores a message (the room validates it: MessageInput); the answer, `render`ed, comes when the
 * room has it durably. When this session is in the room, the room does not deliver the message
 * back to it: the session emits it from the answer, as if delivered (same seq checks) right after
 * the event's ack, which saves a delivery RPC per message.
 */
function send({ s }: Ctx, m: Membership, input: unknown, render: (msg: Message) => Reply): Later {
  const joined = s.membership(m.ref.id) === m;
  return new Later(
    s.sendToRoom(m, input, joined).then((answer) => {
      const { message } = unwrap(answer);
      // after the ack, as the native protocol orders them
      return { reply: render(message), after: joined ? () => s.emitOwn(m, message) : undefined };
    }),
  );
}

/** Events that act only as the session's own principal (agents; the agent half of each dialect). */
const agentOf = ({ s }: Ctx) => (s.socket()?.principal?.type === "agent" ? undefined : null);

const handlers: Record<string, Handler> = {
  // ---- seed 000 ("Dosti") and seed 001 share send_message; the payload tells them apart ----
  async send_message(c, payload) {
    const { s, env } = c;
    const p = SendMessageTarget.parse(payload);
    if (!p.conversation_id && s.dostiMembership()) {
      const d = DostiSend.parse(payload);
      const m = dostiMembership(s);
      return send(c, m, { content: d.message, client_msg_id: d.client_msg_id }, (msg) => ({ ok: true, message: dostiMessage(m, msg) }));
    }
    let m: Membership;
    if (p.conversation_id) {
      if (p.sender_type === "agent" && s.socket()?.principal?.type !== "agent") throw new ApiError("unauthorized", "agents are identified by their session cookie");
      m = await membershipFor(s, p.conversation_id, "chatbot", p.sender_type === "agent" ? undefined : p.external_id, p.identity_hash);
    } else {
      // Parley addition: an end user opens a new conversation natively with an embed token or key.
      const o = NewConversation.parse(payload);
      const hs = s.handshakeParams();
      const channel = await channelForVisitor(env, { embedToken: o.embed_token ?? hs.embed_token, publicKey: o.key ?? hs.apiKey ?? hs.key }, s.handshakeOrigin());
      await limitNewConversationFor(env, s.handshakeClientKey(), channel.id, o.external_id);
      const ref = await openForVisitor(env, channel, { external_id: o.external_id, display_name: o.customer_name, identity_hash: p.identity_hash });
      m = await s.join(ref, { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name }, "chatbot", null);
    }
    const { conversation_id: _c, external_id: _e, sender_type: _t, identity_hash: _h, embed_token: _et, key: _k, customer_name: _n, ...input } = payload as Record<string, unknown>;
    return send(c, m, input, (msg) => ({ ok: true, message: chatbotMessage(msg) }));
  },
  async typing({ s, env }) {
    const m = dostiMembership(s);
    unwrap(await roomFor(env, m.ref).setTyping(m.ref, m.principal, true));
    return { ok: true };
  },
  async stop_typing({ s, env }) {
    const m = dostiMembership(s);
    unwrap(await roomFor(env, m.ref).setTyping(m.ref, m.principal, false));
    return { ok: true };
  },

  // ---- seed 001 ("Chatbot Platform") ----
  async join_conversation({ s }, payload) {
    const p = JoinConversation.parse(payload);
    const m = await membershipFor(s, p.conversation_id, "chatbot", p.external_id, p.identity_hash);
    return { ok: true, conversation_id: m.ref.id };
  },
  async leave_conversation({ s }, payload) {
    const p = ConversationOnly.parse(payload);
    await s.leave(p.conversation_id); // leaving a room one is not in is fine too
    return { ok: true };
  },
  async claim_conversation({ s, env }, payload) {
    const p = ConversationOnly.parse(payload);
    requireAgent(s);
    // Claim first, join after: a refused claim (already_assigned) must not join the room.
    const { ref, principal } = await s.resolveConversation(p.conversation_id, undefined);
    const { session } = unwrap(await roomFor(env, ref).assign(ref, principal));
    const actor = socketActor(s);
    if (actor) await recordAudit(env, { org_id: ref.org_id, actor, action: "conversation.assigned", target: { type: "conversation", id: ref.id }, detail: { session_id: session.id, agent_id: session.assigned_agent_id, via: "socket.io" } });
    await s.join(ref, principal, s.membership(ref.id)?.dialect ?? "chatbot", null);
    return { ok: true, conversation_id: ref.id, assigned_agent_id: session.assigned_agent_id, assigned_at: session.assigned_at };
  },
  async join_queue({ s }) {
    requireAgent(s);
    await s.subscribeOrg("queue");
    return { ok: true };
  },
  async join_org_presence({ s }) {
    requireAgent(s);
    return { ok: true, online_agents: await s.subscribeOrg("presence") };
  },
  async user_typing({ s, env }, payload) {
    const p = UserTyping.parse(payload);
    const m = await membershipFor(s, p.conversation_id, "chatbot", p.external_id);
    unwrap(await roomFor(env, m.ref).setTyping(m.ref, m.principal, p.typing));
    return { ok: true };
  },
  async mark_read({ s, env }, payload) {
    const p = MarkRead.parse(payload);
    const m = await membershipFor(s, p.conversation_id, "chatbot", p.external_id);
    const { seq } = unwrap(await roomFor(env, m.ref).markRead(m.ref, m.principal, { message_ids: p.message_ids }));
    return { ok: true, seq };
  },

  // ---- seed 002 ("Customer Channel API") ----
  async registerConnector({ s, env }, payload) {
    const p = RegisterConnector.parse(payload);
    const org = s.socket()?.org_id;
    if (!org) throw new ApiError("unauthorized", "connectors authenticate with a secret key");
    const channel = await connectorChannel(env, org, (p.channel ?? p.id).toLowerCase());
    const pending = await s.registerConnector(channel.name);
    return { ok: true, channel: channel.name, pending };
  },
  /** Parley's addition for connectors: a customer's inbound message, by refId (e.g. a phone number). */
  async customerMessage({ s, env }, payload) {
    const p = CustomerMessage.parse(payload);
    const channelName = s.connectorChannel();
    const org = s.socket()?.org_id;
    if (!channelName || !org) throw new ApiError("forbidden", "registerConnector first");
    const channel = await connectorChannel(env, org, channelName);
    const ref = await openForVisitor(env, channel, { external_id: p.refId, display_name: p.name });
    const m: Membership = { ref, principal: { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name }, dialect: "channel", last_seq: 0, assigned: null };
    return send({ s, env }, m, { content: p.text, client_msg_id: p.clientMessageId }, (msg) => ({ ok: true, conversationId: ref.id, message: chatMessage(msg) }));
  },
  async joinConversation(c, payload) {
    const { s, env } = c;
    const p = ChannelJoin.parse(payload);
    const m = await membershipFor(s, p.conversationId, "channel", agentOf(c) ?? p.id);
    const room = roomFor(env, m.ref);
    const history = unwrap(await room.history(m.ref, { audience: m.principal.type === "end_user" ? "end_user" : "staff", limit: 100 }));
    const summary = unwrap(await room.summary(m.ref));
    s.emit("conversationInfo", {
      conversation: { id: m.ref.id, channelId: m.ref.channel_id, status: summary.session?.status ?? "open", sessionId: summary.session?.id ?? null },
      messages: history.messages.map(chatMessage),
      participant: [{ id: m.ref.end_user.external_id, name: m.ref.end_user.display_name ?? "" }, ...(summary.session?.assigned_agent_id ? [{ id: summary.session.assigned_agent_id, name: "" }] : [])],
      role: m.principal.type === "end_user" ? "customer" : "agent",
    });
    s.emit("messageArrived", activity(m.ref.id, "greetings", { id: "system", name: "system" }, { text: "Welcome! An agent will be with you shortly." }));
    return { ok: true, conversationId: m.ref.id };
  },
  /**
   * Seed 002's sendMessage: a ChatMessage (text, optional attachments, whisper tag) is stored;
   * an ActivityMessage carries typing (stored nothing) or another activity (acknowledged only).
   */
  async sendMessage(c, payload) {
    const p = ChannelSend.parse(payload);
    const m = await membershipFor(c.s, p.conversationId, "channel", agentOf(c) ?? p.from?.id);
    if (p.type === "ActivityMessage") {
      await c.s.settled(); // after the messages sent before it, as when events were handled one at a time
      if (p.activityType === "typing") {
        const info = ActivityTyping.parse((payload as { info?: unknown }).info ?? {});
        unwrap(await roomFor(c.env, m.ref).setTyping(m.ref, m.principal, info.typing));
      }
      return { ok: true, stored: false };
    }
    const file = p.attachments[0];
    const media = file
      ? (file.type ?? "").startsWith("image/")
        ? { content_type: "image", rich_media: { url: file.contentUrl, ...(file.name ? { alt: file.name } : {}) } }
        : { content_type: "file", rich_media: { url: file.contentUrl, filename: file.name || "file", ...(file.type ? { mime_type: file.type } : {}) } }
      : {};
    return send(c, m, { content: p.text || (file?.name ?? ""), ...media, private: p.tag === "whisper", client_msg_id: typeof p.id === "string" ? p.id : undefined }, (msg) => ({ ok: true, message: chatMessage(msg) }));
  },
  async endConversation(c, payload) {
    const p = ChannelEnd.parse(payload);
    const m = await membershipFor(c.s, p.conversationId, "channel", agentOf(c) ?? p.id);
    const { session } = unwrap(await roomFor(c.env, m.ref).resolve(m.ref, undefined));
    // An agent ending it is an agent's action (a customer leaving is not audited).
    const actor = socketActor(c.s);
    if (actor) await recordAudit(c.env, { org_id: m.ref.org_id, actor, action: "conversation.resolved", target: { type: "conversation", id: m.ref.id }, detail: { session_id: session.id, tags: session.tags, via: "socket.io" } });
    return { ok: true, conversationId: m.ref.id, sessionId: session.id };
  },
};

function requireAgent(s: SocketIoSession) {
  if (s.socket()?.principal?.type !== "agent") throw new ApiError("unauthorized", "only agents can do this");
}

/**
 * Runs an event's handler. The answer is a function the session calls when the event's turn to be
 * acknowledged comes (the acks of pipelined sends keep their order): it gives the outcome then,
 * waiting for the room when the handler sent a message; a failure emits `error` at that turn too.
 */
export async function handleEvent(s: SocketIoSession, env: Env, event: string, payload: unknown): Promise<() => Promise<Outcome>> {
  const handler = Object.hasOwn(handlers, event) ? handlers[event] : undefined;
  try {
    if (!handler) throw new ApiError("unknown_event", `unknown event ${JSON.stringify(event.slice(0, 100))}`);
    const answer = await handler({ s, env }, payload);
    if (answer instanceof Later) return () => answer.outcome.catch((err: unknown) => ({ reply: failure(s, event, err) }));
    return async () => ({ reply: answer });
  } catch (err) {
    return async () => ({ reply: failure(s, event, err) });
  }
}

/** An event's failure: seed 001's `error` event to the sender, and the ack's `{error}`. */
function failure(s: SocketIoSession, event: string, err: unknown): Reply {
  const e =
    err instanceof ApiError
      ? { code: err.code, message: err.message }
      : err instanceof z.ZodError
        ? { code: "validation_failed", message: `${err.issues[0]?.path.join(".") || "payload"}: ${err.issues[0]?.message}` }
        : null;
  const answer = e ?? { code: "internal", message: "internal error" };
  if (!e) console.error(JSON.stringify({ at: "socketio.event", event: event.slice(0, 100), error: String(err) }));
  s.emit("error", { message: answer.message, code: answer.code, event });
  return { error: answer };
}
