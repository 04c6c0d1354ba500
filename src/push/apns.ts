/**
 * APNs provider API with token-based auth: an ES256 JWT ({alg, kid: key id} / {iss: team id, iat})
 * signed with the .p8 key through WebCrypto, reused for 50 minutes (Apple refuses tokens older
 * than an hour and answers TooManyProviderTokenUpdates to tokens renewed more often than every
 * 20 minutes).
 *
 *   POST {APNS_BASE_URL}/3/device/{token}   authorization: bearer <jwt>, apns-topic: <bundle id>,
 *                                           apns-push-type: alert, apns-priority: 10
 *
 * APNs speaks HTTP/2 only; see docs/push.md for what that means on Workers.
 */
import { endpoints } from "./config";
import type { ApnsCredentials } from "./credentials";
import { importSigningKey, signJwt } from "./crypto";
import { json, post, retryAfterMs, snippet, type SendOutcome } from "./http";
import { apnsBody, type PushContent } from "./payload";

export const PROVIDER_TOKEN_REUSE_S = 50 * 60;
/** How long APNs keeps trying an offline device (a chat message is stale after a day). */
export const EXPIRATION_S = 24 * 3600;

type Cached = { jwt: string; iat: number };
const jwts = new Map<string, Cached>();

const cacheKey = (c: ApnsCredentials) => `${c.team_id}|${c.key_id}`;

/** The provider token (exported for the tests, which verify it). */
export async function providerToken(creds: ApnsCredentials, nowS = Math.floor(Date.now() / 1000)): Promise<string> {
  const cached = jwts.get(cacheKey(creds));
  if (cached && nowS - cached.iat < PROVIDER_TOKEN_REUSE_S && nowS >= cached.iat) return cached.jwt;
  const key = await importSigningKey(creds.private_key, "ES256");
  const jwt = await signJwt(key, { alg: "ES256", kid: creds.key_id }, { iss: creds.team_id, iat: nowS });
  jwts.set(cacheKey(creds), { jwt, iat: nowS });
  return jwt;
}

export function forgetProviderToken(creds: ApnsCredentials): void {
  jwts.delete(cacheKey(creds));
}

export async function sendApns(env: Env, creds: ApnsCredentials, token: string, content: PushContent): Promise<SendOutcome> {
  let jwt: string;
  try {
    jwt = await providerToken(creds);
  } catch (err) {
    return { kind: "failed", status: null, reason: `provider token: ${String(err)}` };
  }
  const url = `${endpoints(env).apnsBase(creds.environment)}/3/device/${encodeURIComponent(token)}`;
  const answer = await post(url, {
    headers: {
      authorization: `bearer ${jwt}`,
      "apns-topic": creds.bundle_id,
      "apns-push-type": "alert",
      "apns-priority": "10",
      "apns-expiration": String(Math.floor(Date.now() / 1000) + EXPIRATION_S),
      "content-type": "application/json",
    },
    body: JSON.stringify(apnsBody(content)),
  });
  if (!answer.ok) return { kind: "retry", status: null, reason: answer.error };
  const { res, text } = answer;
  if (res.ok) return { kind: "sent", status: res.status, id: res.headers.get("apns-id") };
  const apnsReason: string | null = typeof json(text)?.reason === "string" ? json(text).reason : null;
  const reason = `HTTP ${res.status}${apnsReason ? ` ${apnsReason}` : ""}${apnsReason ? "" : `: ${snippet(text)}`}`;
  if (res.status === 410 || apnsReason === "Unregistered") return { kind: "unregistered", status: res.status, reason };
  if (res.status === 403 && apnsReason === "ExpiredProviderToken") {
    forgetProviderToken(creds);
    return { kind: "retry", status: 403, reason, refreshAuth: true };
  }
  if (res.status === 429 || res.status >= 500) {
    const after = retryAfterMs(res);
    return { kind: "retry", status: res.status, reason, ...(after === undefined ? {} : { retryAfterMs: after }) };
  }
  // BadDeviceToken is usually a sandbox token sent to production or the reverse: check `environment`.
  return { kind: "failed", status: res.status, reason: apnsReason === "BadDeviceToken" ? `${reason} (a ${creds.environment} token? check the credentials' environment)` : reason };
}
