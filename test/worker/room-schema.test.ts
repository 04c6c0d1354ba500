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
import { Subscribers } from "../../src/conversation/subscribers";
import { Participants } from "../../src/conversation/participants";
import { UploadStore } from "../../src/conversation/uploads";
import { WebhookOutbox } from "../../src/conversation/webhook-outbox";
import { newOrg, openSocket } from "./helpers";

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

/**
 * Tables older deploys made when the object was constructed; a room now makes each at its store's
 * first write (frozen: these are the statements those deploys ran).
 */
const OLD_EAGER_TABLES: Record<string, string> = {
  subscribers: "CREATE TABLE IF NOT EXISTS subscribers (name TEXT PRIMARY KEY, audience TEXT NOT NULL)",
  remote_participants: "CREATE TABLE IF NOT EXISTS remote_participants (name TEXT PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, display TEXT)",
  agent_names: "CREATE TABLE IF NOT EXISTS agent_names (id TEXT PRIMARY KEY, display TEXT)",
  uploads: `CREATE TABLE IF NOT EXISTS uploads (
      token_hash TEXT PRIMARY KEY,
      file_id TEXT NOT NULL UNIQUE,
      principal TEXT NOT NULL,
      status TEXT NOT NULL,
      expires_ms INTEGER NOT NULL,
      filename TEXT,
      mime TEXT,
      size INTEGER
    )`,
  webhook_outbox: "CREATE TABLE IF NOT EXISTS webhook_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, draft TEXT NOT NULL)",
};
const LAZY = Object.keys(OLD_EAGER_TABLES);

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
  const version = (table: string) => {
    const v = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", `schema:${table}`).toArray()[0]?.value;
    return v === undefined ? null : Number(v);
  };
  return {
    tables,
    shapes: Object.fromEntries(tables.map((t) => [t, shape(sql, t)])),
    log_version: version("messages"),
    sessions_version: version("sessions"),
  };
}

