/**
 * File uploads (seed 003's chatUploadInit / upload / chatUploadFinish, and the same for agents):
 *
 *   init    POST /chat-widget/uploads {conversation_id, external_id, identity_hash?}   (visitor)
 *           POST /api/conversations/:id/uploads                                        (agent)
 *           -> {token, url, expires_at, max_bytes}
 *   upload  PUT  <url> with the raw bytes, or POST <url> as multipart form-data field "file"
 *   finish  POST /chat-widget/uploads/:token/finish {conversation_id, external_id, caption?}
 *           POST /api/conversations/:id/uploads/:token/finish {caption?}
 *           -> the image or file message (seed 001's rich media)
 *   get     GET  /files/:conversation_id/:file_id?exp=&sig=   (the message's signed URL)
 *
 * The upload URL is single-use and short-lived; the type comes from the bytes (files.ts); the
 * R2 key is generated (org/conversation/uuid); downloads carry nosniff, a sandbox CSP and
 * Content-Disposition, so nothing uploaded can run script in Parley's origin.
 */
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import { hmacSha256Hex, randomToken, safeEqual, sha256Hex } from "../core/crypto";
import type { ConversationRef } from "../core/conversation-ref";
import { ApiError, unwrap } from "../core/errors";
import { safeText, type Principal } from "../core/message";
import { conversationForAgent, conversationForEndUser, roomFor } from "../conversation/directory";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { agentPrincipal, requireAgent } from "../http/auth";
import { readJson } from "../http/body";
import { contentDisposition, FILE_URL_TTL_MS, MAX_UPLOAD_BYTES, safeFilename, sniff } from "./files";
import { eq } from "drizzle-orm";

const Visitor = z.object({ conversation_id: z.string().min(1).max(100), external_id: z.string().min(1).max(200), identity_hash: z.string().max(200).optional() });
const Finish = z.object({ caption: safeText(4000).optional() });

async function init(c: Context, ref: ConversationRef, who: Principal) {
  const token = randomToken(24);
  const { expires_ms } = unwrap(await roomFor(c.env, ref).createUpload(ref, who, await sha256Hex(token)));
  const url = `${new URL(c.req.url).origin}/uploads/${ref.id}/${token}`;
  return c.json({ token, url, expires_at: new Date(expires_ms).toISOString(), max_bytes: MAX_UPLOAD_BYTES }, 201);
}

async function finish(c: Context, ref: ConversationRef, who: Principal, token: string, caption: string | undefined) {
  const tokenHash = await sha256Hex(token);
  const room = roomFor(c.env, ref);
  const fileUrl = await signedFileUrl(c, ref, tokenHash);
  const { message, duplicate } = unwrap(await room.finishUpload(ref, who, tokenHash, caption ?? "", fileUrl));
  return c.json({ ...message, duplicate }, duplicate ? 200 : 201);
}

/** The message's download URL: a capability URL, HMAC-signed with an expiry. */
async function signedFileUrl(c: Context, ref: ConversationRef, tokenHash: string): Promise<string> {
  const fileId = await roomFor(c.env, ref).uploadFileId(ref, tokenHash);
  if (!fileId.ok) throw ApiError.from(fileId.error);
  const exp = Date.now() + FILE_URL_TTL_MS;
  const sig = await fileSignature(c.env, ref.id, fileId.file_id, exp);
  return `${new URL(c.req.url).origin}/files/${ref.id}/${fileId.file_id}?exp=${exp}&sig=${sig}`;
}

const fileSignature = (env: Env, conversationId: string, fileId: string, exp: number) => hmacSha256Hex(env.SESSION_SECRET, `files:${conversationId}:${fileId}:${exp}`);

/** Visitor side, under /chat-widget. */
export const visitorUploads = router()
  .post("/uploads", async (c) => {
    const b = await readJson(c, Visitor);
    const ref = await conversationForEndUser(c.env, b.conversation_id, b.external_id, b.identity_hash);
    return init(c, ref, { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name });
  })
  .post("/uploads/:token/finish", async (c) => {
    const b = await readJson(c, Visitor.extend(Finish.shape));
    const ref = await conversationForEndUser(c.env, b.conversation_id, b.external_id, b.identity_hash);
    return finish(c, ref, { type: "end_user", id: ref.end_user.external_id, name: ref.end_user.display_name }, c.req.param("token"), b.caption);
  });

