/**
 * Display names (visitors, customers, agents, organisations, channels): one schema for every
 * surface, so a name looks the same wherever it is shown and cannot smuggle invisible text.
 *
 * - Invisible format characters (Unicode category Cf) are removed: the bidi embeddings,
 *   overrides and isolates (U+202A-U+202E, U+2066-U+2069) that make `gpj.exe` read `exe.jpg`,
 *   the marks U+200E/U+200F/U+061C, zero-width space U+200B, word joiner U+2060, BOM U+FEFF,
 *   soft hyphen U+00AD, the tag characters U+E0000-U+E007F. Two joiners stay where scripts need
 *   them: ZWJ (U+200D) after an emoji (family and profession sequences), ZWNJ (U+200C) after a
 *   letter of a non-Latin script (Persian, the Indic scripts).
 * - Control characters and line or paragraph separators become spaces; runs of white space
 *   collapse to one; the ends are trimmed.
 * - The result is NFKC-normalized, so full-width, ligature and other compatibility forms read
 *   as their plain letters (`ＡＤＭＩＮ` is `ADMIN`), and NFC/NFD spellings of one name are one.
 * A name that is empty afterwards is refused (400 validation_failed). Message text is never
 * touched by this: it stays byte for byte as sent (core/message.ts).
 */
import { z } from "zod";
import { fitsUtf8, safeText } from "./message";


/** Cf except the two joiners, which are judged by what precedes them. */
const FORMAT = /(?![\u200C\u200D])\p{Cf}/gu;
const STRAY_ZWJ = /(?<![\p{Extended_Pictographic}\u{FE0F}\u{1F3FB}-\u{1F3FF}])\u200D/gu;
const STRAY_ZWNJ = /(?<!(?!\p{Script=Latin})[\p{L}\p{M}])\u200C/gu;
const BREAKS = /[\p{Cc}\p{Zl}\p{Zp}]/gu;

export function normalizeName(raw: string): string {
  return raw
    .replace(FORMAT, "")
    .replace(STRAY_ZWJ, "")
    .replace(STRAY_ZWNJ, "")
    .normalize("NFKC")
    .replace(BREAKS, " ")
    .replace(/\s+/gu, " ")
    .trim();
}

/** An optional name from outside a schema (a handshake parameter): the normalized name, or the error. */
export function optionalDisplayName(raw: string | undefined, max = 200): { ok: true; name: string | undefined } | { ok: false; message: string } {
  if (raw === undefined) return { ok: true, name: undefined };
  const parsed = displayName(max).safeParse(raw);
  return parsed.success ? { ok: true, name: parsed.data } : { ok: false, message: parsed.error.issues[0]?.message ?? "invalid name" };
}

/** A display name of at most `max` bytes of UTF-8 (counted after normalization too). */
export const displayName = (max = 200) =>
  safeText(max)
    .transform(normalizeName)
    .pipe(
      z
        .string()
        .min(1, { message: "empty once invisible characters and white space are removed" })
        .refine((s) => fitsUtf8(s, max), { message: `longer than ${max} bytes of UTF-8 once normalized` }),
    );
