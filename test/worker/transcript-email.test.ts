/**
 * Seed 002's email transcript: `GET /api/customer/transcript/:id/email` sends the finished
 * session's PDF to the customer's address through the `send_email` binding (miniflare's local
 * implementation parses and checks the MIME message: a From that matches the envelope, a
 * Message-ID, no Received header) and answers 200 with an empty body. The message itself is
 * checked here through buildMime, and end to end in test/e2e/transcript-email.test.ts.
 */
import { describe, expect, it } from "vitest";
import { buildMime } from "../../src/email/mime";
import { renderPdf } from "../../src/core/pdf";
import { call, eventually, newOrg } from "./helpers";

/** A minimal MIME reader for the messages buildMime writes: headers, and each part's headers and decoded body. */
function readMime(raw: string) {
  const [head, ...rest] = raw.split("\r\n\r\n");
  const headers = Object.fromEntries(head!.split("\r\n").map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
  const boundary = /boundary="([^"]+)"/.exec(headers["content-type"]!)![1]!;
  const body = rest.join("\r\n\r\n");
  expect(body.endsWith(`--${boundary}--\r\n`)).toBe(true);
  const parts = body
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((p) => {
      const [ph, pb] = p.replace(/^\r\n/, "").split("\r\n\r\n");
      const partHeaders = Object.fromEntries(ph!.split("\r\n").map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      for (const line of pb!.trim().split("\r\n")) expect(line.length).toBeLessThanOrEqual(76);
      const bytes = Uint8Array.from(atob(pb!.replace(/\s+/g, "")), (ch) => ch.charCodeAt(0));
      return { headers: partHeaders, bytes };
    });
  return { headers, parts };
}

describe("buildMime", () => {
  it("writes a multipart message with a text part and a base64 PDF attachment that decode back", () => {
    const pdf = renderPdf([{ text: "Conversation transcript", bold: true }, { text: "Customer: Zoë" }]);
    const raw = buildMime({
      from: { email: "transcripts@parley.example", name: "Parley transcripts" },
      to: { email: "zoe@example.test", name: "Zoë Ünicode" },
      subject: "Your transcript ✓",
      text: "Hello Zoë",
      attachments: [{ filename: "transcript-1.pdf", contentType: "application/pdf", content: pdf }],
      messageId: "abc@parley.example",
    });
    expect(raw).not.toMatch(/[^\r]\n/); // CRLF only
    const m = readMime(raw);
    expect(m.headers.from).toBe('"Parley transcripts" <transcripts@parley.example>');
    expect(m.headers.to).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?= <zoe@example\.test>$/);
    expect(m.headers.subject).toMatch(/^=\?UTF-8\?B\?/);
    expect(m.headers["message-id"]).toBe("<abc@parley.example>");
    expect(m.headers["mime-version"]).toBe("1.0");
    expect(m.parts).toHaveLength(2);
    expect(m.parts[0]!.headers["content-type"]).toBe("text/plain; charset=UTF-8");
    expect(new TextDecoder().decode(m.parts[0]!.bytes)).toBe("Hello Zoë");
    expect(m.parts[1]!.headers["content-disposition"]).toBe('attachment; filename="transcript-1.pdf"');
    expect(m.parts[1]!.bytes).toEqual(pdf);
  });

  it("refuses header injection through addresses, names and subjects", () => {
    const base = { from: { email: "t@parley.example" }, to: { email: "a@example.test" }, subject: "s", text: "t" };
    expect(() => buildMime({ ...base, to: { email: "a@example.test\r\nBcc: x@evil.test" } })).toThrow();
    expect(() => buildMime({ ...base, to: { email: "a@example.test", name: "A\r\nBcc: x@evil.test" } })).toThrow();
    expect(() => buildMime({ ...base, subject: "s\nBcc: x@evil.test" })).toThrow();
  });
});

describe("GET /api/customer/transcript/:id/email", () => {
  it("is 404 while the session runs, 200 with an empty body once it ended, 409 without an email", async () => {
    const o = await newOrg();
    const agent = (path: string, body: unknown) => call(path, { body, headers: { authorization: `Bearer ${o.sk}` } });
    const init = await call("/api/customer/init", { body: { apiKey: o.pk, firstName: "Jane", Email: "jane@example.test", Channel: "web", refId: "cust-mail-1" } });
    const id = init.body.conversationId as string;
    await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "cust-mail-1", message: "Please email me this" } });
    await eventually(async () => (await call(`/api/conversations/${id}`, { headers: { authorization: `Bearer ${o.sk}` } })).status === 200 || undefined, "conversation listed");
    const url = `/api/customer/transcript/${id}/email?apiKey=${o.pk}&refId=cust-mail-1`;
    expect((await call(url)).status).toBe(404);

    await agent(`/api/conversations/${id}/messages`, { content: "Sure, on its way" });
    const resolved = await agent(`/api/conversations/${id}/resolve`, { tags: [] });
    expect(resolved.status).toBe(200);
    const sent = await call(url);
    expect(sent.status).toBe(200);
    expect(sent.body).toBeNull(); // an empty body
    // By session id, with the secret key: found through D1 once the object's flush reached it (about a second at most).
    await eventually(async () => (await call(`/api/customer/transcript/${resolved.body.session_id}/email`, { headers: { authorization: `Bearer ${o.sk}` } })).status === 200 || undefined, "by session id");
    // The public key reaches only the customer it names.
    expect((await call(`/api/customer/transcript/${id}/email?apiKey=${o.pk}&refId=someone-else`)).status).toBe(404);
    expect((await call(`/api/customer/transcript/${id}/docx?apiKey=${o.pk}&refId=cust-mail-1`)).status).toBe(400);

    // A customer known only by phone has no address to send to.
    const phoneOnly = await call("/api/customer/init", { body: { apiKey: o.pk, firstName: "Phil", Phone: "+1 555 0199", Channel: "web", refId: "cust-mail-2" } });
    const pid = phoneOnly.body.conversationId as string;
    await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "cust-mail-2", message: "hi" } });
    await eventually(async () => (await agent(`/api/conversations/${pid}/resolve`, { tags: [] })).status === 200 || undefined, "resolved");
    const none = await call(`/api/customer/transcript/${pid}/email?apiKey=${o.pk}&refId=cust-mail-2`);
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe("conflict");
  });
});
