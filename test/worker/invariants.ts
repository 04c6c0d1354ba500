/**
 * RELIABILITY.md's cross-cutting invariant X1, as one assertion to run after a fault test:
 *
 * - the conversation object's log has seq 1..n, no gap, no duplicate id, and at most one message
 *   per (sender, client_msg_id);
 * - D1 holds exactly the same rows (id, seq, sender, content, client id, private flag) once each,
 *   after a flush through the room's own sink, its organisation's D1Writer (any fault-injecting sink is removed first), and the
 *   flush cursor stands at n with no failure counted;
 * - every client saw only messages of that log, each with its stored seq, in increasing seq
 *   order (after dropping repeats by id, as docs/protocol.md tells clients to), never a whisper
 *   when it is an end user, and all of them when it was connected throughout (`complete`).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { ConversationRef } from "../../src/core/conversation-ref";
import type { ConversationRoom } from "../../src/conversation/room";
import { call } from "./helpers";

export interface LogRow {
  seq: number;
  id: string;
  sender_type: string;
  sender_id: string;
  content: string;
  client_msg_id: string | null;
  private: number;
}

/** What one client received, in arrival order. */
export interface Received {
  name: string;
  audience: "end_user" | "staff";
  messages: { id: string; seq: number }[];
  /** The client was there for every message with seq > `after` (default 0): it must hold them all. */
  complete?: boolean;
  after?: number;
}

export const room = (conversationId: string) => env.CONVERSATION.getByName(conversationId);

/** The object's log, read from its SQLite (a room makes its messages table at its first message). */
export function objectLog(conversationId: string): Promise<LogRow[]> {
  return runInDurableObject(room(conversationId), (_r, state) =>
    state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").toArray().length === 0
      ? []
      : state.storage.sql
      .exec<{ [k: string]: SqlStorageValue }>("SELECT seq, id, sender_type, sender_id, content, client_msg_id, private FROM messages ORDER BY seq")
      .toArray()
      .map((r) => ({ ...r }) as unknown as LogRow),
  );
}

export async function d1Log(conversationId: string): Promise<LogRow[]> {
  const rows = await env.DB.prepare(
    "SELECT seq, id, sender_type, sender_id, content, client_msg_id, private FROM messages WHERE conversation_id = ? ORDER BY seq",
  )
    .bind(conversationId)
    .all<LogRow>();
  return rows.results.map((r) => ({ ...r, private: Number(r.private) }));
}

/** Messages out of a native socket's frames (ready replays and live message frames), in arrival order. */
export function fromFrames(frames: any[]): { id: string; seq: number }[] {
  const out: { id: string; seq: number }[] = [];
  for (const f of frames) {
    if (f.type === "ready") out.push(...f.messages.map((m: any) => ({ id: m.id, seq: m.seq })));
    if (f.type === "message") out.push({ id: f.message.id, seq: f.message.seq });
  }
  return out;
}

export async function assertX1(conversationId: string, clients: Received[] = []): Promise<LogRow[]> {
  const stub = room(conversationId);
  await runInDurableObject(stub, async (r: ConversationRoom) => {
    r.sink = null;
    await r.flush();
  });
  const log = await objectLog(conversationId);
  const n = log.length;
  expect(log.map((m) => m.seq), "object log seq is 1..n").toEqual(Array.from({ length: n }, (_, i) => i + 1));
  expect(new Set(log.map((m) => m.id)).size, "message ids unique").toBe(n);
  const clientIds = log.filter((m) => m.client_msg_id !== null).map((m) => `${m.sender_type}/${m.sender_id}/${m.client_msg_id}`);
  expect(new Set(clientIds).size, "one message per (sender, client_msg_id)").toBe(clientIds.length);

  expect(await d1Log(conversationId), "D1 == object log").toEqual(log);
  const cursor = await runInDurableObject(stub, (_r, s) => ({
    flushed: Number(s.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'flushed_seq'").toArray()[0]?.value ?? 0),
    failures: Number(s.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'flush_failures'").toArray()[0]?.value ?? 0),
  }));
  expect(cursor, "flush cursor at the head, no failure pending").toEqual({ flushed: n, failures: 0 });
  if (n > 0) {
    const conv = await env.DB.prepare("SELECT last_seq FROM conversations WHERE id = ?").bind(conversationId).first<{ last_seq: number }>();
    expect(conv?.last_seq, "D1 conversations.last_seq").toBe(n);
  }

  const bySeq = new Map(log.map((m) => [m.id, m]));
  for (const c of clients) {
    const seen = new Map<string, number>();
    const order: number[] = [];
    for (const m of c.messages) {
      const stored = bySeq.get(m.id);
      expect(stored, `${c.name} received ${m.id}, which is not in the log`).toBeDefined();
      expect(m.seq, `${c.name}: seq of ${m.id}`).toBe(stored!.seq);
      if (c.audience === "end_user") expect(stored!.private, `${c.name} (end user) received a whisper`).toBe(0);
      if (!seen.has(m.id)) {
        seen.set(m.id, m.seq);
        order.push(m.seq);
      }
    }
    expect(order, `${c.name} received in seq order`).toEqual([...order].sort((a, b) => a - b));
    if (c.complete) {
      const expected = log.filter((m) => m.seq > (c.after ?? 0) && (c.audience === "staff" || m.private === 0)).map((m) => m.seq);
      expect(order.filter((s) => s > (c.after ?? 0)), `${c.name} received everything`).toEqual(expected);
    }
  }
  return log;
}

/** A visitor's conversation (opened over the widget API) with its ref, for direct RPC and fault injection. */
export async function conversationOf(pk: string, visitorId: string) {
  const r = await call("/chat-widget/session", { body: { key: pk, session_id: visitorId } });
  if (r.status !== 200) throw new Error(`widget session: ${r.status} ${JSON.stringify(r.body)}`);
  const row = await env.DB.prepare("SELECT c.*, u.external_id, u.display_name FROM conversations c JOIN end_users u ON u.id = c.end_user_id WHERE c.id = ?")
    .bind(r.body.conversation_id)
    .first<any>();
  const ref: ConversationRef = { id: row.id, org_id: row.org_id, channel_id: row.channel_id, end_user: { id: row.end_user_id, external_id: row.external_id, display_name: row.display_name } };
  return { ref, stub: room(ref.id), epoch: r.body.epoch as string };
}

/** The number of long-poll waiters the conversation object holds (memory state, read in place). */
export const waiterCount = (conversationId: string) => runInDurableObject(room(conversationId), (r: ConversationRoom) => (r as unknown as { waiters: unknown[] }).waiters.length);
