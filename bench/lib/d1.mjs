// The local D1 file of a Parley run, read with node:sqlite (read-only): the bench's check that every
// acknowledged message reached D1 exactly once after the (asynchronous) flush.
import { DatabaseSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import { d1File } from "./servers.mjs";

/** Runs fn(db) on a fresh read-only connection to the state dir's D1 file. */
export function withD1(stateDir, fn) {
  const db = new DatabaseSync(d1File(stateDir), { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 2000");
    return fn(db);
  } finally {
    db.close();
  }
}

/** Messages whose client_msg_id starts with `<prefix>.`, as [{k, c}] (c: rows with that id). */
export function d1Counts(stateDir, prefix) {
  return withD1(stateDir, (db) => db.prepare("SELECT client_msg_id AS k, COUNT(*) AS c FROM messages WHERE client_msg_id LIKE ? GROUP BY client_msg_id").all(`${prefix}.%`));
}

/** Waits until every acked key is in D1 (or timeoutMs passes); {acked, rows, missing, duplicated, waited_ms, ok}. */
export async function d1Check(stateDir, prefix, ackedKeys, timeoutMs = 30_000) {
  const t0 = Date.now();
  let last = null;
  for (;;) {
    try {
      const rows = d1Counts(stateDir, prefix);
      const counts = new Map(rows.map((r) => [r.k, Number(r.c)]));
      const missing = ackedKeys.filter((k) => !counts.has(k)).length;
      const duplicated = rows.filter((r) => Number(r.c) > 1).length;
      last = { acked: ackedKeys.length, rows: rows.length, missing, duplicated, waited_ms: Date.now() - t0 };
    } catch (err) {
      last = { acked: ackedKeys.length, error: String(err.message ?? err), waited_ms: Date.now() - t0 };
    }
    if ((last.missing === 0 && !last.error) || Date.now() - t0 > timeoutMs) break;
    await sleep(200);
  }
  last.ok = last.missing === 0 && last.duplicated === 0 && !last.error;
  return last;
}
