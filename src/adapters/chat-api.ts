/**
 * Seed 004's Chat API ("Tovie DialogStudio") over the conversation core. A chat_api channel has
 * a token (shown once); `clientId` is the end user's external id.
 *
 *   POST /chatapi/:token                 sync: store the query, return the bot's replies (cid echoed)
 *   GET  /chatapi/:token?clientId&query&event    the same, simplified
 *   GET  /chatapi/:token/events           long-poll (<= 30 s) for events: agent replies, or `all`;
 *                                          `ts` (ms) or, when omitted, since this client's last
 *                                          request (per `cid`: no duplicates); at most 250
 *   GET  /chatapi/:token/client/:clientId/history?ts&limit
 *   POST|GET /chatapi/:token/client/:clientId/state        any JSON object, returned unchanged
 *   GET|POST /chatapi/:token/client/:clientId/message/:questionId/status
 *   POST /chatapi/:token/client/:clientId/message-statuses {statuses:[{questionId,status}]}
 *   GET  /chatapi/:token/client/:clientId/message-not-read-count
 * Without a bot, a query goes to the agents' queue and the sync answer has no replies; agent
 * replies arrive through /events. (The async method and its webhook: see ROADMAP in the notes.)
 */
import { and, eq } from "drizzle-orm";
import type { Context } from "hono";
import { z } from "zod";
import { randomToken, sha256Hex } from "../core/crypto";
import { ApiError, unwrap } from "../core/errors";
import type { Message, Principal } from "../core/message";
import { displayName } from "../core/names";
import type { BotOutcome } from "../conversation/room";
import { openForVisitor, roomFor, type Channel } from "../conversation/directory";
import { database, schema } from "../db/client";
import { limitNewConversation } from "../http/abuse";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { MAX_BODY_BYTES, parse, readJson } from "../http/body";
import { queueChatApiWebhook } from "./chat-api-webhook";
import { allowLocalWebhooks, checkWebhookUrl } from "../webhooks/url";
import { newSecret } from "../webhooks/signature";
import { actorOf, auditInsert, urlForAudit } from "../audit/log";

const MAX_EVENTS = 250;
const EVENTS_WAIT_MS = 25_000;
const STATUS = z.enum(["SENT", "DELIVERED", "READ", "NOT_SENT"]);
const clientId = z.string().min(1).max(200);

/** `POST /api/integrations/chat-api`: owners and admins create a Chat API channel. */
export const chatApiIntegration = router()
  .use(requireAgent("owner", "admin"))
  .post("/", async (c) => {
    const body = await readJson(
      c,
      z.object({
        name: displayName(200),
        webhook_url: z.string().max(2048).optional(),
        disable_text_input_with_buttons: z.boolean().default(false),
      }),
    );
    const org = c.get("agent").org_id;
    // The same rules as any webhook endpoint (https, no private or loopback addresses).
    const hook = body.webhook_url === undefined ? null : checkWebhookUrl(body.webhook_url, allowLocalWebhooks(c.env));
    if (hook && !hook.ok) throw new ApiError("validation_failed", `webhook_url: ${hook.reason}`);
    const channel = {
      id: crypto.randomUUID(),
      org_id: org,
      kind: "chat_api" as const,
      name: body.name,
      disable_text_input_with_buttons: body.disable_text_input_with_buttons,
      identity_secret: randomToken(32),
    };
    const token = `ca_${randomToken(24)}`;
    const hookRow = body.webhook_url
      ? { id: crypto.randomUUID(), org_id: org, channel_id: channel.id, url: body.webhook_url, secret: newSecret(), events: JSON.stringify(["chat_api.reply"]) }
      : null;
    const db = database(c.env.DB);
    await db.batch([
      db.insert(schema.channels).values(channel),
      db.insert(schema.embedTokens).values({ id: crypto.randomUUID(), org_id: org, channel_id: channel.id, token_hash: await sha256Hex(token) }),
      ...(hookRow ? [db.insert(schema.webhooks).values(hookRow)] : []),
      auditInsert(db, {
        org_id: org,
        actor: actorOf(c.get("agent")),
        action: "channel.created",
        target: { type: "channel", id: channel.id },
        detail: { kind: "chat_api", name: channel.name, ...(hookRow ? { webhook_id: hookRow.id, webhook_url: urlForAudit(hookRow.url) } : {}) },
      }),
    ]);
    // The token and the webhook's signing secret are shown once, here.
    return c.json({ id: channel.id, channel_id: channel.id, token, ...(hookRow ? { webhook_id: hookRow.id, webhook_secret: hookRow.secret } : {}) }, 201);
  });

