/**
 * OrgHub: one Durable Object per organisation. Agents' inbox sockets connect here.
 *
 * Owns: agent presence (an agent is online while at least one of their sockets is open; the
 * organisation's account status, which visitors see, is online while any agent is), and the live
 * queue events (new/updated conversation, assignment, resolution) that conversation objects
 * publish. Presence is derived from the open sockets themselves, so it survives hibernation with
 * nothing stored. Events are live notifications; the inbox lists come from D1.
 * Conversation rooms with visitor sockets register as watchers (stored, so they survive
 * eviction) and are told when the account status flips.
 *
 * It is also the organisation's router (one object, so capacity counts cannot race): rooms
 * enqueue sessions that need an agent, report assignments and releases, and the hub auto-assigns
 * within skill-group queues (src/routing/) and keeps waiting customers told of their position.
 */
import { recordAudit, type Actor } from "../audit/log";
import { Server, type Connection, type ConnectionContext } from "partyserver";
import type { Principal } from "../core/message";
import { RemoteFanout } from "../socketio/fanout";
import type { ConversationRef } from "../core/conversation-ref";
import { DEFAULT_CAPACITY, loadRouting, queueByName, type RoutingConfig } from "../routing/config";
import { isOpen } from "../routing/hours";
import { estimateWaitS, pickAgent } from "../routing/pick";

const CLOSED_MESSAGE = "We are closed right now. Leave a message and we will reply when we are back.";

/** Routing configuration is re-read from D1 at most this often (ms), or at once after an admin change. */
const ROUTING_TTL_MS = 10_000;

/** Where a session stands in its queue, for the customer. */
import type { QueueStatus } from "../core/wire";
export type { QueueStatus };
import { PING_FRAME, PONG_FRAME } from "../conversation/protocol";

/** Who the audit log names for automatic assignments. */
const ROUTER: Actor = { type: "system", id: "router", name: "Router" };

interface SocketState {
  principal: Principal;
}

export type HubEvent = { type: string } & Record<string, unknown>;

export class OrgHub extends Server<Env> {
  static override options = { hibernate: true };

