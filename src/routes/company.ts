/** `/api/company`: API keys and agents of the caller's organisation. Owners and admins. */
import { and, eq, isNull } from "drizzle-orm";
import { z } from "zod";
import { hashPassword, MAX_PASSWORD_BYTES, randomToken, sha256Hex } from "../core/crypto";
import { ApiError } from "../core/errors";
import { safeText } from "../core/message";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { readJson } from "../http/body";

const NewKey = z.object({ name: safeText(200).pipe(z.string().trim().min(1)), kind: z.enum(["public", "secret"]) });
const NewAgent = z.object({
  name: safeText(200).pipe(z.string().trim().min(1)),
  email: z.string().trim().toLowerCase().pipe(z.email().max(254)),
  password: z.string().min(8).refine((p) => new TextEncoder().encode(p).byteLength <= MAX_PASSWORD_BYTES, { message: `at most ${MAX_PASSWORD_BYTES} bytes` }),
  role: z.enum(["admin", "agent"]).default("agent"),
});

export const company = router()
  // Every agent sees teammates (names for assignments, presence); the rest is for owners and admins.
  .get("/agents", requireAgent(), async (c) => {
    const rows = await database(c.env.DB)
      .select({ id: schema.users.id, name: schema.users.name, email: schema.users.email, role: schema.users.role })
      .from(schema.users)
      .where(eq(schema.users.org_id, c.get("agent").org_id))
      .all();
    return c.json(rows);
  })
  .use(requireAgent("owner", "admin"))
  .post("/api-keys", async (c) => {
    const body = await readJson(c, NewKey);
    const agent = c.get("agent");
    const key = `${body.kind === "public" ? "pk" : "sk"}_${randomToken(24)}`;
    const row = {
      id: crypto.randomUUID(),
      org_id: agent.org_id,
      name: body.name,
      kind: body.kind,
      key_hash: await sha256Hex(key),
      key_prefix: key.slice(0, 7),
      created_by: agent.user_id,
    };
    await database(c.env.DB).insert(schema.apiKeys).values(row);
    return c.json({ id: row.id, name: row.name, kind: row.kind, key }, 201);
  })
  .get("/api-keys", async (c) => {
    const rows = await database(c.env.DB)
      .select({ id: schema.apiKeys.id, name: schema.apiKeys.name, kind: schema.apiKeys.kind, prefix: schema.apiKeys.key_prefix, created_at: schema.apiKeys.created_at })
      .from(schema.apiKeys)
      .where(and(eq(schema.apiKeys.org_id, c.get("agent").org_id), isNull(schema.apiKeys.revoked_at)))
      .all();
    return c.json(rows);
  })
  .delete("/api-keys/:id", async (c) => {
    const done = await database(c.env.DB)
      .update(schema.apiKeys)
      .set({ revoked_at: new Date().toISOString() })
      .where(and(eq(schema.apiKeys.id, c.req.param("id")), eq(schema.apiKeys.org_id, c.get("agent").org_id), isNull(schema.apiKeys.revoked_at)))
      .returning({ id: schema.apiKeys.id });
    if (done.length === 0) throw new ApiError("not_found", "API key not found");
    // Sockets opened with the key close now (S10).
    await c.env.ORG_HUB.getByName(c.get("agent").org_id).revokeAuth(`key:${done[0]!.id}`);
    return c.json({ id: done[0]!.id, revoked: true });
  })
  .post("/agents", async (c) => {
    const body = await readJson(c, NewAgent);
    const db = database(c.env.DB);
    if (await db.select({ id: schema.users.id }).from(schema.users).where(eq(schema.users.email, body.email)).get()) {
      throw new ApiError("email_taken", "an account with this email exists");
    }
    const user = { id: crypto.randomUUID(), org_id: c.get("agent").org_id, name: body.name, email: body.email, role: body.role };
    await db.insert(schema.users).values({ ...user, password_hash: await hashPassword(body.password) });
    return c.json(user, 201);
  });
