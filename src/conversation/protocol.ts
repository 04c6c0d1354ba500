/**
 * Parley's native WebSocket protocol (docs/protocol.md): JSON text frames, one `type` each.
 * Incoming frames are parsed here and nowhere else; anything unknown is refused, not guessed.
 */
import { z } from "zod";
import type { ErrorCode } from "../core/errors";
import type { Message, Principal, SenderType } from "../core/message";
import type { Session } from "./sessions";
import type { QueueStatus } from "../org/hub";

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
  z.object({ type: z.literal("ping") }),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;

/** Why an agent was taken off a conversation (`removed` frames). */
export type RemovedReason = "resolved" | "transferred" | "unassigned";

export type ServerFrame =
  | {
      type: "ready";
      conversation_id: string;
      epoch: string;
      head_seq: number;
      recovered: boolean;
      resync_required: boolean;
      messages: Message[];
      session: Session | null;
      account_status: "online" | "offline";
      /** How far the end user and the staff have read (highest seq in a read receipt). */
      read: { end_user_seq: number; staff_seq: number };
      /** While the session waits for an agent: the last place in line (as in `queue` frames). */
      queue: QueueStatus | null;
      /** The channel shows agents the visitor's draft as it is typed (the widget says so). */
      typing_preview: boolean;
    }
  | { type: "message"; message: Message }
  | { type: "ack"; client_msg_id: string | null; id: string; seq: number; duplicate: boolean }
  | { type: "typing"; sender_type: SenderType; sender_id: string; sender_name: string | null; typing: boolean }
  /** Typing preview (staff only): the visitor's unsent text as it stands; "" when cleared. */
  | { type: "draft"; sender_type: SenderType; sender_id: string; sender_name: string | null; draft: string }
  | { type: "read"; reader_type: SenderType; reader_id: string; seq: number }
  | { type: "session"; session: Session; /** the agent it was just assigned to */ agent?: Principal }
  | { type: "presence"; account_status: "online" | "offline" }
  | { type: "pong" }
  | { type: "joined"; participant: Principal }
  /** The agent's last connection to the conversation (native WebSocket or Socket.IO) went away. */
  | { type: "left"; participant: Principal }
  /** The agent was taken off the conversation: it was resolved, transferred or unassigned. */
  | { type: "removed"; participant: Principal; reason: RemovedReason }
  | { type: "handoff"; session: Session; agents_available: boolean }
  | ({ type: "queue" } & QueueStatus)
  | { type: "error"; code: ErrorCode; message: string; retryable: boolean; client_msg_id?: string };
