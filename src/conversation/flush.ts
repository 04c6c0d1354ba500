/**
 * The outbox from a conversation object to D1, as a pure core over two small interfaces so that
 * every ordering and failure case is testable (the object wires in its SQLite and the real D1).
 *
 * - Rows go to D1 with INSERT ... ON CONFLICT DO NOTHING (messages) or a version-guarded upsert
 *   (sessions), inside one D1 batch (a transaction), so a retried or concurrent flush never
 *   duplicates a row.
 * - The cursor advances only after D1 committed.
 * - Failures are counted durably and retried with capped exponential backoff by the object's own
 *   alarm: the platform stops retrying a throwing alarm after 6 attempts, so the alarm never throws.
 */
import type { Message } from "../core/message";
import type { Session } from "./sessions";

/** Rows per flush round. One message is one statement of 14 bound parameters (D1 allows 100). */
export const FLUSH_BATCH_ROWS = 50;
/**
 * At most one flush per this many ms per conversation while traffic lasts: the first message after
 * a quiet interval flushes at once, the ones behind it wait and go in one batch (or sooner, once
 * FLUSH_BATCH_ROWS are waiting). `FLUSH_INTERVAL_MS` overrides it (0: a flush per message).
 */
export const FLUSH_INTERVAL_MS = 1_000;
/**
 * The room's flush runs on a timer in memory; its alarm is only the backstop, this long after the
 * flush is due, for an object that is evicted (or a process that ends) before its timer fires.
 */
export const FLUSH_BACKSTOP_MS = 10_000;
export const FLUSH_BACKOFF_BASE_MS = 1_000;
export const FLUSH_BACKOFF_MAX_MS = 60_000;
/** After this many consecutive failures the flush logs `flush_stalled` (it keeps retrying). */
export const FLUSH_STALL_REPORT_AFTER = 6;

export interface OutboxStore {
  flushedSeq(): number;
  pendingMessages(afterSeq: number, limit: number): Message[];
  pendingSessions(): Session[];
  commit(lastSeq: number, sessions: Session[]): void;
  failures(): number;
  setFailures(n: number): void;
}

export interface OutboxSink {
  write(messages: Message[], sessions: Session[]): Promise<void>;
}

export type FlushOutcome =
  | { type: "idle" }
  | { type: "flushed"; messages: number; sessions: number; more: boolean }
  | { type: "failed"; failures: number; retryInMs: number; error: string };

export async function flushOnce(store: OutboxStore, sink: OutboxSink): Promise<FlushOutcome> {
  const from = store.flushedSeq();
  const messages = store.pendingMessages(from, FLUSH_BATCH_ROWS + 1);
  const more = messages.length > FLUSH_BATCH_ROWS;
  const batch = more ? messages.slice(0, FLUSH_BATCH_ROWS) : messages;
  const sessions = store.pendingSessions();
  if (batch.length === 0 && sessions.length === 0) return { type: "idle" };
  try {
    await sink.write(batch, sessions);
  } catch (err) {
    const failures = store.failures() + 1;
    store.setFailures(failures);
    return { type: "failed", failures, retryInMs: backoffMs(failures), error: String(err) };
  }
  store.commit(batch.at(-1)?.seq ?? from, sessions);
  store.setFailures(0);
  return { type: "flushed", messages: batch.length, sessions: sessions.length, more };
}

export function backoffMs(failures: number): number {
  return Math.min(FLUSH_BACKOFF_MAX_MS, FLUSH_BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
}

export function flushIntervalMs(env: { FLUSH_INTERVAL_MS?: string }): number {
  const n = Number(env.FLUSH_INTERVAL_MS);
  return env.FLUSH_INTERVAL_MS !== undefined && env.FLUSH_INTERVAL_MS !== "" && Number.isFinite(n) && n >= 0 ? n : FLUSH_INTERVAL_MS;
}
