/**
 * The seeds' Socket.IO dialects as views of the same conversations.
 *
 * Incoming events (client -> server) become calls on the conversation API; outgoing room frames
 * (the same frames native WebSocket clients get) are rendered per membership dialect:
 * - `dosti`   (seed 000): receive_message, partner_typing, partner_stopped_typing, agent_joined
 * - `chatbot` (seed 001): message_received, typing_indicator, typing_cleared, messages_read
 * - `channel` (seed 002): messageArrived with ChatMessage / ActivityMessage objects
 *   (participantJoined/Left from `joined`/`left`, participantAdded from the session's assignment,
 *   participantRemoved from `removed`, endOfConversation from the resolved session)
 * Seeds 000 and 001 have no event for an agent leaving or being taken off: `left` and `removed`
 * render nothing for them (seed 000's agent_joined still follows a transfer's new agent).
 * Org topics (seed 001 agents): conversation_updated, conversation_assigned,
 * conversation_resolved, agent_status_changed.
 */
import type { ConversationRef } from "../core/conversation-ref";
import type { Message, Principal } from "../core/message";
import type { ServerFrame } from "../conversation/protocol";

export type Dialect = "dosti" | "chatbot" | "channel";

export interface Membership {
  ref: ConversationRef;
  principal: Principal;
  dialect: Dialect;
  /** The last message seq this session emitted for the conversation. */
  last_seq: number;
  /** The agent last seen assigned (for seed 000's agent_joined). */
  assigned: string | null;
}

export type Emission = [event: string, payload: unknown];

const isSelf = (m: Membership, who: { type: string; id: string }) => who.type === m.principal.type && who.id === m.principal.id;

/** Seed 001's message shape (plus seq, sender_name, private, client_msg_id). */
export const chatbotMessage = (msg: Message) => ({
  id: msg.id,
  conversation_id: msg.conversation_id,
  session_id: msg.session_id,
  seq: msg.seq,
  sender_type: msg.sender_type,
  sender_id: msg.sender_id,
  sender_name: msg.sender_name,
  content_type: msg.content_type,
  content: msg.content,
  rich_media: msg.rich_media,
  client_msg_id: msg.client_msg_id,
  private: msg.private,
  created_at: msg.created_at,
});

/** Seed 000's agent reply shape. */
export const dostiMessage = (m: Membership, msg: Message) => ({
  id: msg.id,
  seq: msg.seq,
  visitorId: m.ref.end_user.external_id,
  visitorName: msg.sender_type === "end_user" ? (msg.sender_name ?? "You") : (msg.sender_name ?? "Support"),
  message: msg.content,
  timestamp: Date.parse(msg.created_at),
});

const participant = (p: { id: string; name: string | null }) => ({ id: p.id, name: p.name ?? "" });

/** Seed 002's ChatMessage. */
export const chatMessage = (msg: Message) => ({
  id: msg.id,
  conversationId: msg.conversation_id,
  type: "ChatMessage",
  from: { id: msg.sender_id, name: msg.sender_name ?? "", type: msg.sender_type },
  to: [],
  text: msg.content,
  ...(msg.private ? { tag: "whisper" } : {}),
  attachments: msg.content_type === "image" || msg.content_type === "file" ? [attachmentOf(msg)] : [],
  timestamp: msg.created_at,
});

const IMAGE_TYPES: Record<string, string> = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", webp: "image/webp" };

/** Seed 002's Attachment for an image or file message (an image's type from its name, when known). */
function attachmentOf(msg: Message) {
  const media = msg.rich_media as { url: string; mime_type?: string; filename?: string; alt?: string };
  // An image's alt text is its name only when it looks like a file name (seed 002 sends names).
  const name = media.filename ?? (media.alt && /\.[a-z0-9]{2,5}$/i.test(media.alt) ? media.alt : "");
  const ext = (name || new URL(media.url).pathname).split(".").pop()?.toLowerCase() ?? "";
  const type = media.mime_type ?? (msg.content_type === "image" ? (IMAGE_TYPES[ext] ?? "image") : "application/octet-stream");
  return { type, name, contentUrl: media.url };
}

export const activity = (conversationId: string, activityType: string, from: { id: string; name: string | null }, info: Record<string, unknown> = {}) => ({
  conversationId,
  type: "ActivityMessage",
  from: participant(from),
  to: [],
  activityType,
  info,
  timestamp: new Date().toISOString(),
});

