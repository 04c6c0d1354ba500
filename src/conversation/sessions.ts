/**
 * Support sessions of one conversation (open -> resolved; the next end-user message opens a new
 * one), in the conversation object's SQLite. Every change bumps `version`; the flush copies rows
 * whose version is ahead of `flushed_version` to D1, where an upsert keeps the newest version.
 */
import type { Session } from "../core/wire";
import { migrate, type LazyTable } from "./schema";

export type { Session };

type Row = Omit<Session, "tags"> & { tags: string; flushed_version: number };

/**
 * Steps applied once each to an object whose sessions table was made before them (the table was
 * first made without these columns). Never edit one: add a step, and make SCHEMA say where they end.
 */
const STEPS = ["ALTER TABLE sessions ADD COLUMN handed_off_at TEXT", "ALTER TABLE sessions ADD COLUMN bot_misses INTEGER NOT NULL DEFAULT 0"];

/** Where STEPS end, made at once by a new object. */
const SCHEMA = [
  `CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    assigned_agent_id TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    opened_at TEXT NOT NULL,
    first_message_at TEXT,
    assigned_at TEXT,
    resolved_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    flushed_version INTEGER NOT NULL DEFAULT 0,
    handed_off_at TEXT,
    bot_misses INTEGER NOT NULL DEFAULT 0
  )`,
];

export class SessionStore {
  /** Made at the first session (a conversation whose visitor only connects has none); reads answer empty until then. */
  private readonly table: LazyTable;

  constructor(private readonly sql: SqlStorage) {
    this.table = migrate(sql, { versions: "sessions_schema", table: "sessions", steps: STEPS, schema: SCHEMA });
  }

  /** The newest session as last read or written (this object is the only writer); undefined: not read yet. */
  private newest: Session | null | undefined = undefined;

  /** The newest session, open or not. */
  latest(): Session | null {
    if (this.newest === undefined && !this.table.exists()) this.newest = null;
    if (this.newest === undefined) {
      const row = this.sql.exec<Row>("SELECT * FROM sessions ORDER BY opened_at DESC, rowid DESC LIMIT 1").toArray()[0];
      this.newest = row ? toSession(row) : null;
    }
    return this.newest;
  }

  /** The session in progress (with a bot or in the agents' hands), if any. */
  active(): Session | null {
    const s = this.latest();
    return s && s.status !== "resolved" ? s : null;
  }

  create(nowIso: string, status: "bot" | "open"): Session {
    const id = crypto.randomUUID();
    this.table.ensure();
    this.sql.exec("INSERT INTO sessions (id, status, opened_at) VALUES (?, ?, ?)", id, status, nowIso);
    this.maybeUnflushed = true;
    this.newest = this.get(id);
    return this.newest;
  }

  update(
    id: string,
    patch: Partial<Pick<Session, "status" | "assigned_agent_id" | "tags" | "first_message_at" | "assigned_at" | "resolved_at" | "handed_off_at" | "bot_misses">>,
  ): Session {
    const cols = Object.keys(patch) as (keyof typeof patch)[];
    if (cols.length === 0) return this.get(id);
    const values = cols.map((k) => (k === "tags" ? JSON.stringify(patch.tags) : (patch[k] as string | number | null)));
    this.sql.exec(`UPDATE sessions SET ${cols.map((c) => `${c} = ?`).join(", ")}, version = version + 1 WHERE id = ?`, ...values, id);
    this.maybeUnflushed = true;
    const session = this.get(id);
    if (this.newest?.id === id) this.newest = session;
    return session;
  }

  find(id: string): Session | null {
    if (!this.table.exists()) return null;
    const row = this.sql.exec<Row>("SELECT * FROM sessions WHERE id = ?", id).toArray()[0];
    return row ? toSession(row) : null;
  }

  get(id: string): Session {
    if (!this.table.exists()) throw new Error(`no session ${id}`);
    return toSession(this.sql.exec<Row>("SELECT * FROM sessions WHERE id = ?", id).one());
  }

  /** False once a read found nothing to flush and nothing changed since (this object is the only writer). */
  private maybeUnflushed = true;

  unflushed(): Session[] {
    if (!this.maybeUnflushed || !this.table.exists()) return [];
    const rows = this.sql.exec<Row>("SELECT * FROM sessions WHERE version > flushed_version").toArray().map(toSession);
    if (rows.length === 0) this.maybeUnflushed = false;
    return rows;
  }

  markFlushed(id: string, version: number): void {
    if (!this.table.exists()) return;
    this.sql.exec("UPDATE sessions SET flushed_version = MAX(flushed_version, ?) WHERE id = ?", version, id);
  }
}

function toSession(r: Row): Session {
  return {
    id: r.id,
    status: r.status,
    assigned_agent_id: r.assigned_agent_id,
    tags: JSON.parse(r.tags) as string[],
    opened_at: r.opened_at,
    first_message_at: r.first_message_at,
    assigned_at: r.assigned_at,
    resolved_at: r.resolved_at,
    handed_off_at: r.handed_off_at,
    bot_misses: r.bot_misses,
    version: r.version,
  };
}
