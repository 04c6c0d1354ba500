/**
 * WebCrypto for push: PEM private keys, compact JWS (RS256 for Google's OAuth assertion, ES256
 * for APNs provider tokens), and AES-GCM sealing of stored credentials. No dependencies: the same
 * code runs in workerd and in Node 22+ (the tests verify what it signs with the public keys).
 */
import { base64url } from "../core/crypto";

const enc = new TextEncoder();

export function fromBase64url(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

export const base64urlJson = (value: unknown) => base64url(enc.encode(JSON.stringify(value)));

export class KeyFormatError extends Error {}

/**
 * The DER bytes of a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): what Google's service-account
 * JSON (`private_key`) and Apple's .p8 file both contain. Escaped `\n` (a key pasted out of JSON
 * by hand) is accepted. PKCS#1 (`BEGIN RSA PRIVATE KEY`) and SEC1 (`BEGIN EC PRIVATE KEY`) are
 * refused with the openssl command that converts them: WebCrypto imports PKCS#8 only.
 */
export function pkcs8Der(pem: string): Uint8Array<ArrayBuffer> {
  const text = pem.replace(/\\n/g, "\n").trim();
  const legacy = text.match(/-----BEGIN (RSA|EC) PRIVATE KEY-----/);
  if (legacy) {
    throw new KeyFormatError(`a ${legacy[1]} key in the old format: convert it with \`openssl pkcs8 -topk8 -nocrypt -in key.pem\` (a PKCS#8 "BEGIN PRIVATE KEY" block)`);
  }
  const m = text.match(/^-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----$/);
  if (!m) throw new KeyFormatError('not a PEM private key: expected "-----BEGIN PRIVATE KEY-----" … "-----END PRIVATE KEY-----"');
  try {
    const bin = atob(m[1]!.replace(/\s+/g, ""));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    throw new KeyFormatError("the PEM body is not valid base64");
  }
}

export type JwsAlg = "RS256" | "ES256";

const ALGORITHMS = {
  RS256: { import: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, sign: { name: "RSASSA-PKCS1-v1_5" } },
  ES256: { import: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } },
} as const;

/** Imports a PKCS#8 PEM for signing; throws KeyFormatError when it is not a key of that kind. */
export async function importSigningKey(pem: string, alg: JwsAlg): Promise<CryptoKey> {
  const der = pkcs8Der(pem);
  try {
    return await crypto.subtle.importKey("pkcs8", der, ALGORITHMS[alg].import, false, ["sign"]);
  } catch {
    throw new KeyFormatError(alg === "RS256" ? "not an RSA private key (the service account's private_key)" : "not a P-256 EC private key (the APNs .p8 file)");
  }
}

/**
 * A compact JWS. WebCrypto's ECDSA signature is already the raw r||s (IEEE P1363) form JWS wants,
 * so ES256 needs no DER conversion.
 */
export async function signJwt(key: CryptoKey, header: Record<string, unknown>, claims: Record<string, unknown>): Promise<string> {
  const alg = header.alg as JwsAlg;
  const input = `${base64urlJson(header)}.${base64urlJson(claims)}`;
  const sig = await crypto.subtle.sign(ALGORITHMS[alg].sign, key, enc.encode(input));
  return `${input}.${base64url(new Uint8Array(sig))}`;
}

// ---- sealing stored credentials ---------------------------------------------------------------

/** Shortest PUSH_ENCRYPTION_KEY accepted (characters); `openssl rand -base64 32` gives 44. */
export const MIN_SECRET_CHARS = 32;
const SEAL_VERSION = "v1";
const derived = new Map<string, Promise<CryptoKey>>();

/** AES-256-GCM key from the secret by HKDF-SHA256 (fixed salt and info: one purpose, one key). */
function sealingKey(secret: string): Promise<CryptoKey> {
  let key = derived.get(secret);
  if (!key) {
    key = (async () => {
      const ikm = await crypto.subtle.importKey("raw", enc.encode(secret), "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: enc.encode("parley/push-credentials"), info: enc.encode(SEAL_VERSION) },
        ikm,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    })();
    derived.set(secret, key);
  }
  return key;
}

/**
 * `v1.<iv>.<ciphertext+tag>` (base64url). `context` is authenticated but not stored: a row's
 * ciphertext copied into another channel or field does not open.
 */
export async function seal(secret: string, context: string, plaintext: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(context) }, await sealingKey(secret), enc.encode(plaintext));
  return `${SEAL_VERSION}.${base64url(iv)}.${base64url(new Uint8Array(ct))}`;
}

/** The plaintext, or null when no key in `secrets` opens it (wrong key, other context, tampered). */
export async function open(secrets: string[], context: string, sealed: string): Promise<string | null> {
  const [version, iv, ct] = sealed.split(".");
  if (version !== SEAL_VERSION || !iv || !ct) return null;
  for (const secret of secrets) {
    try {
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64url(iv), additionalData: enc.encode(context) }, await sealingKey(secret), fromBase64url(ct));
      return new TextDecoder().decode(plain);
    } catch {
      // Try the next key (rotation), else give up.
    }
  }
  return null;
}
