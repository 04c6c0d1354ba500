/**
 * The wire types of Parley's native protocol (docs/protocol.md) and of the objects it carries: the
 * server -> client frames, the message, the session, the queue status. Types only, and no imports,
 * so that both the Worker (src/) and the Node-side Web SDK (sdk/src) use these very declarations
 * and cannot drift apart. What validates input (zod) stays in src/core/message.ts and
 * src/conversation/protocol.ts.
 */

export type AccountStatus = "online" | "offline";
export type SenderType = "end_user" | "agent" | "bot" | "system";
export type DeliveryStatus = "SENT" | "DELIVERED" | "READ" | "NOT_SENT";

// ---- rich media: exactly seed 001's shapes (src/core/message.ts validates them) ---------------

export interface Button {
  label: string;
  value: string;
}
export interface ImageMedia {
  url: string;
  alt?: string;
}
export interface FileMedia {
  url: string;
  filename: string;
  size?: number;
  mime_type?: string;
}
export interface QuickButtonMedia {
  buttons: Button[];
}
export interface CarouselMedia {
  cards: { image_url?: string; title: string; subtitle?: string; buttons?: Button[] }[];
}
export interface DropdownMedia {
  placeholder?: string;
  options: Button[];
}

/** Each content type's `rich_media`. */
export interface RichMediaByType {
  text: null;
  image: ImageMedia;
  file: FileMedia;
  quick_button: QuickButtonMedia;
  carousel: CarouselMedia;
  dropdown: DropdownMedia;
}
export type ContentType = keyof RichMediaByType;
export type RichMedia = RichMediaByType[ContentType];
/** `content_type` and the `rich_media` shape it carries, as a union a reader can narrow. */
export type TypedRichMedia = { [K in ContentType]: { content_type: K; rich_media: RichMediaByType[K] } }[ContentType];

/** Who is acting, as the Worker authenticated it. `id` is the external id for end users. */
export interface Principal {
  type: SenderType;
  id: string;
  name: string | null;
}

/** A stored message, as every adapter receives it. */
export interface Message {
  id: string;
  conversation_id: string;
  session_id: string;
  /** Per-conversation order (gapless for staff; a visitor's view skips private notes). */
  seq: number;
  sender_type: SenderType;
  /** The visitor id for visitors, the user id for agents, "bot" for bots. */
  sender_id: string;
  sender_name: string | null;
  content_type: ContentType;
  content: string;
  rich_media: RichMedia;
  client_msg_id: string | null;
  private: boolean;
  status: DeliveryStatus;
  created_at: string;
}

/** A support session of one conversation (open -> resolved; the next end-user message opens a new one). */
export interface Session {
  id: string;
  /** `bot`: a bot is answering; the session joins the agents' queue (`open`) on hand-off. */
  status: "bot" | "open" | "resolved";
  assigned_agent_id: string | null;
  tags: string[];
  opened_at: string;
  first_message_at: string | null;
  assigned_at: string | null;
  resolved_at: string | null;
  handed_off_at: string | null;
  /** The flow bot's consecutive misses (it hands off after N). */
  bot_misses: number;
  version: number;
}

/** Where a waiting visitor stands in the agents' queue. */
export interface QueueStatus {
  position: number | null;
  estimated_wait_s: number | null;
  queue: string | null;
  open: boolean;
  closed_message: string | null;
  agents_available: boolean;
}

/** Why an agent was taken off a conversation (`removed` frames). */
export type RemovedReason = "resolved" | "transferred" | "unassigned";

/**
 * The native protocol's frames, server -> client. `M` is the message as the reader types it and
 * `Code` the error codes (the Worker: its ErrorCode; the SDK: any string).
 */
export type ServerFrame<M = Message, Code extends string = string> =
  | {
      type: "ready";
      conversation_id: string;
      epoch: string;
      head_seq: number;
      recovered: boolean;
      resync_required: boolean;
      messages: M[];
      session: Session | null;
      account_status: AccountStatus;
      /** How far the end user and the staff have read (highest seq in a read receipt). */
      read: { end_user_seq: number; staff_seq: number };
      /** While the session waits for an agent: the last place in line (as in `queue` frames). */
      queue: QueueStatus | null;
      /** The channel shows agents the visitor's draft as it is typed (the widget says so). */
      typing_preview: boolean;
    }
  | { type: "message"; message: M }
  | { type: "ack"; client_msg_id: string | null; id: string; seq: number; duplicate: boolean }
  | { type: "typing"; sender_type: SenderType; sender_id: string; sender_name: string | null; typing: boolean }
  /** Typing preview (staff only): the visitor's unsent text as it stands; "" when cleared. */
  | { type: "draft"; sender_type: SenderType; sender_id: string; sender_name: string | null; draft: string }
  | { type: "read"; reader_type: SenderType; reader_id: string; seq: number }
  | { type: "session"; session: Session; /** the agent it was just assigned to */ agent?: Principal }
  | { type: "presence"; account_status: AccountStatus }
  | { type: "pong" }
  | { type: "joined"; participant: Principal }
  /** The agent's last connection to the conversation (native WebSocket or Socket.IO) went away. */
  | { type: "left"; participant: Principal }
  /** The agent was taken off the conversation: it was resolved, transferred or unassigned. */
  | { type: "removed"; participant: Principal; reason: RemovedReason }
  | { type: "handoff"; session: Session; agents_available: boolean }
  | ({ type: "queue" } & QueueStatus)
  | { type: "error"; code: Code; message: string; retryable: boolean; client_msg_id?: string };

/**
 * Flow control (docs/protocol.md): a native client sends `{"type":"received","seq":N}` at least
 * after this many `message` frames or this many characters of them, whichever comes first. The
 * room (src/conversation/flow-control.ts) closes sockets far past that; the Web SDK uses these.
 */
export const CONFIRM_EVERY_MESSAGES = 50;
export const CONFIRM_EVERY_CHARS = 256 * 1024;

/**
 * `error` frames the server closes the socket right after (slow_consumer: 4009, invalid_seq: 4400).
 * A client drops the socket on the frame and reconnects at once: the WebSocket's close event waits
 * for the TCP connection to end, which workerd does only when the object next hibernates, about
 * 10 s after the close frame (docs/protocol.md "Flow control").
 */
export const CLOSING_ERRORS: ReadonlySet<string> = new Set(["slow_consumer", "invalid_seq"]);