async function channelOf(c: Context): Promise<Channel> {
  const token = c.req.param("token") ?? "";
  const row = await database(c.env.DB)
    .select({ channel: schema.channels })
    .from(schema.embedTokens)
    .innerJoin(schema.channels, eq(schema.channels.id, schema.embedTokens.channel_id))
    .where(and(eq(schema.embedTokens.token_hash, await sha256Hex(token)), eq(schema.channels.kind, "chat_api")))
    .get();
  if (!row) throw new ApiError("unauthorized", "unknown Chat API token");
  return row.channel;
}

async function clientConversation(c: Context, id: string) {
  const channel = await channelOf(c);
  const externalId = parse(clientId, id);
  await limitNewConversation(c.env, c.req.raw, channel.id, externalId);
  const ref = await openForVisitor(c.env, channel, { external_id: externalId });
  const who: Principal = { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name };
  return { channel, ref, room: roomFor(c.env, ref), who };
}

/** Seed 004's reply objects for one stored message. */
export function replyObjects(m: Message): Record<string, unknown>[] {
  const media = m.rich_media as Record<string, any> | null;
  const buttons = (list: { label: string; value: string }[]) => ({ type: "buttons", buttons: list.map((b) => ({ text: b.label, value: b.value })) });
  switch (m.content_type) {
    case "text":
      return [{ type: "text", text: m.content }];
    case "image":
      return [{ type: "image", imageUrl: media!.url, text: m.content }];
    case "file":
      return [{ type: "file", fileUrl: media!.url, fileName: media!.filename, mimeType: media!.mime_type ?? null, text: m.content }];
    case "quick_button":
      return [...(m.content ? [{ type: "text", text: m.content }] : []), buttons(media!.buttons)];
    case "dropdown":
      return [...(m.content ? [{ type: "text", text: m.content }] : []), buttons(media!.options)];
    case "carousel":
      return [
        {
          type: "carousel",
          text: m.content,
          items: media!.cards.map((card: any) => ({ title: card.title, description: card.subtitle ?? "", image: card.image_url ?? null, buttons: (card.buttons ?? []).map((b: any) => ({ text: b.label, value: b.value })) })),
        },
      ];
  }
}

function answer(channel: Channel, outcome: BotOutcome | null, newSession: boolean) {
  const replies: Record<string, unknown>[] = (outcome?.replies ?? []).flatMap((m) => replyObjects(m).map((r) => ({ ...r, state: outcome?.nlp_class ?? "" })));
  return {
    data: {
      nlpClass: outcome?.nlp_class ?? "",
      confidence: outcome?.confidence ?? 0,
      replies,
      answer: replies.filter((r) => r.type === "text").map((r) => r.text).join("\n"),
      newSessionStarted: newSession,
      debugData: [],
      endSession: false,
      handoff: outcome?.handoff ?? false,
    },
    blockForm: channel.disable_text_input_with_buttons && replies.some((r) => r.type === "buttons"),
  };
}

const Request = z.object({ clientId, query: z.string().optional(), event: z.string().min(1).max(200).optional(), cid: z.string().max(200).optional(), clientMessageId: z.string().optional() });

