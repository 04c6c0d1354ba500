/**
 * A conversation object's SQLite schema. A new object is made at the latest schema at once; an
 * object made by an older deploy (DO storage outlives deploys) is brought there step by step and
 * keeps its rows. Old storage is made here by hand with the statements the older deploys ran
 * (frozen below), inside a real object, and a room is then constructed on it.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ConversationRoom } from "../../src/conversation/room";
import { MessageLog } from "../../src/conversation/log";
import { SessionStore } from "../../src/conversation/sessions";

/** The log's steps as deploys ran them, in order (log_schema counts them; the first deploy had no log_schema). */
const OLD_LOG_STEPS = [
  `CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    sender_type TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    rich_media TEXT,
    client_msg_id TEXT UNIQUE,
    fingerprint TEXT,
    created_ms INTEGER NOT NULL,
    status TEXT NOT NULL
  )`,
  "ALTER TABLE messages ADD COLUMN private INTEGER NOT NULL DEFAULT 0",
  `CREATE TABLE messages_v3 (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    sender_type TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    sender_name TEXT,
    content_type TEXT NOT NULL,
    content TEXT NOT NULL,
    rich_media TEXT,
    client_msg_id TEXT,
    fingerprint TEXT,
    created_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0
  )`,
  "INSERT INTO messages_v3 SELECT seq, id, session_id, sender_type, sender_id, sender_name, content_type, content, rich_media, client_msg_id, fingerprint, created_ms, status, private FROM messages",
  "DROP TABLE messages",
  "ALTER TABLE messages_v3 RENAME TO messages",
  "CREATE UNIQUE INDEX messages_client_id ON messages (sender_type, sender_id, client_msg_id)",
];

/** The sessions table as the first deploy made it, then its steps (sessions_schema counts them). */
const OLD_SESSIONS_TABLE = `CREATE TABLE IF NOT EXISTS sessions (
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
)`;
const OLD_SESSIONS_STEPS = ["ALTER TABLE sessions ADD COLUMN handed_off_at TEXT", "ALTER TABLE sessions ADD COLUMN bot_misses INTEGER NOT NULL DEFAULT 0"];

const OURS = ["messages", "log_schema", "sessions", "sessions_schema"];

/** What matters of a table: its columns and its indexes (names, uniqueness, columns), in order. */
function shape(sql: SqlStorage, table: string) {
  const columns = sql.exec(`PRAGMA table_info(${table})`).toArray();
  const indexes = sql
    .exec<{ name: string; unique: number; origin: string; partial: number }>(`PRAGMA index_list(${table})`)
    .toArray()
    .map((i) => ({ name: i.name, unique: i.unique, origin: i.origin, partial: i.partial, columns: sql.exec(`PRAGMA index_info(${i.name})`).toArray().map((c) => c.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  return { columns, indexes };
}

function schemaOf(sql: SqlStorage) {
  const tables = sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
    .toArray()
    .map((r) => r.name);
  const version = (t: string) => sql.exec<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${t}`).one().v;
  return {
    tables,
    shapes: Object.fromEntries(tables.filter((t) => !t.endsWith("_schema")).map((t) => [t, shape(sql, t)])),
    log_version: version("log_schema"),
    sessions_version: version("sessions_schema"),
  };
}

/** Storage as a deploy left it: the log `logSteps` steps in (null: the first deploy, no version tables), sessions likewise. */
function oldStorage(sql: SqlStorage, logSteps: number | null, sessionSteps: number | null) {
  for (const t of OURS) sql.exec(`DROP TABLE IF EXISTS ${t}`);
  if (logSteps === null) sql.exec(OLD_LOG_STEPS[0]!);
  else {
    sql.exec("CREATE TABLE log_schema (version INTEGER NOT NULL)");
    for (let i = 0; i < logSteps; i++) {
      sql.exec(OLD_LOG_STEPS[i]!);
      sql.exec("INSERT INTO log_schema (version) VALUES (?)", i + 1);
    }
  }
  sql.exec(OLD_SESSIONS_TABLE);
  if (sessionSteps !== null) {
    sql.exec("CREATE TABLE sessions_schema (version INTEGER NOT NULL)");
    for (let i = 0; i < sessionSteps; i++) {
      sql.exec(OLD_SESSIONS_STEPS[i]!);
      sql.exec("INSERT INTO sessions_schema (version) VALUES (?)", i + 1);
    }
  }
  // Rows written by that deploy (columns every version has).
  sql.exec("INSERT INTO sessions (id, status, opened_at) VALUES ('s-old', 'open', '2026-01-01T00:00:00.000Z')");
  sql.exec(
    "INSERT INTO messages (seq, id, session_id, sender_type, sender_id, sender_name, content_type, content, rich_media, client_msg_id, fingerprint, created_ms, status) VALUES (1, 'm-old', 's-old', 'end_user', 'u1', NULL, 'text', 'from before', NULL, 'c1', 'f1', 1000, 'SENT')",
  );
}

const freshRoom = () => env.CONVERSATION.getByName(`schema-${crypto.randomUUID()}`);

describe("conversation object schema", () => {
  it("a new object is made at the latest schema at once, recorded as at the last step", async () => {
    await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => {
      const s = schemaOf(state.storage.sql);
      expect(s.log_version).toBe(OLD_LOG_STEPS.length);
      expect(s.sessions_version).toBe(OLD_SESSIONS_STEPS.length);
      expect(s.tables).toContain("messages");
      expect(s.tables).not.toContain("messages_v3");
      // Constructing again (a wake after eviction) changes nothing.
      new ConversationRoom(state, env);
      expect(schemaOf(state.storage.sql)).toEqual(s);
    });
  });

  const cases: [string, number | null, number | null][] = [
    ["the first deploy (no version tables)", null, null],
    ...[1, 2, 3, 6].map((k): [string, number, number] => [`log at step ${k}, sessions at step ${k % 3}`, k, k % 3]),
  ];
  for (const [what, logSteps, sessionSteps] of cases) {
    it(`an object made by an older deploy (${what}) migrates step by step to the same schema, keeping its rows`, async () => {
      const latest = await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => schemaOf(state.storage.sql));
      await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => {
        const sql = state.storage.sql;
        oldStorage(sql, logSteps, sessionSteps);
        new ConversationRoom(state, env);
        expect(schemaOf(sql)).toEqual(latest);
        // The rows survived, and the migrated tables work as a new object's do.
        const log = new MessageLog(sql, () => "conv-old");
        const sessions = new SessionStore(sql);
        expect(log.head()).toBe(1);
        expect(log.byId("m-old")).toMatchObject({ content: "from before", private: false, client_msg_id: "c1" });
        expect(sessions.latest()).toMatchObject({ id: "s-old", status: "open", handed_off_at: null, bot_misses: 0 });
        // Client ids are the sender's own since the rebuild: another sender may reuse c1, the same may not.
        const draft = { content: "again", content_type: "text" as const, rich_media: null, client_msg_id: "c1", private: false };
        expect(log.appendIfNew(draft, { type: "agent", id: "a1", name: "A" }, "s-old", "f2", 2000)).toMatchObject({ seq: 2 });
        expect(log.appendIfNew(draft, { type: "end_user", id: "u1", name: null }, "s-old", "f2", 3000)).toBeNull();
        expect(sessions.update("s-old", { bot_misses: 2 })).toMatchObject({ bot_misses: 2, version: 2 });
      });
    });
  }
});