/** Storage as a deploy left it: the log `logSteps` steps in (null: the first deploy, no version tables), sessions likewise. */
function oldStorage(sql: SqlStorage, logSteps: number | null, sessionSteps: number | null) {
  for (const t of OURS) sql.exec(`DROP TABLE IF EXISTS ${t}`);
  // Those deploys counted versions in the tables above, not in meta; and made every store's table.
  sql.exec("DELETE FROM meta WHERE key LIKE 'schema:%'");
  for (const statement of Object.values(OLD_EAGER_TABLES)) sql.exec(statement);
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

/** A new object's schema once its log and sessions have been written (each store makes its table at its first write). */
function madeLatest(sql: SqlStorage) {
  const sessions = new SessionStore(sql);
  const session = sessions.create("2026-01-01T00:00:00.000Z", "open");
  new MessageLog(sql, () => "conv-new").append({ content: "hi", content_type: "text", rich_media: null, client_msg_id: undefined, private: false }, { type: "end_user", id: "u1", name: null }, session.id, null, 1000);
  return schemaOf(sql);
}

describe("conversation object schema", () => {
  it("a new object makes its log and sessions at the latest schema at their first write, recorded as at the last step", async () => {
    await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => {
      const sql = state.storage.sql;
      // Constructed, nothing written: only the room's meta (no version table per store; the
      // versions are in meta), and the stores answer empty.
      expect(schemaOf(sql).tables).toEqual(["meta"]);
      const log = new MessageLog(sql, () => "conv-new");
      const sessions = new SessionStore(sql);
      expect(log.head()).toBe(0);
      expect(log.latest(10, 0, "staff")).toEqual([]);
      expect(log.after(0, 10, "end_user")).toEqual([]);
      expect(log.byId("m1")).toBeNull();
      expect(log.byClientId({ type: "end_user", id: "u1", name: null }, "c1")).toBeNull();
      expect(log.unreadByEndUser()).toBe(0);
      expect(log.markRead(5, "end_user")).toBe(0);
      expect(log.maxSeqOf(["m1"])).toBe(0);
      expect(log.statuses(["m1"])).toEqual([]);
      expect(sessions.latest()).toBeNull();
      expect(sessions.unflushed()).toEqual([]);
      expect(schemaOf(sql).tables).toEqual(["meta"]);
      const s = madeLatest(sql);
      expect(s.log_version).toBe(OLD_LOG_STEPS.length);
      expect(s.sessions_version).toBe(OLD_SESSIONS_STEPS.length);
      expect(s.tables).toEqual(["messages", "meta", "sessions"]);
      // Constructing again (a wake after eviction) changes nothing, and finds the rows.
      new ConversationRoom(state, env);
      expect(schemaOf(sql)).toEqual(s);
      expect(new MessageLog(sql, () => "conv-new").head()).toBe(1);
      expect(new SessionStore(sql).latest()?.status).toBe("open");
    });
  });

  const cases: [string, number | null, number | null][] = [
    ["the first deploy (no version tables)", null, null],
    ...[1, 2, 3, 6].map((k): [string, number, number] => [`log at step ${k}, sessions at step ${k % 3}`, k, k % 3]),
  ];
  for (const [what, logSteps, sessionSteps] of cases) {
    it(`an object made by an older deploy (${what}) migrates step by step to the same schema, keeping its rows`, async () => {
      const latest = await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => madeLatest(state.storage.sql));
      await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => {
        const sql = state.storage.sql;
        oldStorage(sql, logSteps, sessionSteps);
        new ConversationRoom(state, env);
        // The same schema, plus the tables that deploy made at once (a new object makes them at first write).
        const migrated = schemaOf(sql);
        expect(migrated.tables).toEqual([...latest.tables, ...LAZY].sort());
        expect(migrated.log_version).toBe(latest.log_version);
        expect(migrated.sessions_version).toBe(latest.sessions_version);
        for (const t of latest.tables) expect(migrated.shapes[t]).toEqual(latest.shapes[t]);
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

  it("rarely used stores make their tables at first write, as older deploys made them at once; until then reads answer empty", async () => {
    // The shapes older deploys gave these tables.
    const old = await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => {
      for (const statement of Object.values(OLD_EAGER_TABLES)) state.storage.sql.exec(statement);
      return Object.fromEntries(LAZY.map((t) => [t, shape(state.storage.sql, t)]));
    });
    await runInDurableObject(freshRoom(), (_room: ConversationRoom, state) => {
      const sql = state.storage.sql;
      const subscribers = new Subscribers(sql);
      const participants = new Participants(sql);
      const uploads = new UploadStore(sql);
      const outbox = new WebhookOutbox(sql);
      const agent = { type: "agent" as const, id: "a1", name: "Ann" };
      // Reads and removals before any write: empty answers, no table made.
      expect(subscribers.list()).toEqual([]);
      subscribers.remove("sio-1");
      expect(participants.remotePresent(agent)).toBe(false);
      expect(participants.removeRemote("sio-1")).toBeNull();
      expect(participants.agent("a1")).toEqual({ type: "agent", id: "a1", name: null });
      expect(uploads.get("h1")).toBeNull();
      expect(uploads.byFileId("f1")).toBeNull();
      expect(uploads.start("h1", Date.now())).toBe(false);
      expect(outbox.size()).toBe(0);
      expect(outbox.oldest(10)).toEqual([]);
      outbox.add([]);
      expect(schemaOf(sql).tables).toEqual(["meta"]);
      // The first write makes each table, at the old shape, and the store works on it.
      subscribers.add({ name: "sio-1", audience: "staff" });
      participants.addRemote("sio-1", agent);
      participants.remember(agent);
      const upload = uploads.create("h1", agent, Date.now() + 60_000);
      outbox.add([{ type: "message.created", id: "e1" } as never]);
      for (const t of LAZY) expect(shape(sql, t)).toEqual(old[t]);
      expect(subscribers.list()).toEqual([{ name: "sio-1", audience: "staff" }]);
      expect(participants.remotePresent(agent)).toBe(true);
      expect(participants.agent("a1").name).toBe("Ann");
      expect(uploads.byFileId(upload.file_id)?.status).toBe("pending");
      expect(uploads.start("h1", Date.now())).toBe(true);
      expect(outbox.size()).toBe(1);
      // A later object (after an eviction) finds them and their rows.
      const again = { subscribers: new Subscribers(sql), participants: new Participants(sql), uploads: new UploadStore(sql), outbox: new WebhookOutbox(sql) };
      expect(again.subscribers.list()).toHaveLength(1);
      expect(again.participants.removeRemote("sio-1")).toEqual(agent);
      expect(again.uploads.get("h1")?.status).toBe("uploading");
      expect(again.outbox.oldest(10)).toHaveLength(1);
    });
  });

  it("a visitor who only connects leaves one table in the room's SQLite: meta (no key-value table for partyserver's name record)", async () => {
    const org = await newOrg();
    const s = await openSocket(`/ws/visitor?key=${org.pk}&external_id=schema-${crypto.randomUUID()}`);
    const ready = await s.next((f) => f.type === "ready");
    expect(ready).toMatchObject({ head_seq: 0, messages: [], session: null });
    await runInDurableObject(env.CONVERSATION.getByName(ready.conversation_id), (room: ConversationRoom, state) => {
      const all = state.storage.sql.exec<{ type: string; name: string }>("SELECT type, name FROM sqlite_master ORDER BY name").toArray();
      expect(all.map((r) => r.name)).toEqual(["meta", "sqlite_autoindex_meta_1"]);
      expect(room.name).toBe(ready.conversation_id);
    });
    // Other keys still go to storage.
    await runInDurableObject(env.CONVERSATION.getByName(ready.conversation_id), async (_room: ConversationRoom, state) => {
      await state.storage.put("k", 1);
      expect(await state.storage.get("k")).toBe(1);
      expect(await state.storage.get("__ps_name")).toBe(ready.conversation_id);
    });
    s.ws.close();
  });
});