async function converse(c: Context, input: z.output<typeof Request>) {
  if (input.query === undefined && input.event === undefined) throw new ApiError("validation_failed", "query or event is required");
  const { channel, ref, room, who } = await clientConversation(c, input.clientId);
  let questionId: string;
  let outcome: BotOutcome | null | undefined;
  let newSession = false;
  if (input.query !== undefined) {
    const r = unwrap(await room.send(ref, who, { content: input.query, client_msg_id: input.clientMessageId }, undefined, { awaitBot: true }));
    questionId = r.message.id;
    outcome = r.bot;
    newSession = r.new_session;
  } else {
    outcome = unwrap(await room.botEvent(ref, who, input.event!)).bot;
    questionId = crypto.randomUUID();
  }
  return { clientId: input.clientId, questionId, ...answer(channel, outcome ?? null, newSession), timestamp: new Date().toISOString(), ...(input.cid ? { cid: input.cid } : {}) };
}

/** Seed 004's history/event shape for one message. */
const eventOf = (m: Message) => ({
  questionId: m.id,
  type: m.sender_type === "end_user" ? "clientMessage" : m.sender_type === "agent" ? "agentMessage" : "botMessage",
  text: m.content,
  replies: m.sender_type === "end_user" ? [] : replyObjects(m),
  sender: { type: m.sender_type, id: m.sender_id, name: m.sender_name },
  status: m.status,
  timestamp: Date.parse(m.created_at),
});

