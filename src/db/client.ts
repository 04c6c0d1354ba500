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
