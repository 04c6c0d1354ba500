/**
 * Who is typing in a conversation. Memory only: typing is never persisted, and an indicator lost
 * to an eviction simply expires on the clients (they clear it after TYPING_TTL_MS too).
 */
import type { Principal } from "../core/message";

export const TYPING_TTL_MS = 6_000;

export class TypingState {
  private readonly until = new Map<string, { who: Principal; expiresAt: number }>();

  /** Returns true when this starts a new indicator (false when it only extends one). */
  start(who: Principal, now: number): boolean {
    const key = keyOf(who);
    const isNew = !this.until.has(key);
    this.until.set(key, { who, expiresAt: now + TYPING_TTL_MS });
    return isNew;
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
