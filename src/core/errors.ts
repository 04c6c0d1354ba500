/**
 * One error vocabulary for every surface. REST answers `{error:{code,message,retryable}}` with
 * the status below; sockets send `{type:"error", code, message, retryable}`.
 * Durable Object RPC cannot carry class instances, so objects return `Result` values and the
 * Worker turns a failure into an `ApiError`.
 */
export const ERRORS = {
  invalid_json: { status: 400, retryable: false },
  validation_failed: { status: 400, retryable: false },
  invalid_text: { status: 400, retryable: false },
  invalid_seq: { status: 400, retryable: false },
  content_length_mismatch: { status: 400, retryable: false },
  unknown_event: { status: 400, retryable: false },
  unauthorized: { status: 401, retryable: false },
  identity_required: { status: 401, retryable: false },
  invalid_credentials: { status: 401, retryable: false },
  forbidden: { status: 403, retryable: false },
  csrf_failed: { status: 403, retryable: false },
  origin_not_allowed: { status: 403, retryable: false },
  not_found: { status: 404, retryable: false },
  request_timeout: { status: 408, retryable: true },
  conflict: { status: 409, retryable: false },
  already_resolved: { status: 409, retryable: false },
  already_assigned: { status: 409, retryable: false },
  email_taken: { status: 409, retryable: false },
  idempotency_conflict: { status: 409, retryable: false },
  resync_required: { status: 409, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  unsupported_media_type: { status: 415, retryable: false },
  rate_limited: { status: 429, retryable: true },
  /** Sockets only: the frame before a 4009 close (a client too far behind: reconnect and resume). */
  slow_consumer: { status: 429, retryable: true },
  internal: { status: 500, retryable: true },
  unavailable: { status: 503, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  /** Seconds, for rate_limited. */
  retry_after?: number;
}

export type Result<T> = ({ ok: true } & T) | { ok: false; error: ErrorInfo };

export const fail = (code: ErrorCode, message: string, retry_after?: number): { ok: false; error: ErrorInfo } => ({
  ok: false,
  error: retry_after === undefined ? { code, message } : { code, message, retry_after },
});

export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
  static from(info: ErrorInfo): ApiError {
    return new ApiError(info.code, info.message, info.retry_after);
  }
}

export const errorBody = (code: ErrorCode, message: string) => ({
  error: { code, message, retryable: ERRORS[code].retryable },
});

/** Unwraps a DO result or throws its error for the HTTP layer. */
export function unwrap<R extends { ok: boolean }>(result: R): Extract<R, { ok: true }> {
  if (!result.ok) throw ApiError.from((result as unknown as { error: ErrorInfo }).error);
  return result as Extract<R, { ok: true }>;
}

/** A D1/SQLite UNIQUE constraint failure (drizzle wraps the driver's error in `cause`). */
export function isUniqueViolation(err: unknown): boolean {
  const text = (e: unknown): string => (e instanceof Error ? `${e.message} ${text(e.cause)}` : String(e ?? ""));
  return text(err).includes("UNIQUE constraint failed");
}
