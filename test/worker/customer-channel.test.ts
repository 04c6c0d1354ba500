/** Seed 002's REST side: init, then transcripts of finished sessions. */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BASE, call, eventually, newOrg } from "./helpers";

const sample = (apiKey: string) => ({
  apiKey,
  firstName: "Jane",
  lastName: "Doe",
  Email: "jane@example.test",
  Phone: "+1 555 0100",
  Channel: "web",
  Language: "en",
  refId: "+15550100",
  Url: "https://shop.example/checkout",
  Comment: "order 42",
  Subject: "billing",
  reqestId: "9b2f6c1e-0000-4000-8000-000000000001",
  timestamp: "2026-11-22T10:00:00Z",
});

/** Checks the PDF's cross-reference table points at every object, and returns its text. */
function readPdf(bytes: Uint8Array): string {
  const s = String.fromCharCode(...bytes);
  expect(s.startsWith("%PDF-1.4")).toBe(true);
  const xrefAt = Number(s.match(/startxref\n(\d+)/)![1]);
  expect(s.slice(xrefAt, xrefAt + 4)).toBe("xref");
  const offsets = [...s.slice(xrefAt).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
  offsets.forEach((o, i) => expect(s.slice(o, o + `${i + 1} 0 obj`.length)).toBe(`${i + 1} 0 obj`));
  return [...s.matchAll(/\((.*?)\) Tj/g)].map((m) => m[1]).join("\n");
}

describe("POST /api/customer/init", () => {
  it("opens the customer's conversation and echoes seed 002's fields", async () => {
    const o = await newOrg();
    const r = await call("/api/customer/init", { body: sample(o.pk) });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ Participant: { id: "+15550100", name: "Jane Doe" }, requestId: "9b2f6c1e-0000-4000-8000-000000000001" });
    expect(r.body.conversationId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number.isNaN(Date.parse(r.body.Timestamp))).toBe(false);
    const again = await call("/api/customer/init", { body: sample(o.pk), headers: {} });
    expect(again.body.conversationId).toBe(r.body.conversationId);
    const sms = await call("/api/customer/init", { body: { ...sample(o.pk), Channel: "sms" } });
    expect(sms.body.conversationId).not.toBe(r.body.conversationId);
    const bearer = await call("/api/customer/init", { body: { ...sample(""), apiKey: undefined }, headers: { authorization: `Bearer ${o.pk}` } });
    expect(bearer.status).toBe(200);
  });

  it("answers 400 for a missing Channel or identifier and 401 without a key", async () => {
    const o = await newOrg();
    const { Channel: _c, ...noChannel } = sample(o.pk);
    expect((await call("/api/customer/init", { body: noChannel })).status).toBe(400);
    const noId = { apiKey: o.pk, Channel: "web", firstName: "X" };
    const r = await call("/api/customer/init", { body: noId });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/identifier/);
    expect((await call("/api/customer/init", { body: { ...sample(o.pk), apiKey: undefined } })).status).toBe(401);
  });
});

describe("GET /api/customer/transcript/:id/:type", () => {
  it("is 404 while the session runs, then a real PDF without whispers", async () => {
    const o = await newOrg();
    const init = await call("/api/customer/init", { body: sample(o.pk) });
    const id = init.body.conversationId;
    const conv = await eventually(async () => (await call(`/api/conversations/${id}`, { headers: { authorization: `Bearer ${o.sk}` } })).body, "conversation");
    expect(conv.id).toBe(id);
    expect(conv.end_user).toMatchObject({ display_name: "Jane Doe", email: "jane@example.test", phone: "+1 555 0100", attributes: { subject: "billing", url: "https://shop.example/checkout", language: "en" }, verified: false });
    expect(conv.channel).toMatchObject({ kind: "webchat" });
    await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "+15550100", message: "My invoice is wrong (twice)" } });
    const agent = (path: string, body: unknown) => call(path, { body, headers: { authorization: `Bearer ${o.sk}` } });
    await agent(`/api/conversations/${id}/messages`, { content: "Internal: refund approved", private: true });
    await agent(`/api/conversations/${id}/messages`, { content: "Here is your corrected invoice", content_type: "file", rich_media: { url: "https://files.example/inv.pdf", filename: "inv.pdf" } });
    expect((await call(`/api/customer/transcript/${id}/pdf?apiKey=${o.pk}&refId=%2B15550100`)).status).toBe(404);

    const resolved = await agent(`/api/conversations/${id}/resolve`, { tags: ["billing"] });
    for (const ref of [id, resolved.body.session_id]) {
      const get = () => exports.default.fetch(new Request(`${BASE}/api/customer/transcript/${ref}/pdf?refId=%2B15550100`, { headers: { authorization: `Bearer ${o.pk}` } }));
      // By conversation id at once (the object answers); a session id is found through D1, which
      // has it once the object's flush reached it (about a second at most).
      const res = ref === id ? await get() : await eventually(async () => ((r) => (r.status === 200 ? r : undefined))(await get()), "the session in D1");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/pdf");
      const text = readPdf(new Uint8Array(await res.arrayBuffer()));
      expect(text).toContain("Customer: Jane Doe");
      expect(text).toContain("My invoice is wrong \\(twice\\)");
      expect(text).toContain("https://files.example/inv.pdf");
      expect(text).not.toContain("refund approved");
    }
    const other = await newOrg();
    expect((await call(`/api/customer/transcript/${id}/pdf?apiKey=${other.pk}&refId=%2B15550100`)).status).toBe(404);
    // The public key alone, or naming another customer, reaches nothing; a secret key reads any.
    expect((await call(`/api/customer/transcript/${id}/pdf?apiKey=${o.pk}`)).status).toBe(404);
    expect((await call(`/api/customer/transcript/${id}/pdf?apiKey=${o.pk}&refId=someone-else`)).status).toBe(404);
    const bySecret = await exports.default.fetch(new Request(`${BASE}/api/customer/transcript/${id}/pdf`, { headers: { authorization: `Bearer ${o.sk}` } }));
    expect(bySecret.status).toBe(200);
    expect((await call(`/api/customer/transcript/${id}/docx?apiKey=${o.pk}`)).status).toBe(400);
  });
});
