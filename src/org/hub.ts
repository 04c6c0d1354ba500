/**
 * OrgHub: one Durable Object per organisation. Agents' inbox sockets connect here.
 *
 * Owns: agent presence (an agent is online while at least one of their sockets is open; the
 * organisation's account status, which visitors see, is online while any agent is), and the live
 * queue events (new/updated conversation, assignment, resolution) that conversation objects
 * publish. Presence is derived from the open sockets themselves, so it survives hibernation with
 * nothing stored. Events are live notifications; the inbox lists come from D1.
 */
import { Server, type Connection, type ConnectionContext } from "partyserver";
import type { Principal } from "../core/message";

interface SocketState {
  principal: Principal;
}

export type HubEvent = { type: string } & Record<string, unknown>;

export class OrgHub extends Server<Env> {
  static override options = { hibernate: true };

  /** Conversation objects call this after a durable change. */
  async publish(event: HubEvent): Promise<void> {
    this.broadcast(JSON.stringify(event));
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
    if (!wasOnline) this.broadcast(JSON.stringify({ type: "agent_status_changed", agent_id: principal.id, status: "online" }));
  }

  override async onClose(conn: Connection<SocketState>): Promise<void> {
    const id = conn.state?.principal.id;
    if (id && !this.onlineAgents(conn.id).has(id)) {
      this.broadcast(JSON.stringify({ type: "agent_status_changed", agent_id: id, status: "offline" }));
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
    return ids;
  }
}
