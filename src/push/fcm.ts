/**
 * FCM HTTP v1. Auth is OAuth 2.0 with a service account (RFC 7523): Parley signs a JWT assertion
 * (RS256, WebCrypto) and exchanges it at Google's token endpoint for an access token, cached per
 * service account until shortly before it expires (Google issues them for an hour).
 *
 *   POST {FCM_TOKEN_URL}   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>
 *   POST {FCM_BASE_URL}/v1/projects/{project_id}/messages:send   Authorization: Bearer <token>
 */
import { endpoints, FCM_SCOPE, GOOGLE_TOKEN_AUDIENCE } from "./config";
import type { FcmCredentials } from "./credentials";
import { importSigningKey, signJwt } from "./crypto";
import { json, post, retryAfterMs, snippet, type SendOutcome } from "./http";
import { fcmBody, type PushContent } from "./payload";

/** Assertions are valid for an hour, Google's maximum. */
export const ASSERTION_TTL_S = 3600;
/** A cached access token is replaced this long before Google's expiry. */
export const TOKEN_MARGIN_MS = 60_000;

/** The signed service-account assertion (exported for the tests, which verify it). */
export async function serviceAccountAssertion(creds: FcmCredentials, nowS = Math.floor(Date.now() / 1000)): Promise<string> {
  const key = await importSigningKey(creds.private_key, "RS256");
  const header = { alg: "RS256", typ: "JWT", ...(creds.private_key_id ? { kid: creds.private_key_id } : {}) };
  const claims = { iss: creds.client_email, scope: FCM_SCOPE, aud: GOOGLE_TOKEN_AUDIENCE, iat: nowS, exp: nowS + ASSERTION_TTL_S };
  return signJwt(key, header, claims);
}

type Cached = { token: string; expiresAt: number };
const tokens = new Map<string, Cached>();
const inflight = new Map<string, Promise<Cached>>();

export class TokenError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

const cacheKey = (tokenUrl: string, creds: FcmCredentials) => `${tokenUrl}|${creds.client_email}|${creds.private_key_id ?? ""}`;

/** An access token for the service account: cached, or fetched once however many pushes wait for it. */
export async function accessToken(env: Env, creds: FcmCredentials): Promise<string> {
  const { tokenUrl } = endpoints(env);
  const key = cacheKey(tokenUrl, creds);
  const cached = tokens.get(key);
  if (cached && cached.expiresAt - TOKEN_MARGIN_MS > Date.now()) return cached.token;
  let pending = inflight.get(key);
  if (!pending) {
    pending = exchange(tokenUrl, creds).finally(() => inflight.delete(key));
    inflight.set(key, pending);
  }
  const fresh = await pending;
  tokens.set(key, fresh);
  return fresh.token;
}

/** Drops a token FCM refused (401), so the next attempt fetches a new one. */
export function forgetAccessToken(env: Env, creds: FcmCredentials): void {
  tokens.delete(cacheKey(endpoints(env).tokenUrl, creds));
}

async function exchange(tokenUrl: string, creds: FcmCredentials): Promise<Cached> {
  const assertion = await serviceAccountAssertion(creds);
  const body = new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }).toString();
  const answer = await post(tokenUrl, { headers: { "content-type": "application/x-www-form-urlencoded" }, body });
  if (!answer.ok) throw new TokenError(`token endpoint: ${answer.error}`, null, true);
  const { res, text } = answer;
  const data = json(text);
  if (res.ok && typeof data?.access_token === "string") {
    const ttl = typeof data.expires_in === "number" && data.expires_in > 0 ? data.expires_in : 3600;
    return { token: data.access_token, expiresAt: Date.now() + ttl * 1000 };
  }
  // 400 invalid_grant (wrong key, revoked account, clock skew) will not heal by retrying.
  const retryable = res.status === 429 || res.status >= 500;
  throw new TokenError(`token endpoint: HTTP ${res.status}: ${snippet(text)}`, res.status, retryable);
}

/** FCM error detail: `error.details[].errorCode` (UNREGISTERED, SENDER_ID_MISMATCH, …). */
function fcmErrorCode(data: any): string | null {
  const details: unknown = data?.error?.details;
  if (!Array.isArray(details)) return null;
  const d = details.find((x) => typeof x?.errorCode === "string");
  return d ? d.errorCode : null;
}

export async function sendFcm(env: Env, creds: FcmCredentials, token: string, content: PushContent): Promise<SendOutcome> {
  let bearer: string;
  try {
    bearer = await accessToken(env, creds);
  } catch (err) {
    if (err instanceof TokenError) return err.retryable ? { kind: "retry", status: err.status, reason: err.message } : { kind: "failed", status: err.status, reason: err.message };
    return { kind: "failed", status: null, reason: `token: ${String(err)}` };
  }
  const url = `${endpoints(env).fcmBase}/v1/projects/${encodeURIComponent(creds.project_id)}/messages:send`;
  const answer = await post(url, {
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json; charset=utf-8" },
    body: JSON.stringify(fcmBody(token, content)),
  });
  if (!answer.ok) return { kind: "retry", status: null, reason: answer.error };
  const { res, text } = answer;
  const data = json(text);
  if (res.ok) return { kind: "sent", status: res.status, id: typeof data?.name === "string" ? data.name : null };
  const code = fcmErrorCode(data);
  const reason = `HTTP ${res.status}${code ? ` ${code}` : ""}: ${snippet(data?.error?.message ?? text)}`;
  if (code === "UNREGISTERED" || res.status === 404) return { kind: "unregistered", status: res.status, reason };
  if (res.status === 401) {
    forgetAccessToken(env, creds);
    return { kind: "retry", status: 401, reason, refreshAuth: true };
  }
  if (res.status === 429 || res.status >= 500) {
    const after = retryAfterMs(res);
    return { kind: "retry", status: res.status, reason, ...(after === undefined ? {} : { retryAfterMs: after }) };
  }
  return { kind: "failed", status: res.status, reason };
}
