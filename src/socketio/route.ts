/**
 * `/socket.io/`: every Engine.IO request goes to the session object named by its `sid`; a
 * handshake (no sid) gets a fresh random sid, and so a fresh object.
 */
import { randomToken } from "../core/crypto";
import { ApiError } from "../core/errors";
import { bodyReadTimeout, readCapped } from "../http/body";
import { checkQuery, ENGINE_ERRORS, engineError, MAX_PAYLOAD_BYTES, REFUSED_BODY_HEADER } from "./engine";

export async function socketIoRequest(req: Request, env: Env): Promise<Response> {
  const url = new URL(req.url);
  const bad = checkQuery(url);
  if (bad) return bad;
  const upgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
  if ((url.searchParams.get("transport") === "websocket") !== upgrade) return engineError(ENGINE_ERRORS.BAD_REQUEST);
  const sid = url.searchParams.get("sid") ?? randomToken(15);
  const headers = new Headers();
  for (const [k, v] of req.headers) if (!k.startsWith("x-parley-") && !k.startsWith("x-partykit-")) headers.set(k, v);
  return env.SOCKETIO.getByName(sid).fetch(new Request(req.url, { method: req.method, headers, body: await pollBody(req, headers, env) }));
}

/**
 * A polling POST's body, read here whole (at most maxPayload, within the body deadline) rather
 * than streamed on to the object: an object that answers 413 before reading a streamed body makes
 * the runtime fail the rest of the stream in this Worker (an uncaught "Can't read from request
 * stream after response has been sent", and at times a 500 instead of the 413). A body refused
 * here goes on as REFUSED_BODY_HEADER with no body, so the object still ends the session.
 */
async function pollBody(req: Request, headers: Headers, env: Env): Promise<Uint8Array | null> {
  if (!req.body) return null;
  headers.delete("content-length");
  if (Number(req.headers.get("content-length") ?? 0) > MAX_PAYLOAD_BYTES) return refuse(req, headers, 413);
  try {
    return await readCapped(req.body, MAX_PAYLOAD_BYTES, bodyReadTimeout(env as { BODY_READ_TIMEOUT_MS?: string }));
  } catch (err) {
    if (err instanceof ApiError && err.code === "payload_too_large") return refuse(req, headers, 413);
    if (err instanceof ApiError && err.code === "request_timeout") return refuse(req, headers, 408);
    throw err;
  }
}

function refuse(req: Request, headers: Headers, status: 408 | 413): null {
  req.body?.cancel().catch(() => {});
  headers.set(REFUSED_BODY_HEADER, String(status));
  return null;
}
