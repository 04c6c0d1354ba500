/**
 * Seed 002's email transcript: the finished session's PDF (src/core/pdf.ts), attached to a
 * hand-built MIME message (./mime.ts) and sent to the customer's address through the
 * `send_email` binding `EMAIL` (Cloudflare Email Service; wrangler.toml). The sender is
 * TRANSCRIPT_EMAIL_FROM, an address on a domain onboarded for Email Sending.
 */
import { EmailMessage } from "cloudflare:email";
import { ApiError } from "../core/errors";
import { buildMime } from "./mime";

export interface TranscriptMail {
  to: string;
  customerName: string | null;
  sessionId: string;
  pdf: Uint8Array;
}

export async function sendTranscriptEmail(env: Env, mail: TranscriptMail): Promise<void> {
  const from = env.TRANSCRIPT_EMAIL_FROM as string | undefined;
  if (!env.EMAIL || !from) throw new ApiError("unavailable", "email transcripts are not configured");
  const raw = buildMime({
    from: { email: from, name: "Parley transcripts" },
    to: { email: mail.to, ...(mail.customerName ? { name: mail.customerName } : {}) },
    subject: "Your conversation transcript",
    text: [`Hello${mail.customerName ? ` ${mail.customerName}` : ""},`, "", "the transcript of your conversation is attached as a PDF.", "", `Session: ${mail.sessionId}`, ""].join("\r\n"),
    attachments: [{ filename: `transcript-${mail.sessionId}.pdf`, contentType: "application/pdf", content: mail.pdf }],
  });
  try {
    await env.EMAIL.send(new EmailMessage(from, mail.to, raw));
  } catch (err) {
    console.error(JSON.stringify({ at: "email.transcript", session: mail.sessionId, error: String(err) }));
    throw new ApiError("unavailable", "the transcript email could not be sent");
  }
}
