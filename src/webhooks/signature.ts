/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): each endpoint has its own secret
 * `whsec_<base64 of 32 random bytes>`; every attempt is signed as
 * `webhook-signature: v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`,
 * where the key is the secret's base64-decoded bytes. While a rotated-out secret is still valid,
 * the header carries both signatures separated by a space, so either verifies.
 * Runs in Workers and in Node 22+ (WebCrypto only), so tests and receivers can use `verify`.
 */

const enc = new TextEncoder();
export const SECRET_PREFIX = "whsec_";

/** Receivers should refuse timestamps further than this from their clock (seconds). */
export const TIMESTAMP_TOLERANCE_SECONDS = 5 * 60;

export function newSecret(): string {
  return SECRET_PREFIX + toBase64(crypto.getRandomValues(new Uint8Array(32)));
}

export async function sign(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", secretBytes(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, enc.encode(`${id}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}

/** The `webhook-signature` header value: one `v1,…` per secret, space-separated. */
export async function signatureHeader(secrets: string[], id: string, timestamp: number, body: string): Promise<string> {
  return (await Promise.all(secrets.map((s) => sign(s, id, timestamp, body)))).join(" ");
}

/**
 * A receiver's check: the timestamp is within the tolerance and one of the header's `v1`
 * signatures matches. Returns false rather than throwing for any malformed input.
 */
export async function verify(
  secret: string,
  headers: { id: string | null; timestamp: string | null; signature: string | null },
  body: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<boolean> {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS) return false;
  let expected: string;
  try {
    expected = (await sign(secret, id, Number(timestamp), body)).slice(3);
  } catch {
    return false;
  }
  return signature.split(" ").some((part) => {
    const [version, value] = part.split(",", 2);
    return version === "v1" && value !== undefined && constantTimeEqual(value, expected);
  });
}

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  const b64 = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
