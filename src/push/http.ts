/** One HTTP attempt to a push service, and the outcome vocabulary the senders share. */

export const ATTEMPT_TIMEOUT_MS = 5_000;

export type SendOutcome =
  | { kind: "sent"; status: number; id: string | null }
  /** The service says the token is dead (FCM 404 / UNREGISTERED, APNs 410 / Unregistered): forget the device. */
  | { kind: "unregistered"; status: number; reason: string }
  /** Worth another try: 429, 5xx, a timeout, a connection error, or an expired auth token (`refreshAuth`). */
  | { kind: "retry"; status: number | null; reason: string; retryAfterMs?: number; refreshAuth?: boolean }
  | { kind: "failed"; status: number | null; reason: string };

export type Answer = { ok: true; res: Response; text: string } | { ok: false; error: string };

export async function post(url: string, init: { headers: Record<string, string>; body: string }, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<Answer> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { method: "POST", headers: init.headers, body: init.body, redirect: "manual", signal });
    const text = await res.text();
    return { ok: true, res, text };
  } catch (err) {
    const timedOut = signal.aborted || (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"));
    return { ok: false, error: timedOut ? `timed out after ${timeoutMs} ms` : `connection failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Retry-After in ms (seconds or an HTTP date), if present. */
export function retryAfterMs(res: Response, now = Date.now()): number | undefined {
  const v = res.headers.get("retry-after");
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function json(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export const snippet = (text: string) => text.replace(/\s+/g, " ").slice(0, 300);
