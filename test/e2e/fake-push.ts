// A fake FCM + Google OAuth + APNs for the e2e tests: one plain Node HTTP server on 127.0.0.1,
// started by global-setup.ts, which points `wrangler dev` at it (FCM_BASE_URL, FCM_TOKEN_URL,
// APNS_BASE_URL). It records every request as received and answers like the real services:
//
//   POST /token                            {access_token, expires_in, token_type}
//   POST /v1/projects/{p}/messages:send    200 {name}; 404 UNREGISTERED for tokens starting "gone"
//   POST /3/device/{token}                 200 + apns-id; 410 Unregistered for tokens starting "dead"
//   GET  /__hits                           every recorded request, oldest first (for the tests)
//
// It checks nothing itself: the tests verify shapes and signatures with their own public keys.
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakePushHit {
  at: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface FakePush {
  url: string;
  close(): Promise<void>;
}

export async function startFakePush(): Promise<FakePush> {
  const hits: FakePushHit[] = [];
  let issued = 0;
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const path = new URL(req.url ?? "/", "http://fake").pathname;
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(json === null ? "" : JSON.stringify(json));
    };
    if (req.method === "GET" && path === "/__hits") return send(200, hits);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    hits.push({ at: Date.now(), method: req.method ?? "", path, headers, body });
    if (req.method !== "POST") return send(405, { error: "method not allowed" });

    if (path === "/token") return send(200, { access_token: `fake-access-${++issued}`, expires_in: 3599, token_type: "Bearer" });
    const fcm = path.match(/^\/v1\/projects\/([^/]+)\/messages:send$/);
    if (fcm) {
      let token = "";
      try {
        token = JSON.parse(body).message.token;
      } catch {
        return send(400, { error: { code: 400, status: "INVALID_ARGUMENT", message: "bad JSON" } });
      }
      if (token.startsWith("gone")) {
        return send(404, {
          error: {
            code: 404,
            message: "Requested entity was not found.",
            status: "NOT_FOUND",
            details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" }],
          },
        });
      }
      return send(200, { name: `projects/${fcm[1]}/messages/${randomUUID()}` });
    }
    const apns = path.match(/^\/3\/device\/([0-9a-f]+)$/);
    if (apns) {
      if (apns[1]!.startsWith("dead")) return send(410, { reason: "Unregistered", timestamp: Date.now() });
      return send(200, null, { "apns-id": randomUUID().toUpperCase() });
    }
    return send(404, { error: "no such fake endpoint" });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
