/**
 * `GET /api/audit?before=&limit=&action=&actor_id=`: the organisation's audit log (src/audit/),
 * newest first. Owners and admins; org-scoped (another org's entry id as `before` is a 400, like
 * any unknown cursor). `before` is the id of the last entry of the previous page (`next_before`);
 * `action` is an exact action (`api_key.revoked`) or a prefix (`api_key`, i.e. `api_key.*`).
 */
import { and, desc, eq, like, lt, or } from "drizzle-orm";
import { z } from "zod";
import { ApiError } from "../core/errors";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { parse } from "../http/body";

const Query = z.object({
  before: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  action: z
    .string()
    .regex(/^[a-z_]+(\.[a-z_]+)*$/, "an action like api_key.revoked, or its first part")
    .max(100)
    .optional(),
  actor_id: z.string().min(1).max(200).optional(),
});

const a = schema.auditLog;

export const audit = router()
  .use(requireAgent("owner", "admin"))
  .get("/", async (c) => {
    const q = parse(Query, c.req.query());
    const org = c.get("agent").org_id;
    const db = database(c.env.DB);
    let cursor;
    if (q.before) {
      const at = await db.select({ at: a.at, id: a.id }).from(a).where(and(eq(a.id, q.before), eq(a.org_id, org))).get();
      if (!at) throw new ApiError("validation_failed", "before: not an entry of this organisation's audit log");
      cursor = or(lt(a.at, at.at), and(eq(a.at, at.at), lt(a.id, at.id)));
    }
    const rows = await db
      .select()
      .from(a)
      .where(
        and(
          eq(a.org_id, org),
          cursor,
          q.action ? (q.action.includes(".") ? eq(a.action, q.action) : like(a.action, `${q.action}.%`)) : undefined,
          q.actor_id ? eq(a.actor_id, q.actor_id) : undefined,
        ),
      )
      .orderBy(desc(a.at), desc(a.id))
      .limit(q.limit + 1)
      .all();
    const page = rows.slice(0, q.limit);
    return c.json({
      entries: page.map((r) => ({
        id: r.id,
        at: r.at,
        actor: { type: r.actor_type, id: r.actor_id, name: r.actor_name },
        action: r.action,
        target: { type: r.target_type, id: r.target_id },
        detail: JSON.parse(r.detail) as Record<string, unknown>,
      })),
      next_before: rows.length > q.limit ? page[page.length - 1]!.id : null,
    });
  });
