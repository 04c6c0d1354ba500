/**
 * What a push says: the conversation id, who wrote, and a short preview. Both FCM and APNs cap a
 * payload at 4 KiB; the preview (140 characters) and the sender name (60) keep every payload far
 * below that whatever the message was (a message may be 16 KiB).
 */
import type { Message } from "../core/message";

export const PREVIEW_CHARS = 140;
export const SENDER_CHARS = 60;

export interface PushContent {
  conversation_id: string;
  message_id: string;
  seq: number;
  sender_type: "agent" | "bot";
  sender_name: string;
  title: string;
  preview: string;
}

/** Cuts to `max` user-perceived characters (never inside a surrogate pair or an emoji sequence), adding "…". */
export function truncate(text: string, max: number): string {
  const clean = text.replace(/\s+/g, " ").trim();
  const graphemes = [...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(clean)].map((s) => s.segment);
  if (graphemes.length <= max) return clean;
  return `${graphemes.slice(0, max - 1).join("").trimEnd()}…`;
}

const LABELS: Record<Message["content_type"], string> = {
  text: "New message",
  image: "📷 Photo",
  file: "📎 File",
  quick_button: "New message",
  carousel: "New message",
  dropdown: "New message",
};

export function pushContent(message: Message): PushContent {
  const sender = truncate(message.sender_name || (message.sender_type === "bot" ? "Bot" : "Support"), SENDER_CHARS);
  const rich = message.rich_media as { filename?: string } | null;
  const body =
    message.content.trim() ||
    (message.content_type === "file" && rich?.filename ? `📎 ${rich.filename}` : LABELS[message.content_type]);
  return {
    conversation_id: message.conversation_id,
    message_id: message.id,
    seq: message.seq,
    sender_type: message.sender_type as "agent" | "bot",
    sender_name: sender,
    title: sender,
    preview: truncate(body, PREVIEW_CHARS),
  };
}

/** FCM HTTP v1 `messages:send` body. `data` values must be strings. */
export function fcmBody(token: string, c: PushContent) {
  return {
    message: {
      token,
      notification: { title: c.title, body: c.preview },
      data: {
        type: "parley.message",
        conversation_id: c.conversation_id,
        message_id: c.message_id,
        seq: String(c.seq),
        sender_type: c.sender_type,
        sender_name: c.sender_name,
        preview: c.preview,
      },
      android: {
        priority: "HIGH",
        // One notification per conversation on the device, replaced by the newest message.
        notification: { tag: c.conversation_id },
      },
    },
  };
}

/** APNs body: `aps` plus Parley's keys beside it. */
export function apnsBody(c: PushContent) {
  return {
    aps: {
      alert: { title: c.title, body: c.preview },
      sound: "default",
      "thread-id": c.conversation_id,
    },
    type: "parley.message",
    conversation_id: c.conversation_id,
    message_id: c.message_id,
    seq: c.seq,
    sender_type: c.sender_type,
    sender_name: c.sender_name,
  };
}
