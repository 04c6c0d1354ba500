// Resource use of a process tree, read from /proc (Linux): RSS and CPU time of a server and all
// its descendants (wrangler's node process and its workerd, or the peer's one node process).
import { readdirSync, readFileSync } from "node:fs";

const TICK_MS = 10; // USER_HZ is 100 on Linux
const PAGE_KB = 4;

function stat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // rest[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15, rss = 24 (pages)
    return { ppid: Number(rest[1]), cpuMs: (Number(rest[11]) + Number(rest[12])) * TICK_MS, rssKb: Number(rest[21]) * PAGE_KB };
  } catch {
    return null;
  }
}

/** Every live pid under root (root included). */
export function treePids(root) {
  const children = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = stat(name);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop();
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

/** {cpuMs, rssKb, pids} summed over the tree of `root`. */
export function treeUsage(root) {
  let cpuMs = 0;
  let rssKb = 0;
  const pids = treePids(root);
  for (const pid of pids) {
    const st = stat(pid);
    if (!st) continue;
    cpuMs += st.cpuMs;
    rssKb += st.rssKb;
  }
  return { cpuMs, rssKb, pids: pids.length };
}

/** The 1-minute load average and the core count. */
export function machineLoad() {
  const [one, five, fifteen] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return { load1: one, load5: five, load15: fifteen };
}
