/**
 * ConversationRoom: one Durable Object per conversation, the authority for its ordered log.
 *
 * Owns: the message log (seq, dedup by client id), the support sessions, typing state, the
 * WebSocket room (hibernation API via partyserver), long-poll waiters, and the outbox to D1.
 * Every send takes one path: validate (done by the Worker) -> dedup by client id -> insert with
 * the next seq -> answer the sender -> broadcast -> wake waiters -> schedule the flush. The reply
 * leaves only after the insert is durable (the object's output gate).
 *
 * Callers (the Worker's adapters) pass the authenticated Principal and the ConversationRef they
 * resolved from D1 with an org-scoped query; the object keeps the ref and refuses another org.
 */
import { type Connection, type ConnectionContext, type WSMessage } from "partyserver";
import { ParleyServer } from "../core/party";
import { parseChannelSettings, type ChannelSettings, type ConversationRef } from "../core/conversation-ref";
import { ERRORS, fail, type ErrorCode, type Result } from "../core/errors";
import {
  audienceOf,
  draftFingerprint,
  fitsUtf8,
  MessageInput,
  type Audience,
  type DeliveryStatus,
  type Message,
  type MessageDraft,
  type Principal,
  type SenderType,
} from "../core/message";
import { writerSink } from "./d1-writer";
import { backoffMs, FLUSH_BACKSTOP_MS, FLUSH_BATCH_ROWS, flushIntervalMs, flushOnce, FLUSH_STALL_REPORT_AFTER, type OutboxSink, type OutboxStore } from "./flush";
import { MessageLog } from "./log";
import { META_TABLE } from "./schema";
import { FlowControl } from "./flow-control";
import { ClientFrame, MAX_FRAME_BYTES, MAX_REPLAY, PING_FRAME, PONG_FRAME, type ServerFrame } from "./protocol";
import { SessionStore, type Session } from "./sessions";
import { Subscribers } from "./subscribers";
import { Participants } from "./participants";
import { UploadStore } from "./uploads";
import { UPLOAD_URL_TTL_MS } from "../uploads/files";
import { RemoteFanout } from "../socketio/fanout";
import { TypingState } from "./typing";
import type { BotSettings } from "../bots/config";
import { eq } from "drizzle-orm";
import { database, schema } from "../db/client";
import { chatMessage } from "../socketio/dialects";
import { botTurn, loadBot } from "../bots/runtime";
import type { HubEvent, OrgHub, QueueStatus } from "../org/hub";
import { draftsFor, mayHaveEndpoints, sendEvents, type Draft } from "../webhooks/events";
import { WebhookOutbox } from "./webhook-outbox";
import { RateLimiter } from "./rate-limit";
import { endUserLive } from "../push/presence";
import { pushIfOffline } from "../push/send";
import { MAX_END_USER_SOCKETS } from "../core/limits";

/** Long-poll waits are capped here (ms) and per object in count. */
export const MAX_POLL_WAIT_MS = 30_000;
/** Waits longer than this end at a random point of their last half (see pollTimeoutMs). */
const POLL_JITTER_FROM_MS = 5_000;
/** The share of a wait over POLL_JITTER_FROM_MS in which an empty poll ends, at random (see pollTimeoutMs). */
export const POLL_JITTER_SHARE = 0.5;

/**
 * When an empty long-poll returns: at its wait, but a wait over 5 s ends at a random point of its
 * last half, so polls armed together (a fleet of devices, everyone after a deploy) do not all
 * time out and re-poll in the same instant, wave after wave (RELIABILITY.md L3).
 *
 * The window's width is a trade: a wave of N polls armed together comes back over it, so its
 * request rate is N / window; the mean wait is (1 - share/2) of the wait, so an idle device polls
 * 1 / (1 - share/2) times as often. The last fifth (24-30 s of a 30 s wait) put 5,000 re-polls in
 * 6 s, more than the local runtime's one thread serves at ~3 ms of CPU each, and the sends behind
 * them waited up to 20 s; the last half spreads them over 15 s (probe sends p99 0.3 s) for 20%
 * more empty polls than the fifth (a mean wait of 22.5 s against 27).
 */
function pollTimeoutMs(waitMs: number): number {
  const capped = Math.min(waitMs, MAX_POLL_WAIT_MS);
  return capped > POLL_JITTER_FROM_MS ? capped - Math.random() * capped * POLL_JITTER_SHARE : capped;
}
const MAX_WAITERS = 1_000;

/** Per-socket attachment: who this is. Small and fixed-size; it survives hibernation. */
interface SocketState {
  principal: Principal;
}

interface Waiter {
  after: number;
  audience: Audience;
  senders?: SenderType[] | undefined;
  resolve: (messages: Message[]) => void;
  timer: ReturnType<typeof setTimeout>;
}

export type SendResult = Result<{ message: Message; duplicate: boolean; new_session: boolean; bot?: BotOutcome | null }>;

/** What a bot did with one end-user message. */
export interface BotOutcome {
  replies: Message[];
  handoff: boolean;
  nlp_class: string;
  confidence: number;
}

/** Bot settings are re-read from D1 at most this often (ms): edits apply within it. */
const BOT_SETTINGS_TTL_MS = 30_000;
/** The channel's typing-preview setting is re-read at most this often (ms): turning it off applies within it. */
const PREVIEW_SETTING_TTL_MS = 10_000;
/** After the hub said nobody listens, live events are skipped this long at most (ms) before asking again. */
const HUB_QUIET_MS = 10_000;

export class ConversationRoom extends ParleyServer {
  static override options = { hibernate: true };