/** Renders one conversation frame for one membership. Messages are handled by the caller (ordering). */
export function renderFrame(m: Membership, frame: ServerFrame): Emission[] {
  const conversation_id = m.ref.id;
  switch (frame.type) {
    case "message":
      return renderMessage(m, frame.message);
    case "typing": {
      if (isSelf(m, { type: frame.sender_type, id: frame.sender_id })) return [];
      if (m.dialect === "dosti") {
        if (frame.sender_type === "end_user") return [];
        return [[frame.typing ? "partner_typing" : "partner_stopped_typing", { deviceId: "agent" }]];
      }
      if (m.dialect === "chatbot") {
        return [frame.typing ? ["typing_indicator", { conversation_id, sender_type: frame.sender_type }] : ["typing_cleared", { conversation_id }]];
      }
      return [["messageArrived", activity(conversation_id, "typing", { id: frame.sender_id, name: frame.sender_name }, { typing: frame.typing })]];
    }
    case "read":
      if (m.dialect === "chatbot") return [["messages_read", { conversation_id, reader_type: frame.reader_type, reader_id: frame.reader_id, seq: frame.seq }]];
      return [];
    case "joined":
      if (isSelf(m, frame.participant)) return [];
      if (m.dialect === "dosti") {
        if (m.assigned === frame.participant.id) return [];
        m.assigned = frame.participant.id; // one agent_joined per agent, whether it joined or claimed first
        return [["agent_joined", { agentId: frame.participant.id, agentName: frame.participant.name }]];
      }
      if (m.dialect === "channel") return [["messageArrived", activity(conversation_id, "participantJoined", frame.participant)]];
      return [];
    case "left":
      if (m.dialect === "channel") return [["messageArrived", activity(conversation_id, "participantLeft", frame.participant)]];
      return [];
    case "removed":
      if (m.dialect === "channel") return [["messageArrived", activity(conversation_id, "participantRemoved", frame.participant, { reason: frame.reason })]];
      return [];
    case "session": {
      const out: Emission[] = [];
      const assigned = frame.session.assigned_agent_id;
      const agentName = frame.agent?.id === assigned ? frame.agent.name : null;
      if (assigned && assigned !== m.assigned && m.dialect === "dosti") out.push(["agent_joined", { agentId: assigned, agentName }]);
      if (assigned && assigned !== m.assigned && m.dialect === "channel") out.push(["messageArrived", activity(conversation_id, "participantAdded", { id: assigned, name: agentName })]);
      m.assigned = assigned;
      if (frame.session.status === "resolved" && m.dialect === "channel") {
        out.push(["messageArrived", activity(conversation_id, "endOfConversation", { id: "system", name: "system" }, { session_id: frame.session.id })]);
      }
      return out;
    }
    case "presence":
      return m.dialect === "channel" ? [] : [["account_status", { status: frame.account_status }]];
    case "queue":
      if (m.dialect === "channel" && !frame.agents_available) return [["messageArrived", activity(conversation_id, "noAgentAvailable", { id: "system", name: "system" })]];
      if (m.dialect === "chatbot") return [["queue_position", { conversation_id, position: frame.position, estimated_wait_s: frame.estimated_wait_s, open: frame.open }]];
      return [];
    case "handoff":
      if (m.dialect !== "channel") return []; // the bot's hand-off note arrives as a message
      return [
        ["messageArrived", activity(conversation_id, "handOff", { id: "bot", name: "Bot" })],
        ...(frame.agents_available ? [] : [["messageArrived", activity(conversation_id, "noAgentAvailable", { id: "system", name: "system" })] as Emission]),
      ];
    case "ready":
    case "ack":
    case "pong":
    case "error":
    case "draft": // the typing preview is a native-protocol feature (the console); no seed has it
      return [];
    default:
      return assertNever(frame);
  }
}

export function renderMessage(m: Membership, msg: Message): Emission[] {
  if (m.dialect === "dosti") return msg.sender_type === "end_user" ? [] : [["receive_message", dostiMessage(m, msg)]];
  if (m.dialect === "chatbot") return [["message_received", chatbotMessage(msg)]];
  return [["messageArrived", chatMessage(msg)]];
}

/** Org topics for agents (seed 001 queue and presence rooms). */
export function renderOrgEvent(event: { type: string } & Record<string, unknown>): Emission[] {
  switch (event.type) {
    case "conversation_updated":
      return [["conversation_updated", { conversation_id: event.conversation_id, sender_type: event.sender_type, content_type: event.content_type, content: event.content }]];
    case "conversation_assigned":
      // assigned_to is null when an agent or admin gave the conversation back to the queue.
      return [["conversation_assigned", { conversation_id: event.conversation_id, assigned_to: event.assigned_to }]];
    case "conversation_resolved":
      return [["conversation_resolved", { conversation_id: event.conversation_id, session_id: event.session_id }]];
    case "agent_status_changed":
      return [["agent_status_changed", { agent_id: event.agent_id, status: event.status }]];
    default:
      return [];
  }
}

function assertNever(x: never): never {
  throw new Error(`unhandled frame ${JSON.stringify(x)}`);
}
