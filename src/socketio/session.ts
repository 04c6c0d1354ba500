/**
 * SocketIoSession: one Durable Object per Engine.IO session, named by its sid, so that every
 * request of the session (polling GETs and POSTs, the WebSocket upgrade) reaches the same object.
 *
 * Layers, bottom up:
 * - Engine.IO v4 transport: handshake, HTTP long-polling, upgrade to (or start on) WebSocket,
 *   server-initiated heartbeats from one alarm per session (the WebSocket hibernates between
 *   pings), codecs from `engine.io-parser`.
 * - Socket.IO v5 packets via `socket.io-parser`: CONNECT (with auth), EVENT with acks,
 *   DISCONNECT; connection state recovery (pid + offset, 2 minutes).
 * - Dialects (dialects.ts): the seeds' events, as calls on the conversation API.
 *
 * The session subscribes to conversation rooms and to its org hub; they deliver frames by RPC
 * (`deliver`). Memberships remember the last seq emitted per conversation, so a gap is refilled
 * from the room's log and a duplicate is dropped: every dialect sees the same ordered log.
 */
import { type Connection, type ConnectionContext, type WSMessage } from "partyserver";
import { ParleyServer } from "../core/party";
import { Decoder, Encoder, PacketType, type Packet as SioPacket } from "socket.io-parser";
import { z } from "zod";
import { randomToken, safeEqual } from "../core/crypto";
import type { ConversationRef } from "../core/conversation-ref";
import { ApiError } from "../core/errors";
import { audienceOf, type Message, type Principal } from "../core/message";
import { channelForVisitor, conversationForAgent, conversationForEndUser, openForVisitor, requestOrigin, roomFor } from "../conversation/directory";
import type { ServerFrame } from "../conversation/protocol";
import type { SendResult } from "../conversation/room";
import { agentFromHeaders, agentFromSecretKey, agentPrincipal, sameOrigin, type Agent } from "../http/auth";
import { clientIpKey, limitNewConversationFor } from "../http/abuse";
import { optionalDisplayName } from "../core/names";
import { handleEvent, PIPELINED } from "./events";
import { KvCache } from "./kv-cache";
import { renderFrame, renderMessage, renderOrgEvent, type Dialect, type Emission, type Membership } from "./dialects";
import {
  CONNECT_TIMEOUT_MS,
  decodeBody,
  decodeFrame,
  encodeBody,
  encodeFrame,
  ENGINE_ERRORS,
  engineError,
  MAX_PAYLOAD_BYTES,
  openPacket,
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  RECOVERY_WINDOW_MS,
  REFUSED_BODY_HEADER,
  type Packet,
} from "./engine";

/** Durable per-session state (small; in the object's KV storage). */
interface EngineState {
  transport: "polling" | "websocket";
  status: "open" | "closed";
  created_at: number;
  closed_at: number | null;
  /** Set while a ping waits for its pong. */
  ping_sent_at: number | null;
  next_ping_at: number;
  /** Who the handshake request identified (its cookie or Authorization header). */
  handshake: Handshake;
}

interface Handshake {
  query: Record<string, string>;
  origin: string | null;
  agent: Omit<Agent, "session_token"> | null;
  /** A cookie that arrived cross-site: never used (cross-site WebSocket hijacking). */
  cross_site_cookie: boolean;
  /** A browser made the handshake (it sends Sec-Fetch-Site): secret keys are refused. */
  browser: boolean;
  /** The client's key for the new-conversation limit (http/abuse.ts); absent in older sessions. */
  client_key?: string | null;
}

interface SocketState {
  id: string;
  /** `<anchor sid>.<secret>`: the anchor (the first session of this client) tracks the current holder. */
  pid: string;
  /** The connection-level principal: an agent, a seed 000 visitor, or null until a join names one. */
  principal: Principal | null;
  org_id: string | null;
  /** Authenticated by a secret key (servers, connectors): not an agent's presence. */
  via_key: boolean;
  /** The session or key that authenticated an agent (see Agent.auth_ref): revoking it ends this. */
  auth_ref?: string | undefined;
  /** Explicit DISCONNECT: the state is not recoverable. */
  disconnected: boolean;
  recovered_by: string | null;
}

type WsRole = "main" | "probe";

/** A WebSocket's attachment: its role, and (main) the seqs emitted per conversation (see saveSeqs). */
interface WsState {
  role: WsRole;
  seqs?: Record<string, number>;
  /** (main) The heartbeat, newer than the stored engine state's (see engineWithHeartbeat). */
  hb?: Pick<EngineState, "ping_sent_at" | "next_ping_at">;
}

/** How long a GET parked during a pending upgrade waits before it gets a noop (see parkGet). */
const UPGRADE_NOOP_MS = 100;

/** Most message sends in one RPC to a room (the rest wait for the next). */
const MAX_SENDS_PER_RPC = 100;

interface QueuedSend {
  sender: Principal;
  input: unknown;
  /** This session emits the message itself (it is in the room): not delivered back to it. */
  own: boolean;
  resolve: (answer: SendResult) => void;
  reject: (err: unknown) => void;
}

/** Above this many rooms a session stores its seqs in storage (an attachment holds 2 KiB). */
const MAX_SEQS_IN_ATTACHMENT = 16;

/** Who asks to recover a session (re-authenticated on the new connection). */
interface Claimant {
  principal: Principal | null;
  org_id: string | null;
}

interface PendingAck {
  channel: string;
  outbox_id: number;
}

export type Handover = { socket: SocketState; memberships: Membership[]; org_topics: ("queue" | "presence")[] };

const encoder = new Encoder();

export class SocketIoSession extends ParleyServer {
  static override options = { hibernate: true };

