/**
 * Request parsing at the edge of the system: JSON only (which also keeps cross-site HTML forms,
 * which cannot send application/json without a preflight, away from every state change),
 * a size cap before buffering, and zod for the shape.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { z } from "zod";
import { ApiError } from "../core/errors";
import { validationError } from "./errors";

/** Largest JSON request body (bytes). Message text itself is capped at 16 KiB (core/message.ts). */
export const MAX_BODY_BYTES = 64 * 1024;

/** How long a request may take to deliver its whole body (ms) before `408 request_timeout`. */
export const BODY_READ_TIMEOUT_MS = 10_000;

const tooLarge = () => new ApiError("payload_too_large", `request body is larger than ${MAX_BODY_BYTES} bytes`);

/**
 * The body of every JSON route, read here once with three bounds: at most MAX_BODY_BYTES (a
 * larger Content-Length is refused before reading; without one, or when it understates the body,
 * reading stops at the first byte over), within BODY_READ_TIMEOUT_MS (a client that stalls, e.g.
 * behind a Content-Length it never fulfils, gets 408 instead of holding the request open), and
 * exactly as many bytes as a Content-Length declares. Handlers then read the buffered copy.
 * `BODY_READ_TIMEOUT_MS` in the environment overrides the deadline (tests only).
 */
export const limitBody: MiddlewareHandler = async (c, next) => {
  const body = c.req.raw.body;
  if (!body) return next();
  const header = c.req.header("content-length");
  const declared = header === undefined ? null : Number(header);
  if (declared !== null && !(header!.trim() !== "" && Number.isSafeInteger(declared) && declared >= 0)) throw new ApiError("content_length_mismatch", "Content-Length is not a byte count");
  if (declared !== null && declared > MAX_BODY_BYTES) throw tooLarge();
  const bytes = await readCapped(body, MAX_BODY_BYTES, bodyReadTimeout(c.env as { BODY_READ_TIMEOUT_MS?: string }));
  if (declared !== null && bytes.byteLength !== declared) {
    throw new ApiError("content_length_mismatch", `Content-Length says ${declared} bytes; the body had ${bytes.byteLength < declared ? "only " : ""}${bytes.byteLength}`);
  }
  c.req.raw = new Request(c.req.raw, { body: bytes });
  return next();
};

export function bodyReadTimeout(env: { BODY_READ_TIMEOUT_MS?: string } | undefined): number {
  const configured = Number(env?.BODY_READ_TIMEOUT_MS);
  return env?.BODY_READ_TIMEOUT_MS && Number.isFinite(configured) && configured > 0 ? configured : BODY_READ_TIMEOUT_MS;
}

/** Reads a stream to its end: over `max` bytes is `payload_too_large`, slower than `timeoutMs` is `request_timeout`. */
export async function readCapped(stream: ReadableStream<Uint8Array>, max: number, timeoutMs: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ApiError("request_timeout", `the request body did not arrive within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), deadline]);
      if (done) break;
      size += value.byteLength;
      if (size > max) throw tooLarge();
      chunks.push(value);
    }
  } catch (err) {
    reader.cancel().catch(() => {});
    throw err;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) throw new ApiError("unsupported_media_type", "send a JSON body with Content-Type: application/json");
  let data: unknown;
  try {
    data = JSON.parse(await c.req.text());
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError("invalid_json", "request body is not valid JSON");
  }
  return parse(schema, data);
}

export function parse<S extends z.ZodType>(schema: S, data: unknown): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) throw validationError(result.error);
  return result.data;
}
