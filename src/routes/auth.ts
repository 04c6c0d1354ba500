/** `/auth`: signup (creates an organisation and its owner), login, logout, me. */
import { and, count, eq, gt } from "drizzle-orm";
import { z } from "zod";
import { hashPassword, MAX_PASSWORD_BYTES, verifyPassword } from "../core/crypto";
import { ApiError, isUniqueViolation } from "../core/errors";
import { displayName } from "../core/names";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { csrfToken, endSession, requireAgent, startSession } from "../http/auth";
import { readJson } from "../http/body";
import { createChannel } from "./integrations";
import { actorOf, auditInsert, recordAudit } from "../audit/log";

/** Failed logins per account before 429, within the window. */
export const LOGIN_MAX_FAILURES = 10;
export const LOGIN_WINDOW_MS = 15 * 60 * 1000;

const email = z.string().trim().toLowerCase().pipe(z.email().max(254));
const password = z.string().min(8).refine((p) => new TextEncoder().encode(p).byteLength <= MAX_PASSWORD_BYTES, { message: `at most ${MAX_PASSWORD_BYTES} bytes` });
const name = displayName(200);

export const Signup = z.object({ organization_name: name, name, email, password });
const Login = z.object({ email, password: z.string().min(1).max(MAX_PASSWORD_BYTES) });

export const auth = router()
  .post("/signup", async (c) => {
    const body = await readJson(c, Signup);
    const db = database(c.env.DB);
    if (await db.select({ id: schema.users.id }).from(schema.users).where(eq(schema.users.email, body.email)).get()) {
      throw new ApiError("email_taken", "an account with this email exists");
    }
    const org = { id: crypto.randomUUID(), name: body.organization_name };
    const user = { id: crypto.randomUUID(), org_id: org.id, name: body.name, email: body.email, role: "owner" as const };
    const channel = await createChannel(org.id, { kind: "webchat", name: "Website", is_default: true });
    try {
      await db.batch([
        db.insert(schema.organizations).values(org),
        db.insert(schema.users).values({ ...user, password_hash: await hashPassword(body.password) }),
        db.insert(schema.channels).values(channel),
        auditInsert(db, { org_id: org.id, actor: { type: "agent", id: user.id, name: user.name }, action: "org.created", target: { type: "organization", id: org.id }, detail: { name: org.name, owner_email: user.email } }),
      ]);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ApiError("email_taken", "an account with this email exists");
      throw err;
    }
    const csrf_token = await startSession(c, user.id, org.id);
    return c.json({ user: publicUser(user), organization: org, csrf_token }, 201);
  })
  .post("/login", async (c) => {
    const body = await readJson(c, Login);
    const db = database(c.env.DB);
    const since = Date.now() - LOGIN_WINDOW_MS;
    const failures = await db
      .select({ n: count() })
      .from(schema.loginFailures)
      .where(and(eq(schema.loginFailures.email, body.email), gt(schema.loginFailures.at_ms, since)))
      .get();
    if ((failures?.n ?? 0) >= LOGIN_MAX_FAILURES) throw new ApiError("rate_limited", "too many failed logins; try again later", LOGIN_WINDOW_MS / 1000);
    const user = await db.select().from(schema.users).where(eq(schema.users.email, body.email)).get();
    if (!user || user.disabled || !(await verifyPassword(body.password, user.password_hash))) {
      const failure = db.insert(schema.loginFailures).values({ email: body.email, at_ms: Date.now() });
      // A known account records the failed attempt in its organisation's audit log (never the password tried).
      if (user) {
        const entry = { org_id: user.org_id, actor: { type: "system" as const, id: "login", name: "Login attempt" }, action: "auth.login_failed", target: { type: "agent", id: user.id }, detail: { email: user.email, reason: user.disabled ? "disabled" : "wrong_password" } };
        await db.batch([failure, auditInsert(db, entry)]);
      } else await failure;
      throw new ApiError("invalid_credentials", "wrong email or password");
    }
    const org = await db.select().from(schema.organizations).where(eq(schema.organizations.id, user.org_id)).get();
    const csrf_token = await startSession(c, user.id, user.org_id);
    await recordAudit(c.env, { org_id: user.org_id, actor: { type: "agent", id: user.id, name: user.name }, action: "auth.login", target: { type: "agent", id: user.id }, detail: { email: user.email } });
    return c.json({ user: publicUser(user), organization: { id: org!.id, name: org!.name }, csrf_token });
  })
  .post("/logout", requireAgent(), async (c) => {
    const agent = c.get("agent");
    await endSession(c, agent.org_id);
    await recordAudit(c.env, { org_id: agent.org_id, actor: actorOf(agent), action: "auth.logout", target: { type: "agent", id: agent.user_id }, detail: { via: agent.via } });
    return c.json({ ok: true });
  })
  .get("/me", requireAgent(), async (c) => {
    const agent = c.get("agent");
    const org = await database(c.env.DB).select().from(schema.organizations).where(eq(schema.organizations.id, agent.org_id)).get();
    return c.json({
      user: { id: agent.user_id, name: agent.name, email: agent.email, role: agent.role },
      organization: { id: org!.id, name: org!.name },
      csrf_token: agent.session_token ? await csrfToken(c.env, agent.session_token) : null,
    });
  });

const publicUser = (u: { id: string; name: string; email: string; role: string }) => ({ id: u.id, name: u.name, email: u.email, role: u.role });
