/**
 * Slow consumers on the native protocol (RELIABILITY.md L7, docs/protocol.md "Flow control").
 *
 * Workers' WebSockets have no `bufferedAmount`: the room cannot see how much of what it sent a
 * socket still holds. So clients confirm what they have taken in (`{"type":"received","seq":N}`,
 * at least every 50 message frames or 256 KiB of them; a `read` receipt counts too) and the room
 * counts, per socket, the `message` frames sent since its last confirmation. A socket more than
 * MAX_UNCONFIRMED_MESSAGES messages or MAX_UNCONFIRMED_BYTES behind, still so
 * SLOW_CONSUMER_GRACE_MS later, and silent (no confirmation for SLOW_CONSUMER_STALL_MS) or past
 * HARD_MAX_UNCONFIRMED_BYTES, is sent a last frame, the error `slow_consumer`, and closed with
 * SLOW_CONSUMER_CLOSE (4009) and gets nothing more; its client reconnects with `since`/`epoch`
 * and the replay fills the gap (or says `resync_required` past MAX_REPLAY).
 *
 * The error frame is how a client learns of the close in time: it sees the close frame at once,
 * but the WebSocket API reports the close only when the TCP connection ends, and workerd ends a
 * hibernatable socket's connection only when the object next hibernates, 10 s after its last
 * event (measured under `wrangler dev`: the close frame arrives in 20 ms, the end 10 s later). So
 * the Web SDK and the console drop the socket on the frame and reconnect at once.
 *
 * Cheap on the hot path: sending one message to N sockets adds it to two running totals (every
 * message, which staff sockets get; the non-private ones, which end users get) and to a ring of
 * recent seqs, O(1). Sockets are checked by a sweep that runs only once the totals have moved
 * past the bound from the least-confirmed socket the last sweep found (`floor`): while every
 * client confirms, one sweep per ~250 messages. A sweep costs one pass over the sockets.
 *
 * Memory only. After a hibernation wake or an eviction the totals start at zero and each socket
 * is charged from its first sweep or confirmation: more slack, never a wrong close.
 */

import type { ServerFrame } from "../core/wire";

/** A socket further behind than this many message frames is closed (the resume window, MAX_REPLAY). */
export const MAX_UNCONFIRMED_MESSAGES = 300;
/** ... or than this much message-frame text (JSON string length: bytes for ASCII, at most 3x in UTF-8). */
export const MAX_UNCONFIRMED_BYTES = 4 * 1024 * 1024;
/** The close code and reason for a slow consumer (4008 is `rate_limited`). */
export const SLOW_CONSUMER_CLOSE = 4009;
export const SLOW_CONSUMER_REASON = "slow_consumer";
const SLOW_CONSUMER_FRAME = JSON.stringify({
  type: "error",
  code: "slow_consumer",
  message: `this socket fell more than ${MAX_UNCONFIRMED_MESSAGES} messages or ${MAX_UNCONFIRMED_BYTES / 1024 / 1024} MiB behind and is closed (4009): reconnect with since and epoch`,
  retryable: true,
} satisfies ServerFrame);
// What clients are asked to keep to (confirm at least every CONFIRM_EVERY_MESSAGES frames or
// CONFIRM_EVERY_CHARS of them) is part of the wire contract: src/core/wire.ts.

/**
 * A socket found over the bound is closed if it is still over this long after (ms). The check runs
 * as an event after those already queued (the room handles events in arrival order), so a burst of
 * sends the room was still working through cannot make a client that confirms look stalled; the
 * delay covers the client's round trip.
 */
export const SLOW_CONSUMER_GRACE_MS = 1_000;
/**
 * ... and closed then only if it has confirmed nothing for this long (ms): a room too busy to keep
 * up (its input queued behind a burst) makes every reader look behind, but readers still confirm
 * as the room works through its input, while a stalled one confirms nothing at all.
 */
export const SLOW_CONSUMER_STALL_MS = 2_000;
/** Past this much unconfirmed message text a socket is closed after the grace, confirmations or not: the memory bound. */
export const HARD_MAX_UNCONFIRMED_BYTES = 8 * 1024 * 1024;
/** Recent messages whose totals a confirmation can name (older ones are past the bound anyway). */
const RING = 1024;

/** Stream 0: every message (staff sockets); 1: non-private messages (end-user sockets). */
type Stream = 0 | 1;

/** A socket's stream and that stream's totals at its last confirmation. */
interface SocketFlow {
  stream: Stream;
  count: number;
  bytes: number;
  /** When it last confirmed anything (or was first tracked). */
  at: number;
}

export class FlowControl {
  /** Message frames sent so far (this object's lifetime), per stream. */
  private readonly count = [0, 0];
  private readonly bytes = [0, 0];
  /** No socket of a stream confirmed less than this at the last sweep (or since: they only rise). */
  private readonly floorCount = [0, 0];
  private readonly floorBytes = [0, 0];
  private readonly sockets = new WeakMap<WebSocket, SocketFlow>();
  /**
   * Ring of recent messages: seq and both streams' totals after it. Made at the first message
   * (40 KiB): most rooms in memory are idle ones that never send while awake.
   */
  private ring: Float64Array | null = null;
  private ringStart = 0;
  private ringSize = 0;
  private lastSeq = 0;

  constructor(private readonly ctx: DurableObjectState) {}

  /** A socket opens: it owes nothing for what was sent before. */
  track(ws: WebSocket, endUser: boolean): void {
    const s: Stream = endUser ? 1 : 0;
    this.sockets.set(ws, { stream: s, count: this.count[s]!, bytes: this.bytes[s]!, at: Date.now() });
  }

