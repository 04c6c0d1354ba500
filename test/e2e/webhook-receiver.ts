/**
 * The e2e webhook receiver: a local HTTP server that records every delivery, and Standard Webhooks
 * verification as docs/webhooks.md describes it (shared by the webhook and Chat API tests).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";

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

/** One POST as the receiver got it. */
export interface Received extends SignedDelivery {
  path: string;
  userAgent: string;
  json: any;
}

/**
 * Starts a receiver on 127.0.0.1:`port` (0: any free port) that appends each delivery to
 * `received` and answers `status()` (204 unless told otherwise).
 */
export async function startReceiver(port: number, received: Received[], status: () => number = () => 204): Promise<Server> {
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      received.push({
        path: req.url ?? "",
        id: String(req.headers["webhook-id"] ?? ""),
        timestamp: String(req.headers["webhook-timestamp"] ?? ""),
        signature: String(req.headers["webhook-signature"] ?? ""),
        userAgent: String(req.headers["user-agent"] ?? ""),
        body,
        json: parseJson(body),
      });
      res.writeHead(status()).end();
    });
  });
  s.listen(port, "127.0.0.1");
  await once(s, "listening");
  return s;
}

function parseJson(body: string): any {
  try {
    return JSON.parse(body);
  } catch {
    return null; // not JSON: recorded as it came
  }
}

/** Closes a receiver that may be listening (for afterAll). */
export async function stopReceiver(server: Server | undefined): Promise<void> {
  if (!server?.listening) return;
  server.closeAllConnections();
  server.close();
  await once(server, "close");
}
