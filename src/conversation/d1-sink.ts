/** Writes a conversation's outbox into D1 (see flush.ts for the guarantees). */
import { and, eq, lt, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { ConversationRef } from "../core/conversation-ref";
import { conversations, conversationSessions, messages as messagesTable } from "../db/schema";
import type { OutboxSink } from "./flush";

export function d1Sink(db: D1Database, ref: ConversationRef): OutboxSink {
  const d = drizzle(db);
  return {
    async write(messages, sessions) {
      const stmts = [
        ...messages.map((m) =>
          d
            .insert(messagesTable)
            .values({
              id: m.id,
              org_id: ref.org_id,
              conversation_id: ref.id,
              session_id: m.session_id,
              seq: m.seq,
              sender_type: m.sender_type,
              sender_id: m.sender_id,
              sender_name: m.sender_name,
              content_type: m.content_type,
              content: m.content,
              rich_media: m.rich_media === null ? null : JSON.stringify(m.rich_media),
              client_msg_id: m.client_msg_id,
              private: m.private,
              created_at: m.created_at,
              status: m.status,
            })
            .onConflictDoNothing(),
        ),
        ...sessions.map((s) => {
          const row = {
            id: s.id,
            org_id: ref.org_id,
            conversation_id: ref.id,
            status: s.status,
            assigned_agent_id: s.assigned_agent_id,
            tags: JSON.stringify(s.tags),
            first_message_at: s.first_message_at,
            assigned_at: s.assigned_at,
            resolved_at: s.resolved_at,
            opened_at: s.opened_at,
            version: s.version,
          };
          const { id: _id, ...set } = row;
          return d
            .insert(conversationSessions)
            .values(row)
            .onConflictDoUpdate({ target: conversationSessions.id, set, setWhere: sql`excluded.version > ${conversationSessions.version}` });
        }),
      ];
      const last = messages.at(-1);
      if (last) {
        stmts.push(
          d
            .update(conversations)
            .set({ updated_at: last.created_at, last_seq: last.seq })
            .where(and(eq(conversations.id, ref.id), lt(conversations.last_seq, last.seq))) as never,
        );
      }
      const [first, ...rest] = stmts;
      if (first) await d.batch([first, ...rest]);
    },
  };
}
