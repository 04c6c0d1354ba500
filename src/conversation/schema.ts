/**
 * Schema versions of the stores in a conversation object's SQLite. DO storage outlives deploys, so
 * an object made by an older deploy is brought up to date by its store's steps, applied once each
 * in order, its progress recorded in the object's `meta` table (`schema:<table>`). A new object
 * (the store's table does not exist yet) is made at the latest schema at once and recorded as being
 * there: every new conversation would otherwise replay the store's whole history
 * (test/worker/room-schema.test.ts checks that both paths end at the same schema). A new object
 * makes it at the store's first write (LazyTable): a conversation whose visitor only connects never
 * writes a message or a session.
 *
 * Older deploys counted each store's steps in a table of its own (`versions`): such an object's
 * count moves into `meta` and the table is dropped, since every table in an object's SQLite costs
 * memory while the object is loaded.
 */
export function migrate(sql: SqlStorage, store: { versions: string; table: string; steps: readonly string[]; schema: readonly string[] }): LazyTable {
  sql.exec(META_TABLE);
  const key = `schema:${store.table}`;
  // A new object makes the table at its first write, at the latest schema.
  const table = new LazyTable(sql, store.table, store.schema, () => setVersion(sql, key, store.steps.length));
  if (!table.exists()) return table;
  const recorded = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray()[0]?.value;
  let version = recorded === undefined ? null : Number(recorded);
  if (version === null) {
    // Counted by an older deploy in the store's own table, or (the first deploy) not at all.
    version = hasTable(sql, store.versions) ? (sql.exec<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${store.versions}`).one().v ?? 0) : 0;
    setVersion(sql, key, version);
    sql.exec(`DROP TABLE IF EXISTS ${store.versions}`);
  }
  for (let i = version; i < store.steps.length; i++) {
    sql.exec(store.steps[i]!);
    setVersion(sql, key, i + 1);
  }
  return table;
}

/** The object's key-value table (the room's state, and the stores' schema versions). */
export const META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

function setVersion(sql: SqlStorage, key: string, version: number): void {
  sql.exec("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, String(version));
}

export function hasTable(sql: SqlStorage, name: string): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray().length > 0;
}

/**
 * A store's table made on its first write, not when the object is constructed: most conversations
 * never use most stores (uploads, the webhook outbox, Socket.IO subscribers...), and every table and
 * index in an object's SQLite costs memory while the object is loaded (SQLite parses the whole
 * schema, and caches the pages it touches). Reads of a table not made yet answer empty. This object
 * is the only writer of its SQLite, so whether the table exists is read once per object lifetime.
 */
export class LazyTable {
  private made: boolean | null = null;

  constructor(
    private readonly sql: SqlStorage,
    private readonly name: string,
    private readonly schema: readonly string[],
    private readonly onCreate?: () => void,
  ) {}

  /** Whether the table exists (made by this object earlier, in any deploy). */
  exists(): boolean {
    this.made ??= hasTable(this.sql, this.name);
    return this.made;
  }

  /** Before a write: makes the table if it does not exist yet. */
  ensure(): void {
    if (this.exists()) return;
    for (const statement of this.schema) this.sql.exec(statement);
    this.onCreate?.();
    this.made = true;
  }
}