  /**
   * A message frame of `chars` characters went to every open socket (staff sockets only when
   * `staffOnly`). Sweeps when some socket may now be over the bound.
   */
  sent(seq: number, chars: number, staffOnly: boolean): void {
    this.count[0]! += 1;
    this.bytes[0]! += chars;
    if (!staffOnly) {
      this.count[1]! += 1;
      this.bytes[1]! += chars;
    }
    if (seq > this.lastSeq) {
      // A re-announced older message (F2) has no entry: it only adds to the totals.
      this.lastSeq = seq;
      const i = ((this.ringStart + this.ringSize) % RING) * 5;
      if (this.ringSize < RING) this.ringSize++;
      else this.ringStart = (this.ringStart + 1) % RING;
      const ring = (this.ring ??= new Float64Array(RING * 5));
      ring[i] = seq;
      ring[i + 1] = this.count[0]!;
      ring[i + 2] = this.bytes[0]!;
      ring[i + 3] = this.count[1]!;
      ring[i + 4] = this.bytes[1]!;
    }
    if (this.over(0, this.floorCount[0]!, this.floorBytes[0]!) || this.over(1, this.floorCount[1]!, this.floorBytes[1]!)) this.sweep();
  }

  /** The client has taken in everything up to `seq` (a `received` frame, or a read receipt). */
  confirm(ws: WebSocket, endUser: boolean, seq: number): void {
    let f = this.sockets.get(ws);
    if (!f) {
      // Not seen since this object started: charge it from now.
      this.track(ws, endUser);
      return;
    }
    const s = f.stream;
    f.at = Date.now();
    if (seq >= this.lastSeq) {
      f.count = this.count[s]!;
      f.bytes = this.bytes[s]!;
      return;
    }
    const ring = this.ring;
    if (!ring) return; // nothing sent since this object started: nothing newer to credit
    // The newest ring entry at or before seq (entries are in seq order).
    let lo = 0;
    let hi = this.ringSize - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const i = ((this.ringStart + mid) % RING) * 5;
      if (ring[i]! <= seq) {
        found = i;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return; // older than the ring: nothing it confirms is newer than what we know
    const count = ring[found + 1 + s * 2]!;
    const bytes = ring[found + 2 + s * 2]!;
    if (count > f.count) f.count = count;
    if (bytes > f.bytes) f.bytes = bytes;
  }

  private over(s: Stream, count: number, bytes: number): boolean {
    return this.count[s]! - count > MAX_UNCONFIRMED_MESSAGES || this.bytes[s]! - bytes > MAX_UNCONFIRMED_BYTES;
  }

  /**
   * Finds the sockets over the bound and the new floor. A socket over the bound is not closed at
   * once: its confirmation may be waiting in the room's own input behind a burst of sends (the
   * room reads frames in arrival order). It is checked again after SLOW_CONSUMER_GRACE_MS, once the room has
   * worked through what had arrived, and closed if it is still over.
   */
  private sweep(): void {
    const endUsers = new Set(this.ctx.getWebSockets("end_user"));
    const floorCount = [this.count[0]!, this.count[1]!];
    const floorBytes = [this.bytes[0]!, this.bytes[1]!];
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.READY_STATE_OPEN) continue;
      let f = this.sockets.get(ws);
      if (!f) {
        // Opened before this object woke (or before tracking): charged from now.
        this.track(ws, endUsers.has(ws));
        f = this.sockets.get(ws)!;
      }
      const s = f.stream;
      if (this.over(s, f.count, f.bytes)) {
        this.suspects.add(ws);
        continue;
      }
      if (f.count < floorCount[s]!) floorCount[s] = f.count;
      if (f.bytes < floorBytes[s]!) floorBytes[s] = f.bytes;
    }
    for (const s of [0, 1] as const) {
      this.floorCount[s] = floorCount[s]!;
      this.floorBytes[s] = floorBytes[s]!;
    }
    if (this.suspects.size > 0 && !this.recheckTimer) this.recheckTimer = setTimeout(() => this.recheck(), SLOW_CONSUMER_GRACE_MS);
  }

  private readonly suspects = new Set<WebSocket>();
  private recheckTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * Closes the suspects still over the bound that have confirmed nothing for SLOW_CONSUMER_STALL_MS
   * (or are past the hard memory bound); those still confirming are checked again later; the
   * others are back under the floor's watch.
   */
  private recheck(): void {
    this.recheckTimer = null;
    const suspects = [...this.suspects];
    this.suspects.clear();
    const now = Date.now();
    let next = Infinity;
    for (const ws of suspects) {
      const f = this.sockets.get(ws);
      if (!f || ws.readyState !== WebSocket.READY_STATE_OPEN || !this.over(f.stream, f.count, f.bytes)) continue;
      const s = f.stream;
      if (now - f.at < SLOW_CONSUMER_STALL_MS && this.bytes[s]! - f.bytes <= HARD_MAX_UNCONFIRMED_BYTES) {
        this.suspects.add(ws); // behind but confirming: the room is busy, not the client stalled
        next = Math.min(next, f.at + SLOW_CONSUMER_STALL_MS);
        continue;
      }
      console.error(JSON.stringify({ at: "room.slow_consumer", unconfirmed_messages: this.count[s]! - f.count, unconfirmed_bytes: this.bytes[s]! - f.bytes }));
      try {
        ws.send(SLOW_CONSUMER_FRAME);
        ws.close(SLOW_CONSUMER_CLOSE, SLOW_CONSUMER_REASON);
      } catch {
        // already closing
      }
    }
    this.sweep();
    if (this.suspects.size > 0 && next < Infinity) {
      if (this.recheckTimer) clearTimeout(this.recheckTimer);
      this.recheckTimer = setTimeout(() => this.recheck(), Math.max(SLOW_CONSUMER_GRACE_MS, next - now));
    }
  }
}
