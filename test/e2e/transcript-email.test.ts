// Seed 002's email transcript against the real `wrangler dev`: the customer's conversation ends,
// `GET /api/customer/transcript/:id/email` answers 200 with an empty body, and the message the
// `send_email` binding accepted is the one a mail client would read: addressed to the customer,
// a PDF attachment that is this session's transcript. Locally wrangler dev writes each sent
// message to a temporary .eml file and logs its path ("Email: <path>") in the server output
// (test-results/e2e-wrangler.log, global-setup.ts), which is where this test reads it.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { root } from "../../scripts/lib/wrangler.mjs";
import { newOrg } from "./fixtures.ts";
import { api, expectStatus, waitFor } from "./harness.ts";

const logPath = join(root, "test-results", "e2e-wrangler.log");

function emlFiles(): string[] {
  const log = existsSync(logPath) ? readFileSync(logPath, "utf8").replace(/\x1b\[[0-9;]*m/g, "") : "";
  return [...log.matchAll(/Email: (\S+\.eml)/g)].map((m) => m[1]!).filter((p) => existsSync(p));
}

describe("email transcripts against wrangler dev", () => {
  it("404 while the session runs; then 200 with an empty body and the PDF mailed to the customer", async () => {
    const { pk, sk } = await newOrg();
    const address = `cust-${randomUUID().slice(0, 8)}@example.test`;
    const refId = `mail-${randomUUID().slice(0, 8)}`;
    const init = expectStatus(await api("/api/customer/init", { body: { apiKey: pk, firstName: "Jane", lastName: "Doe", Email: address, Channel: "web", refId } }), 200, "init").json;
    const id: string = init.conversationId;
    expectStatus(await api("/api/chat/send", { body: { apiKey: pk, visitorId: refId, message: "Please email me this (twice)" } }), 200, "send");
    const url = `/api/customer/transcript/${id}/email?apiKey=${pk}&refId=${refId}`;
    expectStatus(await api(url), 404, "email while the session runs");

    const auth = { authorization: `Bearer ${sk}` };
    expectStatus(await api(`/api/conversations/${id}/messages`, { body: { content: "Sure, on its way" }, headers: auth }), 201, "agent reply");
    expectStatus(await api(`/api/conversations/${id}/resolve`, { body: { tags: [] }, headers: auth }), 200, "resolve");
    const sent = expectStatus(await api(url), 200, "email transcript");
    expect(sent.text).toBe("");

    const eml = await waitFor(() => emlFiles().map((p) => readFileSync(p, "latin1")).find((m) => m.includes(`<${address}>`)), {
      timeoutMs: 10_000,
      intervalMs: 200,
      message: `an .eml to ${address} logged by wrangler dev`,
    });
    expect(eml).toMatch(/^From: "Parley transcripts" <transcripts@parley\.example>\r$/m);
    expect(eml).toMatch(/^To: "Jane Doe" </m);
    expect(eml).toMatch(/^Message-ID: </m);
    const boundary = /boundary="([^"]+)"/.exec(eml)![1]!;
    const attachment = eml.split(`--${boundary}`).find((p) => p.includes("Content-Type: application/pdf"))!;
    expect(attachment).toMatch(/Content-Disposition: attachment; filename="transcript-[0-9a-f-]{36}\.pdf"/);
    const pdf = Buffer.from(attachment.split("\r\n\r\n")[1]!.replace(/\s+/g, ""), "base64").toString("latin1");
    expect(pdf.startsWith("%PDF-")).toBe(true);
    expect(pdf.trimEnd().endsWith("%%EOF")).toBe(true);
    expect(pdf).toContain("Customer: Jane Doe");
    expect(pdf).toContain("Please email me this \\(twice\\)");
    expect(pdf).toContain("Sure, on its way");
  });
});