  private readonly log: MessageLog;
  private readonly sessions: SessionStore;
  private readonly subscribers: Subscribers;
  private readonly participants: Participants;
  private readonly uploads: UploadStore;
  private readonly webhooks: WebhookOutbox;
  private readonly fanout: RemoteFanout;
  private readonly typing = new TypingState();
  private readonly rate = new RateLimiter();
  /** Slow consumers: message frames each socket has not confirmed (memory only). */
  private readonly flow: FlowControl;
  private waiters: Waiter[] = [];
  /** Replaced only by fault-injection tests, which wrap the real D1 binding. */
  sink: OutboxSink | null = null;
  /** Replaced only by fault-injection tests, which wrap the real WEBHOOKS queue. */
  webhookQueue: Queue | null = null;
  private flushing: Promise<void> | null = null;
  /** The outboxes' drain in progress (drainOutboxes). */
  private draining: Promise<void> | null = null;
  private readonly metaCache = new Map<string, string | null>();
  private refCache: ConversationRef | null = null;
  /** The alarm as last set or read; undefined when unknown (after it fired, or a fresh object). */
  private alarmAt: number | null | undefined = undefined;
  /** When the last flush to D1 started (this object's lifetime only: a fresh object flushes at once). */
  private lastFlushAt = 0;
  /**
   * The wait after it before the next batched flush: the interval times a random 0.8-1.2, drawn
   * once per flush, so rooms that started together (a deploy, a load test) drift apart instead of
   * sending their D1 batches in the same instant every second.
   */
  private flushGap = 0;
  /** The pending flush timer and when it fires (this object's lifetime only; the alarm is the backstop). */
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private flushTimerAt: number | null = null;
  /** During a send's append: the Socket.IO session that sent it (it is not delivered its own message). */
  private senderSession: string | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(META_TABLE);
    this.log = new MessageLog(sql, () => this.ref().id);
    this.sessions = new SessionStore(sql);
    this.subscribers = new Subscribers(sql);
    this.participants = new Participants(sql);
    this.uploads = new UploadStore(sql);
    this.webhooks = new WebhookOutbox(sql);
    this.fanout = new RemoteFanout(ctx, env);
    this.flow = new FlowControl(ctx);
    if (this.meta("epoch") === null) this.setMeta("epoch", crypto.randomUUID());
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_FRAME, PONG_FRAME));
  }

  // ---- RPC: the one conversation API every adapter calls ------------------------------------

  /**
   * Stores a message. An end user's message to a session a bot handles gets the bot's turn:
   * awaited when `opts.awaitBot` (the Chat API's sync calls return the replies), else in the
   * background. `beforeBroadcast` runs once the message is stored, before anyone else hears of it.
   */
  async send(
    ref: ConversationRef,
    sender: Principal,
    input: unknown,
    beforeBroadcast?: (m: Message, duplicate: boolean) => void,
    opts: { awaitBot?: boolean; deferBot?: boolean; senderSession?: string } = {},
  ): Promise<SendResult> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const parsed = MessageInput.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const code = issue.message.startsWith("invalid_text") ? "invalid_text" : "validation_failed";
      return fail(code, `${issue.path.join(".") || "body"}: ${issue.message}`);
    }
    const bot = sender.type === "end_user" ? await this.botSettings() : null;
    // A Socket.IO sender's session emits its own message from this answer: no delivery RPC to it.
    this.senderSession = opts.senderSession ?? null;
    let result: SendResult;
    try {
      result = this.append(parsed.data, sender, beforeBroadcast, bot !== null);
    } finally {
      this.senderSession = null;
    }
    if (!result.ok || result.duplicate || !bot || opts.deferBot) return result;
    const turn = this.queueBotTurn(bot, result.message, result.new_session);
    if (opts.awaitBot) return { ...result, bot: await turn };
    this.ctx.waitUntil(turn);
    return result;
  }

  /**
   * A Socket.IO session's sends that piled up while its previous call to this room was in flight,
   * stored in their order (the session sends its next batch only once this one is answered, so a
   * session's messages keep their order). `own`: the session emits that message itself (as `send`'s
   * `senderSession`). One answer per send; a send that throws answers `internal` and the rest go on.
   */
  async sendMany(ref: ConversationRef, session: string, sends: { sender: Principal; input: unknown; own: boolean }[]): Promise<SendResult[]> {
    const out: SendResult[] = [];
    for (const x of sends) {
      try {
        out.push(await this.send(ref, x.sender, x.input, undefined, x.own ? { senderSession: session } : {}));
      } catch (err) {
        logError("room.sendMany", err);
        out.push(fail("internal", "internal error"));
      }
    }
    return out;
  }

  /** The bot's turn for a message stored with `deferBot` (the Chat API's async method). */
  async botTurnFor(ref: ConversationRef, messageId: string, first: boolean): Promise<Result<{ bot: BotOutcome | null }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const bot = await this.botSettings();
    const message = this.log.byId(messageId);
    if (!bot || !message) return { ok: true, bot: null };
    return { ok: true, bot: await this.queueBotTurn(bot, message, first) };
  }

  /**
   * Seed 004's client events (e.g. "/start"): the bot greets without a stored message. Opens a
   * bot session if none is running. Null when the channel has no bot.
   */
  async botEvent(ref: ConversationRef, sender: Principal, event: string): Promise<Result<{ bot: BotOutcome | null }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const bot = await this.botSettings();
    if (!bot) return { ok: true, bot: null };
    let session = this.sessions.active();
    const first = !session;
    session ??= this.sessions.create(new Date().toISOString(), "bot");
    if (first) this.emit({ type: "session", session });
    if (session.status !== "bot") return { ok: true, bot: null };
    const pseudo = { content: event, session_id: session.id, sender_type: sender.type } as Message;
    return { ok: true, bot: await this.queueBotTurn(bot, pseudo, first) };
  }

  history(
    ref: ConversationRef,
    opts: { audience: Audience; limit: number; offset?: number; after?: number; afterMs?: number },
  ): Result<{ messages: Message[]; head_seq: number; epoch: string }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const messages =
      opts.after !== undefined || opts.afterMs !== undefined
        ? this.log.query({ after: opts.after, afterMs: opts.afterMs, audience: opts.audience, limit: opts.limit })
        : this.log.latest(opts.limit, opts.offset ?? 0, opts.audience);
    return { ok: true, messages, head_seq: this.log.head(), epoch: this.epoch() };
  }

  /**
   * Long-poll: messages after `after` (a seq) or `afterMs` (a timestamp), waiting up to `waitMs`
   * for the first new one. A waiter whose client went away only lives until its timeout; nothing
   * is "delivered" to it, so the next poll's cursor still finds every message.
   */
  /**
   * Long-poll: messages after `after` (a seq), `afterMs` (a timestamp) or the stored position of
   * `cursor` (the Chat API's "since your last request"), optionally only from some sender types,
   * waiting up to `waitMs` for the first one. A waiter whose client went away only lives until its
   * timeout; nothing is "delivered" to it, so the next poll still finds every message.
   */
  async poll(
    ref: ConversationRef,
    opts: { audience: Audience; after?: number; afterMs?: number; cursor?: string; senders?: SenderType[]; waitMs: number; limit: number },
  ): Promise<Result<{ messages: Message[]; head_seq: number }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const cursorKey = opts.cursor ? `cursor:${opts.cursor}` : null;
    const after = opts.after ?? (opts.afterMs === undefined && cursorKey ? Number(this.meta(cursorKey) ?? 0) : undefined);
    const q = { after, afterMs: after === undefined ? opts.afterMs : undefined, audience: opts.audience, senders: opts.senders, limit: opts.limit };
    let messages = this.log.query(q);
    if (messages.length === 0 && opts.waitMs > 0) {
      if (this.waiters.length >= MAX_WAITERS) return fail("rate_limited", "too many waiting polls on this conversation", 1);
      const head = this.log.head();
      const woke = await new Promise<boolean>((resolve) => {
        const waiter: Waiter = {
          after: head,
          audience: opts.audience,
          senders: opts.senders,
          resolve: (m) => resolve(m.length > 0),
          timer: setTimeout(() => {
            this.waiters = this.waiters.filter((w) => w !== waiter);
            resolve(false);
          }, pollTimeoutMs(opts.waitMs)),
        };
        this.waiters.push(waiter);
      });
      messages = woke ? this.log.query({ ...q, after: head, afterMs: undefined }) : [];
    }
    const last = messages.at(-1);
    if (cursorKey && last) this.setMeta(cursorKey, String(last.seq));
    return { ok: true, messages, head_seq: this.log.head() };
  }

  // ---- uploads (files live in R2; the object keeps the single-use tokens) ---------------------

  createUpload(ref: ConversationRef, who: Principal, tokenHash: string): Result<{ expires_ms: number }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const upload = this.uploads.create(tokenHash, who, Date.now() + UPLOAD_URL_TTL_MS);
    return { ok: true, expires_ms: upload.expires_ms };
  }

  /** Claims an upload URL for one upload attempt. */
  startUpload(ref: ConversationRef, tokenHash: string): Result<{ file_id: string }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    if (!this.uploads.start(tokenHash, Date.now())) return fail("not_found", "unknown, used or expired upload URL");
    return { ok: true, file_id: this.uploads.get(tokenHash)!.file_id };
  }

  endUpload(ref: ConversationRef, tokenHash: string, stored: { filename: string; mime: string; size: number } | null): Result<{}> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    if (stored) this.uploads.complete(tokenHash, stored);
    else this.uploads.abort(tokenHash);
    return { ok: true };
  }

  /**
   * Turns a stored upload into an image or file message from the uploader (seed 001's rich
   * media). Idempotent: finishing twice returns the same message.
   */
  async finishUpload(ref: ConversationRef, who: Principal, tokenHash: string, caption: string, url: string): Promise<SendResult> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const upload = this.uploads.get(tokenHash);
    if (!upload || upload.principal.type !== who.type || upload.principal.id !== who.id) return fail("not_found", "unknown upload");
    if (upload.status === "finished") {
      const done = this.log.byClientId(who, `upload:${upload.file_id}`);
      if (done) return { ok: true, message: done.message, duplicate: true, new_session: false };
    }
    if (upload.status !== "uploaded" && upload.status !== "finished") return fail("conflict", "the file has not been uploaded yet");
    const image = upload.mime!.startsWith("image/");
    const result = await this.send(ref, who, {
      content: caption || (image ? "" : upload.filename!),
      content_type: image ? "image" : "file",
      rich_media: image ? { url, alt: upload.filename! } : { url, filename: upload.filename!, size: upload.size!, mime_type: upload.mime! },
      client_msg_id: `upload:${upload.file_id}`,
    });
    if (result.ok) this.uploads.finish(tokenHash);
    return result;
  }

  uploadFileId(ref: ConversationRef, tokenHash: string): Result<{ file_id: string }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const u = this.uploads.get(tokenHash);
    return u ? { ok: true, file_id: u.file_id } : fail("not_found", "unknown upload");
  }

  /** A stored file of this conversation (for downloads), or null. */
  file(ref: ConversationRef, fileId: string): Result<{ file: { mime: string; filename: string; size: number } | null }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const u = this.uploads.byFileId(fileId);
    return { ok: true, file: u && (u.status === "uploaded" || u.status === "finished") ? { mime: u.mime!, filename: u.filename!, size: u.size! } : null };
  }

  /** Delivery statuses (Chat API): read them, or set them (READ also moves the read receipt). */
  statuses(ref: ConversationRef, ids: string[]): Result<{ statuses: { id: string; status: DeliveryStatus }[] }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    return { ok: true, statuses: this.log.statuses(ids).map(({ id, status }) => ({ id, status })) };
  }

  setStatuses(ref: ConversationRef, updates: { id: string; status: DeliveryStatus }[]): Result<{ updated: string[]; unknown: string[] }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const updated: string[] = [];
    const unknown: string[] = [];
    for (const u of updates) (this.log.setStatus(u.id, u.status) ? updated : unknown).push(u.id);
    return { ok: true, updated, unknown };
  }

  unreadCount(ref: ConversationRef): Result<{ count: number }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    return { ok: true, count: this.log.unreadByEndUser() };
  }

  /** A finished session and what the end user saw of it (whispers left out): transcripts. */
  transcript(ref: ConversationRef, sessionId: string | null): Result<{ session: Session; messages: Message[] }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const session = sessionId ? this.sessions.find(sessionId) : this.sessions.latest();
    if (!session || session.status !== "resolved") return fail("not_found", "no finished session: a transcript exists once the session has ended");
    return { ok: true, session, messages: this.log.ofSession(session.id, "end_user") };
  }

  summary(ref: ConversationRef): Result<{ session: Session | null; head_seq: number; epoch: string }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    return { ok: true, session: this.sessions.latest(), head_seq: this.log.head(), epoch: this.epoch() };
  }

  async assign(ref: ConversationRef, agent: Principal): Promise<Result<{ session: Session }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const open = this.sessions.active();
    if (!open) return fail("already_resolved", "the conversation has no open session");
    if (open.assigned_agent_id === agent.id) return { ok: true, session: open };
    if (open.assigned_agent_id) return fail("already_assigned", "another agent has claimed this conversation");
    // Claiming a conversation a bot is handling takes it over.
    const session = this.sessions.update(open.id, { status: "open", assigned_agent_id: agent.id, assigned_at: new Date().toISOString() });
    this.participants.remember(agent);
    this.afterSessionChange(session, { type: "conversation_assigned", conversation_id: ref.id, assigned_to: agent.id, agent_name: agent.name }, agent);
    this.ctx.waitUntil(this.hub().assignedNotice(session.id, ref.id, agent.id).catch((err: unknown) => logError("room.assignedNotice", err)));
    return { ok: true, session };
  }

  async resolve(ref: ConversationRef, tags: string[] | undefined): Promise<Result<{ session: Session }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const open = this.sessions.active();
    if (!open) return fail("already_resolved", "the conversation is already resolved");
    const session = this.sessions.update(open.id, {
      status: "resolved",
      resolved_at: new Date().toISOString(),
      ...(tags ? { tags: mergeTags(open.tags, tags) } : {}),
    });
    if (open.assigned_agent_id) this.emit({ type: "removed", participant: this.participants.agent(open.assigned_agent_id), reason: "resolved" });
    this.afterSessionChange(session, { type: "conversation_resolved", conversation_id: ref.id, session_id: session.id, tags: session.tags });
    this.ctx.waitUntil(this.hub().released(session.id).catch((err: unknown) => logError("room.released", err)));
    return { ok: true, session };
  }

  /**
   * Hands the open session to another agent (`to`), or back to the queue (`to` null, and the router
   * will not give it to the same agent again). Only its agent may, unless `by` supervises (owners
   * and admins), who may also hand on a session nobody or a bot has.
   */
  async transfer(ref: ConversationRef, to: Principal | null, by: { id: string; supervisor: boolean }): Promise<Result<{ session: Session }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const open = this.sessions.active();
    if (!open) return fail("already_resolved", "the conversation has no open session");
    const from = open.assigned_agent_id;
    if (from !== by.id && !by.supervisor) return fail("forbidden", "only the conversation's agent, an owner or an admin can hand it on");
    if (to?.id === from) return { ok: true, session: open };
    if (!from && !to) return fail("conflict", "the conversation is not assigned");
    const session = this.sessions.update(open.id, { status: "open", assigned_agent_id: to?.id ?? null, assigned_at: to ? new Date().toISOString() : null });
    if (from) this.emit({ type: "removed", participant: this.participants.agent(from), reason: to ? "transferred" : "unassigned" });
    if (to) this.participants.remember(to);
    const event = { type: "conversation_assigned", conversation_id: ref.id, session_id: session.id, assigned_to: to?.id ?? null, agent_name: to?.name ?? null, ...(from ? { from } : {}) };
    this.afterSessionChange(session, event, to ?? undefined);
    const hub = this.hub();
    const told = to ? hub.assignedNotice(session.id, ref.id, to.id) : hub.unassignedNotice({ ref, session_id: session.id, queue: this.meta("queue") || null }, from!);
    this.ctx.waitUntil(Promise.resolve(told).catch((err: unknown) => logError("room.transferNotice", err)));
    return { ok: true, session };
  }

  async setTags(ref: ConversationRef, tags: string[]): Promise<Result<{ session: Session }>> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const latest = this.sessions.latest();
    if (!latest) return fail("conflict", "the conversation has no session yet");
    const session = this.sessions.update(latest.id, { tags: mergeTags([], tags) });
    this.afterSessionChange(session, null);
    return { ok: true, session };
  }

  setTyping(ref: ConversationRef, who: Principal, typing: boolean): Result<{}> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    this.applyTyping(who, typing, null);
    return { ok: true };
  }

  /** Marks read up to `seq`, or up to the newest of `message_ids` (seed 001's mark_read). */
  markRead(ref: ConversationRef, reader: Principal, upTo: { seq: number } | { message_ids: string[] }): Result<{ seq: number }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    const target = "seq" in upTo ? upTo.seq : this.log.maxSeqOf(upTo.message_ids);
    const seq = Math.min(target, this.log.head());
    const side = reader.type === "end_user" ? "end_user" : "staff";
    this.log.markRead(seq, side);
    if (seq > this.readSeq(side)) this.setMeta(`read:${side}`, String(seq));
    this.emit({ type: "read", reader_type: reader.type, reader_id: reader.id, seq });
    return { ok: true, seq };
  }

  /**
   * A Socket.IO session joins this conversation's room. Returns where the log stands so the
   * session can replay what it missed (`history` with `after`).
   */
  subscribe(ref: ConversationRef, name: string, principal: Principal): Result<{ head_seq: number; epoch: string; session: Session | null }> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    // S15: one visitor's connections (native sockets and Socket.IO sessions together) are capped.
    const known = this.subscribers.list().some((s) => s.name === name);
    if (principal.type === "end_user" && !known && this.endUserConnections() >= MAX_END_USER_SOCKETS) {
      return fail("rate_limited", `at most ${MAX_END_USER_SOCKETS} open connections per visitor; close one first`, 5);
    }
    const arrives = principal.type !== "end_user" && !this.present(principal);
    this.subscribers.add({ name, audience: audienceOf(principal) });
    if (principal.type !== "end_user") this.participants.addRemote(name, principal);
    if (arrives) this.emit({ type: "joined", participant: principal });
    return { ok: true, head_seq: this.log.head(), epoch: this.epoch(), session: this.sessions.latest() };
  }

  unsubscribe(ref: ConversationRef, name: string): Result<{}> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    this.dropSubscriber(name);
    return { ok: true };
  }

  /** The visitor's open connections here: native sockets and Socket.IO sessions (a room is one visitor's). */
  private endUserConnections(): number {
    return openSockets(this.ctx.getWebSockets("end_user")).length + this.subscribers.list().filter((s) => s.audience === "end_user").length;
  }

  /** A Socket.IO session left the room (it said so, closed, or stopped answering): maybe its agent's last connection. */
  private dropSubscriber(name: string) {
    this.subscribers.remove(name);
    const who = this.participants.removeRemote(name);
    if (who && !this.present(who)) this.emit({ type: "left", participant: who });
  }

  /**
   * Is this principal still here: an open native socket (other than `except`) or a Socket.IO
   * session? By tag, not by reading every socket's attachment: 2,000 sockets of one agent opening
   * made that quadratic (L1).
   */
  private present(p: Principal, except?: WebSocket): boolean {
    if (openSockets(this.ctx.getWebSockets(whoTag(p))).some((ws) => ws !== except)) return true;
    return this.participants.remotePresent(p);
  }

  /** Which skill-group queue this conversation's sessions join (seed 002's Subject). */
  setQueue(ref: ConversationRef, queue: string | null): Result<{}> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    this.setMeta("queue", queue ?? "");
    return { ok: true };
  }

  /** The router tells the waiting customer where they stand. */
  async queueUpdate(ref: ConversationRef, status: QueueStatus): Promise<void> {
    if (this.adopt(ref)) return;
    this.setMeta("queue_status", JSON.stringify(status));
    this.emit({ type: "queue", ...status });
  }

  /** The customer's last known place in line, while their session waits for an agent. */
  private waitingStatus(): QueueStatus | null {
    const s = this.sessions.active();
    if (s?.status !== "open" || s.assigned_agent_id) return null;
    return JSON.parse(this.meta("queue_status") ?? "null") as QueueStatus | null;
  }

  /** The org's account status changed (OrgHub calls this for rooms with visitor sockets). */
  async presence(status: "online" | "offline"): Promise<void> {
    this.emit({ type: "presence", account_status: status });
  }

  // ---- WebSockets (native protocol) -------------------------------------------------------

  override getConnectionTags(_conn: Connection, ctx: ConnectionContext): string[] {
    const principal = JSON.parse(ctx.request.headers.get("x-parley-principal") ?? "null") as Principal | null;
    const auth = ctx.request.headers.get("x-parley-auth");
    return principal ? [principal.type, whoTag(principal), ...(auth ? [`auth:${auth}`] : [])] : [];
  }

  /** The session or key that opened these sockets ended (OrgHub.revokeAuth): close them. */
  async closeAuth(authRef: string): Promise<number> {
    let closed = 0;
    for (const c of this.getConnections(`auth:${authRef}`)) {
      c.close(1008, "session ended");
      closed++;
    }
    return closed;
  }

  override async onClose(conn: Connection<SocketState>): Promise<void> {
    const who = conn.state?.principal;
    if (who && who.type !== "end_user" && !this.present(who, conn)) this.emit({ type: "left", participant: who }, { exceptConnId: conn.id });
    if (who?.type !== "end_user") return;
    const others = openSockets(this.ctx.getWebSockets("end_user")).some((ws) => ws !== conn);
    if (!others) await this.hub().unwatch(this.ref().id).catch((err: unknown) => logError("conversation.unwatch", err));
  }

  override async onConnect(conn: Connection<SocketState>, ctx: ConnectionContext): Promise<void> {
    const principal = JSON.parse(ctx.request.headers.get("x-parley-principal") ?? "null") as Principal | null;
    const ref = JSON.parse(ctx.request.headers.get("x-parley-ref") ?? "null") as ConversationRef | null;
    if (!principal || !ref || this.adopt(ref)) {
      conn.close(4403, "forbidden");
      return;
    }
    // S15: a cap on one visitor's open sockets (this one is already counted).
    if (principal.type === "end_user" && this.endUserConnections() > MAX_END_USER_SOCKETS) {
      this.sendError(conn, "rate_limited", `at most ${MAX_END_USER_SOCKETS} open connections per visitor; close one first`);
      conn.close(4008, "rate_limited");
      return;
    }
    conn.setState({ principal });
    this.flow.track(conn, principal.type === "end_user");
    const auth = ctx.request.headers.get("x-parley-auth");
    if (auth) this.ctx.waitUntil(this.hub().trackAuth(auth, ref.id).catch((err: unknown) => logError("room.trackAuth", err)));
    if (principal.type !== "end_user" && !this.present(principal, conn)) this.emit({ type: "joined", participant: principal }, { exceptConnId: conn.id });
    const url = new URL(ctx.request.url);
    const since = url.searchParams.get("since");
    const clientEpoch = url.searchParams.get("epoch");
    const head = this.log.head();
    this.seedTypingPreview(parseChannelSettings(ctx.request.headers.get("x-parley-channel")));
    const status = principal.type === "end_user" ? await this.watchPresence() : "online";
    const typingPreview = await this.typingPreview();
    const ready = (messages: Message[], recovered: boolean, resync: boolean) =>
      this.sendFrame(conn, {
        type: "ready",
        conversation_id: ref.id,
        epoch: this.epoch(),
        head_seq: head,
        recovered,
        resync_required: resync,
        messages,
        session: this.sessions.latest(),
        account_status: status,
        read: { end_user_seq: this.readSeq("end_user"), staff_seq: this.readSeq("staff") },
        typing_preview: typingPreview,
        queue: this.waitingStatus(),
      });
    const audience = audienceOf(principal);
    if (since === null) return ready(this.log.latest(100, 0, audience), false, false);
    const sinceSeq = Number(since);
    if (!Number.isInteger(sinceSeq) || sinceSeq < 0 || sinceSeq > head) {
      this.sendFrame(conn, { type: "error", code: "invalid_seq", message: `since must be an integer from 0 to ${head}`, retryable: false });
      conn.close(4400, "invalid_seq");
      return;
    }
    if ((clientEpoch !== null && clientEpoch !== this.epoch()) || head - sinceSeq > MAX_REPLAY) return ready([], false, true);
    return ready(this.log.after(sinceSeq, MAX_REPLAY, audience), true, false);
  }

  override async onMessage(conn: Connection<SocketState>, raw: WSMessage): Promise<void> {
    const principal = conn.state?.principal;
    if (!principal) return conn.close(4403, "forbidden");
    if (typeof raw !== "string") return this.sendError(conn, "unknown_event", "frames are JSON text");
    if (!fitsUtf8(raw, MAX_FRAME_BYTES)) {
      return conn.close(1009, "frame too large");
    }
    // The most frequent frame (every socket confirms every 50 messages), in the exact form the
    // clients send it, skips JSON.parse and zod; any other spelling takes the full path below.
    const received = RECEIVED_FRAME.exec(raw);
    if (received) return this.flow.confirm(conn, principal.type === "end_user", Number(received[1]));
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return this.sendError(conn, "invalid_json", "frame is not valid JSON");
    }
    const frame = ClientFrame.safeParse(json);
    if (!frame.success) return this.sendError(conn, "unknown_event", "unknown or malformed frame");
    const ref = this.ref();
    switch (frame.data.type) {
      case "send": {
        const { type: _t, ...input } = frame.data;
        const clientMsgId = typeof input.client_msg_id === "string" ? input.client_msg_id : undefined;
        const ack = (m: Message, duplicate: boolean) => this.sendFrame(conn, { type: "ack", client_msg_id: m.client_msg_id, id: m.id, seq: m.seq, duplicate });
        const result = await this.send(ref, principal, input, ack);
        if (!result.ok) return this.sendError(conn, result.error.code, result.error.message, clientMsgId);
        return;
      }
      case "typing":
        this.applyTyping(principal, frame.data.typing, conn.id);
        if (frame.data.draft !== undefined) await this.forwardDraft(principal, frame.data.typing ? frame.data.draft : "");
        return;
      case "read":
        this.flow.confirm(conn, principal.type === "end_user", frame.data.seq);
        this.markRead(ref, principal, { seq: frame.data.seq });
        return;
      case "received":
        return this.flow.confirm(conn, principal.type === "end_user", frame.data.seq);
      case "ping":
        return this.sendFrame(conn, { type: "pong" });
      default:
        return assertNever(frame.data);
    }
  }

  override async onAlarm(): Promise<void> {
    this.alarmAt = undefined; // this one fired; whatever runs below may set the next
    for (const who of this.typing.expire(Date.now())) this.broadcastTyping(who, false, null);
    await this.drainOutboxes();
  }

  /**
   * The messages and sessions to D1, then the webhook outbox to its queue: the flush timer's work,
   * and the alarm's. One drain at a time: the timer and the backstop alarm can both be due, and two
   * webhook drains would read and send the same oldest entries.
   */
  private async drainOutboxes(): Promise<void> {
    while (this.draining) await this.draining;
    this.draining = (async () => {
      await this.flush();
      if (this.meta("ref")) await this.drainWebhooks();
    })().finally(() => (this.draining = null));
    await this.draining;
  }

  // ---- internals ----------------------------------------------------------------------------

  /** `beforeBroadcast` runs once the message is stored and before anyone else hears of it (the ack). */
  private append(draft: MessageDraft, sender: Principal, beforeBroadcast?: (m: Message, duplicate: boolean) => void, withBot = false): SendResult {
    if (draft.private && sender.type === "end_user") return fail("forbidden", "end users cannot send private messages");
    const fingerprint = draftFingerprint(draft);
    if (draft.client_msg_id) {
      // The usual case (a session in progress, the sender within its rate): insert unless the id
      // was used, one statement. Otherwise, and for a duplicate, the lookup below decides.
      const active = this.sessions.active();
      const nowMs = Date.now();
      if (active?.first_message_at && (sender.type !== "end_user" || this.rate.allows(sender.id, nowMs))) {
        const message = this.log.appendIfNew({ ...draft, client_msg_id: draft.client_msg_id }, sender, active.id, fingerprint, nowMs);
        if (message) {
          if (sender.type === "end_user") this.rate.take(sender.id, nowMs);
          return this.stored(message, active, false, beforeBroadcast);
        }
      }
      const existing = this.log.byClientId(sender, draft.client_msg_id);
      if (existing) {
        if (existing.fingerprint !== fingerprint) return fail("idempotency_conflict", "client_msg_id was already used for a different message");
        this.reannounce(existing.message);
        beforeBroadcast?.(existing.message, true);
        return { ok: true, message: existing.message, duplicate: true, new_session: false };
      }
    }
    if (sender.type === "end_user") {
      const wait = this.rate.take(sender.id, Date.now());
      if (wait > 0) return fail("rate_limited", "too many messages; slow down", Math.ceil(wait / 1000));
    }
    const now = new Date();
    let session = this.sessions.active();
    let opened = false;
    if (!session && (sender.type === "end_user" || !this.sessions.latest())) {
      session = this.sessions.create(now.toISOString(), withBot && sender.type === "end_user" ? "bot" : "open");
      opened = true;
    }
    session ??= this.sessions.latest()!;
    if (!session.first_message_at) session = this.sessions.update(session.id, { first_message_at: now.toISOString() });
    return this.stored(this.log.append(draft, sender, session.id, fingerprint, now.getTime()), session, opened, beforeBroadcast);
  }

  /** A message just appended (same synchronous block): its events, the ack, the announcement. */
  private stored(message: Message, session: Session, opened: boolean, beforeBroadcast?: (m: Message, duplicate: boolean) => void): SendResult {
    const updated = this.updatedEvent(message, opened);
    this.recordWebhooks(updated);
    this.scheduleFlush();
    // Durable from here on (same synchronous block; the output gate holds replies until commit).
    // Whatever the ack callback does, the others hear of the message.
    try {
      beforeBroadcast?.(message, false);
    } finally {
      this.announce(message, session, opened, updated);
    }
    return { ok: true, message, duplicate: false, new_session: opened };
  }

  /**
   * Everything the others hear of a stored message: sockets, subscribers, waiting polls, push, the
   * router, the connector, the live inbox. Not durable itself: a throw part way records the seq, and
   * the sender's retry (same client id) announces it again (F2).
   */
  private announce(message: Message, session: Session, opened: boolean, updated: HubEvent) {
    try {
      this.emit({ type: "message", message }, { staffOnly: message.private });
      if (this.pushDevices !== false) {
        const changes = this.deviceChanges;
        const live = () => endUserLive(this.ctx.getWebSockets("end_user"), this.subscribers.list());
        pushIfOffline(this.env, this.ctx, this.ref(), message, live, (count) => {
          if (changes === this.deviceChanges) this.pushDevices = count > 0;
        });
      }
      if (opened) this.emit({ type: "session", session });
      if (opened && session.status === "open") this.enqueueForAgents(session.id);
      if (message.sender_type !== "end_user" && !message.private) this.forwardToConnector(message);
      const sender: Principal = { type: message.sender_type, id: message.sender_id, name: message.sender_name };
      if (this.typing.clear(sender)) this.broadcastTyping(sender, false, null);
      this.wakeWaiters();
      this.publishLive(updated);
    } catch (err) {
      this.setMeta("unannounced", JSON.stringify([...this.unannounced(), { seq: message.seq, opened }].slice(-100)));
      throw err;
    }
  }

  private unannounced(): { seq: number; opened: boolean }[] {
    return JSON.parse(this.meta("unannounced") ?? "[]") as { seq: number; opened: boolean }[];
  }

  /** A retried send of a message whose announcement failed: announce it now. */
  private reannounce(message: Message) {
    const missed = this.unannounced();
    const entry = missed.find((m) => m.seq === message.seq);
    if (!entry) return;
    this.setMeta("unannounced", JSON.stringify(missed.filter((m) => m !== entry)));
    this.announce(message, this.sessions.find(message.session_id)!, entry.opened, this.updatedEvent(message, entry.opened));
  }

  private updatedEvent(message: Message, opened: boolean): HubEvent {
    return {
      type: "conversation_updated",
      conversation_id: message.conversation_id,
      session_id: message.session_id,
      sender_type: message.sender_type,
      content_type: message.content_type,
      content: message.content,
      seq: message.seq,
      created_at: message.created_at,
      new_session: opened,
    };
  }

  // ---- connectors (seed 002: SMS, fb, twitter channels served by an external connector) -------

  // ---- typing preview (webchat channels that opt in: agents see the visitor's draft) ----------

  private previewCache: { at: number; on: boolean } | null = null;
  private lastDraftAt = 0;

  /**
   * The setting as the Worker's lookup for a connecting socket just read it: a newly woken room
   * starts from it instead of its own D1 read, if it is fresher than what the room holds and still
   * within the re-read interval (a setting turned off is never kept longer than that).
   */
  private seedTypingPreview(settings: ChannelSettings | null) {
    if (!settings || Date.now() - settings.read_at >= PREVIEW_SETTING_TTL_MS) return;
    if (this.previewCache && this.previewCache.at >= settings.read_at) return;
    this.previewCache = { at: Math.min(settings.read_at, Date.now()), on: settings.typing_preview };
  }

  /** Whether the channel has the typing preview on (re-read from D1 at most every 10 s). */
  private async typingPreview(): Promise<boolean> {
    if (this.previewCache && Date.now() - this.previewCache.at < PREVIEW_SETTING_TTL_MS) return this.previewCache.on;
    const row = await database(this.env.DB)
      .select({ on: schema.channels.typing_preview })
      .from(schema.channels)
      .where(eq(schema.channels.id, this.ref().channel_id))
      .get()
      .catch((err: unknown) => (logError("room.typingPreview", err), null));
    this.previewCache = { at: Date.now(), on: row?.on === true };
    return this.previewCache.on;
  }

  /**
   * A visitor's draft goes to staff sockets only, at most every 150 ms, and only while the channel
   * has the preview on. Never stored; never sent to end users or Socket.IO sessions.
   */
  private async forwardDraft(who: Principal, draft: string) {
    if (who.type !== "end_user") return;
    const now = Date.now();
    if (draft !== "" && now - this.lastDraftAt < 150) return;
    if (!(await this.typingPreview())) return;
    this.lastDraftAt = now;
    const frame = JSON.stringify({ type: "draft", sender_type: who.type, sender_id: who.id, sender_name: who.name, draft } satisfies ServerFrame);
    this.sendToSockets(frame, { staffOnly: true });
  }

  private channelCache: Promise<{ kind: string; name: string } | null> | null = null;
  /** The channel once read (undefined: not yet). A channel's kind never changes. */
  private channelKnown: { kind: string; name: string } | null | undefined = undefined;
  private connectorChain: Promise<unknown> = Promise.resolve();

  /** Agent and bot messages in a connector channel's conversation go to its connector, in order. */
  private forwardToConnector(message: Message) {
    // Most channels are not connectors: once that is known, nothing to queue.
    if (this.channelKnown !== undefined && this.channelKnown?.kind !== "connector") return;
    const ref = this.ref();
    this.channelCache ??= database(this.env.DB)
      .select({ kind: schema.channels.kind, name: schema.channels.name })
      .from(schema.channels)
      .where(eq(schema.channels.id, ref.channel_id))
      .get()
      .then((c) => (this.channelKnown = c ?? null));
    const next = this.connectorChain.then(async () => {
      const channel = await this.channelCache;
      if (channel?.kind !== "connector") return;
      await this.hub().connectorOutbound(channel.name, { ...chatMessage(message), refId: ref.end_user.external_id, to: [{ id: ref.end_user.external_id, name: ref.end_user.display_name ?? "" }] });
    });
    this.connectorChain = next.catch((err: unknown) => logError("room.connector", err));
    this.ctx.waitUntil(this.connectorChain);
  }

  // ---- bots -------------------------------------------------------------------------------

  private botCache: { at: number; settings: BotSettings | null } | null = null;
  /** Bot turns run one at a time, in message order. */
  private botChain: Promise<unknown> = Promise.resolve();

  private async botSettings(): Promise<BotSettings | null> {
    if (this.botCache && Date.now() - this.botCache.at < BOT_SETTINGS_TTL_MS) return this.botCache.settings;
    const settings = await loadBot(this.env, this.ref().channel_id).catch((err: unknown) => (logError("room.botSettings", err), null));
    this.botCache = { at: Date.now(), settings };
    return settings;
  }

  private queueBotTurn(bot: BotSettings, message: Message, first: boolean): Promise<BotOutcome | null> {
    const turn = this.botChain.then(() => this.runBotTurn(bot, message, first));
    this.botChain = turn.catch((err: unknown) => logError("room.botTurn", err));
    return turn;
  }

  private async runBotTurn(bot: BotSettings, message: Message, first: boolean): Promise<BotOutcome | null> {
    const before = this.sessions.find(message.session_id);
    if (before?.status !== "bot") return null; // an agent has it, or it ended
    const turn = await botTurn(bot, this.ref(), message, before.bot_misses, first);
    const session = this.sessions.find(message.session_id);
    if (session?.status !== "bot") return null; // taken over while the bot was thinking
    const botPrincipal: Principal = { type: "bot", id: "bot", name: "Bot" };
    const replies: Message[] = [];
    for (const draft of turn.replies) {
      const r = this.append(draft, botPrincipal);
      if (r.ok) replies.push(r.message);
    }
    if (turn.misses !== session.bot_misses) this.sessions.update(session.id, { bot_misses: turn.misses });
    if (turn.handoff) replies.push(...(await this.handoff(session.id, bot)));
    return { replies, handoff: turn.handoff, nlp_class: turn.nlp_class, confidence: turn.confidence };
  }

  /** The bot steps aside: the session joins the agents' unassigned queue. */
  private async handoff(sessionId: string, bot: BotSettings): Promise<Message[]> {
    const online = (await this.hub().accountStatus().catch(() => "offline")) === "online";
    const session = this.sessions.update(sessionId, { status: "open", handed_off_at: new Date().toISOString(), bot_misses: 0 });
    const botPrincipal: Principal = { type: "bot", id: "bot", name: "Bot" };
    const flow = bot.kind === "flow" ? bot.config : null;
    const notes = [flow?.handoff_message ?? "Connecting you to an agent…", ...(online ? [] : [flow?.no_agent_message ?? "No agent is available right now."])];
    const sent: Message[] = [];
    for (const content of notes) {
      const r = this.append({ content, content_type: "text", rich_media: null, client_msg_id: undefined, private: false }, botPrincipal);
      if (r.ok) sent.push(r.message);
    }
    this.emit({ type: "handoff", session, agents_available: online });
    this.enqueueForAgents(session.id);
    this.afterSessionChange(session, { type: "conversation_handoff", conversation_id: this.ref().id, session_id: session.id, agents_available: online });
    return sent;
  }

  /** Hands a session needing an agent to the org's router; tells the customer when it is closed. */
  private enqueueForAgents(sessionId: string) {
    const ref = this.ref();
    this.ctx.waitUntil(
      this.hub()
        .enqueue({ ref, session_id: sessionId, queue: this.meta("queue") || null })
        .then((status) => {
          if (status.closed_message && this.sessions.find(sessionId)?.status === "open") {
            this.append({ content: status.closed_message, content_type: "text", rich_media: null, client_msg_id: `closed:${sessionId}`, private: false }, { type: "bot", id: "bot", name: "Bot" });
          }
          // Position frames come from the router (queueUpdate) as the line moves.
        })
        .catch((err: unknown) => logError("room.enqueue", err)),
    );
  }

  private afterSessionChange(session: Session, event: HubEvent | null, agent?: Principal) {
    this.emit(agent ? { type: "session", session, agent } : { type: "session", session });
    this.scheduleFlush();
    if (event) this.publish(event);
  }

  private applyTyping(who: Principal, typing: boolean, fromConnId: string | null) {
    const tell = typing ? this.typing.start(who, Date.now()) : this.typing.clear(who);
    if (typing) this.scheduleAlarm(this.typing.nextExpiry() ?? Date.now());
    if (tell) this.broadcastTyping(who, typing, fromConnId);
  }

  private broadcastTyping(who: Principal, typing: boolean, exceptConnId: string | null) {
    this.emit({ type: "typing", sender_type: who.type, sender_id: who.id, sender_name: who.name, typing }, { exceptConnId });
  }

  private wakeWaiters() {
    this.waiters = this.waiters.filter((w) => {
      const fresh = this.log.query({ after: w.after, audience: w.audience, senders: w.senders, limit: 1 });
      if (fresh.length === 0) return true;
      clearTimeout(w.timer);
      w.resolve(fresh);
      return false;
    });
  }

  /** A durable change the org hears of: the live inbox now, webhooks through the outbox. */
  private publish(event: HubEvent) {
    this.recordWebhooks(event);
    this.publishLive(event);
  }

  /** Until when live events are skipped: the hub said nobody listens (it calls hubListening when someone does). */
  private hubQuietUntil = 0;
  /** hubListening calls so far: a "nobody listens" answer older than the latest call is stale. */
  private hubListenCalls = 0;

  /**
   * Queue events for the org's agents. Live notifications only: D1 stays the inbox's truth. While
   * the hub has no listener they are skipped (re-checked every HUB_QUIET_MS at the latest, so a
   * lost hubListening call costs at most that much of the live inbox).
   */
  private publishLive(event: HubEvent) {
    if (Date.now() < this.hubQuietUntil) return;
    const calls = this.hubListenCalls;
    this.ctx.waitUntil(
      this.hub()
        .publish(event)
        .then((listening) => {
          if (!listening && calls === this.hubListenCalls) this.hubQuietUntil = Date.now() + HUB_QUIET_MS;
        })
        .catch((err: unknown) => logError("conversation.publish", err)),
    );
  }

  /** Whether the end user has push devices: unknown until a push looked them up; the push routes reset it. */
  private pushDevices: boolean | undefined = undefined;
  /** devicesChanged calls so far: a lookup older than the latest change does not count. */
  private deviceChanges = 0;

  /** The push routes registered or removed a device of this conversation's end user. */
  devicesChanged(ref: ConversationRef): Result<{}> {
    const bad = this.adopt(ref);
    if (bad) return bad;
    this.deviceChanges++;
    this.pushDevices = undefined;
    return { ok: true };
  }

  /** RPC from the org hub: someone listens to live events again. */
  async hubListening(): Promise<void> {
    this.hubListenCalls++;
    this.hubQuietUntil = 0;
  }

  /** Webhook events for a change, into the outbox in the same synchronous block as the change. */
  private recordWebhooks(event: HubEvent) {
    const ref = this.ref();
    if (!mayHaveEndpoints(this.env, ref.org_id)) return;
    let drafts: Draft[];
    try {
      drafts = draftsFor(event, { ref, message: (seq) => this.log.after(seq - 1, 1, "staff")[0] ?? null, session: (id) => (id ? this.sessions.find(id) : this.sessions.latest()) });
    } catch (err) {
      return logError("webhooks.draft", err);
    }
    if (drafts.length === 0) return;
    this.webhooks.add(drafts);
    this.scheduleFlush();
  }

  /** Hands the webhook outbox to the queue, oldest first; on failure retries with backoff. */
  private async drainWebhooks(): Promise<void> {
    while (this.webhooks.size() > 0) {
      const entries = this.webhooks.oldest(FLUSH_BATCH_ROWS);
      if (entries.length === 0) return;
      try {
        const env = this.webhookQueue ? { ...this.env, WEBHOOKS: this.webhookQueue } : this.env;
        const sent = await sendEvents(env, this.ref().org_id, entries.map((e) => e.draft));
        this.webhooks.sent(entries[sent - 1]!.id);
        this.setMeta("webhook_failures", "0");
      } catch (err) {
        const failures = Number(this.meta("webhook_failures") ?? 0) + 1;
        this.setMeta("webhook_failures", String(failures));
        console.error(JSON.stringify({ at: "webhooks.enqueue_failed", conversation: this.ref().id, failures, waiting: this.webhooks.size(), error: String(err) }));
        this.scheduleAlarm(Date.now() + backoffMs(failures));
        return;
      }
    }
  }

  /** Registers this room for account-status changes and returns the current status. */
  private async watchPresence(): Promise<"online" | "offline"> {
    try {
      return await this.hub().watch(this.ref().id);
    } catch (err) {
      logError("conversation.watchPresence", err);
      return "offline";
    }
  }

  private hubStub: DurableObjectStub<OrgHub> | null = null;

  /** The org's hub (the stub is kept: naming an object hashes its name every time). */
  private hub(): DurableObjectStub<OrgHub> {
    this.hubStub ??= this.env.ORG_HUB.getByName(this.ref().org_id);
    return this.hubStub;
  }

  /** Runs one flush at a time; a second caller waits for the running one, then flushes again. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushRounds().finally(() => (this.flushing = null));
    await this.flushing;
  }

  private async flushRounds(): Promise<void> {
    const ref = this.meta("ref");
    if (!ref) return;
    this.lastFlushAt = Date.now();
    this.flushGap = flushIntervalMs(this.env) * (0.8 + 0.4 * Math.random());
    const sink = this.sink ?? writerSink(this.env, this.ref());
    for (;;) {
      const outcome = await flushOnce(this.outbox(), sink);
      if (outcome.type === "flushed" && outcome.more) continue;
      if (outcome.type === "failed") {
        const event = outcome.failures >= FLUSH_STALL_REPORT_AFTER ? "flush_stalled" : "flush_failed";
        console.error(JSON.stringify({ at: event, conversation: this.ref().id, failures: outcome.failures, error: outcome.error }));
        const retryAt = Date.now() + outcome.retryInMs;
        this.setMeta("flush_retry_at", String(retryAt));
        this.scheduleAlarm(retryAt, true);
      } else if (outcome.type === "flushed") {
        this.setMeta("flush_retry_at", "0");
      }
      return;
    }
  }

  private outbox(): OutboxStore {
    return {
      flushedSeq: () => Number(this.meta("flushed_seq") ?? 0),
      pendingMessages: (after, limit) => this.log.unflushed(after, limit),
      pendingSessions: () => this.sessions.unflushed(),
      commit: (lastSeq, sessions) => {
        this.setMeta("flushed_seq", String(lastSeq));
        for (const s of sessions) this.sessions.markFlushed(s.id, s.version);
      },
      failures: () => Number(this.meta("flush_failures") ?? 0),
      setFailures: (n) => this.setMeta("flush_failures", String(n)),
    };
  }

  /**
   * New rows to flush: as soon as possible, but never before a failing D1's backoff ends (new
   * traffic must not turn the backoff into a retry per message).
   */
  private scheduleFlush() {
    const now = Date.now();
    const backlog = this.log.head() - Number(this.meta("flushed_seq") ?? 0);
    const batched = backlog >= FLUSH_BATCH_ROWS ? now : Math.max(now, this.lastFlushAt + this.flushGap);
    const at = Math.max(batched, Number(this.meta("flush_retry_at") ?? 0));
    // The outboxes drain on a timer, not an alarm: an alarm per flush (a storage write to set it,
    // an event to run it) cost a quiet conversation one per message, and was most of the native
    // socket's latency tail (S1 p99 20 -> 9 ms, docs/scaling.md). A pending timer keeps the object
    // from hibernating until it fires; the alarm, FLUSH_BACKSTOP_MS later, is the backstop for an
    // object evicted (or a process ended) before its timer.
    if (this.flushTimerAt === null || at < this.flushTimerAt) {
      if (this.flushTimer !== null) clearTimeout(this.flushTimer);
      this.flushTimerAt = at;
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        this.flushTimerAt = null;
        this.drainOutboxes().catch((err: unknown) => logError("room.flush", err));
      }, Math.max(0, at - now));
    }
    this.scheduleAlarm(at + FLUSH_BACKSTOP_MS);
  }

  /**
   * One alarm: the earliest of pending flush and typing expiry. `force` replaces a sooner one
   * (backoff). The alarm's time is kept in memory, so a burst of sends costs one setAlarm.
   */
  private scheduleAlarm(at: number, force = false) {
    if (!force && typeof this.alarmAt === "number" && this.alarmAt <= at) return;
    const unknown = !force && this.alarmAt === undefined;
    this.alarmAt = at; // once the work below is done, the alarm is at `at` or sooner
    this.ctx.waitUntil(
      (async () => {
        if (unknown) {
          const current = await this.ctx.storage.getAlarm();
          if (this.alarmAt !== at) return; // a sooner one was set meanwhile
          if (current !== null && current <= at) {
            this.alarmAt = current;
            return;
          }
        }
        await this.ctx.storage.setAlarm(at);
      })(),
    );
  }

  private adopt(ref: ConversationRef): { ok: false; error: { code: "not_found"; message: string } } | null {
    const stored = this.meta("ref");
    if (stored === null) {
      this.setMeta("ref", JSON.stringify(ref));
      return null;
    }
    const known = this.ref();
    if (known.id !== ref.id || known.org_id !== ref.org_id) return fail("not_found", "conversation not found") as never;
    const json = JSON.stringify(ref);
    if (json !== stored) this.setMeta("ref", json);
    return null;
  }

  /** How far each side has read (the highest seq a read receipt named). */
  private readSeq(side: "end_user" | "staff"): number {
    return Number(this.meta(`read:${side}`) ?? 0);
  }

  private ref(): ConversationRef {
    this.refCache ??= JSON.parse(this.meta("ref") ?? "null") as ConversationRef;
    return this.refCache;
  }

  private epoch(): string {
    return this.meta("epoch")!;
  }

  /** The meta table through a write-through cache: this object is the only writer of its SQLite. */
  private meta(key: string): string | null {
    const cached = this.metaCache.get(key);
    if (cached !== undefined) return cached;
    const value = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value ?? null;
    this.metaCache.set(key, value);
    return value;
  }

  private setMeta(key: string, value: string) {
    if (this.metaCache.get(key) === value) return;
    this.ctx.storage.sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value);
    this.metaCache.set(key, value);
    if (key === "ref") this.refCache = null;
  }

  /** Sends a frame to this room's sockets and its remote subscribers. */
  private emit(frame: ServerFrame, opts: { staffOnly?: boolean; exceptConnId?: string | null } = {}) {
    const text = JSON.stringify(frame);
    this.sendToSockets(text, opts);
    if (frame.type === "message") this.flow.sent(frame.message.seq, text.length, opts.staffOnly === true);
    const topic = `conv:${this.ref().id}`;
    for (const sub of this.subscribers.list()) {
      if (opts.staffOnly && sub.audience === "end_user") continue;
      if (frame.type === "message" && sub.name === this.senderSession) continue;
      this.fanout.send(sub.name, topic, frame, () => this.dropSubscriber(sub.name));
    }
  }

  /**
   * Sends to this room's native sockets (what partyserver's broadcast does, without reading every
   * socket's attachment two or three times per frame: a room with 2,000 sockets sends 2,000 frames
   * per message). partyserver tags each socket with its connection id and our tags (the
   * principal type and `who:` tag), so the exceptions are looked up by tag.
   */
  private sendToSockets(text: string, opts: { staffOnly?: boolean; exceptConnId?: string | null } = {}) {
    const skip = new Set<WebSocket>(opts.staffOnly ? this.ctx.getWebSockets("end_user") : []);
    if (opts.exceptConnId) for (const ws of this.ctx.getWebSockets(opts.exceptConnId)) skip.add(ws);
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.READY_STATE_OPEN || skip.has(ws)) continue;
      try {
        ws.send(text);
      } catch {
        ws.close(1011, "Unexpected error");
      }
    }
  }

  private sendFrame(conn: Connection, frame: ServerFrame) {
    conn.send(JSON.stringify(frame));
  }

  private sendError(conn: Connection, code: ErrorCode, message: string, clientMsgId?: string) {
    this.sendFrame(conn, { type: "error", code, message, retryable: ERRORS[code].retryable, ...(clientMsgId ? { client_msg_id: clientMsgId } : {}) });
  }
}

/** `{"type":"received","seq":N}` exactly as JSON.stringify writes it (N a non-negative safe integer). */
const RECEIVED_FRAME = /^\{"type":"received","seq":(0|[1-9]\d{0,14})\}$/;

/** The socket tag naming its principal (partyserver tags sockets at accept; lookups by tag read no attachment). */
function whoTag(p: Principal): string {
  return `who:${p.type}:${p.id}`;
}

function openSockets(sockets: WebSocket[]): WebSocket[] {
  return sockets.filter((ws) => ws.readyState === WebSocket.READY_STATE_OPEN);
}

function mergeTags(existing: string[], added: string[]): string[] {
  return [...new Set([...existing, ...added])];
}

function logError(at: string, err: unknown) {
  console.error(JSON.stringify({ at, error: String(err) }));
}

function assertNever(x: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(x)}`);
}
