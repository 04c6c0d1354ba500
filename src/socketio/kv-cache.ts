/**
 * A write-through cache over a Durable Object's synchronous KV storage. The object is the only
 * writer of its storage, so what it read or wrote stays true for its lifetime: a session object
 * reads its engine, socket and memberships from memory on every delivery and heartbeat instead of
 * from SQLite. Values are kept by reference: a caller that changes a value it got must `put` it.
 */
export class KvCache {
  /** key -> value; `undefined` records a known absence. */
  private readonly values = new Map<string, unknown>();
  /** Prefixes whose keys have all been read ("" is the whole store). */
  private readonly listed = new Set<string>();

  constructor(private readonly kv: SyncKvStorage) {}

  get<T>(key: string): T | undefined {
    if (this.values.has(key)) return this.values.get(key) as T | undefined;
    const value = this.kv.get<T>(key);
    this.values.set(key, value);
    return value;
  }

  put<T>(key: string, value: T): void {
    this.kv.put(key, value);
    this.values.set(key, value);
  }

  delete(key: string): void {
    this.kv.delete(key);
    this.values.set(key, undefined);
  }

  /** The stored entries whose key starts with `prefix`, in key order. */
  list<T>(prefix = ""): [string, T][] {
    if (!this.listed.has(prefix) && !this.listed.has("")) {
      for (const [key, value] of this.kv.list<T>({ prefix })) if (!this.values.has(key)) this.values.set(key, value);
      this.listed.add(prefix);
    }
    return [...this.values]
      .filter(([key, value]) => key.startsWith(prefix) && value !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as [string, T][];
  }

  /** After `storage.deleteAll()`: everything is known to be absent. */
  cleared(): void {
    this.values.clear();
    this.listed.clear();
    this.listed.add("");
  }
}
