/**
 * Parley's native WebSocket protocol (docs/protocol.md): JSON text frames, one `type` each.
 * Incoming frames are parsed here and nowhere else; anything unknown is refused, not guessed.
 */
import { z } from "zod";
import type { ErrorCode } from "../core/errors";
import type { Message } from "../core/message";
import type { ServerFrame as WireServerFrame } from "../core/wire";

/** Largest frame a client may send (bytes); larger frames close the socket with 1009. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Messages replayed on resume at most; beyond that the client resynchronises over REST. */
export const MAX_REPLAY = 300;
/** Client pings answered by the platform without waking the object (exact string match). */
export const PING_FRAME = '{"type":"ping"}';
export const PONG_FRAME = '{"type":"pong"}';
/** A typing-preview draft longer than this is refused (an error frame; the socket stays open). */
export const MAX_DRAFT_CHARS = 2_000;

export const ClientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("send") }).passthrough(),
  // `draft`: the visitor's text as typed, for channels with the typing preview (staff only, never stored).
  z.object({ type: z.literal("typing"), typing: z.boolean(), draft: z.string().max(MAX_DRAFT_CHARS).optional() }),
  z.object({ type: z.literal("read"), seq: z.number().int().nonnegative() }),
  // Flow control: the client has taken in every message up to `seq` (src/conversation/flow-control.ts).
  z.object({ type: z.literal("received"), seq: z.number().int().nonnegative() }),
  z.object({ type: z.literal("ping") }),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;

export type { RemovedReason } from "../core/wire";

/** The frames the server sends (src/core/wire.ts, shared with the Web SDK), with the Worker's error codes. */
export type ServerFrame = WireServerFrame<Message, ErrorCode>;
