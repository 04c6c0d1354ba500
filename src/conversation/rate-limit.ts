/**
 * Per-sender message rate limit inside the conversation object (the Workers rate-limit binding is
 * per location with fixed periods, so exact per-conversation limits live here). Memory only: an
 * eviction resets the window, which can only let a sender through, never drop accepted data.
 */
export const RATE_LIMIT_MESSAGES = 20;
export const RATE_LIMIT_WINDOW_MS = 10_000;

export class RateLimiter {
  private readonly sent = new Map<string, number[]>();

  /** Whether a send now would pass (nothing recorded). */
  allows(senderId: string, now: number): boolean {
    return (this.sent.get(senderId) ?? []).filter((t) => t > now - RATE_LIMIT_WINDOW_MS).length < RATE_LIMIT_MESSAGES;
  }

  /** Records a send and returns 0, or returns how many ms to wait (nothing recorded). */
  take(senderId: string, now: number): number {
    const recent = (this.sent.get(senderId) ?? []).filter((t) => t > now - RATE_LIMIT_WINDOW_MS);
    if (recent.length >= RATE_LIMIT_MESSAGES) {
      this.sent.set(senderId, recent);
      return recent[0]! + RATE_LIMIT_WINDOW_MS - now;
    }
    recent.push(now);
    this.sent.set(senderId, recent);
    return 0;
  }
}