  private readonly kv = new KvCache(this.ctx.storage.kv);
  private outbox: Packet[] = [];
  private pendingGet: ((r: Response) => void) | null = null;
  private decoder: Decoder | null = null;
  /** Incoming Socket.IO packets are handled one at a time, in arrival order. */
  private inbound: Promise<void> = Promise.resolve();
  /** The memberships by conversation id, read from storage once (see memberships()). */
  private joined: Map<string, Membership> | null = null;
  /** The acks (and what follows them) of the events handled so far, in the events' order. */
  private replies: Promise<void> = Promise.resolve();
  /** Per conversation with a send in flight: the sends that wait for it (they go together next). */
  private readonly sendQueues = new Map<string, QueuedSend[]>();
  /** The main WebSocket once looked up (null: none); undefined: look again. */
  private main: Connection<WsState> | null | undefined = undefined;
  /** Packets of a delivery in progress, sent once its seqs are stored (see releaseHeld()). */
  private held: Packet[] | null = null;
  /** Conversations whose last emitted seq changed since it was last stored. */
  private readonly dirtySeqs = new Set<string>();
  /** From the probe's "3probe" until the upgrade packet (or the probe socket's close): see parkGet. */
  private upgrading = false;

  // ---- Engine.IO over HTTP long-polling --------------------------------------------------

