// The reference peer for bench/run.mjs: what a team would otherwise deploy for seed 001's
// real-time layer. A plain Node Socket.IO 4 server, one process, SQLite in WAL mode (node:sqlite),
// the in-memory adapter (no Redis: a single process).
//
//   agents:    connect with the `session=<PEER_AGENT_TOKEN>` cookie
//   end users: connect bare, then join_conversation {conversation_id, external_id}
//              (the first join with an unknown id opens the conversation for that external_id:
//              the widget's create_or_get, folded in so the bench needs no REST provisioning)
//   send_message {conversation_id, content, content_type, sender_type, external_id, client_msg_id?}
//     -> INSERT (synchronous, committed) -> ack {ok, message} -> message_received to conv:{id}
//
// Every event takes an ack; failures answer {error:{code,message}} and emit `error` to the sender.
// Run: PORT=0 PEER_DB=/tmp/peer.sqlite node bench/peer/server.mjs  (prints {"port":N} when ready)
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { DatabaseSync } from "node:sqlite";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 0);
const agentToken = process.env.PEER_AGENT_TOKEN ?? "peer-agent";
const db = new DatabaseSync(process.env.PEER_DB ?? ":memory:");
db.exec(`
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = NORMAL;
  CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, external_id TEXT NOT NULL, created_at TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, sender_type TEXT NOT NULL, sender_id TEXT NOT NULL,
    content_type TEXT NOT NULL, content TEXT NOT NULL, client_msg_id TEXT, created_at TEXT NOT NULL);
  CREATE INDEX IF NOT EXISTS messages_conv ON messages (conversation_id, created_at);
`);
const getConversation = db.prepare("SELECT id, external_id FROM conversations WHERE id = ?");
const addConversation = db.prepare("INSERT INTO conversations (id, external_id, created_at) VALUES (?, ?, ?)");
const addMessage = db.prepare(
  "INSERT INTO messages (id, conversation_id, sender_type, sender_id, content_type, content, client_msg_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
);

const http = createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 404, { "content-type": "text/plain" });
  res.end(req.url === "/healthz" ? "ok" : "not found");
});
const io = new Server(http, { serveClient: false, maxHttpBufferSize: 64 * 1024 });

io.on("connection", (socket) => {
  const cookie = socket.handshake.headers.cookie ?? "";
  const isAgent = cookie.split(/;\s*/).includes(`session=${agentToken}`);
  /** conversation id -> the external id this socket joined it as (end users) */
  const joined = new Map();

  const handle = (event, fn) =>
    socket.on(event, (payload, ack) => {
      let reply;
      try {
        reply = fn(payload ?? {});
      } catch (err) {
        const error = { code: err.code ?? "validation_failed", message: String(err.message ?? err) };
        socket.emit("error", { message: error.message, code: error.code });
        reply = { error };
      }
      if (typeof ack === "function") ack(reply);
    });

  const conversationFor = (p) => {
    if (typeof p.conversation_id !== "string" || p.conversation_id.length === 0) throw Object.assign(new Error("conversation_id is required"), { code: "validation_failed" });
    const conv = getConversation.get(p.conversation_id);
    if (isAgent) {
      if (!conv) throw Object.assign(new Error("conversation not found"), { code: "not_found" });
      return conv;
    }
    if (typeof p.external_id !== "string" || p.external_id.length === 0) throw Object.assign(new Error("external_id is required"), { code: "unauthorized" });
    if (!conv) {
      addConversation.run(p.conversation_id, p.external_id, new Date().toISOString());
      return { id: p.conversation_id, external_id: p.external_id };
    }
    if (conv.external_id !== p.external_id) throw Object.assign(new Error("conversation not found"), { code: "not_found" });
    return conv;
  };

  handle("join_conversation", (p) => {
    const conv = conversationFor(p);
    socket.join(`conv:${conv.id}`);
    joined.set(conv.id, p.external_id);
    return { ok: true, conversation_id: conv.id };
  });

  handle("send_message", (p) => {
    const conv = joined.has(p.conversation_id) && (isAgent || joined.get(p.conversation_id) === p.external_id) ? { id: p.conversation_id } : conversationFor(p);
    if (typeof p.content !== "string" || Buffer.byteLength(p.content) > 16 * 1024) throw Object.assign(new Error("content must be a string up to 16 KiB"), { code: "validation_failed" });
    const senderType = isAgent ? (p.sender_type === "bot" ? "bot" : "agent") : "end_user";
    const message = {
      id: randomUUID(),
      conversation_id: conv.id,
      sender_type: senderType,
      sender_id: isAgent ? "agent" : p.external_id,
      content_type: typeof p.content_type === "string" ? p.content_type : "text",
      content: p.content,
      rich_media: p.rich_media ?? null,
      client_msg_id: typeof p.client_msg_id === "string" ? p.client_msg_id : null,
      created_at: new Date().toISOString(),
    };
    addMessage.run(message.id, message.conversation_id, message.sender_type, message.sender_id, message.content_type, message.content, message.client_msg_id, message.created_at);
    // Ack first, then the room (as Parley does); the sender is in the room too.
    queueMicrotask(() => io.to(`conv:${conv.id}`).emit("message_received", message));
    return { ok: true, message };
  });
});

http.listen(port, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: http.address().port }) + "\n");
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    db.close();
    process.exit(0);
  });
}
