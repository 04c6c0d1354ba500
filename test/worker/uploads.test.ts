/** Uploads through R2: single-use URLs, types from bytes, safe downloads. */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE, call, newOrg } from "./helpers";

const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 1, 2, 3, 4]);
const put = (url: string, body: BodyInit, headers: Record<string, string> = {}) => exports.default.fetch(new Request(url, { method: "PUT", body, headers }));

async function visitorConversation() {
  const o = await newOrg();
  const s = await call("/chat-widget/session", { body: { key: o.pk, session_id: "uploader" } });
  const who = { conversation_id: s.body.conversation_id, external_id: "uploader" };
  return { o, who, conversationId: s.body.conversation_id as string };
}

describe("uploads", () => {
  it("a visitor uploads an image once and gets an image message with a safe download", async () => {
    const { o, who, conversationId } = await visitorConversation();
    const init = await call("/chat-widget/uploads", { body: who });
    expect(init.status).toBe(201);
    expect(init.body.url).toMatch(new RegExp(`^${BASE}/uploads/${conversationId}/`));
    const up = await put(init.body.url, PNG, { "x-filename": encodeURIComponent("../../etc/passwd\u202Egnp.png") });
    expect(up.status).toBe(200);
    const stored = (await up.json()) as any;
    expect(stored).toMatchObject({ mime_type: "image/png", size: PNG.byteLength, filename: "passwdgnp.png" });
    expect((await put(init.body.url, PNG)).status).toBe(404); // single use

    const done = await call(`/chat-widget/uploads/${init.body.token}/finish`, { body: { ...who, caption: "my screenshot" } });
    expect(done.status).toBe(201);
    expect(done.body).toMatchObject({ content_type: "image", content: "my screenshot", sender_type: "end_user", rich_media: { alt: "passwdgnp.png" } });
    const again = await call(`/chat-widget/uploads/${init.body.token}/finish`, { body: { ...who, caption: "my screenshot" } });
    expect(again.body).toMatchObject({ id: done.body.id, duplicate: true });

    const file = await exports.default.fetch(new Request(done.body.rich_media.url));
    expect(file.status).toBe(200);
    expect(new Uint8Array(await file.arrayBuffer())).toEqual(PNG);
    expect(file.headers.get("x-content-type-options")).toBe("nosniff");
    expect(file.headers.get("content-security-policy")).toContain("sandbox");
    expect(file.headers.get("content-type")).toBe("image/png");
    const tampered = done.body.rich_media.url.replace(/sig=([0-9a-f])/, (_: string, ch: string) => `sig=${ch === "0" ? "1" : "0"}`);
    expect((await exports.default.fetch(new Request(tampered))).status).toBe(403);
    const history = await o.agent.call(`/api/conversations/${conversationId}/messages`);
    expect(history.body.map((m: any) => m.content_type)).toEqual(["image"]);
  });

  it("refuses script-capable and unknown types, empty files and oversized ones; nothing is stored", async () => {
    const { who } = await visitorConversation();
    const cases: [BodyInit, number][] = [
      ['<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', 415],
      ["<!doctype html><script>alert(1)</script>", 415],
      [Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0xff, 0xfe]), 415],
      [new Uint8Array(0), 400],
      [new Uint8Array(10 * 1024 * 1024 + 1).fill(0x41), 413],
    ];
    for (const [body, status] of cases) {
      const init = await call("/chat-widget/uploads", { body: who });
      const res = await put(init.body.url, body, { "content-type": "image/png" });
      expect(res.status).toBe(status);
      const finish = await call(`/chat-widget/uploads/${init.body.token}/finish`, { body: who });
      expect(finish.status).toBe(409);
    }
  });

  it("agents upload a PDF with multipart form-data; other visitors and orgs cannot init or finish", async () => {
    const { o, who, conversationId } = await visitorConversation();
    const init = await o.agent.call(`/api/conversations/${conversationId}/uploads`, { method: "POST" });
    expect(init.status).toBe(201);
    const form = new FormData();
    form.append("file", new File(["%PDF-1.4 fake but well started"], "Invoice 42.pdf", { type: "application/pdf" }));
    const up = await exports.default.fetch(new Request(init.body.url, { method: "POST", body: form }));
    expect(up.status).toBe(200);
    const done = await o.agent.call(`/api/conversations/${conversationId}/uploads/${init.body.token}/finish`, { body: {} });
    expect(done.body).toMatchObject({ content_type: "file", content: "Invoice 42.pdf", rich_media: { filename: "Invoice 42.pdf", mime_type: "application/pdf" } });
    const dl = await exports.default.fetch(new Request(done.body.rich_media.url));
    expect(dl.headers.get("content-disposition")).toMatch(/^attachment; filename="Invoice 42.pdf"/);

    expect((await call("/chat-widget/uploads", { body: { ...who, external_id: "someone-else" } })).status).toBe(404);
    // The visitor cannot finish an upload the agent started.
    const visitorFinish = await call(`/chat-widget/uploads/${init.body.token}/finish`, { body: who });
    expect(visitorFinish.status).toBe(404);
    const other = await newOrg();
    expect((await other.agent.call(`/api/conversations/${conversationId}/uploads`, { method: "POST" })).status).toBe(404);
  });
});
