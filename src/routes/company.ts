/**
 * `/api/company`: API keys and agents of the caller's organisation. Owners and admins, except the
 * teammates list (every agent: names and presence).
 *
 * Disabling an agent (`PATCH /agents/:id {disabled: true}`) ends every cookie session of theirs
 * and closes every socket those sessions or their secret keys opened (conversation rooms, the
 * inbox, Socket.IO) with 1008 through the org hub's `revokeAuth` (S10). Afterwards their logins
 * and secret keys are refused: `http/auth.ts` checks `users.disabled` on every request. Changing
 * an agent's role, or setting a new password for them, ends their sessions the same way: they log
 * in again, with a new session id.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { hashPassword, MAX_PASSWORD_BYTES, randomToken, sha256Hex } from "../core/crypto";
import { ApiError } from "../core/errors";
import { safeText } from "../core/message";
import { displayName } from "../core/names";
import { conversationForAgent, forgetVisitors, roomFor } from "../conversation/directory";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { requireAgent } from "../http/auth";
import { readJson } from "../http/body";
import { actorOf, auditInsert, recordAudit, type Actor, type AuditEntry } from "../audit/log";

const NewKey = z.object({ name: safeText(200).pipe(z.string().trim().min(1)), kind: z.enum(["public", "secret"]) });
const password = z.string().min(8).refine((p) => new TextEncoder().encode(p).byteLength <= MAX_PASSWORD_BYTES, { message: `at most ${MAX_PASSWORD_BYTES} bytes` });
const NewAgent = z.object({
  name: displayName(200),
  email: z.string().trim().toLowerCase().pipe(z.email().max(254)),
  password,
  role: z.enum(["admin", "agent"]).default("agent"),
});
/** Ownership is not transferable here: `owner` is never a target role. */
const AgentChange = z
  .strictObject({
    name: displayName(200).optional(),
    role: z.enum(["admin", "agent"]).optional(),
    disabled: z.boolean().optional(),
    /** A new (temporary) password set by an admin: someone else's, never one's own (no old password asked). */
    password: password.optional(),
  })
  .refine((b) => b.name !== undefined || b.role !== undefined || b.disabled !== undefined || b.password !== undefined, { message: "send name, role, disabled and/or password" });

const agentColumns = {
  id: schema.users.id,
  name: schema.users.name,
  email: schema.users.email,
  role: schema.users.role,
  disabled: schema.users.disabled,
  created_at: schema.users.created_at,
};

/**
 * Ends one user's cookie sessions (deleted) and closes the sockets they opened (1008); with
 * `keys`, also the sockets their secret keys opened. Returns how many sessions ended.
 *
 * Disabling calls it with `keys` after `disabled` is set, so that a login or key use racing it
 * sees the flag and is refused (`http/auth.ts` checks it on every request, which is what refuses
 * the keys themselves). A role change calls it without: the agent logs in again and gets a new
 * session id for the new privileges (OWASP: renew the session on a privilege change; S10); so
 * does a password an admin sets (whoever had the old one is out).
 */
async function endAccess(env: Env, orgId: string, userId: string, opts: { keys: boolean }): Promise<number> {
  const db = database(env.DB);
  const sessions = await db
    .delete(schema.authSessions)
    .where(and(eq(schema.authSessions.user_id, userId), eq(schema.authSessions.org_id, orgId)))
    .returning({ id_hash: schema.authSessions.id_hash });
  const keys = opts.keys
    ? await db
        .select({ id: schema.apiKeys.id })
        .from(schema.apiKeys)
        .where(and(eq(schema.apiKeys.created_by, userId), eq(schema.apiKeys.org_id, orgId), eq(schema.apiKeys.kind, "secret"), isNull(schema.apiKeys.revoked_at)))
        .all()
    : [];
  const hub = env.ORG_HUB.getByName(orgId);
  await Promise.all([...sessions.map((s) => s.id_hash), ...keys.map((k) => `key:${k.id}`)].map((ref) => hub.revokeAuth(ref)));
  return sessions.length;
}

/**
 * A disabled agent's open conversations go back to the unassigned queue (through each room's
 * `transfer`, as a supervisor would), so no customer waits on someone who cannot answer. The list
 * comes from D1, which trails the rooms by the flush (a conversation assigned in the last moment
 * may stay assigned; unassigning it by hand, or resolving it, is always possible). Returns how
 * many were released.
 */
async function releaseConversations(env: Env, orgId: string, userId: string, by: string, actor: Actor): Promise<number> {
  const open = await database(env.DB)
    .select({ conversation_id: schema.conversationSessions.conversation_id })
    .from(schema.conversationSessions)
    .where(and(eq(schema.conversationSessions.org_id, orgId), eq(schema.conversationSessions.assigned_agent_id, userId), eq(schema.conversationSessions.status, "open")))
    .all();
  let released = 0;
  for (const { conversation_id } of open) {
    try {
      const ref = await conversationForAgent(env, orgId, conversation_id);
      const res = await roomFor(env, ref).transfer(ref, null, { id: by, supervisor: true });
      if (res.ok && res.session.assigned_agent_id === null) {
        released += 1;
        await recordAudit(env, { org_id: orgId, actor, action: "conversation.unassigned", target: { type: "conversation", id: conversation_id }, detail: { session_id: res.session.id, from_agent_id: userId, reason: "agent_disabled" } });
      }
    } catch (err) {
      // One conversation failing (gone, or its object unavailable) must not keep the agent enabled.
      console.error(JSON.stringify({ at: "company.releaseConversations", conversation_id, error: String(err) }));
    }
  }
  return released;
}

