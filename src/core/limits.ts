/**
 * Abuse limits shared by the Worker and the objects (S15). Each is documented in
 * docs/guarantees.md with the test that holds it.
 */

/** New conversations one client IP may open per minute (mirrors `[[ratelimits]]` in wrangler.toml). */
export const NEW_CONVERSATIONS_PER_MINUTE = 20;

/**
 * Native WebSockets one end user may hold open on their conversation at once (tabs, devices).
 * One more is closed at once with 4008 `rate_limited` after an `error` frame saying why.
 */
export const MAX_END_USER_SOCKETS = 20;
