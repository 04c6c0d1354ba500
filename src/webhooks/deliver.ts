/**
 * One delivery attempt: POST the signed body to the endpoint and classify the answer.
 *
 * 2xx is delivered. 410 Gone disables the endpoint. Everything else is a failure to retry:
 * 3xx (redirects are never followed: redirect "manual"), 4xx, 5xx, a timeout (3 s, body
 * included) and a connection error. 429 and 503 may carry Retry-After, which the retry honours.
 */
import { signatureHeader } from "./signature";

export const ATTEMPT_TIMEOUT_MS = 3_000;
export const USER_AGENT = "Parley-Webhooks/1";
/** Queues refuse longer retry delays. */
export const MAX_DELAY_SECONDS = 12 * 3600;
/** Backoff base when WEBHOOK_BACKOFF_BASE_SECONDS is not set (production). */
export const DEFAULT_BACKOFF_BASE_SECONDS = 10;
/** Each retry waits this many times longer than the previous one. */
export const BACKOFF_FACTOR = 4;

export type AttemptOutcome =
  | { kind: "delivered"; status: number }
  | { kind: "gone"; status: 410; error: string }
  | { kind: "failed"; status: number | null; error: string; retryAfterSeconds?: number };

export async function attemptDelivery(url: string, secrets: string[], webhookId: string, body: string, timeoutMs = ATTEMPT_TIMEOUT_MS): Promise<AttemptOutcome> {
  const timestamp = Math.floor(Date.now() / 1000);
  const headers = {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "webhook-id": webhookId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": await signatureHeader(secrets, webhookId, timestamp, body),
  };
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  let detail = "";
  try {
    res = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal });
    detail = res.status >= 200 && res.status < 300 ? await drain(res) : await snippet(res);
  } catch (err) {
    const timedOut = signal.aborted || (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError"));
    return { kind: "failed", status: null, error: timedOut ? `timed out after ${timeoutMs / 1000} s` : `connection failed: ${errorText(err)}` };
  }
  if (res.status >= 200 && res.status < 300) return { kind: "delivered", status: res.status };
  if (res.status === 410) return { kind: "gone", status: 410, error: `HTTP 410 Gone: endpoint disabled${detail ? `: ${detail}` : ""}` };
  if (res.status >= 300 && res.status < 400) {
    const location = res.headers.get("location");
    return { kind: "failed", status: res.status, error: `HTTP ${res.status}: redirects are not followed${location ? ` (to ${location.slice(0, 200)})` : ""}` };
  }
  const retryAfter = res.status === 429 || res.status === 503 ? parseRetryAfter(res.headers.get("retry-after")) : undefined;
  return { kind: "failed", status: res.status, error: `HTTP ${res.status}${detail ? `: ${detail}` : ""}`, ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }) };
}

/** Seconds before the next attempt after `attempts` failed ones: base x 4^(attempts-1), capped at 12 h. */
export function backoffSeconds(env: { WEBHOOK_BACKOFF_BASE_SECONDS?: string }, attempts: number): number {
  const configured = Number(env.WEBHOOK_BACKOFF_BASE_SECONDS);
  const base = env.WEBHOOK_BACKOFF_BASE_SECONDS !== undefined && env.WEBHOOK_BACKOFF_BASE_SECONDS !== "" && Number.isFinite(configured) && configured >= 0 ? configured : DEFAULT_BACKOFF_BASE_SECONDS;
  const exponent = Math.max(0, Math.min(attempts - 1, 20));
  return Math.min(MAX_DELAY_SECONDS, Math.round(base * BACKOFF_FACTOR ** exponent));
}

/** Retry-After as delta-seconds or an HTTP date, clamped to what a queue retry accepts. */
export function parseRetryAfter(value: string | null, nowMs = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  const seconds = /^\d+$/.test(trimmed) ? Number(trimmed) : (Date.parse(trimmed) - nowMs) / 1000;
  if (!Number.isFinite(seconds)) return undefined;
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(seconds)));
}

/** The first bytes of an error answer, for the delivery log. */
async function snippet(res: Response, max = 200): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(bytes.slice(0, max)).replace(/\s+/g, " ").trim();
}

async function drain(res: Response): Promise<string> {
  await res.body?.cancel().catch(() => {});
  return "";
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}