export const company = router()
  // Every agent sees teammates (names for assignments, presence); the rest is for owners and admins.
  .get("/agents", requireAgent(), async (c) => {
    const rows = await database(c.env.DB)
      .select(agentColumns)
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
    const db = database(c.env.DB);
    await db.batch([
      db.insert(schema.apiKeys).values(row),
      auditInsert(db, { org_id: agent.org_id, actor: actorOf(agent), action: "api_key.created", target: { type: "api_key", id: row.id }, detail: { name: row.name, kind: row.kind, prefix: row.key_prefix } }),
    ]);
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
    const agent = c.get("agent");
    const db = database(c.env.DB);
    const id = c.req.param("id");
    const now = new Date().toISOString();
    const k = schema.apiKeys;
    // The entry is written in the same batch, only if this request is the one that revoked the key.
    const [done] = await db.batch([
      db
        .update(k)
        .set({ revoked_at: now })
        .where(and(eq(k.id, id), eq(k.org_id, agent.org_id), isNull(k.revoked_at)))
        .returning({ id: k.id, name: k.name, kind: k.kind, prefix: k.key_prefix }),
      auditInsert(
        db,
        { org_id: agent.org_id, actor: actorOf(agent), action: "api_key.revoked", target: { type: "api_key", id } },
        sql`exists (select 1 from ${k} where ${k.id} = ${id} and ${k.org_id} = ${agent.org_id} and ${k.revoked_at} = ${now})`,
      ),
    ]);
    if (done.length === 0) throw new ApiError("not_found", "API key not found");
    if (done[0]!.kind === "public") forgetVisitors(); // the returning visitors' cache may hold it
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
    await db.batch([
      db.insert(schema.users).values({ ...user, password_hash: await hashPassword(body.password) }),
      auditInsert(db, { org_id: user.org_id, actor: actorOf(c.get("agent")), action: "agent.created", target: { type: "agent", id: user.id }, detail: { name: user.name, email: user.email, role: user.role } }),
    ]);
    return c.json({ ...user, disabled: false }, 201);
  })
  .patch("/agents/:id", async (c) => {
    const body = await readJson(c, AgentChange);
    const caller = c.get("agent");
    const db = database(c.env.DB);
    const target = await db
      .select(agentColumns)
      .from(schema.users)
      .where(and(eq(schema.users.id, c.req.param("id")), eq(schema.users.org_id, caller.org_id)))
      .get();
    if (!target) throw new ApiError("not_found", "agent not found");
    const self = target.id === caller.user_id;
    if (self && body.disabled === true) throw new ApiError("forbidden", "you cannot disable yourself");
    if (self && body.role !== undefined && body.role !== target.role) throw new ApiError("forbidden", "you cannot change your own role");
    if (self && body.password !== undefined) throw new ApiError("forbidden", "set your own password by logging in with it, not here");
    // Setting an admin's password is taking over that admin's account: the owner's call alone.
    if (body.password !== undefined && target.role !== "agent" && caller.role !== "owner") throw new ApiError("forbidden", "only the owner sets an admin's password");
    if (target.role === "owner" && !self) throw new ApiError("forbidden", "only the owner changes the owner's account; the owner cannot be demoted or disabled");
    const set: Partial<typeof schema.users.$inferInsert> = {};
    if (body.name !== undefined) set.name = body.name;
    if (body.role !== undefined && !self) set.role = body.role;
    if (body.disabled !== undefined) set.disabled = body.disabled;
    if (body.password !== undefined) set.password_hash = await hashPassword(body.password);
    // One entry per kind of change (never the password itself), in the same batch as the change.
    const actor = actorOf(caller);
    const entry = (action: string, detail: Record<string, unknown>): AuditEntry => ({ org_id: caller.org_id, actor, action, target: { type: "agent", id: target.id }, detail: { name: target.name, ...detail } });
    const entries: AuditEntry[] = [];
    if (set.name !== undefined && set.name !== target.name) entries.push(entry("agent.renamed", { from: target.name, to: set.name }));
    if (set.role !== undefined && set.role !== target.role) entries.push(entry("agent.role_changed", { from: target.role, to: set.role }));
    if (set.disabled !== undefined && set.disabled !== target.disabled) entries.push(entry(set.disabled ? "agent.disabled" : "agent.enabled", {}));
    if (set.password_hash !== undefined) entries.push(entry("agent.password_set", {}));
    const updated =
      Object.keys(set).length === 0
        ? target
        : (
            await db.batch([
              db
                .update(schema.users)
                .set(set)
                .where(and(eq(schema.users.id, target.id), eq(schema.users.org_id, caller.org_id)))
                .returning(agentColumns),
              ...entries.map((e) => auditInsert(db, e)),
            ])
          )[0][0]!;
    const released = body.disabled === true ? await releaseConversations(c.env, caller.org_id, target.id, caller.user_id, actor) : 0;
    const ended =
      body.disabled === true
        ? await endAccess(c.env, caller.org_id, target.id, { keys: true })
        : (set.role !== undefined && set.role !== target.role) || set.password_hash !== undefined
          ? await endAccess(c.env, caller.org_id, target.id, { keys: false })
          : 0;
    return c.json({ ...updated, revoked_sessions: ended, released_conversations: released });
  });
