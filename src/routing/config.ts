/** An organisation's routing configuration from D1: queues, skills, capacities, agent names. */
import { eq } from "drizzle-orm";
import { database, schema } from "../db/client";
import { BusinessHours } from "./hours";

export const DEFAULT_CAPACITY = 5;

export interface RoutingConfig {
  queues: Map<string, { id: string; name: string; auto_assign: boolean; hours: BusinessHours | null; closed_message: string | null }>;
  /** queue id -> agent ids with that skill */
  skills: Map<string, Set<string>>;
  capacity: Map<string, number>;
  names: Map<string, string>;
}

export async function loadRouting(env: Env, orgId: string): Promise<RoutingConfig> {
  const db = database(env.DB);
  const [queues, skills, caps, users] = await db.batch([
    db.select().from(schema.queues).where(eq(schema.queues.org_id, orgId)),
    db.select().from(schema.agentSkills).where(eq(schema.agentSkills.org_id, orgId)),
    db.select().from(schema.agentCapacity).where(eq(schema.agentCapacity.org_id, orgId)),
    db.select({ id: schema.users.id, name: schema.users.name, disabled: schema.users.disabled }).from(schema.users).where(eq(schema.users.org_id, orgId)),
  ]);
  const cfg: RoutingConfig = { queues: new Map(), skills: new Map(), capacity: new Map(), names: new Map() };
  for (const q of queues) {
    const hours = q.business_hours ? BusinessHours.safeParse(JSON.parse(q.business_hours)) : null;
    cfg.queues.set(q.id, { id: q.id, name: q.name, auto_assign: q.auto_assign, hours: hours?.success ? hours.data : null, closed_message: q.closed_message });
  }
  for (const s of skills) {
    if (!cfg.skills.has(s.queue_id)) cfg.skills.set(s.queue_id, new Set());
    cfg.skills.get(s.queue_id)!.add(s.user_id);
  }
  for (const c of caps) cfg.capacity.set(c.user_id, c.capacity);
  for (const u of users) if (!u.disabled) cfg.names.set(u.id, u.name);
  return cfg;
}

export const queueByName = (cfg: RoutingConfig, name: string | null) => (name ? [...cfg.queues.values()].find((q) => q.name.toLowerCase() === name.toLowerCase()) ?? null : null);
