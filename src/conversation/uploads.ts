/**
 * Upload intents of one conversation, in its object's SQLite: a single-use, short-lived token per
 * upload (only its hash is stored), who asked for it, and what was stored in R2.
 * pending -> uploading -> uploaded -> finished (the file message exists).
 */
import type { Principal } from "../core/message";
import { LazyTable } from "./schema";

export interface Upload {
  token_hash: string;
  file_id: string;
  principal: Principal;
  status: "pending" | "uploading" | "uploaded" | "finished";
  expires_ms: number;
  filename: string | null;
  mime: string | null;
  size: number | null;
}

type Row = Omit<Upload, "principal"> & { principal: string };

export class UploadStore {
  /** Made at the first upload URL (most conversations never upload). */
  private readonly table: LazyTable;

  constructor(private readonly sql: SqlStorage) {
    this.table = new LazyTable(sql, "uploads", [
      `CREATE TABLE IF NOT EXISTS uploads (
        token_hash TEXT PRIMARY KEY,
        file_id TEXT NOT NULL UNIQUE,
        principal TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        filename TEXT,
        mime TEXT,
        size INTEGER
      )`,
    ]);
  }

  create(tokenHash: string, principal: Principal, expiresMs: number): Upload {
    this.table.ensure();
    const fileId = crypto.randomUUID();
    this.sql.exec("INSERT INTO uploads (token_hash, file_id, principal, status, expires_ms) VALUES (?, ?, ?, 'pending', ?)", tokenHash, fileId, JSON.stringify(principal), expiresMs);
    return this.get(tokenHash)!;
  }

  get(tokenHash: string): Upload | null {
    if (!this.table.exists()) return null;
    const row = this.sql.exec<Row>("SELECT * FROM uploads WHERE token_hash = ?", tokenHash).toArray()[0];
    return row ? { ...row, principal: JSON.parse(row.principal) as Principal } : null;
  }

  byFileId(fileId: string): Upload | null {
    if (!this.table.exists()) return null;
    const row = this.sql.exec<Row>("SELECT * FROM uploads WHERE file_id = ?", fileId).toArray()[0];
    return row ? { ...row, principal: JSON.parse(row.principal) as Principal } : null;
  }

  /** Moves pending -> uploading (once); false when the token is unknown, used or expired. */
  start(tokenHash: string, now: number): boolean {
    if (!this.table.exists()) return false;
    return this.sql.exec("UPDATE uploads SET status = 'uploading' WHERE token_hash = ? AND status = 'pending' AND expires_ms > ?", tokenHash, now).rowsWritten === 1;
  }

  /** A failed upload may be tried again with the same token while it lasts. */
  abort(tokenHash: string): void {
    if (!this.table.exists()) return;
    this.sql.exec("UPDATE uploads SET status = 'pending' WHERE token_hash = ? AND status = 'uploading'", tokenHash);
  }

  complete(tokenHash: string, meta: { filename: string; mime: string; size: number }): void {
    if (!this.table.exists()) return;
    this.sql.exec("UPDATE uploads SET status = 'uploaded', filename = ?, mime = ?, size = ? WHERE token_hash = ?", meta.filename, meta.mime, meta.size, tokenHash);
  }

  finish(tokenHash: string): void {
    if (!this.table.exists()) return;
    this.sql.exec("UPDATE uploads SET status = 'finished' WHERE token_hash = ?", tokenHash);
  }
}