  override async onRequest(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.searchParams.get("transport") !== "polling") return engineError(ENGINE_ERRORS.BAD_REQUEST);
    const sid = url.searchParams.get("sid");
    if (!sid) {
      if (request.method !== "GET") return engineError(ENGINE_ERRORS.BAD_HANDSHAKE_METHOD);
      if (this.engine()) return engineError(ENGINE_ERRORS.BAD_REQUEST);
      await this.handshake(request, "polling");
      return this.pollResponse([openPacket(this.name, ["websocket"])]);
    }
    const st = this.engine();
    if (!st || sid !== this.name || st.status === "closed") return engineError(ENGINE_ERRORS.UNKNOWN_SID);
    if (st.transport !== "polling") return engineError(ENGINE_ERRORS.BAD_REQUEST);
    if (request.method === "GET") {
      if (this.pendingGet) {
        // Engine.IO allows one GET at a time; an overlapping one ends the session.
        await this.closeEngine("overlapping poll");
        return engineError(ENGINE_ERRORS.BAD_REQUEST);
      }
      if (this.outbox.length > 0) return this.pollResponse(this.takeOutbox());
      return this.parkGet();
    }
    if (request.method === "POST") {
      // The Worker read the body (route.ts): over maxPayload, or too slow to arrive, ends the session.
      const refused = request.headers.get(REFUSED_BODY_HEADER);
      if (refused) {
        await this.closeEngine(refused === "413" ? "payload too large" : "poll body timeout");
        return engineError(ENGINE_ERRORS.BAD_REQUEST, Number(refused));
      }
      const body = await request.text();
      for (const packet of decodeBody(body)) {
        if (!(await this.onEnginePacket(packet))) break;
      }
      await this.inbound;
      return new Response("ok", { headers: { "content-type": "text/html" } });
    }
    return engineError(ENGINE_ERRORS.BAD_REQUEST);
  }

  /**
   * Parks the GET until there is something to send. While an upgrade is pending it gets a noop
   * after UPGRADE_NOOP_MS, as the reference server's 100 ms check does: the noop sent with
   * "3probe" travels on another connection than the probe's answer and can reach the client
   * first, which then takes it for an ordinary packet and polls again; once "3probe" is in, the
   * client waits for this GET to complete before it sends the upgrade packet.
   */
  private parkGet(): Promise<Response> {
    return new Promise<Response>((resolve) => {
      this.pendingGet = resolve;
      if (this.upgrading) {
        setTimeout(() => {
          if (this.upgrading && this.pendingGet === resolve) this.flushPoll([{ type: "noop" }]);
        }, UPGRADE_NOOP_MS);
      }
    });
  }

  private pollResponse(packets: Packet[]): Response {
    return new Response(encodeBody(packets), { headers: { "content-type": "text/plain; charset=UTF-8" } });
  }

  private takeOutbox(): Packet[] {
    const packets = this.outbox;
    this.outbox = [];
    return packets;
  }

  // ---- Engine.IO over WebSocket (direct, or upgraded from polling) -------------------------

  override async onConnect(conn: Connection<WsState>, ctx: ConnectionContext): Promise<void> {
    const sid = new URL(ctx.request.url).searchParams.get("sid");
    if (!sid) {
      if (this.engine()) return conn.close(1008, "session exists");
      conn.setState({ role: "main" });
      this.main = undefined;
      await this.handshake(ctx.request, "websocket");
      conn.send(encodeFrame(openPacket(this.name, [])));
      return;
    }
    const st = this.engine();
    if (!st || sid !== this.name || st.status === "closed" || st.transport !== "polling") return conn.close(1008, ENGINE_ERRORS.UNKNOWN_SID.message);
    conn.setState({ role: "probe" });
  }

  override async onMessage(conn: Connection<WsState>, data: WSMessage): Promise<void> {
    const size = typeof data === "string" ? data.length : data.byteLength;
    if (size > MAX_PAYLOAD_BYTES) {
      await this.closeEngine("payload too large");
      return;
    }
    const packet = decodeFrame(typeof data === "string" ? data : data instanceof ArrayBuffer ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer);
    if (conn.state?.role === "probe") {
      if (packet.type === "ping" && packet.data === "probe") {
        conn.send(encodeFrame({ type: "pong", data: "probe" }));
        this.upgrading = true;
        this.flushPoll([{ type: "noop" }]);
      } else if (packet.type === "upgrade") {
        conn.setState({ role: "main" });
        this.main = undefined;
        this.upgrading = false;
        this.saveEngine({ ...this.engine()!, transport: "websocket" });
        this.flushPoll([{ type: "noop" }]);
        for (const p of this.takeOutbox()) conn.send(encodeFrame(p));
      } else {
        conn.close(1002, "upgrade expected");
      }
      return;
    }
    await this.onEnginePacket(packet);
    await this.inbound;
  }

  override async onClose(conn: Connection<WsState>): Promise<void> {
    this.main = undefined;
    if (conn.state?.role === "probe") this.upgrading = false;
    if (conn.state?.seqs) {
      this.membershipMap();
      this.adoptSeqs(conn.state.seqs);
    }
    if (conn.state?.role === "main" && this.engine()?.status === "open") await this.closeEngine("transport close");
  }

  // ---- Engine.IO packets and heartbeats ---------------------------------------------------

  /** Returns false once the session is closed. */
  private async onEnginePacket(packet: Packet): Promise<boolean> {
    switch (packet.type) {
      case "pong": {
        const st = this.engineWithHeartbeat();
        if (st?.ping_sent_at) {
          const next = { ...st, ping_sent_at: null, next_ping_at: st.ping_sent_at + PING_INTERVAL_MS };
          this.saveHeartbeat(next);
          await this.ctx.storage.setAlarm(this.nextDeadline(next));
        }
        return true;
      }
      case "message":
        this.onSocketIoData(packet.data as string | ArrayBuffer);
        return true;
      case "noop":
        return true;
      case "ping":
        this.sendPackets([{ type: "pong", data: packet.data }]);
        return true;
      case "close":
        await this.closeEngine("client close");
        return false;
      default:
        await this.closeEngine(`unexpected ${packet.type} packet`);
        return false;
    }
  }

  override async onAlarm(): Promise<void> {
    const st = this.engineWithHeartbeat();
    if (!st) return;
    const now = Date.now();
    if (st.status === "closed") {
      if (now < (st.closed_at ?? 0) + RECOVERY_WINDOW_MS) return void (await this.ctx.storage.setAlarm((st.closed_at ?? now) + RECOVERY_WINDOW_MS));
      return this.expire();
    }
    if (st.ping_sent_at !== null && now >= st.ping_sent_at + PING_TIMEOUT_MS) return void (await this.closeEngine("ping timeout"));
    if (!this.socket() && now >= st.created_at + CONNECT_TIMEOUT_MS) return void (await this.closeEngine("connect timeout"));
    if (st.ping_sent_at === null && now >= st.next_ping_at) {
      this.saveHeartbeat({ ...st, ping_sent_at: now });
      this.sendPackets([{ type: "ping" }]);
      return void (await this.ctx.storage.setAlarm(this.nextDeadline({ ...st, ping_sent_at: now })));
    }
    await this.ctx.storage.setAlarm(this.nextDeadline(st));
  }

  /**
   * The engine state with the heartbeat's current fields. On a WebSocket they live in the socket's
   * attachment (no storage write per ping and pong; the attachment survives hibernation, and a
   * session whose socket is gone is closed); on polling, in the stored engine state.
   */
  private engineWithHeartbeat(): EngineState | undefined {
    const st = this.engine();
    const hb = st?.transport === "websocket" && st.status === "open" ? this.mainSocket()?.state?.hb : undefined;
    return st && hb ? { ...st, ...hb } : st;
  }

  private saveHeartbeat(st: EngineState) {
    const conn = st.transport === "websocket" ? this.mainSocket() : undefined;
    if (conn) conn.setState({ ...conn.state!, hb: { ping_sent_at: st.ping_sent_at, next_ping_at: st.next_ping_at } });
    else this.saveEngine(st);
  }

  /** The one alarm of an open session: the next ping, a pong's deadline, or the CONNECT deadline. */
  private nextDeadline(st: EngineState): number {
    const heartbeat = st.ping_sent_at !== null ? st.ping_sent_at + PING_TIMEOUT_MS : st.next_ping_at;
    return this.socket() ? heartbeat : Math.min(heartbeat, st.created_at + CONNECT_TIMEOUT_MS);
  }

  /**
   * The recovery window passed, or the client left for good: drop this session's state and its
   * alarm, keeping only what a live pid needs.
   */
  private async expire() {
    const socket = this.socket();
    const holder = this.kv.get<string>("pid_holder");
    const anchor = socket?.pid.split(".")[0];
    if (holder && holder !== this.name && socket?.recovered_by) {
      // This anchor's pid lives on in another session: keep the pid record, drop the rest.
      for (const [key] of this.kv.list()) if (key !== "socket" && key !== "pid_holder") this.kv.delete(key);
      this.forgetMemberships();
      await this.ctx.storage.deleteAlarm(); // (deleteAll below deletes it too, since compatibility date 2026-02-24)
      return;
    }
    if (socket && !socket.recovered_by && anchor && anchor !== this.name) {
      await this.env.SOCKETIO.getByName(anchor).forgetPid().catch((err: unknown) => logError("socketio.forgetPid", err));
    }
    await this.ctx.storage.deleteAll();
    this.kv.cleared();
    this.forgetMemberships();
  }

  private sendPackets(packets: Packet[]) {
    if (this.held) return void this.held.push(...packets);
    const st = this.engine();
    if (!st || st.status === "closed") return;
    if (st.transport === "websocket") {
      const conn = this.mainSocket();
      if (conn) for (const p of packets) conn.send(encodeFrame(p));
      return;
    }
    this.outbox.push(...packets);
    if (this.pendingGet) this.flushPoll(this.takeOutbox());
  }

  /**
   * Answers the pending GET with these packets, or keeps them for the next one. The noop after an
   * upgrade probe must reach a GET even when none is waiting yet: the client pauses polling until
   * it gets it, before it sends the upgrade packet.
   */
  private flushPoll(packets: Packet[]) {
    const resolve = this.pendingGet;
    if (!resolve) return void this.outbox.unshift(...packets);
    this.pendingGet = null;
    resolve(this.pollResponse(packets));
  }

  /**
   * The session's WebSocket. Remembered once found (getConnections reads every socket's
   * attachment); forgotten when a socket closes, and absent after hibernation (found again).
   */
  private mainSocket(): Connection<WsState> | undefined {
    if (this.main && this.main.readyState !== WebSocket.READY_STATE_OPEN) this.main = undefined;
    if (this.main === undefined) {
      this.main = null;
      for (const c of this.getConnections<WsState>()) if (c.state?.role === "main") this.main = c;
    }
    return this.main ?? undefined;
  }

  private async handshake(request: Request, transport: EngineState["transport"]) {
    const now = Date.now();
    const query = Object.fromEntries(new URL(request.url).searchParams);
    const crossSite = request.headers.has("cookie") && !sameOrigin(request);
    let agent: Agent | null = null;
    try {
      agent = crossSite ? null : await agentFromHeaders(this.env, request.headers, request.url);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
    const { session_token: _secret, ...agentInfo } = agent ?? { session_token: null };
    this.saveEngine({
      transport,
      status: "open",
      created_at: now,
      closed_at: null,
      ping_sent_at: null,
      next_ping_at: now + PING_INTERVAL_MS,
      handshake: { query, origin: requestOrigin(request) ?? null, agent: agent ? (agentInfo as Omit<Agent, "session_token">) : null, cross_site_cookie: crossSite, browser: request.headers.has("sec-fetch-site"), client_key: clientIpKey(request) },
    });
    await this.ctx.storage.setAlarm(Math.min(now + PING_INTERVAL_MS, now + CONNECT_TIMEOUT_MS));
  }

  private async closeEngine(reason: string) {
    const st = this.engine();
    if (!st || st.status === "closed") return;
    const now = Date.now();
    this.saveEngine({ ...st, status: "closed", closed_at: now, ping_sent_at: null });
    this.membershipMap();
    this.storeSeqs(); // what the WebSocket's attachment held: a recovery takes it from storage
    this.flushPoll([{ type: "noop" }]);
    for (const c of this.getConnections()) c.close(1000, reason);
    this.main = undefined;
    const socket = this.socket();
    if (socket?.org_id && (socket.principal?.type === "agent" || this.kv.get("connector_channel"))) {
      await this.env.ORG_HUB.getByName(socket.org_id).remoteGone(this.name).catch((err: unknown) => logError("socketio.remoteGone", err));
    }
    // The rooms hear now that this connection is gone (an agent's last: participantLeft; an end
    // user's: offline, for push). The memberships stay: a recovering client joins them again.
    await Promise.all(this.memberships().map((m) => roomFor(this.env, m.ref).unsubscribe(m.ref, this.name).catch((err: unknown) => logError("socketio.unsubscribe", err))));
    // A client that left on purpose (DISCONNECT, or a revoked credential) can never recover
    // (`release` refuses it): its state goes now, not with a burst of alarms 2 minutes later.
    if (this.socket()?.disconnected) return this.expire();
    if (!this.engine()) return; // dropped meanwhile (a revocation's end() during the awaits above)
    await this.ctx.storage.setAlarm(now + RECOVERY_WINDOW_MS);
  }

  // ---- Socket.IO packets ---------------------------------------------------------------------

  private onSocketIoData(data: string | ArrayBuffer) {
    if (!this.decoder) {
      this.decoder = new Decoder({ maxAttachments: 10 });
      this.decoder.on("decoded", (packet: SioPacket) => {
        this.inbound = this.inbound.then(() => this.onSocketIoPacket(packet)).catch((err) => logError("socketio.packet", err));
      });
    }
    try {
      this.decoder.add(data);
    } catch (err) {
      // Malformed packets close only this session (as the reference server does).
      this.decoder = null;
      this.inbound = this.inbound.then(() => this.closeEngine(`parse error: ${String(err)}`));
    }
  }

  private async onSocketIoPacket(packet: SioPacket): Promise<void> {
    if (packet.nsp !== "/") {
      if (packet.type === PacketType.CONNECT) this.sendSio({ type: PacketType.CONNECT_ERROR, nsp: packet.nsp, data: { message: "Invalid namespace" } });
      return;
    }
    switch (packet.type) {
      case PacketType.CONNECT:
        return this.onConnectPacket(packet.data);
      case PacketType.EVENT:
      case PacketType.BINARY_EVENT: {
        const socket = this.socket();
        if (!socket) return this.closeEngine("event before connect");
        const [event, ...args] = packet.data as [unknown, ...unknown[]];
        if (typeof event !== "string") return this.closeEngine("invalid event");
        // A message send does not hold up the next event (its room answer comes later, several
        // sends share one RPC while one is in flight); every other event waits for the acks before it.
        const pipelined = PIPELINED.has(event);
        if (!pipelined) await this.replies;
        const settle = await handleEvent(this, this.env, event, args[0]);
        this.replies = this.replies
          .then(async () => {
            const { reply, after } = await settle();
            if (packet.id !== undefined) this.sendSio({ type: PacketType.ACK, nsp: "/", id: packet.id, data: [reply] });
            if (after) await after();
          })
          .catch((err: unknown) => logError("socketio.reply", err));
        if (!pipelined) await this.replies;
        return;
      }
      case PacketType.DISCONNECT: {
        const socket = this.socket();
        if (socket) this.saveSocket({ ...socket, disconnected: true });
        return this.closeEngine("client namespace disconnect");
      }
      case PacketType.ACK:
      case PacketType.BINARY_ACK:
        return this.onClientAck(packet.id);
      default:
        return this.closeEngine("unexpected packet");
    }
  }

  private async onConnectPacket(auth: unknown) {
    if (this.socket()) return; // one namespace, one socket per session
    const authData = z.record(z.string(), z.unknown()).catch({}).parse(auth ?? {});
    const identity = await this.authenticate(authData).catch((err: unknown) => {
      logError("socketio.connect", err);
      return { error: "internal error" };
    });
    if ("error" in identity) {
      this.sendSio({ type: PacketType.CONNECT_ERROR, nsp: "/", data: { message: identity.error } });
      return;
    }
    let socket: SocketState = {
      id: randomToken(15),
      pid: `${this.name}.${randomToken(18)}`,
      principal: identity.principal,
      org_id: identity.org_id,
      via_key: identity.via_key ?? false,
      auth_ref: identity.auth_ref,
      disconnected: false,
      recovered_by: null,
    };
    const recovered = await this.recover(authData, socket);
    if (recovered) socket = { ...socket, id: recovered.socket.id, pid: recovered.socket.pid };
    this.saveSocket(socket);
    const pid = socket.pid;
    if (socket.principal?.type === "agent" && socket.org_id && !socket.via_key) await this.env.ORG_HUB.getByName(socket.org_id).remoteOnline(this.name, socket.principal.id);
    if (socket.auth_ref && socket.org_id) await this.env.ORG_HUB.getByName(socket.org_id).trackRemoteAuth(this.name, socket.auth_ref);
    if (!recovered && identity.visitor) {
      // Seed 000: the visitor's conversation is the connection's own; joined before the CONNECT
      // is answered, so a refusal (e.g. the visitor's connection cap) is a connect_error.
      try {
        await this.join(identity.visitor, socket.principal!, "dosti", null);
      } catch (err) {
        this.kv.delete("socket");
        const message = err instanceof ApiError ? err.message : "internal error";
        if (!(err instanceof ApiError)) logError("socketio.connect_join", err);
        this.sendSio({ type: PacketType.CONNECT_ERROR, nsp: "/", data: { message } });
        return;
      }
    }
    this.sendSio({ type: PacketType.CONNECT, nsp: "/", data: { sid: socket.id, pid } });
    if (recovered) {
      for (const topic of recovered.org_topics) await this.subscribeOrg(topic);
      for (const m of recovered.memberships) await this.join(m.ref, m.principal, m.dialect, m.last_seq);
    }
  }

  /** Who the CONNECT is, from the handshake (cookie, query) and the CONNECT's auth payload. */
  private async authenticate(
    auth: Record<string, unknown>,
  ): Promise<{ error: string } | { principal: Principal | null; org_id: string | null; visitor?: ConversationRef; via_key?: boolean; auth_ref?: string }> {
    const hs = this.engine()!.handshake;
    const param = (k: string) => (typeof auth[k] === "string" ? (auth[k] as string) : hs.query[k]);
    const apiKey = param("apiKey") ?? param("key");
    try {
      if (apiKey?.startsWith("sk_")) {
        if (hs.browser) return { error: "secret keys are for servers; browsers use a session or a public key" };
        const agent = await agentFromSecretKey(this.env, apiKey, new Headers());
        if (!agent) return { error: "invalid api key" };
        return { principal: agentPrincipal(agent), org_id: agent.org_id, via_key: true, auth_ref: agent.auth_ref };
      }
      if (apiKey || param("embed_token")) {
        const channel = await channelForVisitor(this.env, { publicKey: apiKey, embedToken: param("embed_token") }, hs.origin ?? undefined);
        const visitorId = param("visitorId") ?? param("external_id");
        if (!visitorId) return { error: "visitorId is required with a public key" };
        const name = optionalDisplayName(param("visitorName") ?? param("name"));
        if (!name.ok) return { error: `visitorName: ${name.message}` };
        await limitNewConversationFor(this.env, hs.client_key ?? null, channel.id, visitorId);
        const ref = await openForVisitor(this.env, channel, {
          external_id: visitorId,
          identity_hash: param("identityHash") ?? param("identity_hash"),
          display_name: name.name,
        });
        return { principal: { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name }, org_id: ref.org_id, visitor: ref };
      }
      if (hs.cross_site_cookie) return { error: "cross-site connection refused" };
      if (hs.agent) return { principal: agentPrincipal({ ...hs.agent, session_token: null }), org_id: hs.agent.org_id, auth_ref: hs.agent.auth_ref };
      return { principal: null, org_id: null }; // a seed 001 end user, checked by external_id on join
    } catch (err) {
      if (err instanceof ApiError) return { error: err.message };
      throw err;
    }
  }

  /**
   * Socket.IO connection state recovery: the client's CONNECT carries the pid and the last offset
   * of its previous session. The previous session hands over its memberships once, within the
   * window, and only to the same principal (authentication ran again above).
   */
  private async recover(auth: Record<string, unknown>, fresh: SocketState): Promise<Handover | null> {
    if (typeof auth.pid !== "string") return null;
    const [anchor] = auth.pid.split(".");
    if (!anchor || anchor === this.name) return null;
    const handover = await this.env.SOCKETIO.getByName(anchor)
      .handover(auth.pid, this.name, { principal: fresh.principal, org_id: fresh.org_id })
      .catch((err: unknown) => (logError("socketio.handover", err), null));
    if (!handover) return null;
    const same = (a: Principal | null, b: Principal | null) => a?.type === b?.type && a?.id === b?.id;
    if (!same(handover.socket.principal, fresh.principal) || handover.socket.org_id !== fresh.org_id) return null;
    const offsets = decodeOffset(typeof auth.offset === "string" ? auth.offset : "");
    for (const m of handover.memberships) m.last_seq = offsets[m.ref.id] ?? m.last_seq;
    return handover;
  }

  /**
   * RPC to the anchor session (the one that issued the pid) from a reconnecting client's new
   * session: checks the pid's secret, takes the state from the session currently holding it, and
   * records the new holder. The pid stays the same for the client's lifetime, as Socket.IO
   * clients expect.
   */
  async handover(pid: string, newHolder: string, claimant: Claimant): Promise<Handover | null> {
    const socket = this.socket();
    if (!socket || !safeEqual(pid, socket.pid)) return null;
    const current = this.kv.get<string>("pid_holder") ?? this.name;
    const state = current === this.name ? await this.release(claimant) : await this.env.SOCKETIO.getByName(current).release(claimant);
    if (!state) return null;
    this.kv.put("pid_holder", newHolder);
    return state;
  }

  /**
   * RPC from the anchor: hand this session's state over, once. A session the server still
   * thinks open (the client noticed the drop first) is closed.
   */
  async release(claimant: Claimant): Promise<Handover | null> {
    const socket = this.socket();
    const st = this.engine();
    if (!socket || !st || socket.disconnected || socket.recovered_by) return null;
    // Authentication ran again for the new connection: only the same principal may take over.
    if (socket.principal?.type !== claimant.principal?.type || socket.principal?.id !== claimant.principal?.id || socket.org_id !== claimant.org_id) return null;
    if (st.status === "closed" && Date.now() > (st.closed_at ?? 0) + RECOVERY_WINDOW_MS) return null;
    if (st.status === "open") await this.closeEngine("replaced by a recovered connection");
    this.saveSocket({ ...socket, recovered_by: "next" });
    return { socket, memberships: this.memberships(), org_topics: this.kv.get<("queue" | "presence")[]>("org_topics") ?? [] };
  }

  /** RPC from the org hub: the session or key behind this connection was revoked. No recovery. */
  async end(reason: string): Promise<void> {
    const socket = this.socket();
    if (socket) this.saveSocket({ ...socket, disconnected: true });
    if (this.socket()) this.sendSio({ type: PacketType.DISCONNECT, nsp: "/" });
    // Already closed (in its recovery window): nothing is recoverable any more either.
    if (this.engine()?.status === "closed" && this.socket()) return this.expire();
    await this.closeEngine(reason);
  }

  /** RPC from the last holder of this anchor's pid, when it ends for good: forget the pid. */
  async forgetPid(): Promise<void> {
    if (this.engine()?.status !== "open") {
      await this.ctx.storage.deleteAll();
      this.kv.cleared();
      this.forgetMemberships();
    }
  }

  // ---- Rooms: what dialect handlers call ---------------------------------------------------

  /**
   * Joins a conversation for a dialect and replays what the session has not emitted yet
   * (everything after `afterSeq`; nothing when null, i.e. a fresh join sees only new messages).
   */
  async join(ref: ConversationRef, principal: Principal, dialect: Dialect, afterSeq: number | null): Promise<Membership> {
    const room = roomFor(this.env, ref);
    const sub = await room.subscribe(ref, this.name, principal);
    if (!sub.ok) throw ApiError.from(sub.error);
    const existing = this.memberships().find((m) => m.ref.id === ref.id);
    const m: Membership = existing ?? { ref, principal, dialect, last_seq: afterSeq ?? sub.head_seq, assigned: sub.session?.assigned_agent_id ?? null };
    m.dialect = dialect;
    this.saveMembership(m);
    if (afterSeq !== null) await this.catchUp(m);
    return m;
  }

  async leave(conversationId: string): Promise<boolean> {
    const m = this.memberships().find((x) => x.ref.id === conversationId);
    if (!m) return false;
    this.deleteMembership(conversationId);
    await roomFor(this.env, m.ref).unsubscribe(m.ref, this.name);
    return true;
  }

  membership(conversationId: string): Membership | undefined {
    return this.membershipMap().get(conversationId);
  }

  /** The seed 000 visitor's own conversation, joined at connect. */
  dostiMembership(): Membership | undefined {
    return this.memberships().find((m) => m.dialect === "dosti");
  }

  async subscribeOrg(topic: "queue" | "presence"): Promise<string[]> {
    const socket = this.socket();
    if (!socket?.org_id || socket.principal?.type !== "agent") throw new ApiError("unauthorized", "only agents join org rooms");
    const topics = new Set(this.kv.get<("queue" | "presence")[]>("org_topics") ?? []);
    topics.add(topic);
    this.kv.put("org_topics", [...topics]);
    return (await this.env.ORG_HUB.getByName(socket.org_id).remoteSubscribe(this.name, topic)).online_agents;
  }

  socket(): SocketState | undefined {
    return this.kv.get<SocketState>("socket");
  }

  handshakeParams(): Record<string, string> {
    return this.engine()?.handshake.query ?? {};
  }

  handshakeOrigin(): string | undefined {
    return this.engine()?.handshake.origin ?? undefined;
  }

  handshakeClientKey(): string | null {
    return this.engine()?.handshake.client_key ?? null;
  }

  /** Finds a conversation for this session's principal or the given end user. */
  async resolveConversation(conversationId: string, externalId: string | undefined, identityHash?: string): Promise<{ ref: ConversationRef; principal: Principal }> {
    const socket = this.socket();
    if (socket?.principal?.type === "agent" && socket.org_id) {
      return { ref: await conversationForAgent(this.env, socket.org_id, conversationId), principal: socket.principal };
    }
    const id = externalId ?? (socket?.principal?.type === "end_user" ? socket.principal.id : undefined);
    if (!id) throw new ApiError("unauthorized", "external_id is required");
    const ref = await conversationForEndUser(this.env, conversationId, id, identityHash);
    return { ref, principal: { type: "end_user", id, name: ref.end_user.display_name } };
  }

  emit(event: string, payload: unknown, offset?: string) {
    this.sendSio({ type: PacketType.EVENT, nsp: "/", data: offset === undefined ? [event, payload] : [event, payload, offset] });
  }

  // ---- Server-to-client acknowledgements (connectors confirm deliveries) -----------------------

  private emitWithAck(event: string, payload: unknown, pending: PendingAck) {
    const id = (this.kv.get<number>("ack_seq") ?? 0) + 1;
    this.kv.put("ack_seq", id);
    this.kv.put(`ack:${id}`, pending);
    this.sendSio({ type: PacketType.EVENT, nsp: "/", id, data: [event, payload] });
  }

  private async onClientAck(id: number | undefined) {
    const pending = id === undefined ? undefined : this.kv.get<PendingAck>(`ack:${id}`);
    if (!pending) return; // unknown or repeated ack: nothing to do
    this.kv.delete(`ack:${id}`);
    const org = this.socket()?.org_id;
    if (org) await this.env.ORG_HUB.getByName(org).connectorAck(pending.channel, pending.outbox_id);
  }

  /** Registers this session as the connector of a channel (seed 002's registerConnector). */
  async registerConnector(channel: string): Promise<number> {
    const socket = this.socket();
    if (!socket?.org_id || !socket.via_key) throw new ApiError("unauthorized", "connectors authenticate with a secret key (apiKey=sk_... or auth.apiKey)");
    this.kv.put("connector_channel", channel);
    return (await this.env.ORG_HUB.getByName(socket.org_id).connectorRegister(this.name, channel)).pending;
  }

  connectorChannel(): string | undefined {
    return this.kv.get<string>("connector_channel");
  }

  // ---- Deliveries from rooms and hubs --------------------------------------------------------

  /**
   * RPC from a room (`conv:<id>`) or the org hub (`org:queue`, `org:presence`, `connector:<channel>`):
   * frames in emission order (fanout.ts sends what piled up during the previous RPC together).
   * Each answer is false when the session is gone for that frame's topic. The seqs emitted are
   * stored once per call, before the answer (the output gate holds it until they are durable).
   */
  async deliverMany(frames: [topic: string, frame: unknown][]): Promise<boolean[]> {
    const out: boolean[] = [];
    this.held = [];
    try {
      for (const [topic, frame] of frames) out.push(await this.deliverOne(topic, frame));
    } finally {
      this.releaseHeld();
    }
    return out;
  }

  /** One frame (rooms of an older deployment call this). */
  async deliver(topic: string, frame: unknown): Promise<boolean> {
    return (await this.deliverMany([[topic, frame]]))[0]!;
  }

  private async deliverOne(topic: string, frame: unknown): Promise<boolean> {
    const st = this.engine();
    if (!st || st.status === "closed" || !this.socket()) return false;
    if (topic.startsWith("connector:")) {
      const { outbox_id, message } = frame as { outbox_id: number; message: unknown };
      this.emitWithAck("messageArrived", message, { channel: topic.slice("connector:".length), outbox_id });
      return true;
    }
    if (topic.startsWith("org:")) {
      for (const [event, payload] of renderOrgEvent(frame as { type: string })) this.emit(event, payload);
      return true;
    }
    const m = this.membership(topic.slice("conv:".length));
    if (!m) return false;
    const f = frame as ServerFrame;
    if (f.type === "message") await this.emitMessage(m, f.message);
    else {
      const assigned = m.assigned;
      this.emitAll(renderFrame(m, f));
      if (m.assigned !== assigned) this.saveMembership(m);
    }
    return true;
  }

  /** Once the events handled so far are acknowledged. */
  settled(): Promise<void> {
    return this.replies;
  }

  /**
   * Stores a message in a conversation through its room. Sends to one room go one RPC at a time,
   * in order: those that come while one is in flight wait and go together in the next
   * (`sendMany`), so a client sending faster than a round trip costs one RPC per round trip, not
   * per message. Each answer comes once the room has the message durably (its output gate).
   */
  sendToRoom(m: Membership, input: unknown, own: boolean): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const send: QueuedSend = { sender: m.principal, input, own, resolve, reject };
      const queued = this.sendQueues.get(m.ref.id);
      if (queued) return void queued.push(send);
      this.sendQueues.set(m.ref.id, []);
      void this.drainSends(m.ref, [send]);
    });
  }

  private async drainSends(ref: ConversationRef, batch: QueuedSend[]): Promise<void> {
    const room = roomFor(this.env, ref);
    while (batch.length > 0) {
      try {
        const answers = await room.sendMany(ref, this.name, batch.map(({ sender, input, own }) => ({ sender, input, own })));
        batch.forEach((send, i) => send.resolve(answers[i]!));
      } catch (err) {
        for (const send of batch) send.reject(err);
      }
      const queued = this.sendQueues.get(ref.id) ?? [];
      batch = queued.splice(0, MAX_SENDS_PER_RPC);
      if (batch.length === 0) this.sendQueues.delete(ref.id);
    }
  }

  /** A message this session sent (the room skipped delivering it here): emitted as a delivery would be. */
  async emitOwn(m: Membership, msg: Message): Promise<void> {
    if (this.engine()?.status !== "open") return;
    this.held = [];
    try {
      await this.emitMessage(m, msg);
    } finally {
      this.releaseHeld();
    }
  }

  private async emitMessage(m: Membership, msg: Message) {
    if (msg.seq <= m.last_seq) return; // already emitted
    if (msg.seq > m.last_seq + 1) return this.catchUp(m); // a gap (or a whisper hidden from end users): refill from the log
    this.emitted(m, msg.seq);
    this.emitAll(renderMessage(m, msg), this.offset());
  }

  private async catchUp(m: Membership) {
    // Nothing is held across a wait: what was emitted so far is stored and sent first.
    const holding = this.held !== null;
    this.releaseHeld();
    const page = await roomFor(this.env, m.ref).history(m.ref, { audience: audienceOf(m.principal), after: m.last_seq, limit: 300 });
    this.held = [];
    try {
      if (!page.ok) return;
      for (const msg of page.messages) {
        if (msg.seq <= m.last_seq) continue;
        this.emitted(m, msg.seq);
        this.emitAll(renderMessage(m, msg), this.offset());
      }
    } finally {
      if (!holding) this.releaseHeld();
    }
  }

  /**
   * Stores the seqs emitted since the last call, then sends the packets held meanwhile: a
   * delivery's emissions leave only once (the output gate holds them until) their seqs are
   * durable, so a restarted session never emits a message twice. Packets are held only between
   * two waits (deliverMany and catchUp release them before any I/O).
   */
  private releaseHeld() {
    this.saveSeqs();
    const held = this.held;
    this.held = null;
    if (held && held.length > 0) this.sendPackets(held);
  }

  private emitAll(emissions: Emission[], offset?: string) {
    for (const [event, payload] of emissions) this.emit(event, payload, offset);
  }

  /** The recovery offset: every joined conversation's last emitted seq. */
  private offset(): string {
    return encodeOffset(Object.fromEntries(this.memberships().map((m) => [m.ref.id, m.last_seq])));
  }

  // ---- storage -------------------------------------------------------------------------------

  private sendSio(packet: SioPacket) {
    const packets: Packet[] = encoder.encode(packet).map((part: string | ArrayBuffer) => ({ type: "message", data: part }) as Packet);
    this.sendPackets(packets);
  }

  private engine(): EngineState | undefined {
    return this.kv.get<EngineState>("engine");
  }

  private saveEngine(st: EngineState) {
    this.kv.put("engine", st);
  }

  private saveSocket(s: SocketState) {
    this.kv.put("socket", s);
  }

  /**
   * The memberships, with each one's last emitted seq. A membership record is written when it
   * is made or its `assigned` changes; the seq, which changes with every message, is its own
   * small entry (`s:<conversation id>`), written once per delivery RPC (`saveSeqs`).
   */
  private membershipMap(): Map<string, Membership> {
    if (!this.joined) {
      this.joined = new Map();
      for (const [, m] of this.kv.list<Membership>("m:")) {
        m.last_seq = this.kv.get<number>(`s:${m.ref.id}`) ?? m.last_seq;
        this.joined.set(m.ref.id, m);
      }
      // After hibernation: the WebSocket's attachment has the seqs emitted since they were stored.
      const seqs = this.mainSocket()?.state?.seqs;
      if (seqs) this.adoptSeqs(seqs);
    }
    return this.joined;
  }

  /** Seqs a WebSocket carried (newer than storage's): taken, and to be stored when it closes. */
  private adoptSeqs(seqs: Record<string, number>) {
    for (const [id, seq] of Object.entries(seqs)) {
      const m = this.joined?.get(id);
      if (!m || seq <= m.last_seq) continue;
      m.last_seq = seq;
      this.dirtySeqs.add(id);
    }
  }

  private memberships(): Membership[] {
    return [...this.membershipMap().values()];
  }

  private saveMembership(m: Membership) {
    this.kv.put(`m:${m.ref.id}`, m);
    this.kv.put(`s:${m.ref.id}`, m.last_seq);
    this.dirtySeqs.delete(m.ref.id);
    this.membershipMap().set(m.ref.id, m);
  }

  private deleteMembership(conversationId: string) {
    this.kv.delete(`m:${conversationId}`);
    this.kv.delete(`s:${conversationId}`);
    this.dirtySeqs.delete(conversationId);
    this.membershipMap().delete(conversationId);
  }

  /** After storage was cleared or pruned: memberships are read again. */
  private forgetMemberships() {
    this.joined = null;
    this.dirtySeqs.clear();
  }

  /** Records that `seq` was emitted for this membership; stored by `saveSeqs` before the RPC answers. */
  private emitted(m: Membership, seq: number) {
    m.last_seq = seq;
    this.dirtySeqs.add(m.ref.id);
  }

  /**
   * Makes the emitted seqs survive hibernation. On a WebSocket they go in its attachment (no
   * storage write per delivery; storage gets them when the socket closes): the attachment lives
   * exactly as long as the socket, and a client whose socket is gone recovers by its own offset.
   * Polling sessions, and sessions in too many rooms for an attachment, write storage.
   */
  private saveSeqs() {
    if (this.dirtySeqs.size === 0) return;
    const conn = this.engine()?.transport === "websocket" ? this.mainSocket() : undefined;
    const joined = this.membershipMap();
    if (conn && joined.size <= MAX_SEQS_IN_ATTACHMENT) {
      try {
        const seqs: Record<string, number> = {};
        for (const [id, m] of joined) seqs[id] = m.last_seq;
        conn.setState({ ...conn.state!, role: "main", seqs });
        return;
      } catch (err) {
        logError("socketio.attachment", err); // too large after all: storage below
      }
    }
    this.storeSeqs();
  }

  private storeSeqs() {
    for (const id of this.dirtySeqs) {
      const m = this.membership(id);
      if (m) this.kv.put(`s:${id}`, m.last_seq);
    }
    this.dirtySeqs.clear();
  }
}

export function encodeOffset(positions: Record<string, number>): string {
  return btoa(JSON.stringify(positions)).replace(/=+$/, "");
}

export function decodeOffset(offset: string): Record<string, number> {
  try {
    const parsed = z.record(z.string(), z.number().int().nonnegative()).safeParse(JSON.parse(atob(offset)));
    return parsed.success ? parsed.data : {};
  } catch {
    return {}; // not an offset Parley issued: recover nothing extra
  }
}

function logError(at: string, err: unknown) {
  console.error(JSON.stringify({ at, error: String(err) }));
}

