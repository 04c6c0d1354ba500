/**
 * Push configuration from the Worker's environment. Only PUSH_ENCRYPTION_KEY is needed in
 * production (a secret: `wrangler secret put PUSH_ENCRYPTION_KEY`); the endpoint variables exist
 * so tests and staging can point the senders at a fake FCM / APNs (docs/push.md).
 */
import { MIN_SECRET_CHARS } from "./crypto";

/** Optional variables: not declared in wrangler.toml, so typed here. */
export interface PushVars {
  PUSH_ENCRYPTION_KEY?: string;
  /** Decrypts (never encrypts) rows sealed before a key rotation. */
  PUSH_ENCRYPTION_KEY_PREVIOUS?: string;
  /** Default https://fcm.googleapis.com (the send URL is `{base}/v1/projects/{project}/messages:send`). */
  FCM_BASE_URL?: string;
  /** Default https://oauth2.googleapis.com/token. */
  FCM_TOKEN_URL?: string;
  /** Default by the credentials' environment: https://api.push.apple.com or https://api.sandbox.push.apple.com. */
  APNS_BASE_URL?: string;
}

export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
/** The `aud` of the service-account assertion: always Google's token URL, wherever it is sent. */
export const GOOGLE_TOKEN_AUDIENCE = GOOGLE_TOKEN_URL;
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
export const FCM_BASE_URL = "https://fcm.googleapis.com";
export const APNS_HOSTS = { production: "https://api.push.apple.com", sandbox: "https://api.sandbox.push.apple.com" } as const;

const vars = (env: Env) => env as Env & PushVars;
const trimSlash = (u: string) => u.replace(/\/+$/, "");

export function endpoints(env: Env) {
  const v = vars(env);
  return {
    fcmBase: trimSlash(v.FCM_BASE_URL || FCM_BASE_URL),
    tokenUrl: v.FCM_TOKEN_URL || GOOGLE_TOKEN_URL,
    apnsBase: (environment: keyof typeof APNS_HOSTS) => trimSlash(v.APNS_BASE_URL || APNS_HOSTS[environment]),
  };
}

/** The key that seals new rows, or null when push is not configured on this deployment. */
export function sealingSecret(env: Env): string | null {
  const key = vars(env).PUSH_ENCRYPTION_KEY;
  return key && key.length >= MIN_SECRET_CHARS ? key : null;
}

/** Keys that may open a stored row: the current one, then the previous one. */
export function openingSecrets(env: Env): string[] {
  const v = vars(env);
  return [v.PUSH_ENCRYPTION_KEY, v.PUSH_ENCRYPTION_KEY_PREVIOUS].filter((k): k is string => !!k && k.length >= MIN_SECRET_CHARS);
}
