/**
 * The audit log (RELIABILITY.md S2): who changed what, for every state-changing action of agents,
 * admins, secret keys and the system. One row in D1's `audit_log` per action:
 * `{id, org_id, at, actor: {type: agent|key|system, id, name}, action, target: {type, id}, detail}`.
 *
 * Where a route writes D1, its entry goes in the same `db.batch` as the change (`auditInsert`), so
 * one never exists without the other. Where the change happens elsewhere (a conversation's object,
 * the org hub, a session ending), the entry is written right after the change succeeds
 * (`recordAudit`), and a failure to write it is logged and swallowed: an audit failure never
 * breaks chat.
 *
 * Actions (dotted, `<target>.<verb>`):
 *   org.created, auth.login, auth.login_failed, auth.logout,
 *   api_key.created, api_key.revoked,
 *   agent.created, agent.renamed, agent.role_changed, agent.disabled, agent.enabled, agent.password_set,
 *   channel.created, channel.updated, channel.embed_token_issued, channel.identity_secret_viewed,
 *   channel.bot_set, channel.bot_removed, channel.push_set, channel.push_removed,
 *   webhook.created, webhook.updated, webhook.deleted, webhook.secret_rotated, webhook.delivery_retried,
 *   routing.queue_created, routing.queue_updated, routing.agent_updated,
 *   conversation.assigned, conversation.transferred, conversation.unassigned, conversation.resolved,
 *   conversation.tagged
 *
 * `detail` never holds a secret: no password, key, token, signing secret, identity secret or push
 * credential, and no URL query string (it may carry one). `cleanDetail` drops any field whose
 * name says otherwise, as a second line of defence.
 */
import { sql, type SQL } from "drizzle-orm";
import type { Agent } from "../http/auth";
import { database, schema, type Database } from "../db/client";

export type ActorType = "agent" | "key" | "system";
export interface Actor {
  type: ActorType;
  id: string;
  name: string | null;
}
export interface AuditEntry {
  org_id: string;
  actor: Actor;
  action: string;
  target: { type: string; id: string };
  detail?: Record<string, unknown>;
}

/** The agent behind a request: a secret key acts as its own actor (named by the key's name). */
export function actorOf(agent: Agent): Actor {
  if (agent.via === "key" && agent.key) return { type: "key", id: agent.key.id, name: `${agent.key.name} (${agent.name})` };
  return { type: "agent", id: agent.user_id, name: agent.name };
}

export const SYSTEM: Actor = { type: "system", id: "system", name: "Parley" };

const SECRET_FIELD = /secret|password|credential|private_key|^token$|_token$|^key$|_key$|hash$/i;

/** Drops secret-looking fields (recursively) and bounds the size; detail is a small object. */
export function cleanDetail(detail: Record<string, unknown> | undefined): string {
  const clean = (v: unknown, depth: number): unknown => {
    if (Array.isArray(v)) return v.slice(0, 50).map((x) => clean(x, depth + 1));
    if (v && typeof v === "object") {
      if (depth > 3) return null;
      return Object.fromEntries(Object.entries(v).filter(([k]) => !SECRET_FIELD.test(k)).map(([k, x]) => [k, clean(x, depth + 1)]));
    }
    if (typeof v === "string") return v.length > 500 ? `${v.slice(0, 500)}…` : v;
    return v;
  };
  const text = JSON.stringify(clean(detail ?? {}, 0));
  return text.length > 4000 ? JSON.stringify({ truncated: true }) : text;
}

/** A URL without its query string or fragment (which may carry a token). */
export function urlForAudit(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}

function row(e: AuditEntry) {
  return {
    id: crypto.randomUUID(),
    org_id: e.org_id,
    at: new Date().toISOString(),
    actor_type: e.actor.type,
    actor_id: e.actor.id,
    actor_name: e.actor.name,
    action: e.action,
    target_type: e.target.type,
    target_id: e.target.id,
    detail: cleanDetail(e.detail),
  };
}

/**
 * The entry as a statement for the same `db.batch` as the change. With `onlyIf` (an SQL condition,
 * evaluated after the batch's earlier statements), it is written only when the condition holds:
 * e.g. "the key now carries the revocation time this request set".
 */
export function auditInsert(db: Database, e: AuditEntry, onlyIf?: SQL) {
  const r = row(e);
  if (!onlyIf) return db.insert(schema.auditLog).values(r);
  return db
    .insert(schema.auditLog)
    .select(
      sql`select ${r.id}, ${r.org_id}, ${r.at}, ${r.actor_type}, ${r.actor_id}, ${r.actor_name}, ${r.action}, ${r.target_type}, ${r.target_id}, ${r.detail} where ${onlyIf}`,
    );
}

/** Writes entries after a change that happened outside D1. Never throws: chat goes on without it. */
export async function recordAudit(env: Env, ...entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  try {
    const db = database(env.DB);
    await db.insert(schema.auditLog).values(entries.map(row));
  } catch (err) {
    console.error(JSON.stringify({ at: "audit.record", actions: entries.map((e) => e.action), error: String(err).split("\nparams")[0]!.slice(0, 200) }));
  }
}
