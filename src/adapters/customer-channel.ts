/**
 * Seed 002's REST side ("Customer Channel API") over the conversation core:
 *   POST /api/customer/init       open (or resume) a customer's conversation -> conversationId
 *   GET  /api/customer/transcript/:id/:type   a finished session as a PDF (type "pdf"), or that PDF
 *        emailed to the customer's address (type "email": 200 with an empty body; 409 when the
 *        customer has no email); 404 while the session runs; with the public key, `?refId=`
 *        must name the conversation's customer; a secret key reaches any
 * The caller presents the organisation's public key (`apiKey` in the body or query, or
 * `Authorization: Bearer pk_...`), which seed 002 leaves unstated; a secret key also works for
 * transcripts. The customer's identifier (refId, else Phone, else Email) is the end user's
 * external id, and the returned Participant id; seed 002's socket events use it to join.
 * Channel "web" is the organisation's default webchat; fb, sms and twitter get a connector
 * channel each.
 */
import type { Context } from "hono";
import { z } from "zod";
import { ApiError, unwrap } from "../core/errors";
import { safeText } from "../core/message";
import { displayName } from "../core/names";
import { renderPdf, type PdfLine } from "../core/pdf";
import { channelForVisitor, connectorChannel, conversationOfSession, openForVisitor, roomFor, requestOrigin } from "../conversation/directory";
import { limitNewConversation } from "../http/abuse";
import { router } from "../http/app";
import { agentFromSecretKey } from "../http/auth";
import { readJson } from "../http/body";
import { database, schema } from "../db/client";
import { sendTranscriptEmail } from "../email/transcript";
import { eq } from "drizzle-orm";

const optText = (max: number) => safeText(max).optional();

const Init = z
  .object({
    apiKey: z.string().max(200).optional(),
    firstName: displayName(200).optional(),
    lastName: displayName(200).optional(),
    Email: z.email().max(254).optional(),
    Phone: z.string().max(50).regex(/^[+\d\s().-]*$/, "digits, spaces and + ( ) . - only").optional(),
    Channel: z.enum(["web", "fb", "sms", "twitter"]),
    Language: z.string().max(35).optional(),
    refId: z.string().min(1).max(200).optional(),
    Url: z.string().max(2048).optional(),
    Comment: optText(2000),
    Subject: optText(200),
    reqestId: z.string().max(200).optional(),
    requestId: z.string().max(200).optional(),
    timestamp: z.string().max(64).optional(),
  })
  .refine((b) => b.refId || b.Phone || b.Email, { message: "at least one identifier (refId, Phone or Email) is required", path: ["refId"] });

function publicKeyOf(c: Context, bodyKey?: string): string | undefined {
  return bodyKey ?? c.req.query("apiKey") ?? c.req.header("authorization")?.match(/^Bearer\s+(pk_[\w-]+)$/)?.[1];
}

