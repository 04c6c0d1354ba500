/**
 * Schema versions of the stores in a conversation object's SQLite. DO storage outlives deploys, so
 * an object made by an older deploy is brought up to date by its store's steps, applied once each
 * in order and recorded in the store's version table. A new object (the store's table does not
 * exist yet) is made at the latest schema at once and recorded as being there: every new
 * conversation would otherwise replay the store's whole history (test/worker/room-schema.test.ts
 * checks that both paths end at the same schema).
 */
export function migrate(sql: SqlStorage, store: { versions: string; table: string; steps: readonly string[]; schema: readonly string[] }): void {
  sql.exec(`CREATE TABLE IF NOT EXISTS ${store.versions} (version INTEGER NOT NULL)`);
  if (!hasTable(sql, store.table)) {
    for (const statement of store.schema) sql.exec(statement);
    sql.exec(`INSERT INTO ${store.versions} (version) VALUES (?)`, store.steps.length);
    return;
  }
  const version = sql.exec<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${store.versions}`).one().v ?? 0;
  for (let i = version; i < store.steps.length; i++) {
    sql.exec(store.steps[i]!);
    sql.exec(`INSERT INTO ${store.versions} (version) VALUES (?)`, i + 1);
  }
}

export function hasTable(sql: SqlStorage, name: string): boolean {
  return sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray().length > 0;
}
