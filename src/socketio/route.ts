/**
 * `/socket.io/`: every Engine.IO request goes to the session object named by its `sid`; a
 * handshake (no sid) gets a fresh random sid, and so a fresh object.
 */
import { randomToken } from "../core/crypto";
import { checkQuery, ENGINE_ERRORS, engineError } from "./engine";

export async function socketIoRequest(req: Request, env: Env): Promise<Response> {
  const url = new URL(req.url);
  const bad = checkQuery(url);
  if (bad) return bad;
  const upgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
  if ((url.searchParams.get("transport") === "websocket") !== upgrade) return engineError(ENGINE_ERRORS.BAD_REQUEST);
  const sid = url.searchParams.get("sid") ?? randomToken(15);
  const headers = new Headers();
  for (const [k, v] of req.headers) if (!k.startsWith("x-parley-") && !k.startsWith("x-partykit-")) headers.set(k, v);
  return env.SOCKETIO.getByName(sid).fetch(new Request(req.url, { method: req.method, headers, body: req.body }));
}
