/**
 * Who of the staff is in a conversation, for the room's `joined` and `left` frames, and the names
 * of agents it was assigned to, for `removed` frames (a session stores only the agent's id).
 *
 * An agent is present while at least one of their connections is open: a native WebSocket in the
 * room (its attachment names the principal; the room looks at those itself) or a Socket.IO session
 * subscribed to the room, kept here by session name because those sessions live in their own
 * objects. The room announces `joined` when an agent's first connection arrives and `left` when
 * the last one goes, so two consoles of one agent are one presence. End users are not announced.
 * Stored in the room's SQLite, so an evicted room still knows who is there.
 */
import type { Principal } from "../core/message";
import { LazyTable } from "./schema";

export class Participants {
  /** Each made at its first write (most conversations never have a Socket.IO agent, many never an assignment). */
  private readonly remote: LazyTable;
  private readonly names: LazyTable;

  constructor(private readonly sql: SqlStorage) {
    this.remote = new LazyTable(sql, "remote_participants", ["CREATE TABLE IF NOT EXISTS remote_participants (name TEXT PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, display TEXT)"]);
    this.names = new LazyTable(sql, "agent_names", ["CREATE TABLE IF NOT EXISTS agent_names (id TEXT PRIMARY KEY, display TEXT)"]);
  }

  /** A Socket.IO session of this (staff) principal subscribed to the room. */
  addRemote(name: string, p: Principal): void {
    this.remote.ensure();
    this.sql.exec(
      "INSERT INTO remote_participants (name, type, id, display) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET type = excluded.type, id = excluded.id, display = excluded.display",
      name, p.type, p.id, p.name,
    );
  }

  /** That session's subscription ended: whose it was, or null (an end user's, or already gone). */
  removeRemote(name: string): Principal | null {
    if (!this.remote.exists()) return null;
    const row = this.sql.exec<{ type: string; id: string; display: string | null }>("DELETE FROM remote_participants WHERE name = ? RETURNING type, id, display", name).toArray()[0];
    return row ? { type: row.type as Principal["type"], id: row.id, name: row.display } : null;
  }

  /** Is this principal subscribed through a Socket.IO session? */
  remotePresent(p: Principal): boolean {
    if (!this.remote.exists()) return false;
    return this.sql.exec("SELECT 1 FROM remote_participants WHERE type = ? AND id = ? LIMIT 1", p.type, p.id).toArray().length > 0;
  }

  /** Keeps an agent's name as of their assignment, for the `removed` frame that ends it. */
  remember(p: Principal): void {
    this.names.ensure();
    this.sql.exec("INSERT INTO agent_names (id, display) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET display = excluded.display", p.id, p.name);
  }

  /** The agent with this id, named as last remembered (null when never seen: assigned before names were kept). */
  agent(id: string): Principal {
    if (!this.names.exists()) return { type: "agent", id, name: null };
    const row = this.sql.exec<{ display: string | null }>("SELECT display FROM agent_names WHERE id = ?", id).toArray()[0];
    return { type: "agent", id, name: row?.display ?? null };
  }
}
