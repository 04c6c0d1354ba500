/**
 * Parley's Worker: the table of contents. A request's path through the system:
 *
 *   client ──HTTP──> Hono routes (authenticate, validate with zod, resolve the conversation in D1
 *                    scoped to the caller's org or channel)
 *          ──RPC──>  ConversationRoom (one Durable Object per conversation: seq, dedup, sessions,
 *                    typing, sockets, long-poll waiters; durable before it answers)
 *          ──alarm─> D1 (idempotent flush for org-wide queries)
 *   ConversationRoom ──RPC──> OrgHub (one per org: presence, queue events to agents' inboxes)
 *
 * Each client surface is an adapter over the same room API: the agent/widget REST (seed 001),
 * seed 000's send/poll REST, the native WebSocket protocol, and Socket.IO (seeds 000, 001 and
 * 002's dialects; one SocketIoSession object per Engine.IO session). See ARCHITECTURE.md.
 */
import { Hono } from "hono";
import { chatApi, chatApiIntegration } from "./adapters/chat-api";
import { customerChannel } from "./adapters/customer-channel";
import { dostiRest } from "./adapters/dosti-rest";
import type { AppEnv } from "./http/app";
import { limitBody } from "./http/body";
import { openCors } from "./http/cors";
import { notFound, onError } from "./http/errors";
import { audit } from "./routes/audit";
import { auth } from "./routes/auth";
import { company } from "./routes/company";
import { conversations } from "./routes/conversations";
import { integrations } from "./routes/integrations";
import { pushDevices, pushIntegrations } from "./routes/push";
import { sockets } from "./routes/sockets";
import { webhooks } from "./routes/webhooks";
import { widget } from "./routes/widget";
import { widgetPage } from "./routes/widget-page";
import { socketIoRequest } from "./socketio/route";
import { routing } from "./routing/routes";
import { connectors } from "./routes/connectors";
import { agentUploads, fileDownloads, uploadTarget, visitorUploads } from "./uploads/routes";
import { queue } from "./webhooks/consumer";

export { ConversationRoom } from "./conversation/room";
export { OrgHub } from "./org/hub";
export { SocketIoSession } from "./socketio/session";
export { D1Writer } from "./conversation/d1-writer";

// Visitor-side surfaces are called from customers' sites: CORS is open (no credentials) and each
// handler checks the channel's allowed origins itself. Agent surfaces are same-origin only.
const publicCors = openCors({ methods: ["GET", "POST"], headers: ["Content-Type"], maxAge: 600 });

// Browsers PUT the bytes (with the file's name in X-Filename) or POST a multipart form.
const uploadCors = openCors({ methods: ["PUT", "POST"], headers: ["Content-Type", "X-Filename"], maxAge: 600 });

const app = new Hono<AppEnv>({ strict: false })
  .onError(onError)
  .notFound(notFound)
  .get("/healthz", (c) => c.json({ ok: true }))
  .use("/api/*", limitBody)
  .use("/auth/*", limitBody)
  .use("/chatapi/*", limitBody)
  .use("/chat-widget/*", limitBody, publicCors)
  .use("/api/chat/*", publicCors)
  .use("/socket.io/*", publicCors)
  .use("/uploads/*", uploadCors)
  .route("/auth", auth)
  .route("/api/company", company)
  .route("/api/integrations/chat-api", chatApiIntegration)
  .route("/api/integrations", pushIntegrations)
  .route("/api/integrations", integrations)
  .route("/api/conversations", agentUploads)
  .route("/api/conversations", conversations)
  .route("/api/webhooks", webhooks)
  .route("/api/audit", audit)
  .route("/api/chat", dostiRest)
  .route("/api/customer", customerChannel)
  .route("/api/routing", routing)
  .route("/api/connectors", connectors)
  .route("/chatapi", chatApi)
  .route("/chat-widget", visitorUploads)
  .route("/chat-widget", pushDevices)
  .route("/chat-widget", widget)
  .route("/chat-widget", widgetPage)
  .route("/uploads", uploadTarget)
  .route("/files", fileDownloads)
  .route("/ws", sockets)
  .all("/socket.io/*", (c) => socketIoRequest(c.req.raw, c.env));

// `queue`: webhook delivery (src/webhooks/consumer.ts), for both webhook queues in wrangler.toml.
export default { fetch: app.fetch, queue } satisfies ExportedHandler<Env>;
