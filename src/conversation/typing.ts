/**
 * Who is typing in a conversation. Memory only: typing is never persisted, and an indicator lost
 * to an eviction simply expires on the clients (they clear it after TYPING_TTL_MS too).
 */
import type { Principal } from "../core/message";

export const TYPING_TTL_MS = 6_000;
/**
 * A typist's `typing: true` reaches the others at most once per this many ms (a keystroke each
 * is coalesced); each extends the indicator, and clients keep it for TYPING_TTL_MS.
 */
export const TYPING_REFRESH_MS = 2_000;

export class TypingState {
  private readonly until = new Map<string, { who: Principal; expiresAt: number; toldAt: number }>();

  /** Returns true when the others should hear of it: a new indicator, or a refresh that is due. */
  start(who: Principal, now: number): boolean {
    const key = keyOf(who);
    const shown = this.until.get(key);
    const tell = !shown || now - shown.toldAt >= TYPING_REFRESH_MS;
    this.until.set(key, { who, expiresAt: now + TYPING_TTL_MS, toldAt: tell ? now : shown.toldAt });
    return tell;
  }

  /** Returns true when an indicator was showing. */
  clear(who: Principal): boolean {
    return this.until.delete(keyOf(who));
  }

  expire(now: number): Principal[] {
    const gone: Principal[] = [];
    for (const [key, t] of this.until) {
      if (t.expiresAt <= now) {
        this.until.delete(key);
        gone.push(t.who);
      }
    }
    return gone;
  }

  nextExpiry(): number | null {
    let next: number | null = null;
    for (const t of this.until.values()) next = next === null ? t.expiresAt : Math.min(next, t.expiresAt);
    return next;
  }
}

const keyOf = (p: Principal) => `${p.type}:${p.id}`;
