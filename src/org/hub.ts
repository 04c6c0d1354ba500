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
 */
import { Server, type Connection, type ConnectionContext } from "partyserver";
import type { Principal } from "../core/message";
import { RemoteFanout } from "../socketio/fanout";
import { PING_FRAME, PONG_FRAME } from "../conversation/protocol";

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
    // Socket.IO sessions: their topics (queue events, presence) and, for agents, their presence.
    sql.exec("CREATE TABLE IF NOT EXISTS remote (name TEXT PRIMARY KEY, agent_id TEXT, queue INTEGER NOT NULL DEFAULT 0, presence INTEGER NOT NULL DEFAULT 0)");
    this.fanout = new RemoteFanout(ctx, env);
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_FRAME, PONG_FRAME));
  }

  /** A Socket.IO session of an agent is connected: the agent counts as online. */
  async remoteOnline(name: string, agentId: string): Promise<void> {
    const wasOnline = this.onlineAgents().has(agentId);
    this.ctx.storage.sql.exec("INSERT INTO remote (name, agent_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET agent_id = excluded.agent_id", name, agentId);
    if (!wasOnline) this.agentStatusChanged(agentId, "online");
  }

  /** A Socket.IO session subscribes to queue events or presence changes. */
  async remoteSubscribe(name: string, topic: "queue" | "presence"): Promise<{ online_agents: string[] }> {
    this.ctx.storage.sql.exec(`INSERT INTO remote (name, ${topic}) VALUES (?, 1) ON CONFLICT(name) DO UPDATE SET ${topic} = 1`, name);
    return { online_agents: [...this.onlineAgents()] };
  }

  /** A Socket.IO session ended. */
  async remoteGone(name: string): Promise<void> {
    const row = this.ctx.storage.sql.exec<{ agent_id: string | null }>("SELECT agent_id FROM remote WHERE name = ?", name).toArray()[0];
    this.ctx.storage.sql.exec("DELETE FROM remote WHERE name = ?", name);
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

  /** Conversation objects call this after a durable change. */
  async publish(event: HubEvent): Promise<void> {
    this.broadcast(JSON.stringify(event));
    this.toRemote("queue", event);
  }

  private toRemote(topic: "queue" | "presence", event: HubEvent) {
    const rows = this.ctx.storage.sql.exec<{ name: string }>(`SELECT name FROM remote WHERE ${topic} = 1`).toArray();
    for (const r of rows) this.fanout.send(r.name, `org:${topic}`, event, () => void this.remoteGone(r.name));
  }

  async accountStatus(): Promise<"online" | "offline"> {
    return this.onlineAgents().size > 0 ? "online" : "offline";
  }

  override async onConnect(conn: Connection<SocketState>, ctx: ConnectionContext): Promise<void> {
    const principal = JSON.parse(ctx.request.headers.get("x-parley-principal") ?? "null") as Principal | null;
    if (!principal || principal.type !== "agent") return conn.close(4403, "forbidden");
    const wasOnline = this.onlineAgents(conn.id).has(principal.id);
    conn.setState({ principal });
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
