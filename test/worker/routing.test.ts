/** Skill-group routing: auto-assignment by skill and capacity, queue position, business hours. */
import { describe, expect, it } from "vitest";
import { call, eventually, newOrg, openSocket } from "./helpers";

async function addAgent(o: Awaited<ReturnType<typeof newOrg>>, name: string) {
  const email = `${name}-${crypto.randomUUID()}@example.test`;
  const created = await o.agent.call("/api/company/agents", { body: { name, email, password: "agent password", role: "agent" } });
  const login = await call("/auth/login", { body: { email, password: "agent password" } });
  return { id: created.body.id as string, cookie: login.headers.get("set-cookie")!.split(";")[0]! };
}

const init = (pk: string, refId: string, Subject: string) => call("/api/customer/init", { body: { apiKey: pk, Channel: "web", refId, firstName: refId, Subject } });

describe("routing", () => {
  it("auto-assigns by skill and capacity, tells waiting customers their position, and assigns the next when an agent frees up", async () => {
    const o = await newOrg();
    const billing = (await o.agent.call("/api/routing/queues", { body: { name: "billing" } })).body;
    const tech = (await o.agent.call("/api/routing/queues", { body: { name: "tech" } })).body;
    const ann = await addAgent(o, "Ann");
    const bob = await addAgent(o, "Bob");
    expect((await o.agent.call(`/api/routing/agents/${ann.id}`, { method: "PUT", body: { skills: [billing.id, tech.id], capacity: 1 } })).status).toBe(200);
    expect((await o.agent.call(`/api/routing/agents/${bob.id}`, { method: "PUT", body: { skills: [tech.id], capacity: 2 } })).status).toBe(200);
    const annInbox = await openSocket("/ws/org", { cookie: ann.cookie });
    await annInbox.next((f) => f.type === "ready");

    // Billing: only Ann has the skill, with capacity 1.
    const c1 = await init(o.pk, "cust-1", "billing");
    const v1 = await openSocket(`/ws/visitor?key=${o.pk}&external_id=cust-1`);
    await v1.next((f) => f.type === "ready");
    v1.send({ type: "send", content: "billing question 1", client_msg_id: "b1" });
    await eventually(async () => (await o.agent.call(`/api/conversations/${c1.body.conversationId}`)).body.active_session?.assigned_agent_id === ann.id, "Ann gets billing #1");

    const c2 = await init(o.pk, "cust-2", "billing");
    const v2 = await openSocket(`/ws/visitor?key=${o.pk}&external_id=cust-2`);
    await v2.next((f) => f.type === "ready");
    v2.send({ type: "send", content: "billing question 2", client_msg_id: "b2" });
    const queued = await v2.next((f) => f.type === "queue");
    expect(queued).toMatchObject({ position: 1, queue: "billing", open: true, agents_available: true });
    expect(queued.estimated_wait_s).toBeGreaterThan(0);
    expect((await o.agent.call(`/api/conversations/${c2.body.conversationId}`)).body.active_session.assigned_agent_id).toBeNull();
    // A reconnecting customer learns their place at once, from the ready frame.
    const again = await openSocket(`/ws/visitor?key=${o.pk}&external_id=cust-2`);
    expect((await again.next((f) => f.type === "ready")).queue).toMatchObject({ position: 1, queue: "billing" });

    // Tech: Bob comes online; he has no load, Ann is full.
    const bobInbox = await openSocket("/ws/org", { cookie: bob.cookie });
    await bobInbox.next((f) => f.type === "ready");
    const c3 = await init(o.pk, "cust-3", "tech");
    await call("/api/chat/send", { body: { apiKey: o.pk, visitorId: "cust-3", message: "tech question" } });
    await eventually(async () => (await o.agent.call(`/api/conversations/${c3.body.conversationId}`)).body.active_session?.assigned_agent_id === bob.id, "Bob gets tech");

    // Ann resolves billing #1: billing #2 goes to her.
    expect((await o.agent.call(`/api/conversations/${c1.body.conversationId}/resolve`, { body: {} })).status).toBe(200);
    await eventually(async () => (await o.agent.call(`/api/conversations/${c2.body.conversationId}`)).body.active_session?.assigned_agent_id === ann.id, "Ann gets billing #2 after resolving #1");

    // The audit log names the router for each automatic assignment.
    const routed = await eventually(async () => {
      const r = await o.agent.call("/api/audit?action=conversation.assigned&actor_id=router&limit=100");
      return r.body.entries.length === 3 && r.body.entries;
    }, "three router assignments in the audit log");
    expect(routed.map((e: any) => [e.actor, e.target.id, e.detail.agent_id, e.detail.via])).toEqual(
      [
        [c2.body.conversationId, ann.id],
        [c3.body.conversationId, bob.id],
        [c1.body.conversationId, ann.id],
      ].map(([conversation, agent]) => [{ type: "system", id: "router", name: "Router" }, conversation, agent, "router"]),
    );
  });

  it("tells customers outside business hours and when no agent is online; agents can still claim by hand", async () => {
    const o = await newOrg();
    const closed = { timezone: "UTC", hours: {} };
    await o.agent.call("/api/routing/queues", { body: { name: "night", business_hours: closed, closed_message: "We are closed; we reply at 9:00 UTC." } });
    const c = await init(o.pk, "late", "night");
    const v = await openSocket(`/ws/visitor?key=${o.pk}&external_id=late`);
    await v.next((f) => f.type === "ready");
    v.send({ type: "send", content: "anyone?", client_msg_id: "n1" });
    const status = await v.next((f) => f.type === "queue");
    expect(status).toMatchObject({ open: false, agents_available: false, position: 1 });
    const note = await v.next((f) => f.type === "message" && f.message.sender_type === "bot");
    expect(note.message.content).toBe("We are closed; we reply at 9:00 UTC.");
    expect((await o.agent.call(`/api/conversations/${c.body.conversationId}/assign`, { method: "POST" })).status).toBe(200);
  });

  it("validates routing settings and scopes them to the organisation", async () => {
    const o = await newOrg();
    const other = await newOrg();
    expect((await o.agent.call("/api/routing/queues", { body: { name: "x", business_hours: { timezone: "Mars/Olympus", hours: {} } } })).status).toBe(400);
    const q = (await o.agent.call("/api/routing/queues", { body: { name: "sales" } })).body;
    expect((await o.agent.call("/api/routing/queues", { body: { name: "sales" } })).status).toBe(409);
    expect((await other.agent.call(`/api/routing/agents/${o.user.id}`, { method: "PUT", body: { skills: [], capacity: 1 } })).status).toBe(404);
    expect((await other.agent.call(`/api/routing/agents/${other.user.id}`, { method: "PUT", body: { skills: [q.id], capacity: 1 } })).status).toBe(400);
  });
});
