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
      await db.insert(schema.loginFailures).values({ email: body.email, at_ms: Date.now() });
      throw new ApiError("invalid_credentials", "wrong email or password");
    }
    const org = await db.select().from(schema.organizations).where(eq(schema.organizations.id, user.org_id)).get();
    const csrf_token = await startSession(c, user.id, user.org_id);
    return c.json({ user: publicUser(user), organization: { id: org!.id, name: org!.name }, csrf_token });
  })
  .post("/logout", requireAgent(), async (c) => {
    await endSession(c, c.get("agent").org_id);
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
