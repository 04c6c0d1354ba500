/**
 * Seed 000's stateless REST ("Dosti"), byte for byte, over the conversation core:
 *   POST /api/chat/send {apiKey, visitorId, visitorName, message}
 *   GET|POST /api/chat/poll {apiKey, visitorId, lastTimestamp} -> {success, messages:[...]}
 * `visitorId` is the end user's external id. Parley adds `wait` (seconds, <= 30): the poll then
 * returns as soon as a message newer than lastTimestamp exists, or empty after the wait (over 5 s:
 * somewhere in its last half, so a fleet of IoT clients does not re-poll in waves), and
 * `clientMessageId` for idempotent retries. Errors keep seed 000's `success:false` beside
 * Parley's error envelope (http/errors.ts), so its clients' `getBoolean("success")` still reads.
 */
import type { Context } from "hono";
import { z } from "zod";
import { unwrap } from "../core/errors";
import { MessageInput, type Message } from "../core/message";
import { conversationForVisitor, roomFor, requestOrigin } from "../conversation/directory";
import { MAX_POLL_WAIT_MS } from "../conversation/room";
import { router } from "../http/app";
import { parse, readJson } from "../http/body";
import { visitorName } from "../routes/widget";

const Visitor = {
  apiKey: z.string().min(1).max(200),
  visitorId: z.string().min(1).max(200),
  visitorName: visitorName.optional(),
  identityHash: z.string().max(200).optional(),
};
const Send = z.object({ ...Visitor, message: z.string(), clientMessageId: z.string().optional() });
const Poll = z.object({
  ...Visitor,
  lastTimestamp: z.coerce.number().int().min(0).max(8.64e15).default(0),
  wait: z.coerce.number().min(0).max(MAX_POLL_WAIT_MS / 1000).default(0),
});

/** Seed 000's message shape. */
const dostiMessage = (m: Message) => ({
  id: m.id,
  sender: m.sender_type === "end_user" ? "visitor" : m.sender_type,
  senderName: m.sender_type === "end_user" ? "You" : (m.sender_name ?? "Support"),
  message: m.content,
  timestamp: Date.parse(m.created_at),
});

async function conversationOf(c: Context, v: { apiKey: string; visitorId: string; visitorName?: string | undefined; identityHash?: string | undefined }) {
  const who = { external_id: v.visitorId, identity_hash: v.identityHash, display_name: v.visitorName };
  const { ref } = await conversationForVisitor(c.env, c.req.raw, { publicKey: v.apiKey }, requestOrigin(c.req.raw), who);
  return { ref, room: roomFor(c.env, ref) };
}

async function poll(c: Context, input: unknown) {
  const q = parse(Poll, input);
  const { ref, room } = await conversationOf(c, q);
  const { messages } = unwrap(await room.poll(ref, { audience: "end_user", afterMs: q.lastTimestamp, waitMs: q.wait * 1000, limit: 100 }));
  return c.json({ success: true, messages: messages.map(dostiMessage) });
}

export const dostiRest = router()
  .post("/send", async (c) => {
    const body = await readJson(c, Send);
    const { ref, room } = await conversationOf(c, body);
    const sender = { type: "end_user" as const, id: ref.end_user.external_id, name: ref.end_user.display_name };
    const draft = parse(MessageInput, { content: body.message, client_msg_id: body.clientMessageId });
    const { message } = unwrap(await room.send(ref, sender, draft));
    return c.json({ success: true, message: dostiMessage(message) });
  })
  .get("/poll", (c) => poll(c, c.req.query()))
  .post("/poll", async (c) => poll(c, await readJson(c, z.unknown())));
