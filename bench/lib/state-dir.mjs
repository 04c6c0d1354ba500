// Where the bench's servers keep their state (local D1, Durable Object storage, the peer's SQLite):
// all three on the same filesystem, tmpfs when the machine has one. On this class of VM the disk
// now and then holds a write or an fsync for 100 ms or more, and the runtime's storage commits wait
// on it: with the state on the disk, S5's send-to-return p99 was 98-143 ms and on tmpfs 16-20 ms in
// the same hour (200 polls), S1's p99 14.4 against 5.8 ms for Parley and 2.7 against 1.8 for the
// relay (docs/scaling.md). Either way a commit is durable against a process crash, which is what
// the fault tests exercise; a power loss is the disk's question, and on Cloudflare storage is not
// this machine's disk. BENCH_STATE_DIR=<dir> puts it elsewhere (BENCH_STATE_DIR=/tmp: the disk).
import { existsSync, mkdtempSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TMPFS_MAGIC = 0x01021994;

export function stateRoot() {
  if (process.env.BENCH_STATE_DIR) return process.env.BENCH_STATE_DIR;
  return existsSync("/dev/shm") && statfsSync("/dev/shm").type === TMPFS_MAGIC ? "/dev/shm" : tmpdir();
}

/** A fresh work dir under stateRoot(), and what kind of filesystem it is on (for the report). */
export function stateWorkDir(prefix) {
  const root = stateRoot();
  const dir = mkdtempSync(join(root, prefix));
  return { dir, fs: statfsSync(dir).type === TMPFS_MAGIC ? "tmpfs" : "disk", root };
}
