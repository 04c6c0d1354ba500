/**
 * `/chat-widget`: the webchat's public API (seed 001). No session: an embed token (or public key)
 * opens the visitor's conversation, and the visitor's external id authorises its history.
 */
import { z } from "zod";
import { unwrap } from "../core/errors";
import { safeText, messageView } from "../core/message";
import { displayName } from "../core/names";
import { conversationForEndUser, conversationForVisitor, roomFor, requestOrigin } from "../conversation/directory";
import { router } from "../http/app";
import { parse, readJson } from "../http/body";

/** A visitor's or customer's name (core/names.ts: NFKC, no bidi or invisible characters). */
export const visitorName = displayName(200);

const OpenSession = z.object({
  embed_token: z.string().max(200).optional(),
  key: z.string().max(200).optional(),
  session_id: z.string().min(1).max(200).optional(),
  identity_hash: z.string().max(200).optional(),
  customer_name: visitorName.optional(),
  email: z.email().max(254).optional(),
  /** Free attributes from the host page (the widget's parley:identify), merged into the end user's. */
  attributes: z
    .record(z.string().min(1).max(100), safeText(1000))
    .refine((a) => Object.keys(a).length <= 50, { message: "at most 50 attributes" })
    .optional(),
});

/** The visitor's history, oldest first: the newest `limit`, or with `after` the `limit` after that seq (a resync's catch-up). */
const HistoryQuery = z.object({
  external_id: z.string().min(1).max(200),
  identity_hash: z.string().max(200).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(100),
  after: z.coerce.number().int().min(0).optional(),
});

export const widget = router()
  .post("/session", async (c) => {
    const body = await readJson(c, OpenSession);
    const { channel, ref } = await conversationForVisitor(c.env, c.req.raw, { embedToken: body.embed_token, publicKey: body.key }, requestOrigin(c.req.raw), {
      external_id: body.session_id,
      identity_hash: body.identity_hash,
      display_name: body.customer_name,
      email: body.email,
      attributes: body.attributes,
    });
    const summary = unwrap(await roomFor(c.env, ref).summary(ref));
    return c.json({
      conversation_id: ref.id,
      external_id: ref.end_user.external_id,
      end_user: ref.end_user,
      channel: { id: channel.id, title: channel.title ?? "Chat with us" },
      head_seq: summary.head_seq,
      epoch: summary.epoch,
      session: summary.session,
    });
  })
  .get("/history/:conversation_id", async (c) => {
    const q = parse(HistoryQuery, c.req.query());
    const ref = await conversationForEndUser(c.env, c.req.param("conversation_id"), q.external_id, q.identity_hash);
    const { messages } = unwrap(await roomFor(c.env, ref).history(ref, { audience: "end_user", limit: q.limit, after: q.after }));
    // Seed 001's widget shape omits session_id and read_by.
    return c.json(messages.map((m) => {
      const { session_id: _omitted, ...view } = messageView(m);
      return view;
    }));
  });
