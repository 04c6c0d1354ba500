/**
 * Request parsing at the edge of the system: JSON only (which also keeps cross-site HTML forms,
 * which cannot send application/json without a preflight, away from every state change),
 * a size cap before buffering, and zod for the shape.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import { ApiError } from "../core/errors";
import { validationError } from "./errors";

/** Largest JSON request body (bytes). Message text itself is capped at 16 KiB (core/message.ts). */
export const MAX_BODY_BYTES = 64 * 1024;

export const limitBody: MiddlewareHandler = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => {
    throw new ApiError("payload_too_large", `request body is larger than ${MAX_BODY_BYTES} bytes`);
  },
});

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