  private readonly fanout: RemoteFanout;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS watchers (conversation_id TEXT PRIMARY KEY)");
    // Rooms told that nobody listens to live events: they are told again when someone does.
    sql.exec("CREATE TABLE IF NOT EXISTS quiet_publishers (conversation_id TEXT PRIMARY KEY)");
    // Socket.IO sessions: their topics (queue events, presence) and, for agents, their presence.
    sql.exec("CREATE TABLE IF NOT EXISTS remote (name TEXT PRIMARY KEY, agent_id TEXT, queue INTEGER NOT NULL DEFAULT 0, presence INTEGER NOT NULL DEFAULT 0)");
    // Which conversation rooms hold sockets opened by which session or key (for revocation).
    sql.exec("CREATE TABLE IF NOT EXISTS auth_rooms (auth_ref TEXT NOT NULL, conversation_id TEXT NOT NULL, PRIMARY KEY (auth_ref, conversation_id))");
    sql.exec("CREATE TABLE IF NOT EXISTS remote_auth (name TEXT PRIMARY KEY, auth_ref TEXT NOT NULL)");
    this.fanout = new RemoteFanout(ctx, env);
    sql.exec(`CREATE TABLE IF NOT EXISTS waiting (
      session_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, queue_id TEXT, ref TEXT NOT NULL,
      enqueued_ms INTEGER NOT NULL, last_position INTEGER)`);
    sql.exec("CREATE TABLE IF NOT EXISTS assigned (session_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, agent_id TEXT NOT NULL, assigned_ms INTEGER NOT NULL)");
    // A session its agent gave back to the queue is not auto-assigned to that agent again.
    sql.exec("CREATE TABLE IF NOT EXISTS declined (session_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL)");
    // Connectors (seed 002): who is registered for which channel, and each channel's ordered outbox.
    sql.exec("CREATE TABLE IF NOT EXISTS connectors (name TEXT PRIMARY KEY, channel TEXT NOT NULL)");
    sql.exec("CREATE TABLE IF NOT EXISTS connector_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, payload TEXT NOT NULL, sent_to TEXT)");
    // Recent handling times (assignment to resolution), for wait estimates.
    sql.exec("CREATE TABLE IF NOT EXISTS recent_waits (id INTEGER PRIMARY KEY AUTOINCREMENT, wait_ms INTEGER NOT NULL)");
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_FRAME, PONG_FRAME));
  }

  // ---- connectors ------------------------------------------------------------------------------

  /** A Socket.IO session registered as the connector of a channel: it gets the waiting messages, in order. */
  async connectorRegister(name: string, channel: string): Promise<{ pending: number }> {
    this.ctx.storage.sql.exec("INSERT INTO connectors (name, channel) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET channel = excluded.channel", name, channel);
    const pending = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM connector_outbox WHERE channel = ?", channel).one().n;
    this.drainConnector(channel);
    return { pending };
  }

  /** A message for a customer of a connector channel; kept until a connector acknowledges it. */
  async connectorOutbound(channel: string, payload: Record<string, unknown>): Promise<void> {
    this.ctx.storage.sql.exec("INSERT INTO connector_outbox (channel, payload) VALUES (?, ?)", channel, JSON.stringify(payload));
    this.drainConnector(channel);
  }

  async connectorAck(channel: string, outboxId: number): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM connector_outbox WHERE id = ? AND channel = ?", outboxId, channel);
  }

  /**
   * Sends every message not yet in the hands of a live connector, oldest first, through the
   * ordered fan-out. At least once: a connector that drops before acknowledging gets the message
   * again when one registers (connectors dedupe by the message id).
   */
  private drainConnector(channel: string) {
    const sql = this.ctx.storage.sql;
    const live = sql.exec<{ name: string }>("SELECT name FROM connectors WHERE channel = ? ORDER BY name", channel).toArray();
    const target = live[0]?.name;
    if (!target) return;
    const names = live.map((l) => l.name);
    const rows = sql.exec<{ id: number; payload: string; sent_to: string | null }>("SELECT id, payload, sent_to FROM connector_outbox WHERE channel = ? ORDER BY id", channel).toArray();
    for (const row of rows) {
      if (row.sent_to && names.includes(row.sent_to)) continue;
      sql.exec("UPDATE connector_outbox SET sent_to = ? WHERE id = ?", target, row.id);
      this.fanout.send(target, `connector:${channel}`, { outbox_id: row.id, message: JSON.parse(row.payload) }, () => void this.remoteGone(target));
    }
  }

  // ---- routing -------------------------------------------------------------------------------

  private routing: { at: number; cfg: RoutingConfig } | null = null;
  private dispatching: Promise<void> = Promise.resolve();

  /** A room's session needs an agent. Answers where it stands. */
  async enqueue(item: { ref: ConversationRef; session_id: string; queue: string | null }): Promise<QueueStatus> {
    const cfg = await this.config();
    const queue = queueByName(cfg, item.queue);
    this.ctx.storage.sql.exec(
      "INSERT OR IGNORE INTO waiting (session_id, conversation_id, queue_id, ref, enqueued_ms) VALUES (?, ?, ?, ?, ?)",
      item.session_id, item.ref.id, queue?.id ?? null, JSON.stringify(item.ref), Date.now(),
    );
    await this.dispatch();
    return this.statusOf(item.session_id, cfg);
  }

  /** A room reports an assignment (auto or a claim). */
  async assignedNotice(sessionId: string, conversationId: string, agentId: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM waiting WHERE session_id = ?", sessionId);
    this.ctx.storage.sql.exec("DELETE FROM declined WHERE session_id = ?", sessionId);
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO assigned (session_id, conversation_id, agent_id, assigned_ms) VALUES (?, ?, ?, ?)", sessionId, conversationId, agentId, Date.now());
    await this.notifyPositions();
  }

  /**
   * A room's session went back to the queue (its agent, an owner or an admin unassigned it): the
   * agent has room for another, and the router offers the session to anyone but them.
   */
  async unassignedNotice(item: { ref: ConversationRef; session_id: string; queue: string | null }, fromAgentId: string): Promise<QueueStatus> {
    this.ctx.storage.sql.exec("DELETE FROM assigned WHERE session_id = ?", item.session_id);
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO declined (session_id, agent_id) VALUES (?, ?)", item.session_id, fromAgentId);
    return this.enqueue(item);
  }

  /** A room's session ended: the agent has room for another. */
  async released(sessionId: string): Promise<void> {
    // How long agents take with a conversation drives the wait estimate.
    const a = this.ctx.storage.sql.exec<{ assigned_ms: number }>("SELECT assigned_ms FROM assigned WHERE session_id = ?", sessionId).toArray()[0];
    if (a) {
      this.ctx.storage.sql.exec("INSERT INTO recent_waits (wait_ms) VALUES (?)", Date.now() - a.assigned_ms);
      this.ctx.storage.sql.exec("DELETE FROM recent_waits WHERE id NOT IN (SELECT id FROM recent_waits ORDER BY id DESC LIMIT 20)");
    }
    this.ctx.storage.sql.exec("DELETE FROM waiting WHERE session_id = ?", sessionId);
    this.ctx.storage.sql.exec("DELETE FROM assigned WHERE session_id = ?", sessionId);
    this.ctx.storage.sql.exec("DELETE FROM declined WHERE session_id = ?", sessionId);
    await this.dispatch();
  }

  /** Admin routes call this after a change so the next dispatch reads it. */
  async routingChanged(): Promise<void> {
    this.routing = null;
    await this.dispatch();
  }

  private async config(): Promise<RoutingConfig> {
    if (this.routing && Date.now() - this.routing.at < ROUTING_TTL_MS) return this.routing.cfg;
    const cfg = await loadRouting(this.env, this.name);
    this.routing = { at: Date.now(), cfg };
    return cfg;
  }

  /** Auto-assigns waiting sessions, oldest first, one dispatch at a time. */
  private dispatch(): Promise<void> {
    const run = this.dispatching.then(() => this.dispatchOnce());
    this.dispatching = run.catch((err: unknown) => console.error(JSON.stringify({ at: "hub.dispatch", error: String(err) })));
    return this.dispatching;
  }

  private async dispatchOnce(): Promise<void> {
    const cfg = await this.config();
    const sql = this.ctx.storage.sql;
    const online = this.onlineAgents();
    const waiting = sql.exec<{ session_id: string; conversation_id: string; queue_id: string | null; ref: string }>("SELECT * FROM waiting ORDER BY enqueued_ms").toArray();
    // Each agent's open conversations, read once and kept current as this pass assigns.
    const load = new Map<string, { open: number; last: number }>();
    for (const a of sql.exec<{ agent_id: string; n: number; last: number }>("SELECT agent_id, COUNT(*) AS n, MAX(assigned_ms) AS last FROM assigned GROUP BY agent_id")) load.set(a.agent_id, { open: a.n, last: a.last });
    const declined = new Map(sql.exec<{ session_id: string; agent_id: string }>("SELECT session_id, agent_id FROM declined").toArray().map((d) => [d.session_id, d.agent_id]));
    for (const w of waiting) {
      const queue = w.queue_id ? cfg.queues.get(w.queue_id) : undefined;
      if (!queue?.auto_assign || !isOpen(queue.hours, new Date())) continue;
      const candidates = [...(cfg.skills.get(queue.id) ?? [])]
        .filter((id) => online.has(id) && cfg.names.has(id) && declined.get(w.session_id) !== id)
        .map((id) => ({ agent_id: id, open: load.get(id)?.open ?? 0, capacity: cfg.capacity.get(id) ?? DEFAULT_CAPACITY, last_assigned_ms: load.get(id)?.last ?? 0 }));
      const agentId = pickAgent(candidates);
      if (!agentId) continue;
      const ref = JSON.parse(w.ref) as ConversationRef;
      const result = await this.env.CONVERSATION.getByName(ref.id).assign(ref, { type: "agent", id: agentId, name: cfg.names.get(agentId) ?? null });
      if (result.ok) {
        await this.assignedNotice(w.session_id, w.conversation_id, agentId);
        load.set(agentId, { open: (load.get(agentId)?.open ?? 0) + 1, last: Date.now() });
        this.ctx.waitUntil(
          recordAudit(this.env, {
            org_id: ref.org_id,
            actor: ROUTER,
            action: "conversation.assigned",
            target: { type: "conversation", id: ref.id },
            detail: { agent_id: agentId, queue_id: queue.id, session_id: w.session_id, via: "router" },
          }),
        );
      }
      else sql.exec("DELETE FROM waiting WHERE session_id = ?", w.session_id); // claimed meanwhile, or ended
    }
    await this.notifyPositions();
  }

  private statusOf(sessionId: string, cfg: RoutingConfig): QueueStatus {
    const sql = this.ctx.storage.sql;
    const w = sql.exec<{ queue_id: string | null; enqueued_ms: number }>("SELECT queue_id, enqueued_ms FROM waiting WHERE session_id = ?", sessionId).toArray()[0];
    const queue = w?.queue_id ? cfg.queues.get(w.queue_id) ?? null : null;
    const open = isOpen(queue?.hours ?? null, new Date());
    const agentsAvailable = this.onlineAgents().size > 0;
    if (!w) return { position: null, estimated_wait_s: null, queue: queue?.name ?? null, open, closed_message: null, agents_available: agentsAvailable };
    const position = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM waiting WHERE queue_id IS ? AND enqueued_ms <= ?", w.queue_id, w.enqueued_ms).one().n;
    return waitingStatus(position, queue, this.recentWaits(), agentsAvailable, open);
  }

  private recentWaits(): number[] {
    return this.ctx.storage.sql.exec<{ wait_ms: number }>("SELECT wait_ms FROM recent_waits").toArray().map((r) => r.wait_ms);
  }

  /**
   * Tells waiting customers whose place in line changed. One ordered pass over the waiting
   * sessions (positions counted per queue), so an enqueue costs O(waiting), and only customers
   * whose position moved get a message.
   */
  private async notifyPositions() {
    const cfg = await this.config();
    const sql = this.ctx.storage.sql;
    const waits = this.recentWaits();
    const agentsAvailable = this.onlineAgents().size > 0;
    const now = new Date();
    const seen = new Map<string, number>();
    const rows = sql
      .exec<{ session_id: string; queue_id: string | null; ref: string; last_position: number | null }>("SELECT session_id, queue_id, ref, last_position FROM waiting ORDER BY enqueued_ms")
      .toArray();
    for (const w of rows) {
      const position = (seen.get(w.queue_id ?? "") ?? 0) + 1;
      seen.set(w.queue_id ?? "", position);
      if (position === w.last_position) continue;
      sql.exec("UPDATE waiting SET last_position = ? WHERE session_id = ?", position, w.session_id);
      const queue = w.queue_id ? (cfg.queues.get(w.queue_id) ?? null) : null;
      const status = waitingStatus(position, queue, waits, agentsAvailable, isOpen(queue?.hours ?? null, now));
      const ref = JSON.parse(w.ref) as ConversationRef;
      this.ctx.waitUntil(
        this.env.CONVERSATION.getByName(ref.id)
          .queueUpdate(ref, status)
          .catch((err: unknown) => console.error(JSON.stringify({ at: "hub.queueUpdate", error: String(err) }))),
      );
    }
  }

  // ---- revocation (S10) --------------------------------------------------------------------

  /** A room has a socket opened by this session or key. */
  async trackAuth(authRef: string, conversationId: string): Promise<void> {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO auth_rooms (auth_ref, conversation_id) VALUES (?, ?)", authRef, conversationId);
  }

  /** A Socket.IO session was opened by this session or key. */
  async trackRemoteAuth(name: string, authRef: string): Promise<void> {
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO remote_auth (name, auth_ref) VALUES (?, ?)", name, authRef);
  }

  /**
   * A cookie session ended (logout) or a key was revoked: close every socket it opened, here, in
   * conversation rooms and in Socket.IO sessions, with 1008.
   */
  async revokeAuth(authRef: string): Promise<void> {
    const sql = this.ctx.storage.sql;
    for (const c of this.getConnections(`auth:${authRef}`)) c.close(1008, "session ended");
    const rooms = sql.exec<{ conversation_id: string }>("SELECT conversation_id FROM auth_rooms WHERE auth_ref = ?", authRef).toArray();
    const remotes = sql.exec<{ name: string }>("SELECT name FROM remote_auth WHERE auth_ref = ?", authRef).toArray();
    sql.exec("DELETE FROM auth_rooms WHERE auth_ref = ?", authRef);
    sql.exec("DELETE FROM remote_auth WHERE auth_ref = ?", authRef);
    await Promise.all([
      ...rooms.map((r) => this.env.CONVERSATION.getByName(r.conversation_id).closeAuth(authRef)),
      ...remotes.map((r) => this.env.SOCKETIO.getByName(r.name).end("session ended")),
    ]).catch((err: unknown) => console.error(JSON.stringify({ at: "hub.revokeAuth", error: String(err) })));
  }

  override getConnectionTags(_conn: Connection, ctx: ConnectionContext): string[] {
    const auth = ctx.request.headers.get("x-parley-auth");
    return auth ? [`auth:${auth}`] : [];
  }

  /** A Socket.IO session of an agent is connected: the agent counts as online. */
  async remoteOnline(name: string, agentId: string): Promise<void> {
    const wasOnline = this.onlineAgents().has(agentId);
    this.ctx.storage.sql.exec("INSERT INTO remote (name, agent_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET agent_id = excluded.agent_id", name, agentId);
    this.remoteTopics.clear();
    if (!wasOnline) this.agentStatusChanged(agentId, "online");
  }

  /** A Socket.IO session subscribes to queue events or presence changes. */
  async remoteSubscribe(name: string, topic: "queue" | "presence"): Promise<{ online_agents: string[] }> {
    this.ctx.storage.sql.exec(`INSERT INTO remote (name, ${topic}) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET ${topic} = 1`, name);
    this.remoteTopics.clear();
    if (topic === "queue") await this.listenersBack();
    return { online_agents: [...this.onlineAgents()] };
  }

  /** A Socket.IO session ended. */
  async remoteGone(name: string): Promise<void> {
    const row = this.ctx.storage.sql.exec<{ agent_id: string | null }>("SELECT agent_id FROM remote WHERE name = ?", name).toArray()[0];
    this.ctx.storage.sql.exec("DELETE FROM remote WHERE name = ?", name);
    this.remoteTopics.clear();
    const connector = this.ctx.storage.sql.exec<{ channel: string }>("SELECT channel FROM connectors WHERE name = ?", name).toArray()[0];
    if (connector) {
      this.ctx.storage.sql.exec("DELETE FROM connectors WHERE name = ?", name);
      this.drainConnector(connector.channel); // another live connector takes over what this one did not acknowledge
    }
    if (row?.agent_id && !this.onlineAgents().has(row.agent_id)) this.agentStatusChanged(row.agent_id, "offline");
  }

  /** A room with visitor sockets wants account-status changes; returns the current status. */
  async watch(conversationId: string): Promise<"online" | "offline"> {
    this.ctx.storage.sql.exec("INSERT OR IGNORE INTO watchers (conversation_id) VALUES (?)", conversationId);
    return this.accountStatus();
  }

  async unwatch(conversationId: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM watchers WHERE conversation_id = ?", conversationId);
  }

  /**
   * Conversation objects call this after a durable change. Answers whether anyone listens (an
   * inbox socket or a Socket.IO session subscribed to the queue): when nobody does, the room may
   * skip its live events until `listenersBack` tells it otherwise (each publish is an RPC per
   * message; an org with nobody in the inbox should not pay for it).
   */
  async publish(event: HubEvent): Promise<boolean> {
    if (this.ctx.getWebSockets().length === 0 && this.remoteNames("queue").length === 0) {
      if (typeof event.conversation_id === "string") {
        this.ctx.storage.sql.exec("INSERT OR IGNORE INTO quiet_publishers (conversation_id) VALUES (?)", event.conversation_id);
      }
      return false;
    }
    this.broadcast(JSON.stringify(event));
    this.toRemote("queue", event);
    return true;
  }

  /**
   * A listener arrived: every room that was told nobody listens publishes again. Awaited before
   * the listener's first frame, so whatever a room stores after that frame reaches it live.
   */
  private async listenersBack(): Promise<void> {
    const sql = this.ctx.storage.sql;
    const rooms = sql.exec<{ conversation_id: string }>("SELECT conversation_id FROM quiet_publishers").toArray();
    if (rooms.length === 0) return;
    sql.exec("DELETE FROM quiet_publishers");
    await Promise.all(
      rooms.map((r) =>
        this.env.CONVERSATION.getByName(r.conversation_id)
          .hubListening()
          .catch((err: unknown) => console.error(JSON.stringify({ at: "hub.listenersBack", conversation: r.conversation_id, error: String(err) }))),
      ),
    );
  }

  /** Socket.IO sessions subscribed per topic, as last read (this object is the only writer of `remote`). */
  private remoteTopics = new Map<"queue" | "presence", string[]>();

  private remoteNames(topic: "queue" | "presence"): string[] {
    let names = this.remoteTopics.get(topic);
    if (!names) {
      names = this.ctx.storage.sql.exec<{ name: string }>(`SELECT name FROM remote WHERE ${topic} = 1`).toArray().map((r) => r.name);
      this.remoteTopics.set(topic, names);
    }
    return names;
  }

  private toRemote(topic: "queue" | "presence", event: HubEvent) {
    for (const name of this.remoteNames(topic)) this.fanout.send(name, `org:${topic}`, event, () => void this.remoteGone(name));
  }

  async accountStatus(): Promise<"online" | "offline"> {
    return this.onlineAgents().size > 0 ? "online" : "offline";
  }

  override async onConnect(conn: Connection<SocketState>, ctx: ConnectionContext): Promise<void> {
    const principal = JSON.parse(ctx.request.headers.get("x-parley-principal") ?? "null") as Principal | null;
    if (!principal || principal.type !== "agent") return conn.close(4403, "forbidden");
    const wasOnline = this.onlineAgents(conn.id).has(principal.id);
    conn.setState({ principal });
    await this.listenersBack();
    conn.send(JSON.stringify({ type: "ready", online_agents: [...this.onlineAgents()] }));
    if (!wasOnline) this.agentStatusChanged(principal.id, "online");
  }

  override async onClose(conn: Connection<SocketState>): Promise<void> {
    const id = conn.state?.principal.id;
    if (id && !this.onlineAgents(conn.id).has(id)) this.agentStatusChanged(id, "offline", conn.id);
  }

  private agentStatusChanged(agentId: string, status: "online" | "offline", closingConnId?: string) {
    const event = { type: "agent_status_changed", agent_id: agentId, status };
    this.broadcast(JSON.stringify(event));
    this.toRemote("presence", event);
    if (status === "online") this.ctx.waitUntil(this.dispatch());
    const others = this.onlineAgents(closingConnId);
    others.delete(agentId);
    if (others.size > 0) return; // the account status did not flip
    const watchers = this.ctx.storage.sql.exec<{ conversation_id: string }>("SELECT conversation_id FROM watchers").toArray();
    for (const w of watchers) {
      this.ctx.waitUntil(
        this.env.CONVERSATION.getByName(w.conversation_id)
          .presence(status)
          .catch((err: unknown) => console.error(JSON.stringify({ at: "hub.presence", conversation: w.conversation_id, error: String(err) }))),
      );
    }
  }

  override async onMessage(conn: Connection): Promise<void> {
    conn.send(JSON.stringify({ type: "error", code: "unknown_event", message: "the inbox socket only receives", retryable: false }));
  }

  private onlineAgents(exceptConnId?: string): Set<string> {
    const ids = new Set<string>();
    for (const c of this.getConnections<SocketState>()) {
      if (c.id !== exceptConnId && c.state?.principal) ids.add(c.state.principal.id);
    }
    for (const r of this.ctx.storage.sql.exec<{ agent_id: string }>("SELECT agent_id FROM remote WHERE agent_id IS NOT NULL")) ids.add(r.agent_id);
    return ids;
  }
}

/** A waiting customer's place in line, as the room shows it. */
function waitingStatus(position: number, queue: { name: string; closed_message: string | null } | null, waits: number[], agentsAvailable: boolean, open: boolean): QueueStatus {
  return {
    position,
    estimated_wait_s: estimateWaitS(position, waits),
    queue: queue?.name ?? null,
    open,
    closed_message: open ? null : (queue?.closed_message ?? CLOSED_MESSAGE),
    agents_available: agentsAvailable,
  };
}
