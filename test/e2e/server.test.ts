import { expect, it } from "vitest";
import { api } from "./harness.ts";

it("serves the Worker over real HTTP", async () => {
  const res = await api("/healthz");
  expect(res.status).toBe(200);
  expect(res.json).toEqual({ ok: true });
});
