/**
 * `/api/conversations`: the agent API in seed 001's shapes (bare JSON arrays for lists).
 * Lists come from D1 (org-wide queries); one conversation's state and messages come from its
 * object, the authority, so an agent always reads their own writes.
 */
import { and, desc, eq, gt, isNull, ne, sql } from "drizzle-orm";
import { z } from "zod";
import type { ConversationRef } from "../core/conversation-ref";
import { ApiError, unwrap } from "../core/errors";
import { MessageInput, messageView, safeText } from "../core/message";
import { agentOfOrg, conversationForAgent, roomFor } from "../conversation/directory";
import type { Session } from "../conversation/sessions";
import { database, schema } from "../db/client";
import { router } from "../http/app";
import { agentPrincipal, requireAgent, requireAgentInConversation } from "../http/auth";
import { parse, readJson } from "../http/body";
import { actorOf, recordAudit } from "../audit/log";
import type { Agent } from "../http/auth";

/**
 * A conversation's audit entry, written after the room's change succeeded (the room is the
 * authority; an audit failure never fails the chat). State changes only: no entry per message.
 */
const auditConversation = (env: Env, agent: Agent, id: string, action: string, detail: Record<string, unknown>) =>
  recordAudit(env, { org_id: agent.org_id, actor: actorOf(agent), action, target: { type: "conversation", id }, detail });

const Tags = z.array(safeText(100).pipe(z.string().trim().min(1))).max(50);
const ListQuery = z.object({
  filter: z.enum(["unassigned", "mine", "all"]).default("unassigned"),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  offset: z.coerce.number().int().min(0).max(100_000).default(0),
});
/**
 * A page of messages, oldest first: the newest `limit` (skipping `offset` back from the newest), or,
 * with `after`, the `limit` messages after that seq (how a client catches up from its last seq when
 * the socket's replay says resync_required).
 */
const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  after: z.coerce.number().int().min(0).optional(),
});
const SendBody = z.looseObject({ sender_type: z.enum(["agent", "bot"]).default("agent") });

/** The state changes whose refused attempts (403, 404: another org's or no such conversation) are recorded too (S2). */
const CHANGES = new Set(["assign", "transfer", "unassign", "resolve", "tags"]);

