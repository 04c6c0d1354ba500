import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

const built = new WeakMap<D1Database, ReturnType<typeof build>>();
const build = (d1: D1Database) => drizzle(d1, { schema });

/** Drizzle over a D1 binding, built once per binding (building walks the whole schema). */
export const database = (d1: D1Database) => {
  let db = built.get(d1);
  if (!db) {
    db = build(d1);
    built.set(d1, db);
  }
  return db;
};
export type Database = ReturnType<typeof database>;
export { schema };

const preparedByBinding = new WeakMap<D1Database, Map<unknown, unknown>>();

/**
 * A hot query built and prepared once per D1 binding, its per-call values as `sql.placeholder`s:
 * drizzle rebuilds a query tree and its SQL text on every plain call, which was a third of a
 * REST send's CPU (key lookup + conversation lookup).
 */
export function prepared<T>(d1: D1Database, build: (db: Database) => T): T {
  let cache = preparedByBinding.get(d1);
  if (!cache) preparedByBinding.set(d1, (cache = new Map()));
  let query = cache.get(build) as T | undefined;
  if (query === undefined) cache.set(build, (query = build(database(d1))));
  return query;
}
