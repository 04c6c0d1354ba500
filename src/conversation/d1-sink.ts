/**
 * Writes a conversation's outbox into D1 (see flush.ts for the guarantees). Plain prepared
 * statements, not the query builder: this runs for every flush of every conversation, and
 * building the statements was most of its CPU. The columns are those of src/db/schema.ts
 * (test/worker/flush.test.ts and the X1 invariant read them back).
 */
import type { ConversationRef } from "../core/conversation-ref";
import type { Message } from "../core/message";
import type { Session } from "./sessions";

const INSERT_MESSAGE = `INSERT INTO messages (id, org_id, conversation_id, session_id, seq, sender_type, sender_id, sender_name,
  content_type, content, rich_media, client_msg_id, private, created_at, status)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`;

/** A session row moves forward only: an older version never overwrites a newer one. */
const UPSERT_SESSION = `INSERT INTO conversation_sessions (id, org_id, conversation_id, status, assigned_agent_id, tags,
  first_message_at, assigned_at, resolved_at, opened_at, version)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, conversation_id = excluded.conversation_id, status = excluded.status,
    assigned_agent_id = excluded.assigned_agent_id, tags = excluded.tags, first_message_at = excluded.first_message_at,
    assigned_at = excluded.assigned_at, resolved_at = excluded.resolved_at, opened_at = excluded.opened_at, version = excluded.version
  WHERE excluded.version > conversation_sessions.version`;

const TOUCH_CONVERSATION = "UPDATE conversations SET updated_at = ?, last_seq = ? WHERE id = ? AND last_seq < ?";

/** The statements that write one conversation's outbox rows into D1 (one batch's worth, or part of a writer's). */
export function d1Statements(db: D1Database, ref: ConversationRef, messages: Message[], sessions: Session[]): D1PreparedStatement[] {
  const stmts = [
    ...messages.map((m) =>
      db
        .prepare(INSERT_MESSAGE)
        .bind(
          m.id, ref.org_id, ref.id, m.session_id, m.seq, m.sender_type, m.sender_id, m.sender_name,
          m.content_type, m.content, m.rich_media === null ? null : JSON.stringify(m.rich_media), m.client_msg_id, m.private ? 1 : 0, m.created_at, m.status,
        ),
    ),
    ...sessions.map((s) =>
      db
        .prepare(UPSERT_SESSION)
        .bind(s.id, ref.org_id, ref.id, s.status, s.assigned_agent_id, JSON.stringify(s.tags), s.first_message_at, s.assigned_at, s.resolved_at, s.opened_at, s.version),
    ),
  ];
  const last = messages.at(-1);
  if (last) stmts.push(db.prepare(TOUCH_CONVERSATION).bind(last.created_at, last.seq, ref.id, last.seq));
  return stmts;
}