export const conversations = router()
  // The message routes (an agent's REST send is S5's hot path) authenticate and find the
  // conversation in one D1 statement (requireAgentInConversation). They come before the
  // router-wide requireAgent, which they replace: a handler that answers ends the chain.
  .get("/:id/messages", requireAgentInConversation(), async (c) => {
    const q = parse(PageQuery, c.req.query());
    const ref = c.get("conversation");
    const { messages } = unwrap(await roomFor(c.env, ref).history(ref, { ...q, audience: "staff" }));
    return c.json(messages.map(messageView));
  })
  .post("/:id/messages", requireAgentInConversation(), async (c) => {
    const body = await readJson(c, SendBody);
    const agent = c.get("agent");
    const ref = c.get("conversation");
    const { sender_type, ...input } = body;
    const draft = parse(MessageInput, input);
    const sender = { ...agentPrincipal(agent), type: sender_type };
    const { message, duplicate } = unwrap(await roomFor(c.env, ref).send(ref, sender, draft));
    return c.json({ ...messageView(message), duplicate }, duplicate ? 200 : 201);
  })
  .use(requireAgent())
  .use("/:id/:change", async (c, next) => {
    // Read before next(): afterwards c.req.param() answers for the handler's route.
    const change = c.req.param("change");
    const id = c.req.param("id");
    await next();
    if (c.req.method !== "POST" || !CHANGES.has(change) || (c.res.status !== 403 && c.res.status !== 404)) return;
    // In the caller's own organisation: the id they tried, never anything of another org's.
    const code = c.error instanceof ApiError ? c.error.code : String(c.res.status);
    await auditConversation(c.env, c.get("agent"), id.slice(0, 200), "conversation.change_refused", { attempted: change, code });
  })
  .get("/", async (c) => {
    const q = parse(ListQuery, c.req.query());
    const agent = c.get("agent");
    const s = schema.conversationSessions;
    // The active session: with a bot, or open in the agents' queue.
    const openSession = and(eq(s.conversation_id, schema.conversations.id), ne(s.status, "resolved"));
    const filter =
      q.filter === "unassigned"
        ? and(eq(s.status, "open"), isNull(s.assigned_agent_id))
        : q.filter === "mine"
          ? and(eq(s.status, "open"), eq(s.assigned_agent_id, agent.user_id))
          : gt(schema.conversations.last_seq, 0);
    const rows = await database(c.env.DB)
      .select({ conv: schema.conversations, user: schema.endUsers, session: s })
      .from(schema.conversations)
      .innerJoin(schema.endUsers, eq(schema.endUsers.id, schema.conversations.end_user_id))
      .leftJoin(s, openSession)
      .where(and(eq(schema.conversations.org_id, agent.org_id), filter))
      .orderBy(desc(schema.conversations.updated_at), sql`${schema.conversations.id}`)
      .limit(q.limit)
      .offset(q.offset)
      .all();
    return c.json(
      rows.map((r) =>
        conversationView(
          { id: r.conv.id, channel_id: r.conv.channel_id, end_user: { id: r.user.id, external_id: r.user.external_id, display_name: r.user.display_name } },
          r.session && { ...r.session, tags: JSON.parse(r.session.tags) as string[] },
          r.conv,
        ),
      ),
    );
  })
  .get("/:id", async (c) => {
    const ref = await conversationForAgent(c.env, c.get("agent").org_id, c.req.param("id"));
    const { session } = unwrap(await roomFor(c.env, ref).summary(ref));
    const row = await database(c.env.DB)
      .select({ conv: schema.conversations, user: schema.endUsers, channel: { id: schema.channels.id, kind: schema.channels.kind, name: schema.channels.name } })
      .from(schema.conversations)
      .innerJoin(schema.endUsers, eq(schema.endUsers.id, schema.conversations.end_user_id))
      .innerJoin(schema.channels, eq(schema.channels.id, schema.conversations.channel_id))
      .where(eq(schema.conversations.id, ref.id))
      .get();
    const view = conversationView(ref, session && session.status !== "resolved" ? session : null, row!.conv);
    // One conversation also shows who the visitor is (what the widget, seed 002's init or the SDK told us).
    return c.json({
      ...view,
      end_user: {
        ...view.end_user,
        email: row!.user.email,
        phone: row!.user.phone,
        attributes: JSON.parse(row!.user.attributes) as Record<string, unknown>,
        verified: row!.user.verified,
      },
      channel: row!.channel,
    });
  })
  .post("/:id/assign", async (c) => {
    const agent = c.get("agent");
    const ref = await conversationForAgent(c.env, agent.org_id, c.req.param("id"));
    const { session } = unwrap(await roomFor(c.env, ref).assign(ref, agentPrincipal(agent)));
    await auditConversation(c.env, agent, ref.id, "conversation.assigned", { session_id: session.id, agent_id: session.assigned_agent_id });
    return c.json({ id: ref.id, session_id: session.id, assigned_agent_id: session.assigned_agent_id, assigned_at: session.assigned_at });
  })
  // Hands the open session to another agent of the organisation (its agent, owners and admins).
  .post("/:id/transfer", async (c) => {
    const body = await readJson(c, z.object({ agent_id: z.string().min(1).max(200) }));
    const agent = c.get("agent");
    const ref = await conversationForAgent(c.env, agent.org_id, c.req.param("id"));
    const to = await agentOfOrg(c.env, agent.org_id, body.agent_id);
    const { session } = unwrap(await roomFor(c.env, ref).transfer(ref, to, { id: agent.user_id, supervisor: agent.role !== "agent" }));
    await auditConversation(c.env, agent, ref.id, "conversation.transferred", { session_id: session.id, to_agent_id: session.assigned_agent_id, to_agent_name: to.name });
    return c.json({ id: ref.id, session_id: session.id, assigned_agent_id: session.assigned_agent_id, assigned_at: session.assigned_at });
  })
  // Gives the open session back to the unassigned queue (its agent, owners and admins).
  .post("/:id/unassign", async (c) => {
    const agent = c.get("agent");
    const ref = await conversationForAgent(c.env, agent.org_id, c.req.param("id"));
    const { session } = unwrap(await roomFor(c.env, ref).transfer(ref, null, { id: agent.user_id, supervisor: agent.role !== "agent" }));
    await auditConversation(c.env, agent, ref.id, "conversation.unassigned", { session_id: session.id });
    return c.json({ id: ref.id, session_id: session.id, assigned_agent_id: session.assigned_agent_id, assigned_at: session.assigned_at });
  })
  .post("/:id/resolve", async (c) => {
    const body = c.req.header("content-length") === "0" || !c.req.header("content-type") ? {} : await readJson(c, z.object({ tags: Tags.optional() }));
    const ref = await conversationForAgent(c.env, c.get("agent").org_id, c.req.param("id"));
    const { session } = unwrap(await roomFor(c.env, ref).resolve(ref, body.tags));
    await auditConversation(c.env, c.get("agent"), ref.id, "conversation.resolved", { session_id: session.id, tags: session.tags });
    return c.json({ id: ref.id, session_id: session.id, status: session.status, tags: session.tags, resolved_at: session.resolved_at });
  })
  .post("/:id/tags", async (c) => {
    const body = await readJson(c, z.object({ tags: Tags }));
    const ref = await conversationForAgent(c.env, c.get("agent").org_id, c.req.param("id"));
    const { session } = unwrap(await roomFor(c.env, ref).setTags(ref, body.tags));
    await auditConversation(c.env, c.get("agent"), ref.id, "conversation.tagged", { session_id: session.id, tags: session.tags });
    return c.json({ id: ref.id, session_id: session.id, tags: session.tags });
  });

function conversationView(
  ref: Pick<ConversationRef, "id" | "channel_id" | "end_user">,
  session: Pick<Session, "id" | "status" | "assigned_agent_id" | "tags"> | null,
  row: { created_at: string; updated_at: string },
) {
  return {
    id: ref.id,
    end_user: { id: ref.end_user.id, display_name: ref.end_user.display_name, external_id: ref.end_user.external_id },
    channel_id: ref.channel_id,
    active_session: session && { id: session.id, status: session.status, assigned_agent_id: session.assigned_agent_id, tags: session.tags },
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