/** Agent side, under /api/conversations. */
// Route-level requireAgent: a router-wide use() here would also run for every other
// /api/conversations request (this router is mounted there first), a second credential lookup.
export const agentUploads = router()
  .post("/:id/uploads", requireAgent(), async (c) => {
    const ref = await conversationForAgent(c.env, c.get("agent").org_id, c.req.param("id"));
    return init(c, ref, agentPrincipal(c.get("agent")));
  })
  .post("/:id/uploads/:token/finish", requireAgent(), async (c) => {
    const b = await readJson(c, Finish);
    const ref = await conversationForAgent(c.env, c.get("agent").org_id, c.req.param("id"));
    return finish(c, ref, agentPrincipal(c.get("agent")), c.req.param("token"), b.caption);
  });

/** The bytes: the token in the URL is the credential. */
export const uploadTarget = router()
  .use(
    bodyLimit({
      maxSize: MAX_UPLOAD_BYTES + 64 * 1024, // multipart framing
      onError: () => {
        throw new ApiError("payload_too_large", `files are limited to ${MAX_UPLOAD_BYTES} bytes`);
      },
    }),
  )
  .on(["PUT", "POST"], "/:conversation_id/:token", async (c) => {
    const ref = await conversationById(c.env, c.req.param("conversation_id"));
    const tokenHash = await sha256Hex(c.req.param("token"));
    const room = roomFor(c.env, ref);
    const { file_id } = unwrap(await room.startUpload(ref, tokenHash));
    try {
      const { bytes, name } = await readFile(c);
      if (bytes.byteLength === 0) throw new ApiError("validation_failed", "the file is empty");
      if (bytes.byteLength > MAX_UPLOAD_BYTES) throw new ApiError("payload_too_large", `files are limited to ${MAX_UPLOAD_BYTES} bytes`);
      const mime = sniff(bytes.subarray(0, 4096));
      if (!mime) throw new ApiError("unsupported_media_type", "only PNG, JPEG, GIF, WebP, PDF, ZIP and plain text files are accepted");
      const filename = safeFilename(name, mime);
      await c.env.FILES.put(`${ref.org_id}/${ref.id}/${file_id}`, bytes, {
        httpMetadata: { contentType: mime },
        customMetadata: { filename: encodeURIComponent(filename) },
      });
      unwrap(await room.endUpload(ref, tokenHash, { filename, mime, size: bytes.byteLength }));
      return c.json({ ok: true, file_id, filename, mime_type: mime, size: bytes.byteLength });
    } catch (err) {
      await room.endUpload(ref, tokenHash, null); // the token may be used again while it lasts
      throw err;
    }
  });

async function readFile(c: Context): Promise<{ bytes: Uint8Array; name: string | null }> {
  const type = c.req.header("content-type") ?? "";
  if (c.req.method === "POST" && type.startsWith("multipart/form-data")) {
    const form = await c.req.formData();
    const file = form.get("file");
    if (!(file instanceof File)) throw new ApiError("validation_failed", 'send the file in the form field "file"');
    return { bytes: new Uint8Array(await file.arrayBuffer()), name: file.name };
  }
  const name = c.req.header("x-filename") ?? null;
  return { bytes: new Uint8Array(await c.req.arrayBuffer()), name: name && decodeURIComponent(name) };
}

/** Downloads through the signed URL stored in the message. */
export const fileDownloads = router().get("/:conversation_id/:file_id", async (c) => {
  const conversationId = c.req.param("conversation_id");
  const fileId = c.req.param("file_id");
  const exp = Number(c.req.query("exp"));
  const sig = c.req.query("sig") ?? "";
  if (!Number.isFinite(exp) || !safeEqual(sig, await fileSignature(c.env, conversationId, fileId, exp))) throw new ApiError("forbidden", "invalid file link");
  if (exp < Date.now()) throw new ApiError("forbidden", "this file link has expired");
  const ref = await conversationById(c.env, conversationId);
  const { file } = unwrap(await roomFor(c.env, ref).file(ref, fileId));
  const object = file && (await c.env.FILES.get(`${ref.org_id}/${ref.id}/${fileId}`));
  if (!file || !object) throw new ApiError("not_found", "file not found");
  return new Response(object.body, {
    headers: {
      "content-type": file.mime,
      "content-length": String(file.size),
      "content-disposition": contentDisposition(file.mime.startsWith("image/") ? "inline" : "attachment", file.filename),
      "x-content-type-options": "nosniff",
      "content-security-policy": "sandbox; default-src 'none'",
      "cache-control": "private, max-age=3600",
    },
  });
});

/** Only for token- or signature-authorised paths: the caller proved access another way. */
async function conversationById(env: Env, id: string): Promise<ConversationRef> {
  const row = await database(env.DB).select({ org_id: schema.conversations.org_id }).from(schema.conversations).where(eq(schema.conversations.id, id)).get();
  if (!row) throw new ApiError("not_found", "conversation not found");
  return conversationForAgent(env, row.org_id, id);
}
