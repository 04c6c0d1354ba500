/**
 * `/api/routing`: skill-group queues, agents' skills and capacities (owners and admins).
 *   POST /api/routing/queues {name, auto_assign?, business_hours?, closed_message?} -> 201
 *   GET  /api/routing/queues ; PUT /api/routing/queues/:id {...}
 *   GET  /api/routing/agents -> [{user_id, name, skills: [queue_id], capacity}] (every agent of the org)
 *   PUT  /api/routing/agents/:user_id {skills: [queue_id], capacity}
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { ApiError, isUniqueViolation } from "../core/errors";
import { safeText } from "../core/message";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { readJson } from "../http/body";
import { DEFAULT_CAPACITY } from "./config";
import { actorOf, auditInsert } from "../audit/log";
import { BusinessHours } from "./hours";

const Queue = z.object({
  name: safeText(100).pipe(z.string().trim().min(1)),
  auto_assign: z.boolean().default(true),
  business_hours: BusinessHours.nullable().default(null),
  closed_message: safeText(1000).nullable().default(null),
});
const AgentRouting = z.object({ skills: z.array(z.string().min(1).max(100)).max(100), capacity: z.number().int().min(0).max(100).default(5) });

const view = (q: typeof schema.queues.$inferSelect) => ({
  id: q.id,
  name: q.name,
  auto_assign: q.auto_assign,
  business_hours: q.business_hours ? JSON.parse(q.business_hours) : null,
  closed_message: q.closed_message,
});

export const routing = router()
  .use(requireAgent("owner", "admin"))
  .post("/queues", async (c) => {
    const b = await readJson(c, Queue);
    const org = c.get("agent").org_id;
    const row = { id: crypto.randomUUID(), org_id: org, name: b.name, auto_assign: b.auto_assign, business_hours: b.business_hours && JSON.stringify(b.business_hours), closed_message: b.closed_message };
    const db = database(c.env.DB);
    const detail = { name: row.name, auto_assign: row.auto_assign, business_hours: b.business_hours !== null, closed_message: b.closed_message !== null };
    try {
      await db.batch([db.insert(schema.queues).values(row), auditInsert(db, { org_id: org, actor: actorOf(c.get("agent")), action: "routing.queue_created", target: { type: "queue", id: row.id }, detail })]);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ApiError("conflict", "a queue with this name exists");
      throw err;
    }
    await c.env.ORG_HUB.getByName(org).routingChanged();
    return c.json(view({ ...row, created_at: "" }), 201);
  })
  .get("/queues", async (c) => {
    const rows = await database(c.env.DB).select().from(schema.queues).where(eq(schema.queues.org_id, c.get("agent").org_id)).all();
    return c.json(rows.map(view));
  })
  .put("/queues/:id", async (c) => {
    const b = await readJson(c, Queue);
    const org = c.get("agent").org_id;
    const db = database(c.env.DB);
    const id = c.req.param("id");
    const detail = { name: b.name, auto_assign: b.auto_assign, business_hours: b.business_hours !== null, closed_message: b.closed_message !== null };
    const [done] = await db.batch([
      db
        .update(schema.queues)
        .set({ name: b.name, auto_assign: b.auto_assign, business_hours: b.business_hours && JSON.stringify(b.business_hours), closed_message: b.closed_message })
        .where(and(eq(schema.queues.id, id), eq(schema.queues.org_id, org)))
        .returning(),
      auditInsert(db, { org_id: org, actor: actorOf(c.get("agent")), action: "routing.queue_updated", target: { type: "queue", id }, detail }, sql`changes() > 0`),
    ]);
    if (!done[0]) throw new ApiError("not_found", "queue not found");
    await c.env.ORG_HUB.getByName(org).routingChanged();
    return c.json(view(done[0]));
  })
  .get("/agents", async (c) => {
    const org = c.get("agent").org_id;
    const db = database(c.env.DB);
    const [users, skills, caps] = await Promise.all([
      db.select({ id: schema.users.id, name: schema.users.name }).from(schema.users).where(eq(schema.users.org_id, org)).all(),
      db.select({ user_id: schema.agentSkills.user_id, queue_id: schema.agentSkills.queue_id }).from(schema.agentSkills).where(eq(schema.agentSkills.org_id, org)).all(),
      db.select({ user_id: schema.agentCapacity.user_id, capacity: schema.agentCapacity.capacity }).from(schema.agentCapacity).where(eq(schema.agentCapacity.org_id, org)).all(),
    ]);
    const capacity = new Map(caps.map((r) => [r.user_id, r.capacity]));
    return c.json(
      users.map((u) => ({
        user_id: u.id,
        name: u.name,
        skills: skills.filter((s) => s.user_id === u.id).map((s) => s.queue_id),
        capacity: capacity.get(u.id) ?? DEFAULT_CAPACITY,
      })),
    );
  })
  .put("/agents/:user_id", async (c) => {
    const b = await readJson(c, AgentRouting);
    const org = c.get("agent").org_id;
    const userId = c.req.param("user_id");
    const db = database(c.env.DB);
    const user = await db.select({ id: schema.users.id }).from(schema.users).where(and(eq(schema.users.id, userId), eq(schema.users.org_id, org))).get();
    if (!user) throw new ApiError("not_found", "agent not found");
    const skills = [...new Set(b.skills)];
    const known = skills.length ? await db.select({ id: schema.queues.id }).from(schema.queues).where(and(eq(schema.queues.org_id, org), inArray(schema.queues.id, skills))).all() : [];
    if (known.length !== skills.length) throw new ApiError("validation_failed", "skills: every entry must be a queue id of this organisation");
    await db.batch([
      db.delete(schema.agentSkills).where(eq(schema.agentSkills.user_id, userId)),
      ...skills.map((q) => db.insert(schema.agentSkills).values({ org_id: org, user_id: userId, queue_id: q })),
      db.insert(schema.agentCapacity).values({ user_id: userId, org_id: org, capacity: b.capacity }).onConflictDoUpdate({ target: schema.agentCapacity.user_id, set: { capacity: b.capacity } }),
      auditInsert(db, { org_id: org, actor: actorOf(c.get("agent")), action: "routing.agent_updated", target: { type: "agent", id: userId }, detail: { skills, capacity: b.capacity } }),
    ]);
    await c.env.ORG_HUB.getByName(org).routingChanged();
    return c.json({ user_id: userId, skills, capacity: b.capacity });
  });
