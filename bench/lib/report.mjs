// bench/results/<date>.md and its SVG chart (drawn by hand: polylines on a log-latency axis).
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { round } from "./stats.mjs";

const LABELS = {
  peer: "Node Socket.IO peer",
  relay: "bare DO relay (ceiling)",
  "parley-ws": "Parley native WS",
  "parley-sio": "Parley Socket.IO",
  "parley-poll": "Parley REST long-poll",
  "parley-rest": "Parley REST send (seed 000)",
};
const COLORS = { peer: "#d9822b", relay: "#555555", "parley-ws": "#1f6feb", "parley-sio": "#8250df" };

const fmt = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? "–" : typeof x === "number" ? String(round(x, d)) : String(x));
const ratio = (a, b, d = 2) => (typeof a === "number" && typeof b === "number" && b !== 0 ? round(a / b, d) : null);
const fmt2 = (x) => fmt(x, 2);
const ok = (b) => (b === null || b === undefined ? "–" : b ? "yes" : "**no**");

function get(results, scenario, target) {
  return results[scenario]?.targets?.[target];
}

/** S2 steps of every target as {target, points:[{x, p50, p99, pass}]}. */
function series(results, scenario) {
  const t = results[scenario]?.targets ?? {};
  return Object.entries(t)
    .filter(([, v]) => Array.isArray(v?.steps))
    .map(([name, v]) => ({ name, points: v.steps.map((s) => ({ x: s.offered_msgs_s, p50: s.latency_ms.p50, p99: s.latency_ms.p99, pass: s.pass })) }));
}

