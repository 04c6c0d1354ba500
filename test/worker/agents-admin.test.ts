/**
 * Managing agents (PATCH /api/company/agents/:id) and S10's last part: an admin disables an
 * agent while that agent's console sockets are open. Every socket the agent's sessions and
 * secret keys opened closes with 1008, their sessions end, and their logins and keys are refused
 * afterwards; re-enabling lets them log in again (old sessions stay dead).
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { asAgent, BASE, call, dostiVisitor, eventually, newOrg, openSocket, withKey } from "./helpers";

const PASSWORD = "agent password";

async function login(email: string, password = PASSWORD) {
  const r = await call("/auth/login", { body: { email, password } });
  return { status: r.status, cookie: r.headers.get("set-cookie")?.split(";")[0] ?? "", csrf: r.body?.csrf_token as string, body: r.body };
}

async function addAgent(o: Awaited<ReturnType<typeof newOrg>>, role: "agent" | "admin", name = `An ${role}`) {
  const email = `${role}-${crypto.randomUUID()}@example.test`;
  const r = await o.agent.call("/api/company/agents", { body: { name, email, password: PASSWORD, role } });
  expect(r.status).toBe(201);
  const session = await login(email);
  expect(session.status).toBe(200);
  return { id: r.body.id as string, email, ...session, as: asAgent(session.cookie, session.csrf) };
}

describe("PATCH /api/company/agents/:id", () => {
  it("an admin disables an agent while their console sockets are open: inbox, conversation and Socket.IO close with 1008; logins and secret keys are refused; re-enabling allows a new login", async () => {
    const o = await newOrg();
    const admin = await addAgent(o, "admin");
    const victim = await addAgent(o, "agent", "Victor");
    const secondSession = await login(victim.email);

    await dostiVisitor(o.pk, "s10-disable").send("hello");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");

    // An observer (the owner's inbox) sees the victim online, then offline.
    const observer = await openSocket("/ws/org", { cookie: o.cookie });
    await observer.next((f) => f.type === "ready");
    const inbox = await openSocket("/ws/org", { cookie: victim.cookie });
    const room = await openSocket(`/ws/conversations/${conv.id}`, { cookie: victim.cookie });
    const otherRoom = await openSocket(`/ws/conversations/${conv.id}`, { cookie: secondSession.cookie });
    const ownerRoom = await openSocket(`/ws/conversations/${conv.id}`, { cookie: o.cookie });
    for (const s of [inbox, room, otherRoom, ownerRoom]) await s.next((f) => f.type === "ready");
    await observer.next((f) => f.type === "agent_status_changed" && f.agent_id === victim.id && f.status === "online");

    // A Socket.IO agent connection of the victim's session (raw Engine.IO over polling).
    const engine = async (q: string, body?: string) =>
      exports.default.fetch(new Request(`${BASE}/socket.io/?EIO=4&transport=polling${q}`, { method: body ? "POST" : "GET", headers: { cookie: victim.cookie, ...(body ? { "content-type": "text/plain" } : {}) }, body }));
    const sid = JSON.parse((await (await engine("")).text()).slice(1)).sid as string;
    await engine(`&sid=${sid}`, "40");
    expect(await (await engine(`&sid=${sid}`)).text()).toMatch(/^40/);

    // Victor has the conversation (claimed, and in D1's lists).
    expect((await victim.as.call(`/api/conversations/${conv.id}/assign`, { method: "POST" })).status).toBe(200);
    await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body.find((c: any) => c.id === conv.id)?.active_session?.assigned_agent_id === victim.id, "the claim in D1");

    const res = await admin.as.call(`/api/company/agents/${victim.id}`, { method: "PATCH", body: { disabled: true } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: victim.id, disabled: true, role: "agent", revoked_sessions: 2, released_conversations: 1 });
    // His conversation went back to the unassigned queue: nobody waits on a disabled agent.
    expect((await o.agent.call(`/api/conversations/${conv.id}`)).body.active_session).toMatchObject({ status: "open", assigned_agent_id: null });

    for (const s of [inbox, room, otherRoom]) expect((await s.waitClosed()).code).toBe(1008);
    const after = await engine(`&sid=${sid}`);
    expect(after.status).toBe(400);
    await observer.next((f) => f.type === "agent_status_changed" && f.agent_id === victim.id && f.status === "offline");
    // Other people's sockets are untouched.
    ownerRoom.send({ type: "send", content: "still here" });
    expect(await ownerRoom.next((f) => f.type === "ack")).toMatchObject({ duplicate: false });

    // The sessions are gone server-side, and no new one can be made.
    expect((await call("/auth/me", { headers: { cookie: victim.cookie } })).status).toBe(401);
    expect((await call("/auth/me", { headers: { cookie: secondSession.cookie } })).status).toBe(401);
    const refused = await login(victim.email);
    expect([refused.status, refused.body.error.code]).toEqual([401, "invalid_credentials"]);
    const ws = await exports.default.fetch(new Request(`${BASE}/ws/org`, { headers: { upgrade: "websocket", cookie: victim.cookie } }));
    expect(ws.status).toBe(401);

    // The teammates list says so.
    const list = (await o.agent.call("/api/company/agents")).body as { id: string; disabled: boolean }[];
    expect(list.find((a) => a.id === victim.id)?.disabled).toBe(true);

    // Re-enabled: a fresh login works; the old sessions stay dead.
    const back = await admin.as.call(`/api/company/agents/${victim.id}`, { method: "PATCH", body: { disabled: false } });
    expect([back.status, back.body.disabled, back.body.revoked_sessions]).toEqual([200, false, 0]);
    expect((await login(victim.email)).status).toBe(200);
    expect((await call("/auth/me", { headers: { cookie: victim.cookie } })).status).toBe(401);
  });

  it("disabling an admin closes the sockets their secret keys opened and refuses those keys", async () => {
    const o = await newOrg();
    const admin = await addAgent(o, "admin");
    const key = await admin.as.call("/api/company/api-keys", { body: { name: "bot", kind: "secret" } });
    expect(key.status).toBe(201);
    await dostiVisitor(o.pk, "s10-key-disable").send("hello");
    const conv = await eventually(async () => (await o.agent.call("/api/conversations/?filter=all")).body[0], "listed");
    const byKey = await openSocket(`/ws/conversations/${conv.id}`, { authorization: `Bearer ${key.body.key}` });
    await byKey.next((f) => f.type === "ready");
    expect((await withKey(key.body.key).call("/auth/me")).status).toBe(200);

    const res = await o.agent.call(`/api/company/agents/${admin.id}`, { method: "PATCH", body: { disabled: true } });
    expect(res.status).toBe(200);
    expect((await byKey.waitClosed()).code).toBe(1008);
    expect((await withKey(key.body.key).call("/auth/me")).status).toBe(401);
    expect((await withKey(key.body.key).call(`/api/conversations/${conv.id}/messages`, { body: { content: "from a disabled admin's key" } })).status).toBe(401);
    // The org's own secret key (the owner's) still works.
    expect((await withKey(o.sk).call("/auth/me")).status).toBe(200);
  });

  it("role rules: owners and admins change roles; nobody disables or re-roles themselves; the owner cannot be demoted or disabled; agents get 403; another org's agent is 404", async () => {
    const o = await newOrg();
    const other = await newOrg();
    const admin = await addAgent(o, "admin");
    const agent = await addAgent(o, "agent");
    const peer = await addAgent(o, "agent");
    const foreign = await addAgent(other, "agent");
    const ownerId = o.user.id as string;
    const patch = (who: { call: typeof o.agent.call }, id: string, body: unknown) => who.call(`/api/company/agents/${id}`, { method: "PATCH", body });
    const status = async (p: Promise<{ status: number; body: any }>) => {
      const r = await p;
      return [r.status, r.body?.error?.code ?? "ok"];
    };

    // Promote and demote (each change ends the agent's sessions: see the next test).
    expect(await status(patch(admin.as, peer.id, { role: "admin" }))).toEqual([200, "ok"]);
    expect((await call("/auth/me", { headers: { cookie: (await login(peer.email)).cookie } })).body.user.role).toBe("admin");
    expect(await status(patch(o.agent, peer.id, { role: "agent" }))).toEqual([200, "ok"]);
    expect((await call("/auth/me", { headers: { cookie: (await login(peer.email)).cookie } })).body.user.role).toBe("agent");

    // Plain agents cannot change anyone, themselves included.
    expect(await status(patch(agent.as, peer.id, { disabled: true }))).toEqual([403, "forbidden"]);
    expect(await status(patch(agent.as, agent.id, { role: "admin" }))).toEqual([403, "forbidden"]);
    expect(await status(patch(agent.as, agent.id, { name: "Renamed" }))).toEqual([403, "forbidden"]);

    // Nobody disables or re-roles themselves; renaming oneself is fine.
    expect(await status(patch(admin.as, admin.id, { disabled: true }))).toEqual([403, "forbidden"]);
    expect(await status(patch(admin.as, admin.id, { role: "agent" }))).toEqual([403, "forbidden"]);
    expect(await status(patch(o.agent, ownerId, { disabled: true }))).toEqual([403, "forbidden"]);
    expect(await status(patch(o.agent, ownerId, { role: "admin" }))).toEqual([403, "forbidden"]);
    expect(await status(patch(admin.as, admin.id, { name: "Ada" }))).toEqual([200, "ok"]);

    // An admin cannot touch the owner.
    expect(await status(patch(admin.as, ownerId, { role: "agent" }))).toEqual([403, "forbidden"]);
    expect(await status(patch(admin.as, ownerId, { disabled: true }))).toEqual([403, "forbidden"]);
    expect((await call("/auth/me", { headers: { cookie: o.cookie } })).body.user.role).toBe("owner");

    // Org isolation: another org's agent id is a plain 404, like an id that does not exist.
    const cross = await patch(o.agent, foreign.id, { disabled: true });
    const missing = await patch(o.agent, crypto.randomUUID(), { disabled: true });
    expect(cross.status).toBe(404);
    expect(cross.body).toEqual(missing.body);
    expect((await call("/auth/me", { headers: { cookie: foreign.cookie } })).status).toBe(200);

    // Validation: no owner role, no unknown fields, something to change.
    expect(await status(patch(o.agent, agent.id, { role: "owner" }))).toEqual([400, "validation_failed"]);
    expect(await status(patch(o.agent, agent.id, { is_admin: true }))).toEqual([400, "validation_failed"]);
    expect(await status(patch(o.agent, agent.id, {}))).toEqual([400, "validation_failed"]);
    expect(await status(patch(o.agent, agent.id, { disabled: "yes" }))).toEqual([400, "validation_failed"]);

    // CSRF: the cookie alone changes nothing.
    const noToken = await call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { disabled: true }, headers: { cookie: o.cookie } });
    expect([noToken.status, noToken.body.error.code]).toEqual([403, "csrf_failed"]);
    expect((await call("/auth/me", { headers: { cookie: agent.cookie } })).status).toBe(200);
  });

  it("a role change ends the agent's sessions and closes their sockets (a new session id for the new privileges); a new login has the new role; a name change ends nothing", async () => {
    const o = await newOrg();
    const agent = await addAgent(o, "agent");
    const inbox = await openSocket("/ws/org", { cookie: agent.cookie });
    await inbox.next((f) => f.type === "ready");
    const key = await o.agent.call("/api/company/api-keys", { body: { name: "owner's", kind: "secret" } });

    const renamed = await o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { name: "Renamed Agent" } });
    expect([renamed.status, renamed.body.name, renamed.body.revoked_sessions]).toEqual([200, "Renamed Agent", 0]);
    const same = await o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { role: "agent" } });
    expect([same.status, same.body.revoked_sessions]).toEqual([200, 0]); // not a change
    expect((await call("/auth/me", { headers: { cookie: agent.cookie } })).status).toBe(200);
    expect(inbox.closed).toBeNull();

    const promoted = await o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { role: "admin" } });
    expect([promoted.status, promoted.body.role, promoted.body.revoked_sessions]).toEqual([200, "admin", 1]);
    expect((await inbox.waitClosed()).code).toBe(1008);
    expect((await call("/auth/me", { headers: { cookie: agent.cookie } })).status).toBe(401);
    const again = await login(agent.email);
    expect(again.cookie).not.toBe(agent.cookie);
    expect((await call("/auth/me", { headers: { cookie: again.cookie } })).body.user).toMatchObject({ name: "Renamed Agent", role: "admin" });
    // The caller's own session and keys are untouched.
    expect((await o.agent.call("/auth/me")).status).toBe(200);
    expect((await withKey(key.body.key).call("/auth/me")).status).toBe(200);
  });

  it("an admin sets a new password for an agent: the old one stops working, the agent's sessions end; nobody sets their own here, nor the owner's; an admin's only the owner", async () => {
    const o = await newOrg();
    const admin = await addAgent(o, "admin");
    const agent = await addAgent(o, "agent");
    const inbox = await openSocket("/ws/org", { cookie: agent.cookie });
    await inbox.next((f) => f.type === "ready");
    const res = await admin.as.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { password: "a fresh temporary one" } });
    expect([res.status, res.body.revoked_sessions]).toEqual([200, 1]);
    expect(JSON.stringify(res.body)).not.toContain("a fresh temporary one");
    expect(JSON.stringify(res.body)).not.toContain("pbkdf2");
    expect((await inbox.waitClosed()).code).toBe(1008);
    expect((await login(agent.email)).status).toBe(401);
    expect((await login(agent.email, "a fresh temporary one")).status).toBe(200);

    // Another admin's password: the owner's call alone (it is taking over that account).
    const otherAdmin = await addAgent(o, "admin");
    const peerReset = await admin.as.call(`/api/company/agents/${otherAdmin.id}`, { method: "PATCH", body: { password: "taking over a peer" } });
    expect([peerReset.status, peerReset.body.error.code]).toEqual([403, "forbidden"]);
    expect((await login(otherAdmin.email)).status).toBe(200);
    expect((await o.agent.call(`/api/company/agents/${otherAdmin.id}`, { method: "PATCH", body: { password: "set by the owner" } })).status).toBe(200);
    expect((await login(otherAdmin.email, "set by the owner")).status).toBe(200);
    const own = await admin.as.call(`/api/company/agents/${admin.id}`, { method: "PATCH", body: { password: "my own new password" } });
    expect([own.status, own.body.error.code]).toEqual([403, "forbidden"]);
    const owners = await admin.as.call(`/api/company/agents/${o.user.id}`, { method: "PATCH", body: { password: "taking over the owner" } });
    expect([owners.status, owners.body.error.code]).toEqual([403, "forbidden"]);
    expect((await call("/auth/login", { body: { email: o.email, password: "correct horse battery" } })).status).toBe(200);
    const short = await o.agent.call(`/api/company/agents/${agent.id}`, { method: "PATCH", body: { password: "short" } });
    expect([short.status, short.body.error.code]).toEqual([400, "validation_failed"]);
    const byAgent = await agent.as.call(`/api/company/agents/${admin.id}`, { method: "PATCH", body: { password: "agents cannot do this" } });
    expect(byAgent.status).toBe(401); // that session ended with the reset above
  });

  it("POST /api/integrations/:id/embed-tokens: a new working token for a webchat or mobile channel; 400 for other kinds; 404 across orgs", async () => {
    const o = await newOrg({ allowed_origins: ["https://shop.example"] });
    const other = await newOrg();
    const made = await o.agent.call(`/api/integrations/${o.webchat.channel_id}/embed-tokens`, { method: "POST" });
    expect(made.status).toBe(201);
    expect(made.body.token).toMatch(/^ew_/);
    expect(made.body.token).not.toBe(o.webchat.token);
    for (const token of [made.body.token, o.webchat.token]) {
      const session = await call("/chat-widget/session", { body: { embed_token: token, session_id: `v-${token.slice(-6)}` }, headers: { origin: "https://shop.example" } });
      expect(session.status).toBe(200);
    }
    // A mobile channel's tokens are its app's credential: they work without an Origin, never from a page.
    const mobile = (await o.agent.call("/api/integrations/mobile", { body: { name: "app" } })).body.channel_id;
    const app = await o.agent.call(`/api/integrations/${mobile}/embed-tokens`, { method: "POST" });
    expect(app.status).toBe(201);
    expect((await call("/chat-widget/session", { body: { embed_token: app.body.token, session_id: "app-user" } })).body.channel.id).toBe(mobile);
    expect((await call("/chat-widget/session", { body: { embed_token: app.body.token, session_id: "app-user" }, headers: { origin: "https://shop.example" } })).status).toBe(403);
    const chatApi = (await o.agent.call("/api/integrations/chat-api", { body: { name: "api" } })).body.channel_id;
    expect((await o.agent.call(`/api/integrations/${chatApi}/embed-tokens`, { method: "POST" })).status).toBe(400);
    expect((await other.agent.call(`/api/integrations/${o.webchat.channel_id}/embed-tokens`, { method: "POST" })).status).toBe(404);
  });
});
