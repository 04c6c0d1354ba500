// bench/results/load-<date>.md from the JSON lines of one `npm run load`.
import { writeFileSync } from "node:fs";

const ms = (s) => (s && s.p50 !== null ? `p50 ${s.p50} / p99 ${s.p99} ms` : "n/a");

/** The few numbers of a case that say what happened. */
export function headline(r) {
  if (r.error) return `did not complete: ${r.error}`;
  const srv = r.server ? `; server ${r.server.cpu_ms_per_s} ms CPU/s, RSS peak ${r.server.rss_mb_peak} MB` : "";
  switch (r.case) {
    case "L1":
    case "L1relay":
      return `${r.sockets_open}/${r.sockets_asked} sockets open in ${r.open_seconds} s (RSS ${r.server_after_open.rss_mb_start} → ${r.server_after_open.rss_mb_end} MB, ${r.server_after_open.open_files_peak} open files); ${r.acked}/${r.messages_sent} acked, ${r.deliveries} deliveries, fan-out ${ms(r.fanout_ms)}, last socket ${ms(r.last_socket_ms)}; ${r.checks.complete}/${r.checks.sockets} sockets complete, ${r.checks.duplicated} dup, ${r.checks.gaps} gaps; ${r.d1 ? `D1 ${r.d1.rows}/${r.d1.acked}` : "no D1 (relay)"}${srv}`;
    case "L2":
      return `${r.acked}/${r.sends} acked (${Object.keys(r.refused).length ? JSON.stringify(r.refused) : "no refusals"}, ${r.ack_timeouts} unanswered), seq ${r.seq_first}..${r.seq_last} ${r.seq_unique_contiguous ? "contiguous" : "NOT contiguous"}, ${r.msgs_per_s} msg/s, ack ${ms(r.ack_ms)}; ${r.checks.complete}/${r.checks.sockets} sockets complete; D1 ${r.d1.rows_with_prefix} rows${srv}`;
    case "L3":
      return `${r.polls} polls over ${r.conversations} conversations held ${r.hold_seconds} s (${r.empty_returns_during_hold} empty returns re-polled; server ${r.server_while_idle.cpu_ms_per_s} ms CPU/s while they waited, ${r.server_while_idle.open_files_peak} open files); ${r.returned_with_message}/${r.polls} returned their message, send-to-return ${ms(r.send_to_return_ms)}${r.send_ack_ms ? `, the send's own ack ${ms(r.send_ack_ms)}` : ""}${r.loadgen ? ` (load generator ${r.loadgen.cpu_ms_per_s} ms CPU/s, event-loop delay p99 ${r.loadgen.event_loop_delay_p99_ms} ms)` : ""}; poll errors ${JSON.stringify(r.poll_errors)}; ${r.d1 ? `D1 ${r.d1.rows}/${r.d1.acked}` : "no D1 (relay)"}${srv}`;
    case "L4":
      return `${r.sockets} sockets; runtime down ${r.down_ms} ms, all back ${r.all_reconnected_ms_after_stop} ms after the stop (${r.connect_attempts} connect attempts); ${r.recovered_from_log}/${r.reconnects} resumes recovered from the room's log, ${r.resync_required} resync; ${r.messages_acked} acked (${r.send_retries} retried sends); ${r.checks.complete}/${r.checks.sockets} clients complete, ${r.checks.duplicated} dup, ${r.checks.gaps} gaps, ${r.checks.reordered} reordered; ${r.d1 ? `D1 ${r.d1.rows}/${r.d1.acked}` : "no D1 (relay)"}${srv}`;
    case "L5":
      return `${r.conversations} conversations × ${r.size.seconds} s at ${r.offered_msgs_per_s} msg/s offered: ${r.acked}/${r.sent} acked (${r.achieved_msgs_per_s} msg/s), ack ${ms(r.ack_ms)}; D1 lag ${ms(r.d1_lag_ms)} (max ${r.d1_lag_ms.max}); D1 ${r.d1.rows}/${r.d1.acked}, ${r.d1.duplicated} dup${srv}`;
    case "L6":
      return `${r.messages_acked} messages in ${r.produce_seconds} s with the receiver down ${r.receiver_down_s} s; after it came up: first POST ${r.first_post_after_up_ms} ms, drained in ${r.drain_seconds_after_up} s at ${r.deliveries_per_s}/s; ${r.message_events_delivered}/${r.messages_acked} message events, ${r.posts} POSTs, ${r.redelivered_webhook_ids} redelivered ids, largest payload ${r.max_payload_bytes} B${srv}`;
    case "L7":
      return `${r.broadcast_mb} MB in ${r.messages} messages past ${r.readers} readers (latency ${ms(r.reader_latency_ms)}, ${r.reader_checks.complete}/${r.reader_checks.sockets} complete, ${r.readers_closed} closed); stalled socket ${r.stalled_close_code === null ? "never closed" : `closed ${r.stalled_close_code} ${r.stalled_close_reason}`} after ${r.stalled_before_close.received}/${r.messages} messages (${r.stalled_before_close.mb} MB); resume by seq ${r.stalled_resume_by_seq.recovered ? `recovered (${r.stalled_resume_by_seq.replayed} replayed)` : r.stalled_resume_by_seq.resync_required ? `resync_required (${r.stalled_resume_by_seq.refetched_over_rest} refetched over REST)` : "not recovered"}, complete ${r.stalled_resume_by_seq.complete}; server RSS +${r.server_rss_growth_mb} MB`;
    default:
      return "";
  }
}

/** meta: {title, setup} (markdown lines); results: the JSON lines, parsed. */
export function writeLoadReport(file, meta, results) {
  const rows = results.map((r) => `| ${r.case} | ${r.asked} | ${JSON.stringify(r.size)}${r.limit ? ` — ${r.limit}` : ""} | ${r.pass ? "pass" : "**fail**"} | ${headline(r)} | ${r.fails.join("; ") || "—"} |`);
  writeFileSync(
    file,
    [
      `# ${meta.title}`,
      "",
      ...meta.setup,
      "",
      "| case | RELIABILITY.md asks | size run | result | numbers | why it failed |",
      "|---|---|---|---|---|---|",
      ...rows,
      "",
      "## The JSON lines (stdout of the run)",
      "",
      ...results.map((r) => `### ${r.case}\n\n\`\`\`json\n${JSON.stringify(r, null, 1)}\n\`\`\`\n`),
    ].join("\n"),
  );
}
