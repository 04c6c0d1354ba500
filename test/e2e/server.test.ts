import { expect, it } from "vitest";
import { api, signupOrg } from "./harness.ts";

it("serves the Worker over real HTTP", async () => {
  const res = await api("/healthz");
  expect(res.status).toBe(200);
  expect(res.json).toEqual({ ok: true });
});

it("signs an organisation up and creates keys and a webchat with its session", async () => {
  const agent = await signupOrg();
  expect(agent.cookie).toMatch(/^session=./);
  expect(agent.organization.id).toBeTruthy();

  const key = await agent.createKey("public");
  expect(key).toMatchObject({ kind: "public", key: expect.stringMatching(/^pk_/) });
  const webchat = await agent.createWebchat(["https://shop.example"], { title: "Help" });
  expect(webchat).toMatchObject({ id: expect.any(String), channel_id: expect.any(String), token: expect.any(String) });

  // Cookie-authenticated writes need the CSRF token.
  const forged = await api("/api/company/api-keys", { cookie: agent.cookie, body: { name: "x", kind: "secret" } });
  expect(forged.status).toBe(403);
});
