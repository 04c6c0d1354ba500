/**
 * partyserver's Server, with one hot-path change for objects that receive many frames (the
 * conversation room, Socket.IO sessions): partyserver checks every incoming frame's socket by
 * reading and parsing its attachment; a socket it has already taken in during this object's
 * lifetime (it wrapped the socket as a Connection, which sets `server`) goes straight to
 * onMessage. After a hibernation wake the first frame of each socket takes partyserver's path.
 */
import { Server, type Connection, type WSMessage } from "partyserver";

export class ParleyServer<E extends Cloudflare.Env = Env> extends Server<E> {
  private readonly admitted = new WeakSet<WebSocket>();

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
