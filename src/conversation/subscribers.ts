/**
 * Remote subscribers of a conversation: Socket.IO sessions, which live in their own objects
 * (one per Engine.IO session, see src/socketio/). Stored, so an evicted room keeps delivering.
 * Delivery is one RPC per frame per subscriber, chained per subscriber so frames arrive in the
 * order they were emitted; a subscriber that answers "gone" is dropped. The subscriber also
 * checks `seq` continuity and fills any gap from the log, so a lost delivery costs latency,
 * never a message.
 */
import type { Audience } from "../core/message";
import { LazyTable } from "./schema";

export interface Subscriber {
  name: string;
  audience: Audience;
}

export class Subscribers {
  /** The table, read once per object lifetime: this object is its only writer. */
  private cache: Subscriber[] | null = null;

  /** Made at the first subscriber (most conversations never have one). */
  private readonly table: LazyTable;

  constructor(private readonly sql: SqlStorage) {
    this.table = new LazyTable(sql, "subscribers", ["CREATE TABLE IF NOT EXISTS subscribers (name TEXT PRIMARY KEY, audience TEXT NOT NULL)"]);
  }

  add(s: Subscriber): void {
    this.cache = null;
    this.table.ensure();
    this.sql.exec("INSERT INTO subscribers (name, audience) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET audience = excluded.audience", s.name, s.audience);
  }

  remove(name: string): void {
    this.cache = null;
    if (!this.table.exists()) return;
    this.sql.exec("DELETE FROM subscribers WHERE name = ?", name);
  }

  list(): readonly Subscriber[] {
    if (!this.table.exists()) return (this.cache ??= []);
    this.cache ??= this.sql.exec<{ name: string; audience: string }>("SELECT name, audience FROM subscribers").toArray() as Subscriber[];
    return this.cache;
  }
}
