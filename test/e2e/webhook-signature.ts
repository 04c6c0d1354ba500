/** Standard Webhooks verification, as docs/webhooks.md describes it (shared by the e2e receivers). */
import { createHmac, timingSafeEqual } from "node:crypto";

export interface SignedDelivery {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
}

export function verifySignature(secret: string, r: SignedDelivery, toleranceSeconds = 300): boolean {
  if (Math.abs(Date.now() / 1000 - Number(r.timestamp)) > toleranceSeconds) return false;
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = createHmac("sha256", key).update(`${r.id}.${r.timestamp}.${r.body}`).digest();
  return r.signature.split(" ").some((part) => {
    const [version, value] = part.split(",", 2);
    if (version !== "v1" || !value) return false;
    const given = Buffer.from(value, "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
