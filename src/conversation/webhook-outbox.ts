/**
 * The conversation's outbox of webhook events, in its object's SQLite. An event is written in the
 * same synchronous block as the change it describes (so it commits with it, or not at all) and
 * leaves for the WEBHOOKS queue from the object's alarm, like the D1 flush: deleted only after the
 * queue accepted it, retried with backoff otherwise. At least once; event ids are derived from
 * what happened, so a resent event expands into the same deliveries (see src/webhooks/events.ts).
 */
import type { Draft } from "../webhooks/events";
import { LazyTable } from "./schema";

export interface OutboxEntry {
  id: number;
  draft: Draft;
}

export class WebhookOutbox {
  /** Rows waiting, known once read: this object is the only writer. */
  private waiting: number | null = null;

  /** Made at the first event (an organisation without webhook endpoints never writes one). */
  private readonly table: LazyTable;

  constructor(private readonly sql: SqlStorage) {
    this.table = new LazyTable(sql, "webhook_outbox", ["CREATE TABLE IF NOT EXISTS webhook_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, draft TEXT NOT NULL)"]);
  }

  add(drafts: Draft[]): void {
    if (drafts.length === 0) return;
    this.table.ensure();
    for (const d of drafts) this.sql.exec("INSERT INTO webhook_outbox (draft) VALUES (?)", JSON.stringify(d));
    if (this.waiting !== null) this.waiting += drafts.length;
  }

  size(): number {
    if (!this.table.exists()) return 0;
    this.waiting ??= this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM webhook_outbox").one().n;
    return this.waiting;
  }

  oldest(limit: number): OutboxEntry[] {
    if (!this.table.exists()) return [];
    return this.sql
      .exec<{ id: number; draft: string }>("SELECT id, draft FROM webhook_outbox ORDER BY id LIMIT ?", limit)
      .toArray()
      .map((r) => ({ id: r.id, draft: JSON.parse(r.draft) as Draft }));
  }

  /** Drops every entry up to `id` (they reached the queue). */
  sent(id: number): void {
    if (!this.table.exists()) return;
    this.sql.exec("DELETE FROM webhook_outbox WHERE id <= ?", id);
    this.waiting = null;
  }
}