export const customerChannel = router()
  .post("/init", async (c) => {
    const b = await readJson(c, Init);
    const key = publicKeyOf(c, b.apiKey);
    if (!key) throw new ApiError("unauthorized", "send the organisation's public key as apiKey or Authorization: Bearer pk_...");
    const web = await channelForVisitor(c.env, { publicKey: key }, requestOrigin(c.req.raw));
    const channel = b.Channel === "web" ? web : await connectorChannel(c.env, web.org_id, b.Channel);
    await limitNewConversation(c.env, c.req.raw, channel.id, b.refId ?? b.Phone ?? b.Email);
    const name = [b.firstName, b.lastName].filter(Boolean).join(" ") || undefined;
    const attributes = Object.fromEntries(
      Object.entries({ channel: b.Channel, language: b.Language, ref_id: b.refId, url: b.Url, comment: b.Comment, subject: b.Subject }).filter(
        (e): e is [string, string] => typeof e[1] === "string",
      ),
    );
    const ref = await openForVisitor(c.env, channel, {
      external_id: b.refId ?? b.Phone ?? b.Email,
      display_name: name,
      email: b.Email,
      phone: b.Phone,
      attributes,
    });
    // Subject is the skill group (seed 002's MRE queue) the conversation is routed to.
    unwrap(await roomFor(c.env, ref).setQueue(ref, b.Subject ?? null));
    return c.json({
      conversationId: ref.id,
      Participant: { id: ref.end_user.external_id, name: ref.end_user.display_name ?? "" },
      requestId: b.requestId ?? b.reqestId ?? null,
      Timestamp: new Date().toISOString(),
    });
  })
  .get("/transcript/:id/:type", async (c) => {
    const type = c.req.param("type");
    if (type !== "pdf" && type !== "email") throw new ApiError("validation_failed", 'type: "pdf" or "email"');
    const caller = await callerOf(c);
    const { ref, sessionId } = await conversationOfSession(c.env, caller.org_id, c.req.param("id"));
    // A public key is visitor-side: it reaches only the customer it names (refId), as everywhere else.
    if (caller.via === "public" && c.req.query("refId") !== ref.end_user.external_id) throw new ApiError("not_found", "conversation not found");
    const { session, messages } = unwrap(await roomFor(c.env, ref).transcript(ref, sessionId));
    const customer = ref.end_user.display_name ?? ref.end_user.external_id;
    const lines: PdfLine[] = [
      { text: "Conversation transcript", bold: true, size: 16 },
      { text: `Customer: ${customer}`, gapBefore: 6 },
      { text: `Conversation: ${ref.id}` },
      { text: `Session: ${session.id}` },
      { text: `Started: ${session.opened_at}    Ended: ${session.resolved_at ?? ""}` },
      ...(session.tags.length ? [{ text: `Tags: ${session.tags.join(", ")}` }] : []),
    ];
    for (const m of messages) {
      const who = m.sender_type === "end_user" ? customer : (m.sender_name ?? m.sender_type);
      lines.push({ text: `${who} (${m.sender_type}) - ${m.created_at}`, bold: true, gapBefore: 8 });
      if (m.content) lines.push({ text: m.content });
      const media = m.rich_media as Record<string, unknown> | null;
      for (const url of [media?.url, media?.image_url].filter((u): u is string => typeof u === "string")) lines.push({ text: url, link: url });
      for (const b of (media?.buttons ?? media?.options ?? []) as { label: string }[]) lines.push({ text: `[${b.label}]` });
      for (const card of (media?.cards ?? []) as { title: string; image_url?: string }[]) {
        lines.push({ text: `Card: ${card.title}` });
        if (card.image_url) lines.push({ text: card.image_url, link: card.image_url });
      }
    }
    const pdf = renderPdf(lines);
    if (type === "email") {
      const user = await database(c.env.DB).select({ email: schema.endUsers.email }).from(schema.endUsers).where(eq(schema.endUsers.id, ref.end_user.id)).get();
      if (!user?.email) throw new ApiError("conflict", "the customer has no email address");
      await sendTranscriptEmail(c.env, { to: user.email, customerName: ref.end_user.display_name, sessionId: session.id, pdf });
      return c.body(null, 200);
    }
    return new Response(pdf, {
      headers: { "content-type": "application/pdf", "content-disposition": `attachment; filename="transcript-${session.id}.pdf"` },
    });
  });

/** The organisation of a secret key (Bearer; any customer) or a public key (query/Bearer; with refId). */
async function callerOf(c: Context): Promise<{ org_id: string; via: "secret" | "public" }> {
  const secret = c.req.header("authorization")?.match(/^Bearer\s+(sk_[\w-]+)$/)?.[1];
  if (secret) {
    const agent = await agentFromSecretKey(c.env, secret, c.req.raw.headers);
    if (!agent) throw new ApiError("unauthorized", "unknown or revoked key");
    return { org_id: agent.org_id, via: "secret" };
  }
  const key = publicKeyOf(c);
  if (!key) throw new ApiError("unauthorized", "send apiKey or Authorization: Bearer pk_... / sk_...");
  return { org_id: (await channelForVisitor(c.env, { publicKey: key }, requestOrigin(c.req.raw))).org_id, via: "public" };
}
