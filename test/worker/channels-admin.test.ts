/**
 * Changing a channel (PATCH /api/integrations/:id): its name, a webchat channel's allowed origins
 * and title, whether visitors must prove their identity. Takes effect from the next request.
 */
import { describe, expect, it } from "vitest";
import { call, newOrg } from "./helpers";

const SHOP = "https://shop.example";
const OTHER = "https://other.example";

describe("PATCH /api/integrations/:id", () => {
  it("allowed origins, title and identity take effect on the next visitor request; org-scoped; validated", async () => {
    const o = await newOrg({ allowed_origins: [SHOP] });
    const other = await newOrg();
    const open = (origin: string, id: string) => call("/chat-widget/session", { body: { embed_token: o.webchat.token, session_id: id }, headers: { origin } });
    expect((await open(SHOP, "v1")).status).toBe(200);
    expect((await open(OTHER, "v2")).status).toBe(403);

    const moved = await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { allowed_origins: [OTHER, OTHER], title: "Help", name: "Other shop" } });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ id: o.webchat.channel_id, kind: "webchat", name: "Other shop", allowed_origins: [OTHER], title: "Help", require_identity: false });
    expect((await open(OTHER, "v3")).status).toBe(200);
    const refused = await open(SHOP, "v4");
    expect([refused.status, refused.body.error.code]).toEqual([403, "origin_not_allowed"]);
    expect((await o.agent.call("/api/integrations")).body.find((c: any) => c.id === o.webchat.channel_id)).toMatchObject({ name: "Other shop", allowed_origins: [OTHER], title: "Help" });

    // Identity verification required: a visitor without a valid hash is refused.
    expect((await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { require_identity: true, title: null } })).body).toMatchObject({ require_identity: true, title: null });
    expect((await open(OTHER, "v5")).status).toBe(401);
    expect((await o.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { require_identity: false } })).status).toBe(200);
    expect((await open(OTHER, "v6")).status).toBe(200);

    // Validation and scope.
    const status = async (id: string, body: unknown, who = o.agent) => {
      const r = await who.call(`/api/integrations/${id}`, { method: "PATCH", body });
      return [r.status, r.body?.error?.code ?? "ok"];
    };
    expect(await status(o.webchat.channel_id, { allowed_origins: ["https://shop.example/"] })).toEqual([400, "validation_failed"]);
    expect(await status(o.webchat.channel_id, { allowed_origins: ["*"] })).toEqual([400, "validation_failed"]);
    expect(await status(o.webchat.channel_id, { kind: "mobile_sdk" })).toEqual([400, "validation_failed"]);
    expect(await status(o.webchat.channel_id, {})).toEqual([400, "validation_failed"]);
    const mobile = (await o.agent.call("/api/integrations/mobile", { body: { name: "app" } })).body.channel_id;
    expect(await status(mobile, { allowed_origins: [SHOP] })).toEqual([400, "validation_failed"]);
    expect(await status(mobile, { name: "The app" })).toEqual([200, "ok"]);
    const cross = await other.agent.call(`/api/integrations/${o.webchat.channel_id}`, { method: "PATCH", body: { allowed_origins: [] } });
    const missing = await other.agent.call(`/api/integrations/${crypto.randomUUID()}`, { method: "PATCH", body: { allowed_origins: [] } });
    expect(cross.status).toBe(404);
    expect(cross.body).toEqual(missing.body);
    expect((await open(SHOP, "v7")).status).toBe(403); // unchanged by the foreign attempt
  });
});
