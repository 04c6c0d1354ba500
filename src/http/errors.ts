/** The REST error envelope: every failure answers `{error:{code,message,retryable}}`. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import { ApiError, errorBody, type ErrorCode } from "../core/errors";

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return apiErrorResponse(c, err);
  if (err instanceof HTTPException && err.status === 413) return apiErrorResponse(c, new ApiError("payload_too_large", "request body too large"));
  console.error(JSON.stringify({ at: "http.unhandled", method: c.req.method, path: c.req.path, error: String(err), stack: err.stack }));
  return c.json(errorBody("internal", "internal error"), 500);
}

export function apiErrorResponse(c: Context, err: ApiError): Response {
  if (err.retryAfter !== undefined) c.header("Retry-After", String(err.retryAfter));
  // Seed 000's clients read `success` on every answer, errors included.
  const seed000 = c.req.path.startsWith("/api/chat/") ? { success: false } : {};
  return c.json({ ...seed000, ...errorBody(err.code, err.message) }, err.status as 400);
}

export function notFound(c: Context): Response {
  return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
}

export function validationError(error: z.ZodError, code: ErrorCode = "validation_failed"): ApiError {
  const issue = error.issues[0]!;
  const textIssue = error.issues.find((i) => i.message.startsWith("invalid_text"));
  if (textIssue) return new ApiError("invalid_text", `${textIssue.path.join(".")}: ${textIssue.message}`);
  return new ApiError(code, `${issue.path.join(".") || "body"}: ${issue.message}`);
}
