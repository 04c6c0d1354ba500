/**
 * Engine.IO v4 pieces used by the Socket.IO session object: limits announced in the handshake,
 * packet encoding through the maintained `engine.io-parser`, and the HTTP error answers the
 * reference server gives (so stock clients react as they would there).
 */
import { decodePacket, decodePayload, encodePacket, encodePayload, type Packet } from "engine.io-parser";

export const PING_INTERVAL_MS = 25_000;
export const PING_TIMEOUT_MS = 20_000;
/** Largest HTTP poll body or WebSocket frame (bytes), announced as `maxPayload`. */
export const MAX_PAYLOAD_BYTES = 1_000_000;

/**
 * Set by the Worker (route.ts), in place of a poll body it refused, on the request to the session
 * object: the object ends the session and answers this status (413 or 408). Clients' own
 * `x-parley-*` headers are dropped first, so only the Worker can set it.
 */
export const REFUSED_BODY_HEADER = "x-parley-refused-body";

/** A session that sends no Socket.IO CONNECT within this time is closed. */
export const CONNECT_TIMEOUT_MS = 45_000;
/** How long a lost connection's state is kept for Socket.IO connection state recovery. */
export const RECOVERY_WINDOW_MS = 120_000;

export type { Packet };

export function openPacket(sid: string, upgrades: string[]): Packet {
  return {
    type: "open",
    data: JSON.stringify({ sid, upgrades, pingInterval: PING_INTERVAL_MS, pingTimeout: PING_TIMEOUT_MS, maxPayload: MAX_PAYLOAD_BYTES }),
  };
}

/** One packet as a WebSocket frame (string, or binary for binary message packets). */
export function encodeFrame(packet: Packet): string | ArrayBuffer {
  let out: string | ArrayBuffer = "";
  encodePacket(packet, true, (encoded) => (out = encoded as string | ArrayBuffer));
  return out;
}

/** Packets as one HTTP long-polling body (records separated by \x1e; binary as base64). */
export function encodeBody(packets: Packet[]): string {
  let out = "";
  encodePayload(packets, (encoded) => (out = encoded));
  return out;
}

export const decodeFrame = (data: string | ArrayBuffer): Packet => decodePacket(data, "arraybuffer");
export const decodeBody = (body: string): Packet[] => decodePayload(body, "arraybuffer");

/** The reference server's error answers (engine.io `Server.errorMessages`). */
export const ENGINE_ERRORS = {
  UNKNOWN_TRANSPORT: { code: 0, message: "Transport unknown" },
  UNKNOWN_SID: { code: 1, message: "Session ID unknown" },
  BAD_HANDSHAKE_METHOD: { code: 2, message: "Bad handshake method" },
  BAD_REQUEST: { code: 3, message: "Bad request" },
  FORBIDDEN: { code: 4, message: "Forbidden" },
  UNSUPPORTED_PROTOCOL_VERSION: { code: 5, message: "Unsupported protocol version" },
} as const;

export function engineError(err: (typeof ENGINE_ERRORS)[keyof typeof ENGINE_ERRORS], status = 400): Response {
  return new Response(JSON.stringify(err), { status, headers: { "content-type": "application/json" } });
}

/** Checks what every Engine.IO request must carry; null when fine. */
export function checkQuery(url: URL): Response | null {
  if (url.searchParams.get("EIO") !== "4") return engineError(ENGINE_ERRORS.UNSUPPORTED_PROTOCOL_VERSION);
  const transport = url.searchParams.get("transport");
  if (transport !== "polling" && transport !== "websocket") return engineError(ENGINE_ERRORS.UNKNOWN_TRANSPORT);
  return null;
}
