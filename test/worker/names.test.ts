/** B6: display names are normalized once (core/names.ts) on every surface that takes one. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { normalizeName } from "../../src/core/names";
import { call, newOrg } from "./helpers";

const RLO = "\u202E";
const PDF = "\u202C";
const LRI = "\u2066";
const PDI = "\u2069";
/** Looks like "Support ADMIN" to a person; carries an override, isolates, a zero-width space and full-width letters. */
const HOSTILE = `${RLO}Support${PDF} ${LRI}ＡＤ\u200BＭＩＮ${PDI}`;
const CLEAN = "Support ADMIN";
const INVISIBLE_ONLY = "\u200B\u202E\u2066\u2069\uFEFF \u00AD";

describe("display names", () => {
  it("normalizeName: NFKC, bidi controls and invisible format characters removed, joiners kept where scripts need them", () => {
    const cases: [string, string][] = [
      [`invoice${RLO}gnp.exe`, "invoicegnp.exe"],
      ["ＡＤＭＩＮ", "ADMIN"],
      ["ad\u200Bmin", "admin"],
      ["ad\u200Dmin", "admin"],
      ["\uFB01ne", "fine"],
      ["Jose\u0301", "Jos\u00E9"],
      [`x${LRI}y${PDI}\u2067z\u2068`, "xyz"],
      ["\u202Aa\u202Bb\u202Dc", "abc"],
      ["a\u200E\u200F\u061Cb", "ab"],
      ["a\u{E0041}\u{E007F}b", "ab"],
      ["line\nbreak\u2028x\ty", "line break x y"],
      ["  spaced   out  ", "spaced out"],
      ["\u{1F468}\u200D\u{1F469}\u200D\u{1F467}", "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}"],
      ["\u{1F469}\u{1F3FD}\u200D\u{1F4BB}", "\u{1F469}\u{1F3FD}\u200D\u{1F4BB}"],
      ["\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645", "\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645"],
      ["a\u200Cb", "ab"],
      ["\u05E9\u05DC\u05D5\u05DD", "\u05E9\u05DC\u05D5\u05DD"],
      [INVISIBLE_ONLY, ""],
    ];
    for (const [raw, want] of cases) expect([raw, normalizeName(raw)]).toEqual([raw, want]);
  });

  it("visitor, customer, agent, organisation and channel names are stored normalized on every route; an invisible-only name is a 400; message text stays byte for byte", async () => {
    const email = `names-${crypto.randomUUID()}@example.test`;
    const signup = await call("/auth/signup", { body: { organization_name: HOSTILE, name: HOSTILE, email, password: "correct horse battery" } });
    expect(signup.status).toBe(201);
    expect([signup.body.user.name, signup.body.organization.name]).toEqual([CLEAN, CLEAN]);

    const o = await newOrg();
    const agent = await o.agent.call("/api/company/agents", { body: { name: HOSTILE, email: `a-${crypto.randomUUID()}@example.test`, password: "agent password" } });
    expect(agent.status).toBe(201);
    expect(agent.body.name).toBe(CLEAN);

    const webchat = await o.agent.call("/api/integrations/webchat", { body: { name: HOSTILE, title: HOSTILE, allowed_origins: [] } });
    const mobile = await o.agent.call("/api/integrations/mobile", { body: { name: HOSTILE } });
    const chatApi = await o.agent.call("/api/integrations/chat-api", { body: { name: HOSTILE } });
    expect([webchat.status, mobile.status, chatApi.status]).toEqual([201, 201, 201]);
    const channels = await env.DB.prepare("SELECT name, title FROM channels WHERE org_id = ? AND name != 'Website' AND name != 'site'").bind(o.org.id).all<{ name: string; title: string | null }>();
    expect(channels.results.length).toBe(3);
    for (const ch of channels.results) expect(ch.name).toBe(CLEAN);
    expect(channels.results.map((c) => c.title)).toContain(CLEAN);

    // End users: the widget session, seed 000's send (message text untouched), seed 002's init.
    const session = await call("/chat-widget/session", { body: { key: o.pk, session_id: "w-1", customer_name: HOSTILE } });
    expect(session.status).toBe(200);
    expect(session.body.end_user.display_name).toBe(CLEAN);
    const text = `${HOSTILE} zero\u200Bwidth, \uFEFF and \u202E kept`;
    const sent = await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "d-1", visitorName: HOSTILE, message: text } });
    expect(sent.status).toBe(200);
    expect(sent.body.message.message).toBe(text);
    const init = await call("/api/customer/init", { body: { apiKey: o.pk, firstName: `${RLO}Jane`, lastName: "Ｄｏｅ\u200B", refId: "c-1", Channel: "web" } });
    expect(init.status).toBe(200);
    expect(init.body.Participant.name).toBe("Jane Doe");
    const stored = await env.DB.prepare("SELECT external_id, display_name FROM end_users WHERE org_id = ? ORDER BY external_id").bind(o.org.id).all<{ external_id: string; display_name: string }>();
    expect(Object.fromEntries(stored.results.map((u) => [u.external_id, u.display_name]))).toEqual({ "c-1": "Jane Doe", "d-1": CLEAN, "w-1": CLEAN });
    const conv = await env.DB.prepare("SELECT c.id FROM conversations c JOIN end_users u ON u.id = c.end_user_id WHERE u.external_id = 'd-1' AND u.org_id = ?").bind(o.org.id).first<{ id: string }>();
    const history = await o.agent.call(`/api/conversations/${conv!.id}/messages`);
    expect(history.body.map((m: { content: string }) => m.content)).toEqual([text]);

    // A name with nothing visible left is refused with a clear error, and nothing is created.
    const refusals = [
      await call("/chat-widget/session", { body: { key: o.pk, session_id: "w-2", customer_name: INVISIBLE_ONLY } }),
      await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "d-2", visitorName: INVISIBLE_ONLY, message: "hi" } }),
      await call("/api/customer/init", { body: { apiKey: o.pk, firstName: INVISIBLE_ONLY, refId: "c-2", Channel: "web" } }),
      await o.agent.call("/api/company/agents", { body: { name: INVISIBLE_ONLY, email: `b-${crypto.randomUUID()}@example.test`, password: "agent password" } }),
      await o.agent.call("/api/integrations/mobile", { body: { name: INVISIBLE_ONLY } }),
      await call("/auth/signup", { body: { organization_name: "Org", name: INVISIBLE_ONLY, email: `n-${crypto.randomUUID()}@example.test`, password: "correct horse battery" } }),
    ];
    for (const r of refusals) {
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: "validation_failed", message: expect.stringContaining("empty once invisible characters") });
    }
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM end_users WHERE org_id = ? AND external_id IN ('w-2', 'd-2', 'c-2')").bind(o.org.id).first<{ n: number }>())!.n).toBe(0);
  });
});
