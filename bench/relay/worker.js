// The ceiling for bench/run.mjs: the least a Durable Object chat relay can do and still persist.
//   GET /room/:name (WebSocket upgrade) -> the Room object named :name
//   client -> {"id":"<client id>","body":"..."}
//   sender <- {"type":"ack","id","seq"}          after the row is inserted (output gate: durable)
//   others <- {"type":"message","id","seq","body"}
// No auth, no validation beyond JSON, no D1, no fan-out outside the object: Parley does all of
// that on top, so this is what Parley is measured against.
import { DurableObject } from "cloudflare:workers";

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body TEXT NOT NULL, at INTEGER NOT NULL)");
    // Rebuilt after every wake-up from hibernation (the constructor runs again).
    this.head = ctx.storage.sql.exec("SELECT COALESCE(MAX(seq), 0) AS head FROM messages").one().head;
  }

  async fetch(request) {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return new Response("expected a WebSocket", { status: 426 });
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  webSocketMessage(ws, raw) {
    let m;
    try {
      m = JSON.parse(raw);
    } catch {
      return ws.send('{"type":"error"}');
    }
    const seq = ++this.head;
    this.ctx.storage.sql.exec("INSERT INTO messages (seq, id, body, at) VALUES (?, ?, ?, ?)", seq, String(m.id), String(m.body ?? ""), Date.now());
    ws.send(JSON.stringify({ type: "ack", id: m.id, seq }));
    const frame = JSON.stringify({ type: "message", id: m.id, seq, body: m.body });
    for (const other of this.ctx.getWebSockets()) if (other !== ws) other.send(frame);
  }

  webSocketClose(ws, code) {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code);
    } catch {
      // already closed
    }
  }

  webSocketError() {}
}

export default {
  fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    const m = /^\/room\/([\w.-]{1,100})$/.exec(url.pathname);
    if (!m) return new Response("not found", { status: 404 });
    return env.ROOM.getByName(m[1]).fetch(request);
  },
};
