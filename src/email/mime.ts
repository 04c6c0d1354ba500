/**
 * A raw MIME message built by hand (RFC 5322 / 2045-2047), for Cloudflare's `send_email` binding
 * (`new EmailMessage(from, to, raw)` from "cloudflare:email"): a text part and attachments, all
 * base64 with 76-character lines, CRLF line endings. Header values are refused if they carry
 * CR or LF (no header injection); non-ASCII subjects and names are RFC 2047 encoded-words.
 */

export interface MimeAttachment {
  filename: string;
  contentType: string;
  content: Uint8Array;
}

export interface MimeInput {
  from: { email: string; name?: string };
  to: { email: string; name?: string };
  subject: string;
  text: string;
  attachments?: MimeAttachment[];
  /** Defaults to now. */
  date?: Date;
  /** Without angle brackets; defaults to a random id at the sender's domain. */
  messageId?: string;
}

const CRLF = "\r\n";
const enc = new TextEncoder();

/** A plain address: no whitespace, CR, LF, angle brackets or quotes, one @. */
const ADDRESS = /^[^\s<>"@]+@[^\s<>"@]+$/;

export function base64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x6000) out += btoa(String.fromCharCode(...bytes.subarray(i, i + 0x6000)));
  return out;
}

/** base64 folded into 76-character lines (RFC 2045). */
export function base64Lines(bytes: Uint8Array): string {
  return (base64(bytes).match(/.{1,76}/g) ?? []).join(CRLF);
}

function noNewlines(value: string, what: string): string {
  if (/[\r\n]/.test(value)) throw new Error(`${what} must not contain line breaks`);
  return value;
}

/** RFC 2047 encoded-word for anything not plain printable ASCII. */
export function encodeWord(value: string): string {
  noNewlines(value, "header value");
  return /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${base64(enc.encode(value))}?=`;
}

function mailbox(m: { email: string; name?: string }): string {
  if (!ADDRESS.test(m.email)) throw new Error(`not a plain email address: ${JSON.stringify(m.email)}`);
  if (!m.name) return m.email;
  const name = /^[\x20-\x7e]*$/.test(m.name) ? `"${noNewlines(m.name, "name").replace(/["\\]/g, "\\$&")}"` : encodeWord(m.name);
  return `${name} <${m.email}>`;
}

/** Quoted filename parameter; non-ASCII or quote characters become underscores (the name is ours). */
const safeFilename = (name: string) => noNewlines(name, "filename").replace(/[^\x20-\x7e]|["\\]/g, "_");

export function buildMime(input: MimeInput): string {
  const boundary = `parley-${crypto.randomUUID()}`;
  const domain = input.from.email.split("@")[1]!;
  const messageId = input.messageId ?? `${crypto.randomUUID()}@${domain}`;
  const headers = [
    `From: ${mailbox(input.from)}`,
    `To: ${mailbox(input.to)}`,
    `Subject: ${encodeWord(input.subject)}`,
    `Date: ${(input.date ?? new Date()).toUTCString()}`,
    `Message-ID: <${noNewlines(messageId, "Message-ID")}>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
  ];
  const parts = [
    ["Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: base64", "", base64Lines(enc.encode(input.text))].join(CRLF),
    ...(input.attachments ?? []).map((a) => {
      const filename = safeFilename(a.filename);
      return [
        `Content-Type: ${noNewlines(a.contentType, "content type")}; name="${filename}"`,
        `Content-Disposition: attachment; filename="${filename}"`,
        "Content-Transfer-Encoding: base64",
        "",
        base64Lines(a.content),
      ].join(CRLF);
    }),
  ];
  return [...headers, "", "This is a multi-part message in MIME format.", ...parts.map((p) => `--${boundary}${CRLF}${p}`), `--${boundary}--`, ""].join(CRLF);
}
