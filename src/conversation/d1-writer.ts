/**
 * One D1 batch for many conversations' flushes. Each organisation has a D1Writer object; a room's
 * flush hands it the rows (one RPC) and waits. The writer gathers what arrives within
 * WRITER_WINDOW_MS (at once when WRITER_DRAIN_AT statements wait) and writes it in one D1 batch, then
 * answers each room. A room advances its flush cursor only on that answer, so the room's storage
 * stays the outbox until D1 has committed its rows: a lost answer, a writer restart or a D1 failure
 * is the room's retry (with its backoff), and the writes are idempotent (INSERT ... ON CONFLICT DO
 * NOTHING, version-guarded session upserts, a guarded last_seq).
 *
 * Why: a conversation writes a message or two a minute, so flushing each room on its own cost one
 * D1 batch per message: locally that was two thirds of a message's CPU (a batch of two statements
 * costs ~0.7 ms of workerd CPU, an RPC to an object ~0.06 ms), and on Cloudflare every batch is a
 * write to the one D1 database, which runs one query at a time.
 */
import { DurableObject } from "cloudflare:workers";
import type { ConversationRef } from "../core/conversation-ref";
import type { Message } from "../core/message";
import { d1Statements } from "./d1-sink";
import type { OutboxSink } from "./flush";
import type { Session } from "./sessions";

/** How long the writer gathers flushes before its D1 batch: D1 lags the rooms by at most this much more. */
export const WRITER_WINDOW_MS = 100;
/**
 * Once this many statements wait, the batch goes at once: it is as large as one busy room's flush
 * round (50 rows), so waiting gains nothing, and a hot conversation's rounds (each waits for its
 * answer before the next) are not held to one per window.
 */
export const WRITER_DRAIN_AT = 50;
/** Statements per D1 batch at most (a flush is at most 50 messages + its sessions + 1). */
export const WRITER_MAX_STATEMENTS = 200;

interface Write {
  ref: ConversationRef;
  messages: Message[];
  sessions: Session[];
  statements: number;
  done: PromiseWithResolvers<void>;
}

const statementCount = (messages: Message[], sessions: Session[]) => messages.length + sessions.length + (messages.length > 0 ? 1 : 0);

export class D1Writer extends DurableObject<Env> {
  private pending: Write[] = [];
  private pendingStatements = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** D1 batches written, and flushes they carried (read by tests and the bench). */
  readonly stats = { batches: 0, writes: 0, retriedAlone: 0 };

  /** Resolves once D1 has committed these rows; rejects with D1's error (the room retries). */
  write(ref: ConversationRef, messages: Message[], sessions: Session[]): Promise<void> {
    const statements = statementCount(messages, sessions);
    if (statements === 0) return Promise.resolve();
    const done = Promise.withResolvers<void>();
    this.pending.push({ ref, messages, sessions, statements, done });
    this.pendingStatements += statements;
    if (this.pendingStatements >= WRITER_DRAIN_AT) this.drainAfter(0);
    else this.timer ??= setTimeout(() => void this.drain(), WRITER_WINDOW_MS);
    return done.promise;
  }

  getStats(): { batches: number; writes: number; retriedAlone: number } {
    return { ...this.stats };
  }

  private drainAfter(ms: number) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.drain(), ms);
  }

  private async drain(): Promise<void> {
    this.timer = null;
    const writes = this.pending;
    this.pending = [];
    this.pendingStatements = 0;
    let chunk: Write[] = [];
    let size = 0;
    for (const w of writes) {
      if (chunk.length > 0 && size + w.statements > WRITER_MAX_STATEMENTS) {
        await this.commit(chunk);
        chunk = [];
        size = 0;
      }
      chunk.push(w);
      size += w.statements;
    }
    if (chunk.length > 0) await this.commit(chunk);
  }

  /** One batch (a transaction) for the chunk; if it fails, each write alone, so one bad write fails only its own room. */
  private async commit(chunk: Write[]): Promise<void> {
    const db = this.env.DB;
    try {
      await db.batch(chunk.flatMap((w) => d1Statements(db, w.ref, w.messages, w.sessions)));
      this.stats.batches++;
      this.stats.writes += chunk.length;
      for (const w of chunk) w.done.resolve();
    } catch (err) {
      if (chunk.length === 1) return chunk[0]!.done.reject(err instanceof Error ? err : new Error(String(err)));
      for (const w of chunk) {
        this.stats.retriedAlone++;
        await this.commit([w]);
      }
    }
  }
}

/** The writer of a conversation's organisation. */
export const writerOf = (env: Env, ref: ConversationRef) => env.D1_WRITER.getByName(`org:${ref.org_id}`);

/** A room's flush sink: through its organisation's writer. */
export function writerSink(env: Env, ref: ConversationRef): OutboxSink {
  const writer = writerOf(env, ref);
  return { write: (messages, sessions) => writer.write(ref, messages, sessions) };
}
