/**
 * The message model shared by every surface: what a sender may submit (validated with zod at the
 * edge), and the stored record every adapter renders in its own dialect.
 * Rich media shapes are exactly seed 001's.
 */
import { z } from "zod";
import type { Message, Principal } from "./wire";

/** Limits, counted in UTF-8 bytes so a cut never depends on the client's string encoding. */
export const MAX_CONTENT_BYTES = 16 * 1024;
export const MAX_CLIENT_MSG_ID_CHARS = 128;

const encoder = new TextEncoder();
/** Whether `s` is at most `max` bytes of UTF-8 (n UTF-16 units are at most 3n bytes: short strings are not encoded). */
export const fitsUtf8 = (s: string, max: number) => s.length * 3 <= max || encoder.encode(s).byteLength <= max;

/** Text the store accepts: well-formed UTF-16 (no lone surrogates) and no NUL. */
export const safeText = (max: number) =>
  z
    .string()
    .refine((s) => s.isWellFormed() && !s.includes("\u0000"), { message: "invalid_text: lone surrogate or NUL character" })
    .refine((s) => fitsUtf8(s, max), { message: `longer than ${max} bytes of UTF-8` });

const httpUrl = z
  .string()
  .max(2048)
  .refine((u) => /^https?:\/\//i.test(u) && URL.canParse(u), { message: "must be an http(s) URL" });

const label = safeText(200).pipe(z.string().min(1));
const value = safeText(1000).pipe(z.string().min(1));
const button = z.strictObject({ label, value });

export const RICH_MEDIA = {
  text: z.null(),
  image: z.strictObject({ url: httpUrl, alt: safeText(1000).optional() }),
  file: z.strictObject({
    url: httpUrl,
    filename: safeText(255).pipe(z.string().min(1)),
    size: z.number().int().nonnegative().optional(),
    mime_type: safeText(255).optional(),
  }),
  quick_button: z.strictObject({ buttons: z.array(button).min(1).max(20) }),
  carousel: z.strictObject({
    cards: z
      .array(
        z.strictObject({
          image_url: httpUrl.optional(),
          title: label,
          subtitle: safeText(1000).optional(),
          buttons: z.array(button).max(10).optional(),
        }),
      )
      .min(1)
      .max(20),
  }),
  dropdown: z.strictObject({ placeholder: safeText(200).optional(), options: z.array(button).min(1).max(100) }),
} as const;

export const CONTENT_TYPES = Object.keys(RICH_MEDIA) as [keyof typeof RICH_MEDIA, ...(keyof typeof RICH_MEDIA)[]];
export type ContentType = keyof typeof RICH_MEDIA;

/** What any sender submits, whatever the surface. */
export const MessageInput = z
  .object({
    content: safeText(MAX_CONTENT_BYTES).default(""),
    content_type: z.enum(CONTENT_TYPES).default("text"),
    rich_media: z.unknown().optional(),
    client_msg_id: z.string().min(1).max(MAX_CLIENT_MSG_ID_CHARS).regex(/^[\w.:-]+$/, "letters, digits, _ . : - only").optional(),
    /** A whisper / private note: agents and bots see it, the end user never does. */
    private: z.boolean().default(false),
  })
  .transform((m, ctx) => {
    const schema = RICH_MEDIA[m.content_type];
    const parsed = schema.safeParse(m.rich_media ?? null);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: ["rich_media", ...issue.path] } as never);
      return z.NEVER;
    }
    if (m.content_type === "text" && m.content.trim() === "") {
      ctx.addIssue({ code: "custom", path: ["content"], message: "a text message needs content" });
      return z.NEVER;
    }
    return { content: m.content, content_type: m.content_type, rich_media: parsed.data as RichMedia, client_msg_id: m.client_msg_id, private: m.private };
  });

export type RichMedia = z.infer<(typeof RICH_MEDIA)[ContentType]>;
export type MessageDraft = z.output<typeof MessageInput>;

export type { DeliveryStatus, Message, Principal, SenderType } from "./wire";

/** Who reads: end users never see private messages. */
export type Audience = "end_user" | "staff";
export const audienceOf = (p: Principal): Audience => (p.type === "end_user" ? "end_user" : "staff");

/** Stable fingerprint of what was sent, to tell a retry from a different message reusing an id. */
export const draftFingerprint = (d: MessageDraft) => JSON.stringify([d.content_type, d.content, d.rich_media, d.private]);

/** The message as REST and webhooks show it: seed 001's shape, plus Parley's seq, sender_name, client_msg_id, private and status. */
export const messageView = (m: Message) => ({
  id: m.id,
  conversation_id: m.conversation_id,
  session_id: m.session_id,
  seq: m.seq,
  sender_type: m.sender_type,
  sender_id: m.sender_id,
  sender_name: m.sender_name,
  content_type: m.content_type,
  content: m.content,
  rich_media: m.rich_media,
  client_msg_id: m.client_msg_id,
  private: m.private,
  status: m.status,
  created_at: m.created_at,
});