export const chatApi = router()
  .post("/:token", async (c) => c.json(await converse(c, await readJson(c, Request))))
  /**
   * Async: stores the query and answers with its message id at once; the bot's answer goes to the
   * channel's webhook (seed 004's array of objects) through the webhook pipeline's retries.
   */
  .post("/:token/async", async (c) => {
    const input = await readJson(c, Request);
    if (input.query === undefined && input.event === undefined) throw new ApiError("validation_failed", "query or event is required");
    const { channel, ref, room, who } = await clientConversation(c, input.clientId);
    let questionId = crypto.randomUUID();
    let turn: Promise<{ outcome: BotOutcome | null; newSession: boolean }>;
    if (input.query !== undefined) {
      const sent = unwrap(await room.send(ref, who, { content: input.query, client_msg_id: input.clientMessageId }, undefined, { deferBot: true }));
      questionId = sent.message.id;
      turn = room.botTurnFor(ref, sent.message.id, sent.new_session).then((r) => ({ outcome: unwrap(r).bot, newSession: sent.new_session }));
    } else {
      turn = room.botEvent(ref, who, input.event!).then((r) => ({ outcome: unwrap(r).bot, newSession: false }));
    }
    c.executionCtx.waitUntil(
      turn
        .then(({ outcome, newSession }) => {
          if (!outcome) return; // no bot: an agent will answer, and agent replies reach the webhook too
          const a = answer(channel, outcome, newSession);
          return queueChatApiWebhook(c.env, channel.id, questionId, [{ clientId: input.clientId, questionId, ...a, timestamp: new Date().toISOString() }]);
        })
        .catch((err: unknown) => console.error(JSON.stringify({ at: "chatapi.async", error: String(err) }))),
    );
    return c.json({ clientId: input.clientId, questionId, ...(input.cid ? { cid: input.cid } : {}) });
  })
  .get("/:token", async (c) => {
    const q = parse(Request, c.req.query());
    const r = await converse(c, q);
    return c.json({ clientId: r.clientId, query: q.query ?? null, event: q.event ?? null, questionId: r.questionId, data: r.data });
  })
  .get("/:token/events", async (c) => {
    const q = parse(
      z.object({ clientId, ts: z.coerce.number().int().min(0).optional(), all: z.enum(["true", "false"]).default("false"), cid: z.string().max(200).optional(), timeout: z.coerce.number().min(0).max(EVENTS_WAIT_MS / 1000).optional() }),
      c.req.query(),
    );
    const { ref, room } = await clientConversation(c, q.clientId);
    const r = unwrap(
      await room.poll(ref, {
        audience: "end_user",
        afterMs: q.ts,
        cursor: `chatapi:${q.cid ?? ""}`,
        senders: q.all === "true" ? undefined : ["agent"],
        waitMs: (q.timeout ?? EVENTS_WAIT_MS / 1000) * 1000,
        limit: MAX_EVENTS,
      }),
    );
    return c.json({ clientId: q.clientId, events: r.messages.map(eventOf), ...(q.cid ? { cid: q.cid } : {}) });
  })
  .get("/:token/client/:clientId/history", async (c) => {
    const q = parse(z.object({ ts: z.coerce.number().int().min(0).optional(), limit: z.coerce.number().int().min(1).max(MAX_EVENTS).default(MAX_EVENTS) }), c.req.query());
    const { ref, room } = await clientConversation(c, c.req.param("clientId"));
    const limit = q.limit;
    const h = unwrap(await room.history(ref, q.ts === undefined ? { audience: "end_user", limit } : { audience: "end_user", afterMs: q.ts, limit }));
    return c.json({ clientId: c.req.param("clientId"), messages: h.messages.map(eventOf) });
  })
  .post("/:token/client/:clientId/state", async (c) => {
    const state = await readJson(c, z.record(z.string(), z.unknown()));
    const { channel, ref } = await clientConversation(c, c.req.param("clientId"));
    const row = { channel_id: channel.id, external_id: ref.end_user.external_id, org_id: channel.org_id, state: JSON.stringify(state), updated_at: new Date().toISOString() };
    if (row.state.length > MAX_BODY_BYTES) throw new ApiError("payload_too_large", "state is too large");
    await database(c.env.DB)
      .insert(schema.clientStates)
      .values(row)
      .onConflictDoUpdate({ target: [schema.clientStates.channel_id, schema.clientStates.external_id], set: { state: row.state, updated_at: row.updated_at } });
    return c.json({ ok: true });
  })
  .get("/:token/client/:clientId/state", async (c) => {
    const { channel, ref } = await clientConversation(c, c.req.param("clientId"));
    const row = await database(c.env.DB)
      .select({ state: schema.clientStates.state })
      .from(schema.clientStates)
      .where(and(eq(schema.clientStates.channel_id, channel.id), eq(schema.clientStates.external_id, ref.end_user.external_id)))
      .get();
    return new Response(row?.state ?? "{}", { headers: { "content-type": "application/json" } });
  })
  .get("/:token/client/:clientId/message/:questionId/status", async (c) => {
    const { ref, room } = await clientConversation(c, c.req.param("clientId"));
    const [found] = unwrap(await room.statuses(ref, [c.req.param("questionId")])).statuses;
    if (!found) throw new ApiError("not_found", "message not found");
    return c.json({ questionId: found.id, status: found.status });
  })
  .post("/:token/client/:clientId/message/:questionId/status", async (c) => {
    const body = await readJson(c, z.object({ status: STATUS }));
    const { ref, room } = await clientConversation(c, c.req.param("clientId"));
    const r = unwrap(await room.setStatuses(ref, [{ id: c.req.param("questionId"), status: body.status }]));
    if (r.unknown.length) throw new ApiError("not_found", "message not found");
    return c.json({ questionId: c.req.param("questionId"), status: body.status });
  })
  .post("/:token/client/:clientId/message-statuses", async (c) => {
    const body = await readJson(c, z.object({ statuses: z.array(z.object({ questionId: z.string().min(1).max(100), status: STATUS })).min(1).max(500) }));
    const { ref, room } = await clientConversation(c, c.req.param("clientId"));
    const r = unwrap(await room.setStatuses(ref, body.statuses.map((s) => ({ id: s.questionId, status: s.status }))));
    return c.json({ updated: r.updated, notFound: r.unknown });
  })
  .get("/:token/client/:clientId/message-not-read-count", async (c) => {
    const { ref, room } = await clientConversation(c, c.req.param("clientId"));
    return c.json({ count: unwrap(await room.unreadCount(ref)).count });
  });

