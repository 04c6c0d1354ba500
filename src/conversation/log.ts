/**
 * The ordered message log of one conversation, in its Durable Object's SQLite storage.
 * `seq` is the per-conversation, gapless order; `created_ms` is kept strictly increasing too, so
 * that seed 000's `lastTimestamp` polling is a lossless cursor over the same order.
 * All calls are synchronous: a caller that appends and then answers without awaiting anything
 * in between gets atomicity from the object's implicit transaction and durability-before-reply
 * from its output gate.
 */
import { MAX_REPLAY } from "./protocol";
import type { Audience, DeliveryStatus, Message, MessageDraft, Principal, RichMedia, SenderType } from "../core/message";
import { migrate, type LazyTable } from "./schema";

type Row = {
  seq: number;
  id: string;
  session_id: string;
  sender_type: string;
  sender_id: string;
  sender_name: string | null;
  content_type: string;
  content: string;
  rich_media: string | null;
  client_msg_id: string | null;
  fingerprint: string | null;
  created_ms: number;
  status: string;
  private: number;
};

/**
 * Storage schema steps, applied once each to an object made before them (DO storage outlives
 * deploys). Never edit one: add a step, and make SCHEMA say where they end.
 */
const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    sender_type TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    rich_media TEXT,
    client_msg_id TEXT UNIQUE,
    fingerprint TEXT,
    created_ms INTEGER NOT NULL,
    status TEXT NOT NULL
  )`,
  "ALTER TABLE messages ADD COLUMN private INTEGER NOT NULL DEFAULT 0",
  // Client message ids belong to their sender: rebuild without the table-wide UNIQUE.
  `CREATE TABLE messages_v3 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    sender_type TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    rich_media TEXT,
    client_msg_id TEXT,
    fingerprint TEXT,
    created_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0
  )`,
  "INSERT INTO messages_v3 SELECT seq, id, session_id, sender_type, sender_id, sender_name, content_type, content, rich_media, client_msg_id, fingerprint, created_ms, status, private FROM messages",
  "DROP TABLE messages",
  "ALTER TABLE messages_v3 RENAME TO messages",
  "CREATE UNIQUE INDEX messages_client_id ON messages (sender_type, sender_id, client_msg_id)",
];

/** Where MIGRATIONS end, made at once by a new object (2 statements instead of 7 that build, copy and drop a table). */
const SCHEMA = [
  `CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    sender_type TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    rich_media TEXT,
    client_msg_id TEXT,
    fingerprint TEXT,
    created_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0
  )`,
  "CREATE UNIQUE INDEX messages_client_id ON messages (sender_type, sender_id, client_msg_id)",
];

/**
 * Messages kept in memory: a resume's whole replay (MAX_REPLAY) and a hot room's unflushed rows.
 * With 100, a room at 2,000 msg/s fell behind its window while a flush was out (50 rows to D1 and
 * back) and read the next flush's rows from SQL: 9% of its CPU (S3).
 */
const RECENT_MAX = MAX_REPLAY;
/** ... and at most this much of their content (characters): 300 messages of 16 KB would be 4.8 MB. */
const RECENT_MAX_CHARS = 1_000_000;

const visible = (audience: Audience) => (audience === "end_user" ? "AND private = 0" : "");

export class MessageLog {
  /** Made at the first message (a conversation whose visitor only connects has none); reads answer empty until then. */
  private readonly table: LazyTable;

  constructor(
    private readonly sql: SqlStorage,
    private readonly conversationId: () => string,
  ) {
    this.table = migrate(sql, { versions: "log_schema", table: "messages", steps: MIGRATIONS, schema: SCHEMA });
  }

  /** The newest seq and created_ms, read once per object lifetime: this object is the only writer. */
  private tip: { seq: number; ms: number } | null = null;

  private last(): { seq: number; ms: number } {
    if (!this.tip && !this.table.exists()) this.tip = { seq: 0, ms: 0 };
    if (!this.tip) {
      const row = this.sql.exec<{ seq: number | null; ms: number | null }>("SELECT MAX(seq) AS seq, MAX(created_ms) AS ms FROM messages").one();
      this.tip = { seq: row.seq ?? 0, ms: row.ms ?? 0 };
    }
    return this.tip;
  }

  head(): number {
    return this.last().seq;
  }

  /**
   * The newest appended messages, contiguous by seq, and their created_ms: the flush, resumes and
   * the polls that ask for what is new read them without SQL. At most RECENT_MAX messages and
   * RECENT_MAX_CHARS of their content. Cleared when statuses change.
   */
  private recent: Message[] = [];
  private recentMs: number[] = [];
  private recentChars = 0;

  private forget() {
    this.recent = [];
    this.recentMs = [];
    this.recentChars = 0;
  }

  /** Messages after `after` for the flush to D1 (every audience), oldest first. */
  unflushed(after: number, limit: number): Message[] {
    if (after >= this.head()) return [];
    const first = this.recent[0];
    if (first && first.seq <= after + 1) return this.recent.filter((m) => m.seq > after).slice(0, limit);
    return this.after(after, limit, "staff");
  }

  /** A sender's earlier message under this client id (ids are scoped per sender). */
  byClientId(sender: Principal, clientMsgId: string): { message: Message; fingerprint: string | null } | null {
    if (!this.table.exists()) return null;
    const row = this.sql
      .exec<Row>("SELECT * FROM messages WHERE sender_type = ? AND sender_id = ? AND client_msg_id = ?", sender.type, sender.id, clientMsgId)
      .toArray()[0];
    return row ? { message: this.toMessage(row), fingerprint: row.fingerprint } : null;
  }

  append(draft: MessageDraft, sender: Principal, sessionId: string, fingerprint: string | null, nowMs: number): Message {
    return this.insert(draft, sender, sessionId, fingerprint, nowMs, false)!;
  }

  /**
   * Appends unless the sender already used this client id (then null, nothing written): one
   * statement where byClientId + append are two.
   */
  appendIfNew(draft: MessageDraft & { client_msg_id: string }, sender: Principal, sessionId: string, fingerprint: string | null, nowMs: number): Message | null {
    return this.insert(draft, sender, sessionId, fingerprint, nowMs, true);
  }

  private insert(draft: MessageDraft, sender: Principal, sessionId: string, fingerprint: string | null, nowMs: number, ifNew: boolean): Message | null {
    const last = this.last();
    this.table.ensure();
    const row: Row = {
      seq: last.seq + 1,
      id: crypto.randomUUID(),
      session_id: sessionId,
      sender_type: sender.type,
      sender_id: sender.id,
      sender_name: sender.name,
      content_type: draft.content_type,
      content: draft.content,
      rich_media: draft.rich_media === null ? null : JSON.stringify(draft.rich_media),
      client_msg_id: draft.client_msg_id ?? null,
      fingerprint,
      created_ms: Math.max(nowMs, last.ms + 1),
      status: "SENT",
      private: draft.private ? 1 : 0,
    };
    const cursor = this.sql.exec(
      `INSERT INTO messages (seq, id, session_id, sender_type, sender_id, sender_name, content_type, content, rich_media, client_msg_id, fingerprint, created_ms, status, private)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)${ifNew ? " ON CONFLICT (sender_type, sender_id, client_msg_id) DO NOTHING" : ""}`,
      row.seq, row.id, row.session_id, row.sender_type, row.sender_id, row.sender_name, row.content_type, row.content,
      row.rich_media, row.client_msg_id, row.fingerprint, row.created_ms, row.status, row.private,
    );
    cursor.toArray();
    if (ifNew && cursor.rowsWritten === 0) return null;
    this.tip = { seq: row.seq, ms: row.created_ms };
    const message = this.toMessage(row);
    this.recent.push(message);
    this.recentMs.push(row.created_ms);
    this.recentChars += message.content.length;
    while (this.recent.length > RECENT_MAX || (this.recentChars > RECENT_MAX_CHARS && this.recent.length > 1)) {
      this.recentChars -= this.recent.shift()!.content.length;
      this.recentMs.shift();
    }
    return message;
  }

  /** Messages with seq > `after`, oldest first. */
  after(after: number, limit: number, audience: Audience): Message[] {
    return this.query({ after, limit, audience });
  }

  /**
   * Messages after a seq or a timestamp, oldest first, optionally only from some sender types
   * (the Chat API's events: agent replies only, unless it asks for all).
   */
  query(q: { after?: number; afterMs?: number; audience: Audience; senders?: SenderType[]; limit: number }): Message[] {
    const known = this.fromMemory(q);
    if (known) return known;
    const where = [q.afterMs !== undefined ? "created_ms > ?" : "seq > ?"];
    const params: (string | number)[] = [q.afterMs ?? q.after ?? 0];
    if (q.senders) {
      where.push(`sender_type IN (${q.senders.map(() => "?").join(",") || "NULL"})`);
      params.push(...q.senders);
    }
    return this.rows(`SELECT * FROM messages WHERE ${where.join(" AND ")} ${visible(q.audience)} ORDER BY seq LIMIT ?`, ...params, q.limit);
  }


  /**
   * The answer to a query after a seq or a time at or past the oldest kept message (what polls and
   * resumes usually ask: "anything new?"), from memory; null when SQL must answer. created_ms rises
   * with seq, so everything newer than such a point is kept.
   */
  private fromMemory(q: { after?: number; afterMs?: number; audience: Audience; senders?: SenderType[]; limit: number }): Message[] | null {
    const tip = this.last();
    const byTime = q.afterMs !== undefined;
    const after = byTime ? q.afterMs! : (q.after ?? 0);
    if (after >= (byTime ? tip.ms : tip.seq)) return [];
    if (this.recent.length === 0 || after < (byTime ? this.recentMs[0]! : this.recent[0]!.seq - 1)) return null;
    const out: Message[] = [];
    for (let i = 0; i < this.recent.length && out.length < q.limit; i++) {
      const m = this.recent[i]!;
      if ((byTime ? this.recentMs[i]! : m.seq) <= after) continue;
      if (q.audience === "end_user" && m.private) continue;
      if (q.senders && !q.senders.includes(m.sender_type)) continue;
      out.push(m);
    }
    return out;
  }

  /** A page counted back from the newest message (offset 0 = the latest `limit`), oldest first. */
  latest(limit: number, offset: number, audience: Audience): Message[] {
    return this.rows(`SELECT * FROM (SELECT * FROM messages WHERE 1 ${visible(audience)} ORDER BY seq DESC LIMIT ? OFFSET ?) ORDER BY seq`, limit, offset);
  }

  /** Delivery statuses of these messages (unknown ids are left out). */
  statuses(ids: string[]): { id: string; status: DeliveryStatus; sender_type: SenderType }[] {
    if (ids.length === 0 || !this.table.exists()) return [];
    return this.sql
      .exec<{ id: string; status: string; sender_type: string }>("SELECT id, status, sender_type FROM messages WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(ids))
      .toArray() as { id: string; status: DeliveryStatus; sender_type: SenderType }[];
  }

  setStatus(id: string, status: DeliveryStatus): boolean {
    this.forget(); // statuses changed under the kept copies
    if (!this.table.exists()) return false;
    return this.sql.exec("UPDATE messages SET status = ? WHERE id = ?", status, id).rowsWritten > 0;
  }

  /** Messages to the end user (from agents and bots, whispers excluded) not yet READ. */
  unreadByEndUser(): number {
    if (!this.table.exists()) return 0;
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM messages WHERE sender_type != 'end_user' AND private = 0 AND status != 'READ'").one().n;
  }

  /** One support session's messages, oldest first. */
  ofSession(sessionId: string, audience: Audience): Message[] {
    return this.rows(`SELECT * FROM messages WHERE session_id = ? ${visible(audience)} ORDER BY seq`, sessionId);
  }

  byId(id: string): Message | null {
    return this.rows("SELECT * FROM messages WHERE id = ?", id)[0] ?? null;
  }

  /** The highest seq among these message ids (0 when none is known). */
  maxSeqOf(ids: string[]): number {
    if (ids.length === 0 || !this.table.exists()) return 0;
    // One bound value (a JSON array), whatever the count: SQLite allows 100 per statement here.
    return this.sql.exec<{ s: number | null }>("SELECT MAX(seq) AS s FROM messages WHERE id IN (SELECT value FROM json_each(?))", JSON.stringify(ids)).one().s ?? 0;
  }

  /** Marks the other side's messages up to `seq` as READ; returns how many changed. */
  markRead(upToSeq: number, readerSide: "end_user" | "staff"): number {
    const cond = readerSide === "end_user" ? "sender_type != 'end_user'" : "sender_type = 'end_user'";
    this.forget(); // statuses changed under the kept copies
    if (!this.table.exists()) return 0;
    return this.sql.exec(`UPDATE messages SET status = 'READ' WHERE seq <= ? AND status != 'READ' AND ${cond}`, upToSeq).rowsWritten;
  }

  private rows(query: string, ...params: (string | number)[]): Message[] {
    if (!this.table.exists()) return [];
    return this.sql.exec<Row>(query, ...params).toArray().map((r) => this.toMessage(r));
  }

  private toMessage(r: Row): Message {
    return {
      id: r.id,
      conversation_id: this.conversationId(),
      session_id: r.session_id,
      seq: r.seq,
      sender_type: r.sender_type as SenderType,
      sender_id: r.sender_id,
      sender_name: r.sender_name,
      content_type: r.content_type as Message["content_type"],
      content: r.content,
      rich_media: r.rich_media === null ? null : (JSON.parse(r.rich_media) as RichMedia),
      client_msg_id: r.client_msg_id,
      private: r.private === 1,
      status: r.status as DeliveryStatus,
      created_at: new Date(r.created_ms).toISOString(),
    };
  }
}

