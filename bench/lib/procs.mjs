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

/** The same for this process's descendants only (the workerd of an in-process Miniflare). */
export function childrenUsage() {
  const all = treeUsage(process.pid);
  const self = stat(process.pid);
  return { cpuMs: all.cpuMs - self.cpuMs, rssKb: all.rssKb - self.rssKb, pids: all.pids - 1 };
}

/** The 1-minute load average and the core count. */
export function machineLoad() {
  const [one, five, fifteen] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return { load1: one, load5: five, load15: fifteen };
}

/**
 * Waits until the server's process tree is quiet (under `quietMs` of CPU in each of two
 * consecutive seconds), at most maxMs; returns how long it waited. Used before any idle or
 * cold measurement, so leftovers of the previous scenario (closing sockets, alarms) are not
 * counted.
 */
export async function settle(pid, maxMs = 30_000, quietMs = 40) {
  const t0 = Date.now();
  let quiet = 0;
  let prev = treeUsage(pid);
  while (Date.now() - t0 < maxMs && quiet < 2) {
    await new Promise((r) => setTimeout(r, 1000));
    const cur = treeUsage(pid);
    quiet = cur.cpuMs - prev.cpuMs <= quietMs ? quiet + 1 : 0;
    prev = cur;
  }
  return Date.now() - t0;
}

/**
 * Samples a process tree every `everyMs` until stop(): CPU used over the window and RSS at the
 * start, peak and end (MB). `pid` is a function, so a runtime restarted mid-window is followed.
 */
export function monitor(pid, everyMs = 500) {
  const mb = (kb) => Math.round(kb / 102.4) / 10;
  let cpuBase = 0;
  let last = treeUsage(pid());
  const first = last;
  let peak = last.rssKb;
  let peakFds = openFds(pid());
  const timer = setInterval(() => {
    let cur;
    try {
      cur = treeUsage(pid());
    } catch {
      return; // between a stop and a start
    }
    if (cur.cpuMs < last.cpuMs) cpuBase += last.cpuMs; // a new process tree: keep the old one's CPU
    last = cur;
    peak = Math.max(peak, cur.rssKb);
    try {
      peakFds = Math.max(peakFds, openFds(pid()));
    } catch {}
  }, everyMs);
  const t0 = Date.now();
  return {
    stop() {
      clearInterval(timer);
      const cur = treeUsage(pid());
      if (cur.cpuMs < last.cpuMs) cpuBase += last.cpuMs;
      peak = Math.max(peak, cur.rssKb);
      const seconds = (Date.now() - t0) / 1000;
      const cpuMs = cpuBase + cur.cpuMs - first.cpuMs;
      return { seconds: Math.round(seconds), cpu_ms: cpuMs, cpu_ms_per_s: Math.round(cpuMs / seconds), rss_mb_start: mb(first.rssKb), rss_mb_peak: mb(peak), rss_mb_end: mb(cur.rssKb), open_files_peak: peakFds };
    },
  };
}

/** Open file descriptors over a process tree. */
export function openFds(root) {
  let n = 0;
  for (const pid of treePids(root)) {
    try {
      n += readdirSync(`/proc/${pid}/fd`).length;
    } catch {}
  }
  return n;
}

/** The per-process open-file limit (soft) of the root of a tree. */
export function nofileLimit(pid) {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith("Max open files"));
  return Number(line?.split(/\s+/)[3]);
}

