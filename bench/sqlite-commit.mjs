// What one message's SQLite write costs a Durable Object, without Parley: a small Worker under the
// Miniflare API whose objects each insert rows, one per transaction (a timer turn between rows lets
// the runtime commit, as one WebSocket message per event does), 100 objects at once. Prints
// workerd's CPU per row above a no-op loop for the relay's row (4 columns, no secondary index) and
// Parley's (the room's message row: 14 columns, the message id's and the client id's unique
// indexes, the idempotent insert), and per row inside one transaction.
//
//   node bench/sqlite-commit.mjs
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { childrenUsage } from "./lib/procs.mjs";
import { stateWorkDir } from "./lib/state-dir.mjs";

const ROWS = Number(process.env.SQLITE_COMMIT_ROWS ?? 5000);
const OBJECTS = 100;

const script = `import { DurableObject } from "cloudflare:workers";
export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS relay (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL)");
    sql.exec(\`CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, session_id TEXT NOT NULL,
      sender_type TEXT NOT NULL, sender_id TEXT NOT NULL, sender_name TEXT, content_type TEXT NOT NULL, content TEXT NOT NULL,
      rich_media TEXT, client_msg_id TEXT, fingerprint TEXT, created_ms INTEGER NOT NULL, status TEXT NOT NULL, private INTEGER NOT NULL DEFAULT 0)\`);
    sql.exec("CREATE UNIQUE INDEX IF NOT EXISTS messages_client_id ON messages (sender_type, sender_id, client_msg_id)");
    this.seq = 0;
  }
  async rows(kind, n, perTransaction) {
    const sql = this.ctx.storage.sql;
    for (let i = 0; i < n; i++) {
      if (perTransaction) await new Promise((r) => setTimeout(r, 0));
      const seq = ++this.seq;
      if (kind === "relay") sql.exec("INSERT INTO relay (seq, id, body, at) VALUES (?, ?, ?, ?)", seq, crypto.randomUUID(), "hello there " + i, Date.now());
      else if (kind === "parley")
        sql.exec(\`INSERT INTO messages (seq, id, session_id, sender_type, sender_id, sender_name, content_type, content, rich_media, client_msg_id, fingerprint, created_ms, status, private)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sender_type, sender_id, client_msg_id) DO NOTHING\`,
          seq, crypto.randomUUID(), "s-1", "agent", "agent-1", "Agent", "text", "hello there " + i, null, crypto.randomUUID(), "fp" + i, Date.now(), "SENT", 0).toArray();
    }
  }
}
export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const kind = u.searchParams.get("kind"), n = Number(u.searchParams.get("n")), objects = Number(u.searchParams.get("objects"));
    await Promise.all(Array.from({ length: objects }, (_, i) => env.ROOM.getByName(kind + u.searchParams.get("round") + ":" + i).rows(kind, n / objects, u.searchParams.get("tx") === "1")));
    return new Response("ok");
  },
};`;

const { dir } = stateWorkDir("parley-sqlite-commit-");
const mf = new Miniflare(
  convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: 0,
    resourcePersistencePath: join(dir, "state"),
    workers: [{ name: "sqlite-commit", modules: true, script, compatibilityDate: "2026-11-01", durableObjects: { ROOM: { className: "Room", useSQLite: true } } }],
  }),
);
try {
  const url = await mf.ready;
  const cpuMs = () => childrenUsage().cpuMs;
  const measure = async (kind, tx, round) => {
    await fetch(`${url.href}?kind=${kind}&n=${OBJECTS}&objects=${OBJECTS}&tx=${tx}&round=${round}`).then((r) => r.text()); // objects made
    const c0 = cpuMs();
    await fetch(`${url.href}?kind=${kind}&n=${ROWS}&objects=${OBJECTS}&tx=${tx}&round=${round}`).then((r) => r.text());
    return ((cpuMs() - c0) * 1000) / ROWS;
  };
  for (let round = 0; round < 2; round++) {
    const noop = await measure("noop", 1, round);
    const relay = await measure("relay", 1, round);
    const parley = await measure("parley", 1, round);
    const relayIn = await measure("relay", 0, round);
    const parleyIn = await measure("parley", 0, round);
    console.log(
      JSON.stringify({
        round,
        objects: OBJECTS,
        rows: ROWS,
        us_per_row_own_transaction_above_noop: { relay: Math.round(relay - noop), parley: Math.round(parley - noop) },
        us_per_row_in_one_transaction: { relay: Math.round(relayIn), parley: Math.round(parleyIn) },
        us_noop_turn: Math.round(noop),
      }),
    );
  }
} finally {
  await mf.dispose();
  rmSync(dir, { recursive: true, force: true });
}
