/**
 * Support sessions of one conversation (open -> resolved; the next end-user message opens a new
 * one), in the conversation object's SQLite. Every change bumps `version`; the flush copies rows
 * whose version is ahead of `flushed_version` to D1, where an upsert keeps the newest version.
 */
export interface Session {
  id: string;
  status: "open" | "resolved";
  assigned_agent_id: string | null;
  tags: string[];
  opened_at: string;
  first_message_at: string | null;
  assigned_at: string | null;
  resolved_at: string | null;
  version: number;
}

type Row = Omit<Session, "tags"> & { tags: string; flushed_version: number };

export class SessionStore {
  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS sessions (
      id TEXT PRIMARY KEY,
      status TEXT NOT NULL,
      assigned_agent_id TEXT,
      tags TEXT NOT NULL DEFAULT '[]',
      opened_at TEXT NOT NULL,
      first_message_at TEXT,
      assigned_at TEXT,
      resolved_at TEXT,
      version INTEGER NOT NULL DEFAULT 1,
      flushed_version INTEGER NOT NULL DEFAULT 0
    )`);
  }

  /** The newest session, open or not. */
  latest(): Session | null {
    const row = this.sql.exec<Row>("SELECT * FROM sessions ORDER BY opened_at DESC, rowid DESC LIMIT 1").toArray()[0];
    return row ? toSession(row) : null;
  }

  open(): Session | null {
    const s = this.latest();
    return s?.status === "open" ? s : null;
  }

  create(nowIso: string): Session {
    const id = crypto.randomUUID();
    this.sql.exec("INSERT INTO sessions (id, status, opened_at) VALUES (?, 'open', ?)", id, nowIso);
    return this.get(id);
  }

  update(id: string, patch: Partial<Pick<Session, "status" | "assigned_agent_id" | "tags" | "first_message_at" | "assigned_at" | "resolved_at">>): Session {
    const cols = Object.keys(patch) as (keyof typeof patch)[];
    if (cols.length === 0) return this.get(id);
    const values = cols.map((k) => (k === "tags" ? JSON.stringify(patch.tags) : (patch[k] as string | null)));
    this.sql.exec(`UPDATE sessions SET ${cols.map((c) => `${c} = ?`).join(", ")}, version = version + 1 WHERE id = ?`, ...values, id);
    return this.get(id);
  }

  find(id: string): Session | null {
    const row = this.sql.exec<Row>("SELECT * FROM sessions WHERE id = ?", id).toArray()[0];
    return row ? toSession(row) : null;
  }

  get(id: string): Session {
    return toSession(this.sql.exec<Row>("SELECT * FROM sessions WHERE id = ?", id).one());
  }

  unflushed(): Session[] {
    return this.sql.exec<Row>("SELECT * FROM sessions WHERE version > flushed_version").toArray().map(toSession);
  }

  markFlushed(id: string, version: number): void {
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
    version: r.version,
  };
}
