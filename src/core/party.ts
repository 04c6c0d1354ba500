/**
 * partyserver's Server, with one hot-path change for objects that receive many frames (the
 * conversation room, Socket.IO sessions): partyserver checks every incoming frame's socket by
 * reading and parsing its attachment; a socket it has already taken in during this object's
 * lifetime (it wrapped the socket as a Connection, which sets `server`) goes straight to
 * onMessage. After a hibernation wake the first frame of each socket takes partyserver's path.
 *
 * And one memory change: partyserver keeps each object's name in its key-value storage
 * (`__ps_name`, read on every start and written on the first), a fallback for runtimes that do
 * not give `ctx.id.name`. Every Parley object is addressed by name, so that record is answered from
 * `ctx.id.name` and never written: a conversation whose visitor only connects would otherwise
 * carry a key-value table in its SQLite for it, about 30 KB per loaded object (issue #8's S4,
 * docs/scaling.md).
 */
import { Server, type Connection, type WSMessage } from "partyserver";

/** partyserver's storage key for an object's name. */
const NAME_KEY = "__ps_name";

export class ParleyServer<E extends Cloudflare.Env = Env> extends Server<E> {
  private readonly admitted = new WeakSet<WebSocket>();

  constructor(ctx: DurableObjectState, env: E) {
    super(ctx, env);
    const name = ctx.id.name;
    if (name === undefined) return; // not addressed by name: partyserver's fallback record stays
    const storage = ctx.storage as unknown as { get: (...a: unknown[]) => Promise<unknown>; put: (...a: unknown[]) => Promise<void> };
    const get = storage.get.bind(storage);
    const put = storage.put.bind(storage);
    storage.get = (...a: unknown[]) => (a[0] === NAME_KEY ? Promise.resolve(name) : get(...a));
    storage.put = (...a: unknown[]) => (a[0] === NAME_KEY ? Promise.resolve() : put(...a));
  }

  override async webSocketMessage(ws: WebSocket, message: WSMessage): Promise<void> {
    if (!this.admitted.has(ws)) {
      await super.webSocketMessage(ws, message);
      if ("server" in ws) this.admitted.add(ws);
      return;
    }
    try {
      await this.onMessage(ws as unknown as Connection, message);
    } catch (err) {
      console.error(JSON.stringify({ at: `${this.constructor.name}.webSocketMessage`, error: String(err) }));
    }
  }
}