export function chartSvg(results, scenario, title) {
  const all = series(results, scenario);
  const W = 760;
  const H = 420;
  const m = { l: 64, r: 190, t: 36, b: 52 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = all.flatMap((s) => s.points.map((p) => p.x));
  const xMax = Math.max(100, ...xs) * 1.05;
  const yMin = 0.5;
  const yMax = 2000;
  const X = (x) => m.l + (x / xMax) * pw;
  const Y = (y) => {
    const v = Math.min(yMax, Math.max(yMin, y ?? yMax));
    return m.t + ph - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
  };
  const el = [];
  el.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  el.push(`<text x="${m.l}" y="22" font-size="15" font-weight="bold">${title}</text>`);
  // grid and axes
  for (const y of [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]) {
    el.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(y)}" y2="${Y(y)}" stroke="${y === 50 ? "#cf222e" : "#e5e5e5"}" stroke-width="${y === 50 ? 1.5 : 1}"${y === 50 ? ' stroke-dasharray="6 4"' : ""}/>`);
    el.push(`<text x="${m.l - 8}" y="${Y(y) + 4}" font-size="11" text-anchor="end">${y}</text>`);
  }
  el.push(`<text x="${m.l + 6}" y="${Y(50) - 5}" font-size="11" text-anchor="start" fill="#cf222e">p99 limit 50 ms</text>`);
  const step = xMax > 4000 ? 1000 : xMax > 1500 ? 500 : xMax > 600 ? 200 : 100;
  for (let x = 0; x <= xMax; x += step) {
    el.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${m.t}" y2="${m.t + ph}" stroke="#f0f0f0"/>`);
    el.push(`<text x="${X(x)}" y="${m.t + ph + 16}" font-size="11" text-anchor="middle">${x}</text>`);
  }
  el.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  el.push(`<text x="${m.l + pw / 2}" y="${H - 12}" font-size="12" text-anchor="middle">offered load (messages/s)</text>`);
  el.push(`<text x="16" y="${m.t + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${m.t + ph / 2})">latency, send to receipt (ms, log)</text>`);
  // lines
  all.forEach((s, i) => {
    const color = COLORS[s.name] ?? "#000";
    const pts = (k) => s.points.map((p) => `${round(X(p.x), 1)},${round(Y(p[k]), 1)}`).join(" ");
    el.push(`<polyline fill="none" stroke="${color}" stroke-width="2.2" points="${pts("p99")}"/>`);
    el.push(`<polyline fill="none" stroke="${color}" stroke-width="1.2" stroke-dasharray="4 3" points="${pts("p50")}"/>`);
    for (const p of s.points) {
      el.push(`<circle cx="${round(X(p.x), 1)}" cy="${round(Y(p.p99), 1)}" r="3.2" fill="${p.pass ? color : "#ffffff"}" stroke="${color}" stroke-width="1.5"/>`);
    }
    const ly = m.t + 14 + i * 20;
    el.push(`<line x1="${m.l + pw + 14}" x2="${m.l + pw + 40}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2.2"/>`);
    el.push(`<text x="${m.l + pw + 46}" y="${ly}" font-size="12">${LABELS[s.name] ?? s.name}</text>`);
  });
  const ly = m.t + 14 + all.length * 20 + 10;
  el.push(`<text x="${m.l + pw + 14}" y="${ly}" font-size="11" fill="#555">solid: p99, dashed: p50</text>`);
  el.push(`<text x="${m.l + pw + 14}" y="${ly + 16}" font-size="11" fill="#555">hollow dot: step failed</text>`);
  el.push(`<text x="${m.l + pw + 14}" y="${ly + 32}" font-size="11" fill="#555">(p99 ≥ 50 ms, or a loss)</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">\n${el.join("\n")}\n</svg>\n`;
}

function stepTable(v) {
  const rows = ["| offered/s | received/s | p50 ms | p99 ms | max ms | server CPU µs/msg | loadgen CPU ms | generator lag p99 ms | lost | dup | reord | refused/timeouts | pass |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"];
  for (const s of v.steps ?? []) {
    rows.push(
      `| ${s.offered_msgs_s}${s.retry_of ? ` (retry; first try p99 ${fmt(s.retry_of.latency_ms.p99)} ms)` : ""} | ${fmt(s.achieved_msgs_s, 0)} | ${fmt(s.latency_ms.p50)} | ${fmt(s.latency_ms.p99)} | ${fmt(s.latency_ms.max)} | ${fmt(s.server_cpu_us_per_msg, 0)} | ${fmt(s.loadgen_cpu_ms, 0)} | ${fmt(s.generator_lag_ms?.p99)} | ${s.lost} | ${s.duplicated} | ${s.reordered} | ${s.refused}/${s.ack_timeouts} | ${ok(s.pass)} |`,
    );
  }
  return rows.join("\n");
}

function d1Text(c) {
  if (!c?.d1) return "";
  const d = c.d1;
  return d.error ? `D1: error ${d.error}` : `D1: ${d.acked} acked, ${d.missing} missing, ${d.duplicated} duplicated (all present after ${d.waited_ms} ms)`;
}

function topStep(v) {
  const passed = (v?.steps ?? []).filter((s) => s.pass);
  return passed[passed.length - 1];
}

export function writeReport(dir, meta, results) {
  mkdirSync(dir, { recursive: true });
  const day = meta.started.slice(0, 10);
  let base = meta.config.quick ? `${day}-quick` : day;
  if (!meta.config.quick && existsSync(join(dir, `${base}.md`)) && process.env.BENCH_OVERWRITE !== "1") base = `${day}-${meta.started.slice(11, 16).replace(":", "")}`;
  const svgName = `${base}.svg`;
  writeFileSync(join(dir, svgName), chartSvg(results, "S2", "S2: latency against offered load (100 conversations, one load generator, 2 cores)"));
  if (results.S3) writeFileSync(join(dir, `${base}-s3.svg`), chartSvg(results, "S3", "S3: one hot conversation, latency against offered load"));

  const T = (s, t) => get(results, s, t);
  const sus = (s, t) => T(s, t)?.sustained_msgs_s;
  /** "≥ N" when the ramp never failed: N is the top of the rate list, not the target's limit. */
  const atTop = (s, t) => {
    const v = T(s, t);
    return v?.sustained_msgs_s !== undefined && !v.first_failure && v.steps?.length > 0 && v.sustained_msgs_s === v.steps[v.steps.length - 1].offered_msgs_s;
  };
  const susText = (s, t) => (sus(s, t) === undefined ? "–" : `${atTop(s, t) ? "≥ " : ""}${sus(s, t)}`);
  const s1 = (t, k) => T("S1", t)?.latency_ms?.[k];
  const cpu1 = (t) => T("S1", t)?.server_cpu_us_per_msg;
  const cpuTop = (t) => topStep(T("S2", t))?.server_cpu_us_per_msg;
  const mem = (t) => T("S4", t)?.kb_per_connection;
  // A returning visitor's connection (its conversation already in D1), when the run measured it.
  const memIdle = (t) => T("S4", t)?.returning?.kb_per_connection ?? mem(t);
  const parleys = ["parley-ws", "parley-sio"];

  const L = [];
  L.push(`# Bench results ${meta.started.slice(0, 16).replace("T", " ")} UTC${meta.config.quick ? " (BENCH_QUICK smoke run)" : ""}`);
  L.push("");
  L.push(`Parley ${meta.parley_commit.slice(0, 12)}${meta.dirty_worktree_ignored ? " (a clean export of the commit; the work tree's uncommitted changes were not measured)" : ""}, `
    + `measured by \`npm run bench\` in ${meta.minutes} min. Machine: ${meta.machine.cores} cores (${meta.machine.cpu}), ${meta.machine.mem_gib} GiB. `
    + `Load average before the run ${meta.load_before.load1} / ${meta.load_before.load5} / ${meta.load_before.load15} (1/5/15 min), after ${meta.load_after.load1} / ${meta.load_after.load5} / ${meta.load_after.load15}.`);
  L.push("");
  const runtime = meta.runtime?.label ?? `\`wrangler dev\` ${meta.versions.wrangler} (workerd ${meta.versions.workerd}) with \`X_LOCAL_OBSERVABILITY=false X_LOCAL_EXPLORER=false CLOUDFLARE_CF_FETCH_ENABLED=false\``;
  L.push(`Runtimes: Parley and the relay under ${runtime}, local D1 and Durable Object state in fresh dirs; the peer is socket.io ${meta.versions["socket.io"]} on Node ${meta.versions.node} (one process, SQLite WAL, synchronous=NORMAL). `
    + `All three keep their state on ${meta.state_fs === "tmpfs" ? "tmpfs (/dev/shm)" : meta.state_fs ?? "the disk"} (\`bench/lib/state-dir.mjs\`: this VM's disk holds a storage commit for 100 ms or more now and then, which decided the p99s when the state was on it). `
    + `One load generator (this Node process, socket.io-client ${meta.versions["socket.io-client"]}, ws, fetch) drives all three over 127.0.0.1 and shares the two cores with them: its own CPU is in the tables (loadgen CPU).`);
  L.push("");
  L.push("Latency is from the send call on one side to the receipt on the other side of the conversation (an end user and an agent per conversation). A step is *sustained* when its p99 is under 50 ms and every message was acknowledged and received once, in order; a step that fails on latency alone is retried once (both tries are reported). Each scenario and Parley surface runs in its own organisation (S5: organisations of 50 conversations), because Parley's org hub keeps every unassigned session in its routing queue and leftovers would slow the next scenario.");
  L.push("");

  // ---- targets
  L.push("## Against the issue's targets");
  L.push("");
  L.push("| target | measured | goal | met |");
  L.push("|---|---|---|---|");
  const relayS2 = sus("S2", "relay");
  const relayS3 = sus("S3", "relay");
  L.push(`| S2 native WS / relay | ${fmt(sus("S2", "parley-ws"), 0)} / ${fmt(relayS2, 0)} msg/s = ${fmt2(ratio(sus("S2", "parley-ws"), relayS2))}x | ≥ 0.8x | ${ok(ratio(sus("S2", "parley-ws"), relayS2) >= 0.8)} |`);
  L.push(`| S3 native WS / relay | ${fmt(sus("S3", "parley-ws"), 0)} / ${fmt(relayS3, 0)} msg/s = ${fmt2(ratio(sus("S3", "parley-ws"), relayS3))}x | ≥ 0.8x | ${ok(ratio(sus("S3", "parley-ws"), relayS3) >= 0.8)} |`);
  L.push(`| S2 Socket.IO / relay | ${fmt(sus("S2", "parley-sio"), 0)} / ${fmt(relayS2, 0)} msg/s = ${fmt2(ratio(sus("S2", "parley-sio"), relayS2))}x | ≥ 0.7x | ${ok(ratio(sus("S2", "parley-sio"), relayS2) >= 0.7)} |`);
  L.push(`| S3 Socket.IO / relay | ${fmt(sus("S3", "parley-sio"), 0)} / ${fmt(relayS3, 0)} msg/s = ${fmt2(ratio(sus("S3", "parley-sio"), relayS3))}x | ≥ 0.7x | ${ok(ratio(sus("S3", "parley-sio"), relayS3) >= 0.7)} |`);
  L.push(`| S4 memory per idle connection, native WS / relay | ${fmt(memIdle("parley-ws"))} / ${fmt(mem("relay"))} KB = ${fmt2(ratio(memIdle("parley-ws"), mem("relay")))}x${T("S4", "parley-ws")?.returning ? ` (returning visitors; new visitors ${fmt(mem("parley-ws"))} KB = ${fmt2(ratio(mem("parley-ws"), mem("relay")))}x, each also creating its end user and conversation in the local D1)` : ""} | ≤ 1.2x | ${ok(ratio(memIdle("parley-ws"), mem("relay")) <= 1.2)} |`);
  for (const p of parleys) L.push(`| S1 p99, ${LABELS[p]} vs peer | ${fmt(s1(p, "p99"))} vs ${fmt(s1("peer", "p99"))} ms | no worse than the peer | ${ok(s1(p, "p99") !== undefined && s1("peer", "p99") !== undefined ? s1(p, "p99") <= s1("peer", "p99") : null)} |`);
  const s5 = T("S5", "parley-poll");
  if (s5 && !s5.error) {
    L.push(`| S5 a waiting long-poll costs no CPU | server ${fmt(s5.idle_server_cpu_ms_per_s)} ms/s with ${s5.waiting_before_sends} polls waiting, ${fmt(s5.baseline_server_cpu_ms_per_s)} ms/s with none | ≈ baseline | ${ok(s5.idle_server_cpu_ms_per_s <= s5.baseline_server_cpu_ms_per_s + 5)} |`);
    const split = s5.send_to_return_ms_ws ? ` (agent's WebSocket ${fmt(s5.send_to_return_ms_ws.p99)}, REST ${fmt(s5.send_to_return_ms_rest.p99)})` : "";
    L.push(`| S5 send-to-return p99 | ${fmt(s5.send_to_return_ms.p99)} ms${split} | < 20 ms | ${ok(s5.send_to_return_ms.p99 < 20)} |`);
  }
  const s6 = results.S6?.targets ?? {};
  for (const p of ["parley-ws", "parley-rest"]) if (s6[p]) L.push(`| S6 cold first message p99, ${LABELS[p]} | ${fmt(s6[p].open_plus_first_ms.p99)} ms${p === "parley-ws" ? " (open + first ack)" : ""} | < 50 ms | ${ok(s6[p].open_plus_first_ms.p99 < 50)} |`);
  const corr = [];
  for (const s of ["S1", "S2", "S3"]) for (const [t, v] of Object.entries(results[s]?.targets ?? {})) if (v?.correctness) corr.push([s, t, v.correctness]);
  const parleyCorrect = corr.filter(([, t]) => t.startsWith("parley")).every(([, , c]) => c.ok) && (!s5 || (s5.correctness?.d1?.ok && s5.correctness.lost === 0)) && (!results.S6?.d1 || results.S6.d1.ok);
  L.push(`| zero lost, duplicated or reordered messages, D1 exactly once | ${parleyCorrect ? "none in any Parley scenario" : "see Correctness"} | none | ${ok(parleyCorrect)} |`);
  L.push("");

  // ---- ratios
  L.push("## Ratios (Parley / peer, Parley / ceiling)");
  L.push("");
  L.push("Throughput: higher is better. Latency, CPU and memory: lower is better. The ceiling is the bare Durable Object relay.");
  L.push("");
  L.push("| metric | peer | relay | Parley WS | Parley SIO | WS/peer | WS/relay | SIO/peer | SIO/relay |");
  L.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  const row = (name, f, d = 1) => {
    const v = { peer: f("peer"), relay: f("relay"), ws: f("parley-ws"), sio: f("parley-sio") };
    L.push(`| ${name} | ${fmt(v.peer, d)} | ${fmt(v.relay, d)} | ${fmt(v.ws, d)} | ${fmt(v.sio, d)} | ${fmt2(ratio(v.ws, v.peer))} | ${fmt2(ratio(v.ws, v.relay))} | ${fmt2(ratio(v.sio, v.peer))} | ${fmt2(ratio(v.sio, v.relay))} |`);
  };
  row("S2 sustained msg/s, 100 conversations", (t) => sus("S2", t), 0);
  row("S3 sustained msg/s, one conversation", (t) => sus("S3", t), 0);
  const tops = ["S2", "S3"].flatMap((s) => ["peer", "relay", "parley-ws", "parley-sio"].filter((t) => atTop(s, t)).map((t) => `${s} ${LABELS[t]}`));
  if (tops.length) L.push(`| (never failed up to the top of its rate list, so its limit is higher: ${tops.join(", ")}) |||||||||`);
  row("S1 p50 latency ms (100 msg/s)", (t) => s1(t, "p50"));
  row("S1 p99 latency ms (100 msg/s)", (t) => s1(t, "p99"));
  row("S1 server CPU µs per message", cpu1, 0);
  row("S1 server CPU µs per message, less the server's idle CPU", (t) => T("S1", t)?.server_cpu_us_per_msg_net, 0);
  row("S2 server CPU µs per message at the top sustained step", cpuTop, 0);
  row("S4 memory per idle connection KB", mem);
  row("S4 server CPU ms/s with 2,000 idle connections", (t) => T("S4", t)?.idle_cpu_ms_per_s);
  L.push("");
  L.push(`![S2 latency against offered load](${svgName})`);
  L.push("");
  if (results.S3) {
    L.push(`![S3 latency against offered load](${base}-s3.svg)`);
    L.push("");
  }

  // ---- per scenario
  for (const [s, what] of [
    ["S1", "100 conversations at 1 msg/s each (end users write, agents receive)"],
    ["S2", "ramp over 100 conversations to the highest sustained rate (agents write, end users receive)"],
    ["S3", "one hot conversation at its maximum rate (the agent writes, the end user receives)"],
  ]) {
    if (!results[s]) continue;
    L.push(`## ${s}: ${what}`);
    L.push("");
    for (const [t, v] of Object.entries(results[s].targets)) {
      L.push(`### ${LABELS[t] ?? t}${v?.sustained_msgs_s !== undefined ? `: sustained ${susText(s, t)} msg/s` : ""}`);
      L.push("");
      if (v?.error || v?.skipped) {
        L.push(`Not measured: ${v.error ?? v.skipped}`);
        L.push("");
        continue;
      }
      L.push(stepTable(v));
      L.push("");
      const c = v.correctness;
      L.push(`Correctness: ${c.acked} acked, ${c.received} received, ${c.lost} lost, ${c.duplicated} duplicated, ${c.reordered} reordered${c.stray ? `, ${c.stray} stray` : ""}${c.resumes?.resumes ? `; the receiving sockets resumed ${c.resumes.resumes} times after a close they did not ask for (${c.resumes.resyncs} caught up over REST)` : ""}. ${d1Text(c)}`);
      const fail = v.first_failure;
      if (fail) L.push(`First failing step: ${fail.offered_msgs_s}/s (p99 ${fmt(fail.latency_ms.p99)} ms, ${fail.lost} lost, ${fail.refused} refused, ${fail.ack_timeouts} ack timeouts${fail.errors?.length ? `; ${fail.errors[0]}` : ""}).`);
      L.push("");
    }
  }
  if (results.S4) {
    L.push(`## S4: ${results.S4.config.connections} idle connections`);
    const s4warm = Object.values(results.S4.targets).find((v) => v?.runtime_warm_up)?.runtime_warm_up;
    L.push("");
    L.push(`One end-user connection per fresh conversation (peer and Parley Socket.IO: a Socket.IO connection; relay and Parley WS: a WebSocket). Each target's server is restarted (same state)${s4warm ? `, warmed with ${fmt(s4warm.requests)} requests (the relay's plain, Parley's each one D1 read, an agent's \`/auth/me\`: workerd's RSS grows steeply with its first few thousand requests, more with D1 reads, \`bench/d1-heap.mjs\`, which would otherwise be charged to the first connections)` : ""} and left to settle. RSS is the server's whole process tree (its Node host process and workerd; under \`wrangler dev\` also the proxy's workerd) from /proc, 3 s after the last connection opened, minus the same just before the first; idle CPU is the next 5 s.`);
    L.push("");
    L.push("| target | opened | alive after 8 s | open time s | RSS before MiB | RSS after MiB | KB per connection | server CPU ms/s while idle | closed while idle |");
    L.push("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    const s4row = (label, v) => `| ${label} | ${v.opened}/${v.requested} | ${v.alive_after_idle} | ${v.open_seconds} | ${fmt(v.rss_before_kb / 1024)} | ${fmt(v.rss_after_kb / 1024)} | ${fmt(v.kb_per_connection)} | ${fmt(v.idle_cpu_ms_per_s)} | ${Object.entries(v.closed_while_idle ?? {}).map(([k, n]) => `${n}× ${k}`).join(", ") || "none"} |`;
    for (const [t, v] of Object.entries(results.S4.targets)) {
      if (v?.error || v?.skipped) L.push(`| ${LABELS[t]} | ${v.error ?? v.skipped} ||||||||`);
      else {
        L.push(s4row(`${LABELS[t]}${v.returning ? ", new visitors" : ""}`, v));
        if (v.returning) L.push(s4row(`${LABELS[t]}, returning visitors`, v.returning));
      }
    }
    if (T("S4", "parley-ws")?.returning) {
      L.push("");
      L.push("Parley's new visitors each create an end user and a conversation in D1, which locally runs in the same workerd process, so their count includes the local D1's growth (on Cloudflare D1 is elsewhere). Returning visitors have their conversations made through the widget API first; the runtime is restarted (no object in memory), then each reconnects: the connection and its conversation object. The target row uses the returning visitors.");
    }
    L.push("");
  }
  if (s5) {
    L.push(`## S5: ${results.S5.config.polls} waiting long-polls (seed 000 \`GET /api/chat/poll?wait=30\`)`);
    L.push("");
    if (s5.error) L.push(`Not measured: ${s5.error}`);
    else {
      L.push(`${results.S5.restarted ? "Parley's runtime was restarted first (same state), as for S4 and S6. " : ""}Each conversation first got one agent message (opening its support session; ${fmt(s5.setup_seconds)} s for all), then its visitor long-polled from that message's timestamp. `
        + `${s5.waiting_before_sends} polls were waiting; the server tree used ${fmt(s5.idle_server_cpu_ms_per_s)} ms of CPU per second while they waited (${fmt(s5.baseline_server_cpu_ms_per_s)} ms/s with none; the load generator ${fmt(s5.idle_loadgen_cpu_ms_per_s)} ms/s). `
        + (s5.send_to_return_ms_ws
          ? `Then, while all of them waited, an agent wrote one message to ${s5.sends} of the conversations at ${results.S5.config.send_rate}/s, every other one from the agent's own WebSocket (the console's path) and the rest over REST (\`POST /api/conversations/:id/messages\`, Bearer sk_: a server integration): `
            + `send-to-return p50 ${fmt(s5.send_to_return_ms.p50)} ms, p99 ${fmt(s5.send_to_return_ms.p99)} ms, max ${fmt(s5.send_to_return_ms.max)} ms; `
            + `from the WebSocket p50 ${fmt(s5.send_to_return_ms_ws.p50)}, p99 ${fmt(s5.send_to_return_ms_ws.p99)} ms (its ack p50 ${fmt(s5.send_ack_ms_ws.p50)}, p99 ${fmt(s5.send_ack_ms_ws.p99)} ms), `
            + `over REST p50 ${fmt(s5.send_to_return_ms_rest.p50)}, p99 ${fmt(s5.send_to_return_ms_rest.p99)} ms (the request itself p50 ${fmt(s5.send_ack_ms_rest.p50)}, p99 ${fmt(s5.send_ack_ms_rest.p99)} ms); `
          : `Then, while all of them waited, an agent wrote one message to ${s5.sends ?? s5.polls} of the conversations over REST (\`POST /api/conversations/:id/messages\`, Bearer sk_) at ${results.S5.config.send_rate}/s: `
            + `send-to-return p50 ${fmt(s5.send_to_return_ms.p50)} ms, p99 ${fmt(s5.send_to_return_ms.p99)} ms, max ${fmt(s5.send_to_return_ms.max)} ms (the REST send itself: p50 ${fmt(s5.send_ack_ms.p50)}, p99 ${fmt(s5.send_ack_ms.p99)} ms); `)
        + `${s5.returned_with_the_message}/${s5.sends ?? s5.polls} of those polls returned with exactly their message, ${s5.early_returns} returned early${s5.rearmed_before_send ? ` (${s5.rearmed_before_send} empty returns before their send were re-armed, as clients do)` : ""}${s5.empty_after_send ? `; ${s5.empty_after_send} came back empty just after their send (the wait ended as the message was stored) and got it on the next poll, which their latency includes` : ""}. Server CPU ${fmt(s5.server_cpu_us_per_msg, 0)} µs per message. ${d1Text(s5.correctness)}`);
    }
    L.push("");
  }
  if (results.S6) {
    L.push(`## S6: cold start (${results.S6.config.conversations} conversations per target, one at a time)`);
    L.push("");
    L.push(`Eviction: ${results.S6.eviction}. Restart took ${Object.entries(results.S6.restart_ms ?? {}).map(([k, v]) => `${k} ${v} ms`).join(", ")}.`);
    L.push("");
    L.push("| target | open p50/p99 ms | first message p50/p99 ms | open + first p50/p99/max ms | warm second message p50/p99 ms | errors |");
    L.push("|---|---:|---:|---:|---:|---|");
    for (const [t, v] of Object.entries(results.S6.targets)) {
      L.push(`| ${LABELS[t]} | ${fmt(v.open_ms.p50)} / ${fmt(v.open_ms.p99)} | ${fmt(v.first_message_ms.p50)} / ${fmt(v.first_message_ms.p99)} | ${fmt(v.open_plus_first_ms.p50)} / ${fmt(v.open_plus_first_ms.p99)} / ${fmt(v.open_plus_first_ms.max)} | ${fmt(v.warm_second_message_ms.p50)} / ${fmt(v.warm_second_message_ms.p99)} | ${v.errors.join("; ") || "none"} |`);
    }
    L.push("");
    if (results.S6.d1) L.push(d1Text({ d1: results.S6.d1 }));
    L.push("");
  }
  L.push("## Configuration");
  L.push("");
  L.push("```json");
  L.push(JSON.stringify(meta.config, null, 1));
  L.push("```");
  const file = join(dir, `${base}.md`);
  writeFileSync(file, L.join("\n") + "\n");
  return file;
}
